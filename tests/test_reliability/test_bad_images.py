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
