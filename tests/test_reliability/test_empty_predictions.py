"""A model that predicts nothing is evaluated as mAP 0 with a warning."""
import json
import logging
import math

import pytest
import torch
from mmdet.evaluation import CocoMetric
from mmengine.logging import MMLogger

from shufflenet_det.evaluation import RobustCocoMetric

CLASSES = ('person', 'cat', 'dog')  # 'cat' has no ground truth
BBOX_KEYS = [f'coco/bbox_{k}' for k in
             ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')]


@pytest.fixture
def ann_file(tmp_path):
    path = tmp_path / 'gt.json'
    path.write_text(json.dumps(dict(
        images=[dict(id=1, file_name='a.jpg', width=200, height=160),
                dict(id=2, file_name='b.jpg', width=200, height=160)],
        annotations=[
            dict(id=1, image_id=1, category_id=1, bbox=[10, 10, 60, 90],
                 area=5400, iscrowd=0),
            dict(id=2, image_id=2, category_id=18, bbox=[50, 40, 100, 100],
                 area=10000, iscrowd=0)],
        categories=[dict(id=1, name='person'), dict(id=17, name='cat'),
                    dict(id=18, name='dog')])))
    return str(path)


def predictions(empty):
    boxes = {1: ([10., 10., 70., 100.], 0), 2: ([50., 40., 150., 140.], 2)}
    samples = []
    for img_id, (box, label) in boxes.items():
        n = 0 if empty else 1
        samples.append(dict(
            img_id=img_id, ori_shape=(160, 200),
            pred_instances=dict(
                bboxes=torch.tensor([box])[:n],
                scores=torch.tensor([0.9])[:n],
                labels=torch.tensor([label])[:n])))
    return samples


def evaluate(metric_cls, ann_file, empty, **kwargs):
    metric = metric_cls(ann_file=ann_file, metric='bbox', **kwargs)
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, predictions(empty))
    return metric.evaluate(2)


@pytest.fixture
def log_records():
    records = []

    class Catch(logging.Handler):
        def emit(self, record):
            records.append((record.levelno, record.getMessage()))

    logger = MMLogger.get_current_instance()
    handler = Catch()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_no_prediction_gives_zero_map_and_a_warning(ann_file, log_records):
    results = evaluate(RobustCocoMetric, ann_file, empty=True)
    assert results == {k: 0.0 for k in BBOX_KEYS}
    assert any(level == logging.WARNING and 'predicted no box' in msg
               for level, msg in log_records), log_records
    assert not any(level >= logging.ERROR for level, _ in log_records)


def test_mmdet_metric_returns_nothing_in_the_same_case(ann_file,
                                                       log_records):
    """Why the subclass exists (mmdet 3.3.0): ERROR and an empty dict."""
    assert evaluate(CocoMetric, ann_file, empty=True) == {}
    assert any(level == logging.ERROR for level, _ in log_records)


def test_same_keys_and_values_as_mmdet_when_something_is_predicted(
        ann_file):
    ours = evaluate(RobustCocoMetric, ann_file, empty=False)
    ref = evaluate(CocoMetric, ann_file, empty=False)
    assert ours == ref
    assert sorted(ours) == sorted(BBOX_KEYS) and ours['coco/bbox_mAP'] == 1.0


def test_classwise_zero_for_classes_with_ground_truth(ann_file):
    results = evaluate(RobustCocoMetric, ann_file, empty=True,
                       classwise=True)
    assert results['coco/person_precision'] == 0.0
    assert results['coco/dog_precision'] == 0.0
    assert math.isnan(results['coco/cat_precision'])
    ref = evaluate(CocoMetric, ann_file, empty=False, classwise=True)
    assert sorted(results) == sorted(ref)


def test_metric_items_are_respected(ann_file):
    results = evaluate(RobustCocoMetric, ann_file, empty=True,
                       metric_items=['mAP', 'mAP_50'])
    assert results == {'coco/bbox_mAP': 0.0, 'coco/bbox_mAP_50': 0.0}
    with pytest.raises(KeyError, match='mAP_xl'):
        evaluate(RobustCocoMetric, ann_file, empty=True,
                 metric_items=['mAP_xl'])
