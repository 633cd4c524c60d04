"""Broken and unusual image files through RobustLoadImageFromFile.

Real coco-mini JPEGs are copied into tmp_path and damaged there; the shared
data is only read.
"""
import logging

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger

from shufflenet_det.datasets.transforms import (RobustLoadImageFromFile,
                                                jpeg_is_truncated)
from tests.conftest import COCO_MINI, COCO_MINI_SKIP

pytestmark = COCO_MINI_SKIP
IMG_ID = 9
SOURCE = COCO_MINI / 'train2017/000000000009.jpg'  # 640x480, image id 9


def load(path, **kwargs):
    return RobustLoadImageFromFile(**kwargs)(
        dict(img_path=str(path), img_id=IMG_ID))


def test_intact_jpeg_loads_like_mmcv():
    from mmcv.transforms import LoadImageFromFile
    ours = load(SOURCE)
    ref = LoadImageFromFile()(dict(img_path=str(SOURCE)))
    assert ours['img'].shape == (480, 640, 3)
    assert np.array_equal(ours['img'], ref['img'])
    assert ours['img_shape'] == ours['ori_shape'] == (480, 640)


@pytest.mark.parametrize('fraction', [0.3, 0.9, 0.999])
def test_truncated_jpeg_names_file_and_image_id(tmp_path, fraction):
    data = SOURCE.read_bytes()
    path = tmp_path / 'cut.jpg'
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(ValueError) as err:
        load(path)
    assert 'truncated JPEG' in str(err.value)
    assert f'{path} (img_id={IMG_ID})' in str(err.value)


def test_corrupt_file_names_file_and_image_id(tmp_path):
    path = tmp_path / 'noise.jpg'
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ValueError,
                       match=rf'cannot decode image.*noise\.jpg '
                       rf'\(img_id={IMG_ID}\)'):
        load(path)


def test_empty_file(tmp_path):
    path = tmp_path / 'empty.jpg'
    path.write_bytes(b'')
    with pytest.raises(ValueError, match=r'empty image file: .*empty\.jpg'):
        load(path)


def test_missing_file_names_file_and_image_id(tmp_path):
    path = tmp_path / 'nowhere.jpg'
    with pytest.raises(FileNotFoundError,
                       match=rf'image file not found: .*nowhere\.jpg '
                       rf'\(img_id={IMG_ID}\)'):
        load(path)


def test_ignore_empty_skips_broken_image_with_a_warning(tmp_path):
    data = SOURCE.read_bytes()
    path = tmp_path / 'cut.jpg'
    path.write_bytes(data[:len(data) // 2])
    messages = []

    class Catch(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Catch(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        assert load(path, ignore_empty=True) is None
    finally:
        logger.removeHandler(handler)
    assert any('skipping image' in m and 'cut.jpg' in m for m in messages)


@pytest.mark.parametrize('color_type', ['color', 'unchanged'])
@pytest.mark.parametrize('kind', ['gray_jpg', 'gray_png', 'rgba_png'])
def test_grayscale_and_rgba_become_3_channel_bgr(tmp_path, kind,
                                                 color_type):
    bgr = cv2.imread(str(SOURCE))
    if kind.startswith('gray'):
        pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        expected = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    else:
        alpha = np.full(bgr.shape[:2], 77, np.uint8)
        pixels = np.dstack([bgr, alpha])
        expected = bgr
    path = tmp_path / ('img.jpg' if kind == 'gray_jpg' else 'img.png')
    assert cv2.imwrite(str(path), pixels)
    img = load(path, color_type=color_type)['img']
    assert img.shape == (480, 640, 3) and img.dtype == np.uint8
    if kind != 'gray_jpg':  # PNG is lossless: exact pixels
        assert np.array_equal(img, expected)
    else:  # the three channels are the decoded gray
        assert np.array_equal(img[..., 0], img[..., 1])
        assert np.array_equal(img[..., 0], img[..., 2])


def test_explicit_grayscale_color_type_keeps_one_channel():
    img = load(SOURCE, color_type='grayscale')['img']
    assert img.shape == (480, 640)


def test_one_pixel_image(tmp_path):
    path = tmp_path / 'dot.png'
    assert cv2.imwrite(str(path), np.array([[[10, 20, 30]]], np.uint8))
    img = load(path)['img']
    assert img.shape == (1, 1, 3) and img[0, 0].tolist() == [10, 20, 30]
    img = load(path, to_float32=True)['img']
    assert img.dtype == np.float32


def test_truncation_check_accepts_every_coco_mini_image():
    files = sorted(COCO_MINI.glob('*2017/*.jpg'))
    assert len(files) > 100
    flagged = [p.name for p in files if jpeg_is_truncated(p.read_bytes())]
    assert flagged == []


def test_truncation_check_accepts_progressive_and_trailing_bytes():
    ok, buf = cv2.imencode('.jpg', cv2.imread(str(SOURCE)),
                           [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    data = buf.tobytes()
    assert not jpeg_is_truncated(data)
    assert not jpeg_is_truncated(data + b'\x00camera trailer')
    assert jpeg_is_truncated(data[:-2])  # only the EOI marker missing
    for jpeg in (data, SOURCE.read_bytes()):  # progressive and baseline
        missed = [n for n in range(2, len(jpeg) - 1, 997)
                  if not jpeg_is_truncated(jpeg[:n])]
        assert missed == []


def test_truncation_check_accepts_restart_markers():
    ok, buf = cv2.imencode('.jpg', cv2.imread(str(SOURCE)),
                           [cv2.IMWRITE_JPEG_RST_INTERVAL, 4])
    assert not jpeg_is_truncated(buf.tobytes())


# ------------------------------------- the image is not what the annotation says
class _Warnings(logging.Handler):
    """Collects the current MMLogger's warnings inside a ``with`` block."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        MMLogger.get_current_instance().addHandler(self)
        return self.messages

    def __exit__(self, *exc):
        MMLogger.get_current_instance().removeHandler(self)


def load_annotated(path, transform=None, width=640, height=480):
    transform = transform or RobustLoadImageFromFile()
    return transform(dict(img_path=str(path), img_id=IMG_ID, width=width,
                          height=height))


def test_matching_size_loads_silently():
    with _Warnings() as messages:
        out = load_annotated(SOURCE)
    assert out['img'].shape == (480, 640, 3) and not messages


def test_smaller_copy_is_resized_to_the_annotated_size_with_a_warning(
        tmp_path):
    path = tmp_path / 'small.jpg'
    assert cv2.imwrite(str(path), cv2.resize(cv2.imread(str(SOURCE)),
                                             (320, 240)))
    transform = RobustLoadImageFromFile()
    with _Warnings() as messages:
        out = load_annotated(path, transform)
        again = load_annotated(path, transform)
    assert out['img'].shape == again['img'].shape == (480, 640, 3)
    assert out['ori_shape'] == out['img_shape'] == (480, 640)
    assert len(messages) == 1, messages  # once per file
    msg = messages[0]
    assert f'{path} (img_id={IMG_ID})' in msg
    assert 'decodes to 320x240' in msg and 'says 640x480' in msg
    assert 'resized to 640x480' in msg and 'aspect ratio' not in msg


def test_other_aspect_ratio_is_called_out(tmp_path):
    path = tmp_path / 'other.jpg'
    assert cv2.imwrite(str(path), cv2.resize(cv2.imread(str(SOURCE)),
                                             (500, 500)))
    with _Warnings() as messages:
        out = load_annotated(path)
    assert out['img'].shape == (480, 640, 3)
    assert 'decodes to 500x500' in messages[0]
    assert 'aspect ratio differs by 25%' in messages[0]


def test_exif_rotated_image_is_loaded_as_stored(tmp_path):
    """The decoder applies an EXIF orientation; COCO's boxes describe the
    stored pixels."""
    from PIL import Image
    stored = cv2.imread(str(SOURCE))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / 'rotated.jpg'
    Image.fromarray(stored[..., ::-1]).save(path, quality=95,
                                            exif=exif.tobytes())
    assert load(path)['img'].shape == (640, 480, 3)  # no annotated size
    with _Warnings() as messages:
        out = load_annotated(path)
    assert out['img'].shape == (480, 640, 3)
    assert np.array_equal(
        out['img'], cv2.imread(str(path), cv2.IMREAD_COLOR
                               | cv2.IMREAD_IGNORE_ORIENTATION))
    assert 'decodes to 480x640' in messages[0] and 'says 640x480' in \
        messages[0] and 'EXIF orientation' in messages[0]


def test_size_mismatch_error_mode(tmp_path):
    path = tmp_path / 'small.jpg'
    assert cv2.imwrite(str(path), cv2.resize(cv2.imread(str(SOURCE)),
                                             (320, 240)))
    with pytest.raises(ValueError, match=r'small\.jpg \(img_id=9\) decodes '
                       r'to 320x240 .* says 640x480'):
        load_annotated(path, RobustLoadImageFromFile(size_mismatch='error'))
    with _Warnings() as messages:
        assert load_annotated(path, RobustLoadImageFromFile(
            size_mismatch='error', ignore_empty=True)) is None
    assert 'skipping image' in messages[0] and '320x240' in messages[0]
    with pytest.raises(ValueError, match='size_mismatch'):
        RobustLoadImageFromFile(size_mismatch='crop')


@pytest.mark.parametrize('mode', ['train', 'test'])
def test_dataset_training_and_evaluation_name_a_resized_image(tmp_path,
                                                              mode):
    """Through the config's dataset and pipelines, as training and
    evaluation read the image."""
    import json

    from mmengine.config import Config

    from shufflenet_det.datasets import ValidatedCocoDataset
    from tests.conftest import CONFIGS
    cfg = Config.fromfile(str(CONFIGS / '_base_/datasets/coco_detection.py'))
    coco = json.loads(
        (COCO_MINI / 'annotations/instances_train2017.json').read_text())
    image = next(i for i in coco['images'] if i['id'] == IMG_ID)
    anns = [a for a in coco['annotations'] if a['image_id'] == IMG_ID]
    ann_file = tmp_path / 'instances.json'
    ann_file.write_text(json.dumps(dict(
        images=[image], annotations=anns, categories=coco['categories'])))
    (tmp_path / 'img').mkdir()
    assert cv2.imwrite(str(tmp_path / 'img' / image['file_name']),
                       cv2.resize(cv2.imread(str(SOURCE)), (320, 240)))
    pipeline = cfg.train_pipeline if mode == 'train' else cfg.test_pipeline
    dataset = ValidatedCocoDataset(
        ann_file=str(ann_file), data_prefix=dict(img=str(tmp_path / 'img')),
        pipeline=pipeline, test_mode=mode == 'test')
    with _Warnings() as messages:
        sample = dataset[0]['data_samples']
    assert sample.ori_shape == (480, 640)  # boxes/predictions: annotated
    assert any('decodes to 320x240' in m and 'says 640x480' in m
               and image['file_name'] in m for m in messages), messages
    if mode == 'train':
        boxes = sample.gt_instances.bboxes.tensor
        h, w = sample.img_shape
        assert len(boxes) and boxes[:, 2].max() <= w and \
            boxes[:, 3].max() <= h
