"""End to end on real COCO images: train a few iterations, resume, evaluate.

Bounded for a 2-core CPU: ShuffleNet V2 0.5x from scratch, images resized to
a shorter side of 160, 4 training iterations of 2 images, 4 test images.
"""
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
    runner = Runner.from_cfg(small_cfg(work_dir, 4, 'e2e_train'))
    runner.train()
    loss = runner.message_hub.get_scalar('train/loss').current()
    return runner, work_dir, loss


def test_trains_and_evaluates_with_coco_metric(trained):
    runner, work_dir, loss = trained
    assert runner.iter == 4
    assert math.isfinite(loss) and loss > 0
    assert (work_dir / 'iter_4.pth').is_file()
    # The standard evaluator path (ann_file = the whole val2017 json): with
    # 4 of its 122 images evaluated, the values are diluted and only their
    # presence and range are checked here.
    metrics = runner.test()
    for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s',
                'bbox_mAP_m', 'bbox_mAP_l'):
        value = metrics[f'coco/{key}']
        # pycocotools reports -1 for an area range without GT in the subset.
        assert value == -1 or 0 <= value <= 1, (key, value)


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

