"""Broken annotation files: clear errors, or skipped/clipped boxes counted.

Every case builds a small COCO file in tmp_path; the file never needs images
because the dataset only reads annotations at construction.
"""
import copy
import json
import logging

import pytest
from mmengine.logging import MMLogger

from shufflenet_det.datasets import ValidatedCocoDataset
from tests.conftest import COCO_MINI, COCO_MINI_SKIP


def coco_dict():
    """Two 100x80 images, three valid boxes, COCO's own category ids."""
    return dict(
        images=[
            dict(id=1, file_name='a.jpg', width=100, height=80),
            dict(id=2, file_name='b.jpg', width=100, height=80),
        ],
        annotations=[
            dict(id=10, image_id=1, category_id=1, bbox=[10, 10, 20, 30],
                 area=600, iscrowd=0),
            dict(id=11, image_id=1, category_id=18, bbox=[50, 5, 40, 40],
                 area=1600, iscrowd=0),
            dict(id=12, image_id=2, category_id=1, bbox=[0, 0, 100, 80],
                 area=8000, iscrowd=0),
        ],
        categories=[dict(id=1, name='person'), dict(id=18, name='dog')])


def build(tmp_path, data, text=None, **kwargs):
    path = tmp_path / 'instances.json'
    path.write_text(text if text is not None else json.dumps(data))
    return ValidatedCocoDataset(
        ann_file=str(path), data_prefix=dict(img=str(tmp_path)),
        pipeline=[], **kwargs)


def boxes_of(dataset, img_id):
    info = next(dataset.get_data_info(i) for i in range(len(dataset))
                if dataset.get_data_info(i)['img_id'] == img_id)
    return [inst['bbox'] for inst in info['instances']]


@pytest.fixture
def warnings_log():
    """Collect WARNING records of mmengine's current logger."""
    records = []

    class Catch(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Catch(level=logging.WARNING)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_valid_file_loads_all_boxes(tmp_path):
    ds = build(tmp_path, coco_dict())
    assert len(ds) == 2
    assert boxes_of(ds, 1) == [[10, 10, 30, 40], [50, 5, 90, 45]]
    assert sum(ds.box_report.values()) == 0


def test_not_json_names_the_file(tmp_path):
    with pytest.raises(ValueError, match=r'instances\.json: not a valid JSON'):
        build(tmp_path, None, text='{"images": [')


def test_top_level_not_an_object(tmp_path):
    with pytest.raises(ValueError, match='top level must be a JSON object'):
        build(tmp_path, [1, 2])


@pytest.mark.parametrize('key', ['images', 'annotations', 'categories'])
def test_missing_top_level_key_is_named(tmp_path, key):
    data = coco_dict()
    del data[key]
    with pytest.raises(ValueError,
                       match=rf"instances\.json: missing required key\(s\) "
                       rf"\['{key}'\]"):
        build(tmp_path, data)


def test_test_mode_accepts_image_info_files(tmp_path):
    # COCO test-dev ships image-info files without "annotations".
    data = coco_dict()
    del data['annotations']
    ds = build(tmp_path, data, test_mode=True)
    assert len(ds) == 2


@pytest.mark.parametrize('key,index,field', [
    ('images', 1, 'width'),
    ('annotations', 2, 'bbox'),
    ('categories', 0, 'id'),
])
def test_entry_missing_field_is_named(tmp_path, key, index, field):
    data = coco_dict()
    del data[key][index][field]
    with pytest.raises(ValueError,
                       match=rf"{key}\[{index}\] lacks required key\(s\) "
                       rf"\['{field}'\]"):
        build(tmp_path, data)


def test_unknown_category_id_names_file_ann_image_and_value(tmp_path):
    data = coco_dict()
    data['annotations'][1]['category_id'] = 999
    with pytest.raises(ValueError) as err:
        build(tmp_path, data)
    msg = str(err.value)
    for part in ('instances.json', 'annotations[1]', 'id=11', 'image_id=1',
                 'unknown category_id 999', '1..18'):
        assert part in msg, msg


def test_unknown_image_id(tmp_path):
    data = coco_dict()
    data['annotations'][0]['image_id'] = 7
    with pytest.raises(ValueError, match=r'image_id 7 is not in "images"'):
        build(tmp_path, data)


def test_duplicate_ids(tmp_path):
    data = coco_dict()
    data['annotations'][2]['id'] = 10
    with pytest.raises(ValueError, match=r'id=10.*duplicate annotation id'):
        build(tmp_path, data)
    data = coco_dict()
    data['images'][1]['id'] = 1
    with pytest.raises(ValueError, match=r'images\[1\] repeats image id 1'):
        build(tmp_path, data)


@pytest.mark.parametrize('bbox', [[1, 2, 3], [1, 2, 'x', 4],
                                  [1, 2, float('nan'), 4], None])
def test_malformed_bbox_is_an_error(tmp_path, bbox):
    data = coco_dict()
    data['annotations'][0]['bbox'] = bbox
    text = json.dumps(data)  # NaN is written as the JSON extension NaN
    with pytest.raises(ValueError,
                       match=r'annotations\[0\] \(id=10, image_id=1\): bbox '
                       'must be 4 finite numbers'):
        build(tmp_path, None, text=text)


def test_zero_and_negative_area_boxes_are_skipped_and_counted(
        tmp_path, warnings_log):
    data = coco_dict()
    data['annotations'][0]['bbox'] = [10, 10, 0, 30]     # zero width
    data['annotations'][1]['bbox'] = [50, 5, 40, -4]     # negative height
    ds = build(tmp_path, data)
    assert ds.box_report['zero or negative area'] == 2
    assert boxes_of(ds, 1) == []
    assert boxes_of(ds, 2) == [[0, 0, 100, 80]]
    assert any('skipped 2 box(es) (zero or negative area)' in m and
               'id 10 on image 1' in m for m in warnings_log), warnings_log


def test_boxes_outside_the_image_are_clipped_or_skipped(tmp_path,
                                                        warnings_log):
    data = coco_dict()
    data['annotations'][0]['bbox'] = [-5, 70, 20, 30]   # partly outside
    data['annotations'][1]['bbox'] = [120, 10, 10, 10]  # entirely outside
    data['annotations'][2]['bbox'] = [99.5, 0, 30, 30]  # 0.5 px inside
    ds = build(tmp_path, data)
    assert ds.box_report == {
        'zero or negative area': 0, 'outside the image': 1,
        'smaller than 1 px after clipping': 1, 'clipped to the image': 1}
    assert boxes_of(ds, 1) == [[0, 70, 15, 80]]
    assert boxes_of(ds, 2) == []
    assert any('clipped 1 box(es)' in m and '[-5, 70, 20, 30]' in m
               for m in warnings_log), warnings_log
    assert any('skipped 1 box(es) (outside the image)' in m
               for m in warnings_log), warnings_log


def test_image_left_empty_is_filtered_and_counted(tmp_path, warnings_log):
    data = coco_dict()
    data['annotations'] = data['annotations'][:2]  # image 2 has none
    kept = build(tmp_path, copy.deepcopy(data),
                 filter_cfg=dict(filter_empty_gt=False))
    assert len(kept) == 2 and boxes_of(kept, 2) == []
    dropped = build(tmp_path, data, filter_cfg=dict(filter_empty_gt=True))
    assert len(dropped) == 1 and dropped.num_filtered_empty == 1
    assert any('dropped 1 image(s) without usable boxes (e.g. image id 2)'
               in m for m in warnings_log), warnings_log


@COCO_MINI_SKIP
def test_coco_mini_images_without_annotations():
    """coco-mini's train images 250 and 508 have no boxes at all."""
    common = dict(
        data_root=str(COCO_MINI),
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'), pipeline=[])
    kept = ValidatedCocoDataset(filter_cfg=dict(filter_empty_gt=False),
                                **common)
    empty = {kept.get_data_info(i)['img_id'] for i in range(len(kept))
             if not kept.get_data_info(i)['instances']}
    assert {250, 508} <= empty
    assert kept.num_images_without_boxes == len(empty)
    dropped = ValidatedCocoDataset(filter_cfg=dict(filter_empty_gt=True),
                                   **common)
    assert len(dropped) == len(kept) - len(empty)
    assert dropped.num_filtered_empty == len(empty)
