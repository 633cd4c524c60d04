"""Shared fixtures and helpers for the shufflenet_det test suite."""
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'configs'
# ../shared/data/coco-mini next to the clone (DEVELOPERS.md); read in place.
COCO_MINI = Path(__file__).resolve().parents[2] / 'shared/data/coco-mini'
COCO_MINI_SKIP = pytest.mark.skipif(
    not (COCO_MINI / 'annotations/instances_train2017.json').is_file(),
    reason=f'coco-mini not found at {COCO_MINI} (../shared/data/coco-mini)')

#: Test-only config whose 150 training iterations give weights that detect
#: things (tests/test_e2e_deploy.py, tests/test_deploy_onnx.py).
DEPLOY_CHECK_CONFIG = REPO / 'tests/configs/' \
    'light-head-rcnn_shufflenetv2-0.5x_deploy-check_coco-mini.py'


def compiled_mmcv_ops():
    """Whether ``mmcv._ext`` is mmcv's compiled extension (not the mmcv-lite stand-in)."""
    import mmcv._ext
    import shufflenet_det_mmcv_ext
    return not shufflenet_det_mmcv_ext.is_stand_in(mmcv._ext)


def pytest_collection_modifyitems(config, items):
    # Tests that compare with mmcv's compiled ops must not compare with the
    # stand-in's torchvision ops instead: .ci/run's --full-mmcv lane runs them.
    if compiled_mmcv_ops():
        return
    skip = pytest.mark.skip(reason='compares with mmcv\'s compiled ops; this environment has '
                            'mmcv-lite (run in the `bash tools/install.sh --full-mmcv` lane)')
    for item in items:
        if 'full_mmcv' in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope='session')
def deploy_check_checkpoint(tmp_path_factory):
    """Train :data:`DEPLOY_CHECK_CONFIG` once per session (minutes on 2 CPU
    cores) and return the checkpoint path. Needs coco-mini.

    Trained under the lowest instruction-set cap (``ISA_CAPS['default']``),
    so that every x86 machine can make the same weights: natively, the
    weights of an AVX2 and an AVX-512 run differ by up to 26 (2026-12-08,
    AMD EPYC with AVX-512, 2 cores), while two runs under the lowest cap
    were bit-identical; identity across CPUs could not be measured on one
    machine. Inference in the tests runs natively."""
    import os
    import subprocess
    import sys

    from shufflenet_det.measure import ISA_CAPS
    if not (COCO_MINI / 'annotations/instances_train2017.json').is_file():
        pytest.skip(f'coco-mini not found at {COCO_MINI}')
    work = tmp_path_factory.mktemp('deploy_check')
    out = subprocess.run([sys.executable, str(REPO / 'tools/train.py'),
                          str(DEPLOY_CHECK_CONFIG), '--work-dir',
                          str(work / 'train')], cwd=REPO,
                         env={**os.environ, **ISA_CAPS['default'][0]},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return work / 'train/iter_150.pth'


def base_model_cfg():
    """``model`` of the base Light-Head config, without pretrained weights."""
    from mmengine.config import Config
    cfg = Config.fromfile(
        str(CONFIGS / '_base_/models/light-head-rcnn_shufflenetv2.py'))
    cfg.model.backbone.init_cfg = None
    return cfg.model


def leaf_configs():
    """Every detection config under configs/ except the _base_ fragments.

    configs/imagenet/ holds the ImageNet classifiers that pretrain the
    backbones; tests/test_imagenet_pretraining.py covers them.
    """
    return sorted(p for p in CONFIGS.rglob('*.py')
                  if '_base_' not in p.relative_to(CONFIGS).parts
                  and p.relative_to(CONFIGS).parts[0] != 'imagenet')


def make_data_samples(image_shape=(128, 160), boxes=((10., 20., 60., 90.),
                                                     (70., 30., 150., 120.)),
                      labels=(3, 17), batch_size=1):
    """DetDataSamples with ``gt_instances`` for a padded H x W batch.

    Args:
        image_shape (tuple[int, int]): (H, W) of every image.
        boxes (Sequence[Sequence[float]]): x1, y1, x2, y2 per object; empty
            for an image without objects.
        labels (Sequence[int]): Class index (0..79) per object.
        batch_size (int): Number of identical samples.

    Returns:
        list[DetDataSample]
    """
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    samples = []
    h, w = image_shape
    for i in range(batch_size):
        sample = DetDataSample(metainfo=dict(
            img_id=i, img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
            batch_input_shape=(h, w), scale_factor=(1., 1.)))
        gt = InstanceData()
        gt.bboxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        gt.labels = torch.tensor(labels, dtype=torch.long).reshape(-1)
        sample.gt_instances = gt
        sample.ignored_instances = InstanceData(
            bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
        samples.append(sample)
    return samples


@pytest.fixture(scope='session', autouse=True)
def _mmdet_scope():
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import shufflenet_det  # noqa: F401  (registers our components)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
