"""Grayscale, RGBA, 1x1 and box-less images go through the whole training
input path (dataset -> pipeline -> data preprocessor -> Light-Head R-CNN
loss / predict) of the tiny test config."""
import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from tests.conftest import COCO_MINI, COCO_MINI_SKIP
from tests.test_reliability.training_runs import TINY

pytestmark = COCO_MINI_SKIP
SOURCE = COCO_MINI / 'train2017/000000000009.jpg'  # 640x480
BOXES = [[1.08, 187.69, 611.59, 285.84], [311.73, 4.31, 319.28, 228.68]]


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    from mmdet.registry import DATASETS, MODELS
    root = tmp_path_factory.mktemp('unusual')
    bgr = cv2.imread(str(SOURCE))
    cv2.imwrite(str(root / 'gray.jpg'), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(root / 'rgba.png'),
                np.dstack([bgr, np.full(bgr.shape[:2], 200, np.uint8)]))
    cv2.imwrite(str(root / 'dot.png'), np.full((1, 1, 3), 90, np.uint8))
    shutil.copy(SOURCE, root / 'empty.jpg')
    images = [('gray.jpg', 640, 480), ('rgba.png', 640, 480),
              ('dot.png', 1, 1), ('empty.jpg', 640, 480)]
    anns = [dict(image_id=1, bbox=b) for b in BOXES] + \
        [dict(image_id=2, bbox=b) for b in BOXES] + \
        [dict(image_id=3, bbox=[0, 0, 1, 1])]
    (root / 'ann.json').write_text(json.dumps(dict(
        images=[dict(id=i + 1, file_name=f, width=w, height=h)
                for i, (f, w, h) in enumerate(images)],
        annotations=[dict(a, id=i + 1, category_id=1, iscrowd=0,
                          area=a['bbox'][2] * a['bbox'][3])
                     for i, a in enumerate(anns)],
        categories=[dict(id=1, name='person')])))

    cfg = Config.fromfile(str(TINY))
    dataset = DATASETS.build(dict(
        cfg.train_dataloader.dataset, data_root=str(root),
        ann_file='ann.json', data_prefix=dict(img=''), indices=None,
        filter_cfg=dict(filter_empty_gt=False)))
    model = MODELS.build(cfg.model)
    model.init_weights()
    return dataset, model


def losses_of(model, samples):
    model.train()
    data = model.data_preprocessor(pseudo_collate(samples), True)
    return model(**data, mode='loss')


@pytest.mark.parametrize('index,name', [(0, 'gray'), (1, 'rgba'),
                                        (2, 'dot'), (3, 'empty')])
def test_each_image_trains(setup, index, name):
    dataset, model = setup
    sample = dataset[index]
    assert sample['inputs'].shape[0] == 3
    assert sample['data_samples'].img_path.endswith(name + (
        '.png' if name in ('rgba', 'dot') else '.jpg'))
    losses = losses_of(model, [sample])
    losses = {k: (torch.stack(v).sum() if isinstance(v, list) else v)
              .detach() for k, v in losses.items()}
    for key, value in losses.items():
        assert torch.isfinite(value).all(), (name, key)
    if name == 'empty':
        assert losses['loss_bbox'].item() == 0.0
        assert losses['loss_rpn_bbox'].item() == 0.0
    else:
        assert losses['loss_cls'].item() > 0


def test_mixed_batch_trains_and_predicts(setup):
    dataset, model = setup
    samples = [dataset[i] for i in range(4)]
    losses = losses_of(model, samples)
    assert torch.isfinite(losses['loss_cls'])
    model.eval()
    # An untrained model scores below the config's threshold, and a test
    # that accepts "no box" cannot see where boxes land: keep every box.
    rcnn_cfg = model.roi_head.test_cfg
    old_thr, rcnn_cfg.score_thr = rcnn_cfg.score_thr, 0.0
    try:
        with torch.no_grad():
            data = model.data_preprocessor(pseudo_collate(samples), False)
            preds = model(**data, mode='predict')
    finally:
        rcnn_cfg.score_thr = old_thr
    assert len(preds) == 4
    for pred, (width, height) in zip(preds, [(640, 480), (640, 480), (1, 1),
                                             (640, 480)]):
        boxes = pred.pred_instances.bboxes
        assert boxes.shape[0] > 0 and boxes.shape[1] == 4, pred.img_path
        # Mapped back to each original image and clipped to it.
        assert boxes.min() >= 0, pred.img_path
        assert (boxes[:, 0::2].max() <= width and
                boxes[:, 1::2].max() <= height), pred.img_path
    # The 640x480 images' boxes are not all squeezed into a 1x1 corner (a
    # scale factor of the dot image applied to the whole batch would be).
    assert preds[0].pred_instances.bboxes[:, 2:].max() > 16
