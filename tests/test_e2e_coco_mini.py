"""End to end on real COCO images: train a few iterations, resume, evaluate.

Bounded for a 2-core CPU: ShuffleNet V2 0.5x from scratch, images resized to
a shorter side of 160, 4 training iterations of 2 images, 4 test images.
"""
import json
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from tests.conftest import COCO_MINI, COCO_MINI_SKIP, CONFIGS

pytestmark = [COCO_MINI_SKIP, pytest.mark.slow]

CONFIG = CONFIGS / 'light_head_rcnn/' \
    'light-head-rcnn_shufflenetv2-0.5x_8xb2-150k_coco.py'
SCALE = (256, 160)


def small_cfg(work_dir, max_iters, name):
    cfg = Config.fromfile(str(CONFIG))
    root = f'{COCO_MINI}/'
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = name
    cfg.visualizer.name = name  # one visualizer instance per runner
    # No ImageNet weights offline: train the backbone from scratch, so BN
    # and the early stages must not be frozen.
    cfg.model.backbone.update(init_cfg=None, frozen_stages=-1,
                              norm_eval=False,
                              norm_cfg=dict(type='BN', requires_grad=True))
    cfg.model.train_cfg.rpn_proposal.update(nms_pre=1000, max_per_img=300)
    cfg.model.test_cfg.rpn.update(nms_pre=1000, max_per_img=300)
    for split, loader in (('train', cfg.train_dataloader),
                          ('test', cfg.test_dataloader)):
        loader.update(num_workers=0, persistent_workers=False)
        ds = loader.dataset
        ds.update(data_root=root, indices=8 if split == 'train' else 4)
        for t in ds.pipeline:
            if t.type == 'Resize':
                t.scale = SCALE
    cfg.test_evaluator.ann_file = f'{root}annotations/instances_val2017.json'
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                         val_interval=10**9)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=1 / 3,
                                by_epoch=False, begin=0, end=2)]
    cfg.default_hooks.checkpoint.update(interval=2, max_keep_ckpts=-1)
    cfg.default_hooks.logger.interval = 1
    return cfg


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('e2e')
    cfg = small_cfg(work_dir, 4, 'e2e_train')
    cfg.test_evaluator.outfile_prefix = str(work_dir / 'dets')
    runner = Runner.from_cfg(cfg)
    runner.train()
    loss = runner.message_hub.get_scalar('train/loss').current()
    return runner, work_dir, loss


def test_trains_and_evaluates_with_coco_metric(trained):
    runner, work_dir, loss = trained
    assert runner.iter == 4
    assert math.isfinite(loss) and loss > 0
    assert (work_dir / 'iter_4.pth').is_file()
    # The standard evaluator path (ann_file = the whole val2017 json), with
    # its detections also written out (outfile_prefix, set in the fixture).
    metrics = runner.test()
    dets = json.loads((work_dir / 'dets.bbox.json').read_text())
    # After 4 iterations from scratch the values are near 0, so a range
    # check says nothing; instead the same detections are evaluated again
    # by pycocotools alone. Like mmdet's CocoMetric given an ann_file, over
    # every image of that file (122), not only the 4 the loader ran.
    assert dets, 'no detection at all: the comparison below would be vacuous'
    expected = _pycocotools_bbox_stats(dets, runner.test_dataloader.dataset)
    for key, value in expected.items():
        # mmdet rounds each value to 3 decimals; -1: no GT in that area range.
        assert metrics[f'coco/{key}'] == pytest.approx(value, abs=5e-4), key
    # Those values are all near 0, where a metric that mismatched images,
    # classes or box formats would also give 0. So the config's evaluator
    # also sees the model's detections plus the ground truth of the same
    # images as detections (every other one shifted by 0.3 of its width):
    # a non-zero mAP that pycocotools must reproduce too (a few percent only:
    # these 4 images hold a small part of the 122 images' ground truth).
    mixed = dets + _ground_truth_as_detections(
        runner.test_dataloader.dataset)
    expected = _pycocotools_bbox_stats(mixed, runner.test_dataloader.dataset)
    assert 0.01 < expected['bbox_mAP'] < 0.5, expected
    got = _config_metric(runner.cfg, runner.test_dataloader.dataset, mixed)
    for key, value in expected.items():
        assert got[f'coco/{key}'] == pytest.approx(value, abs=5e-4), key


def _ground_truth_as_detections(dataset) -> list:
    """COCO-format detections copied from the GT of ``dataset``'s images,
    every other box shifted right by 0.3 of its width: IoU 0.7 / 1.3 = 0.54
    with its GT, away from every COCO IoU threshold (0.5, 0.55, ...) so that
    float rounding cannot flip a match; distinct scores, so no ties."""
    from pycocotools.coco import COCO
    gt = COCO(str(COCO_MINI / 'annotations/instances_val2017.json'))
    img_ids = [dataset.get_data_info(i)['img_id']
               for i in range(len(dataset))]
    dets = []
    for n, ann in enumerate(gt.loadAnns(gt.getAnnIds(imgIds=img_ids,
                                                     iscrowd=False))):
        x, y, w, h = ann['bbox']
        dets.append(dict(image_id=ann['image_id'],
                         category_id=ann['category_id'],
                         score=0.999 - n * 1e-4,
                         bbox=[x + (0.3 * w if n % 2 else 0), y, w, h]))
    return dets


def _config_metric(cfg, dataset, dets: list) -> dict:
    """The config's test evaluator on COCO-format ``dets``, fed as the
    detector's data samples (xyxy boxes in original-image pixels, labels)."""
    from mmdet.registry import METRICS
    metric = METRICS.build(dict(cfg.test_evaluator, outfile_prefix=None))
    metric.dataset_meta = dataset.metainfo
    label_of = {cat: i for i, cat in enumerate(dataset.cat_ids)}
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        mine = [d for d in dets if d['image_id'] == info['img_id']]
        boxes = torch.tensor([d['bbox'] for d in mine],
                             dtype=torch.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        metric.process({}, [dict(
            img_id=info['img_id'],
            ori_shape=(info['height'], info['width']),
            pred_instances=dict(
                bboxes=boxes,
                scores=torch.tensor([d['score'] for d in mine]),
                labels=torch.tensor([label_of[d['category_id']]
                                     for d in mine])))])
    return metric.evaluate(len(dataset))


def _pycocotools_bbox_stats(dets: list, dataset) -> dict:
    """COCOeval's six AP values for ``dets`` over every image of the
    annotation file, computed without any mmdet code."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO(str(COCO_MINI / 'annotations/instances_val2017.json'))
    img_ids = sorted(dataset.get_data_info(i)['img_id']
                     for i in range(len(dataset)))
    assert {d['image_id'] for d in dets} <= set(img_ids)
    evaluator = COCOeval(gt, gt.loadRes(dets), 'bbox')
    # mmdet's CocoMetric default (proposal_nums): AP at up to 1000
    # detections per image, where pycocotools' default stops at 100.
    evaluator.params.maxDets = [100, 300, 1000]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    names = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s',
             'bbox_mAP_m', 'bbox_mAP_l')
    return dict(zip(names, (float(v) for v in evaluator.stats[:6])))


def test_resume_continues_from_the_saved_iteration(trained):
    _, work_dir, _ = trained
    ckpt = torch.load(work_dir / 'iter_2.pth', map_location='cpu')
    # Plain torch.load (weights_only=True by default on torch>=2.6) reads
    # mmengine's full checkpoint thanks to shufflenet_det.compat.
    assert ckpt['meta']['iter'] == 2 and 'message_hub' in ckpt
    cfg = small_cfg(work_dir / 'resumed', 3, 'e2e_resume')
    cfg.resume, cfg.load_from = True, str(work_dir / 'iter_2.pth')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 3  # one more iteration after the resumed two
    history = runner.message_hub.get_scalar('train/loss')
    assert len(history.data[0]) == 3  # 2 restored + 1 new loss values
    resumed = torch.load(work_dir / 'resumed/iter_3.pth', map_location='cpu')
    assert resumed['meta']['iter'] == 3

