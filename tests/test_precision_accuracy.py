"""Accuracy of the ``bf16`` deploy step (tools/test.py --fuse-conv-bn --bf16)
against the deployed float32 detector (issue 20), with weights that detect
things: the deploy-check recipe trained 600 iterations
(:data:`CONFIDENT_CONFIG`; the 150-iteration weights score at most ~0.13
on val2017, so a 0.3 threshold left nothing to compare).

- Agreement (the issue's check): COCO AP50 of the bf16 detections with
  the float32 detections scoring above 0.3 as ground truth. On the 122
  coco-mini val2017 images (315 such boxes, 2026-12-02) and on the 8
  training images: >= 0.95, the issue's target.
- COCO mAP: on val2017 both round to 0.000 (weights overfitted on 8
  images), so the issue's "within 0.5 points" holds there trivially and is
  asserted. On the 8 training images (mAP ~0.56, 41 boxes) bf16 moved mAP
  by 0.7 points (2026-12-02), beyond the target: bf16 in any single part
  moves it by about a point, up or down with other weights, and keeping
  the output layers in fp32 does not help (README): near-ties reordered
  on 41 boxes, not a bias of one part. The test keeps a regression floor
  of 2 points there; README says the target is not met on those images.
"""
import json
import pickle
import subprocess
import sys

import pytest
import torch

from shufflenet_det.deploy import precision
from tests.conftest import COCO_MINI_SKIP, DEPLOY_CHECK_CONFIG, REPO

NATIVE_BF16, WHY = precision.native_low_precision(torch.bfloat16, 'cpu')
pytestmark = [COCO_MINI_SKIP, pytest.mark.slow,
              pytest.mark.skipif(not NATIVE_BF16, reason=f'bf16 step not applied here: {WHY}')]
#: Confident weights: deploy-check trained 600 iterations (also used by
#: tests/test_openvino_bf16.py).
CONFIDENT_CONFIG = DEPLOY_CHECK_CONFIG.with_name(
    'light-head-rcnn_shufflenetv2-0.5x_deploy-check-600it_coco-mini.py')
#: The same model evaluated on its 8 training images.
TRAIN8 = DEPLOY_CHECK_CONFIG.with_name(DEPLOY_CHECK_CONFIG.stem + '_train8.py')
AGREEMENT_THR = 0.3  # the issue's: fp32 detections above it are ground truth
_TRAINED = {}


def confident_checkpoint(tmp_path_factory):
    """Train :data:`CONFIDENT_CONFIG` once per session (~5 min on 2 CPU
    cores) and return the checkpoint; modules share it through this one."""
    if 'path' not in _TRAINED:
        work = tmp_path_factory.mktemp('deploy_check_600it')
        out = subprocess.run([sys.executable, str(REPO / 'tools/train.py'), str(CONFIDENT_CONFIG),
                              '--work-dir', str(work)], cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        _TRAINED['path'] = work / 'iter_600.pth'
    return _TRAINED['path']


def evaluate(config, checkpoint, work, bf16):
    name = f"{config.stem[-6:]}_{'bf16' if bf16 else 'fp32'}"
    args = [sys.executable, str(REPO / 'tools/test.py'), str(config), str(checkpoint),
            '--work-dir', str(work / name), '--out', str(work / f'{name}.pkl'),
            '--metrics-out', str(work / f'{name}.json'), '--fuse-conv-bn']
    out = subprocess.run(args + (['--bf16'] if bf16 else []), cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    if bf16:
        assert "'bf16': {'parts': ['backbone', 'rpn_head', 'roi_head.lsc'" in out.stdout + out.stderr
    with open(work / f'{name}.pkl', 'rb') as f:
        preds = pickle.load(f)
    with open(work / f'{name}.json') as f:
        metrics = json.load(f)
    return preds, metrics


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    checkpoint = confident_checkpoint(tmp_path_factory)
    work = tmp_path_factory.mktemp('bf16')
    return {(config, bf16): evaluate(config, checkpoint, work, bf16)
            for config in (CONFIDENT_CONFIG, TRAIN8) for bf16 in (False, True)}


def _map(metrics):
    found = [v for k, v in metrics.items() if k.endswith('bbox_mAP')]
    if not found:  # tools/test.py nests the evaluator's dict
        found = [v for k, v in metrics.get('metrics', {}).items() if k.endswith('bbox_mAP')]
    return float(found[0])


def test_bf16_map(runs):
    maps = {config: (_map(runs[config, False][1]), _map(runs[config, True][1]))
            for config in (CONFIDENT_CONFIG, TRAIN8)}
    for config, (fp32, bf16) in maps.items():
        print(f'{config.name}: mAP fp32 {fp32:.3f} bf16 {bf16:.3f}')
    fp32, bf16 = maps[CONFIDENT_CONFIG]
    assert abs(fp32 - bf16) <= 0.005, (fp32, bf16)  # the target, on val2017
    fp32, bf16 = maps[TRAIN8]
    assert fp32 >= 0.4, fp32  # the weights detect their training images
    assert abs(fp32 - bf16) <= 0.02, (fp32, bf16)  # regression floor (measured 0.007)


def test_bf16_agrees_with_fp32(runs):
    from shufflenet_det.deploy.verify import detection_agreement
    checks = {config: detection_agreement(runs[config, False][0], runs[config, True][0],
                                          AGREEMENT_THR)
              for config in (CONFIDENT_CONFIG, TRAIN8)}
    for config, check in checks.items():
        print(f'{config.name}: agreement {check}')
    assert checks[CONFIDENT_CONFIG]['images'] == 122, checks
    assert checks[CONFIDENT_CONFIG]['gt_boxes'] >= 150, checks
    assert checks[TRAIN8]['gt_boxes'] >= 20, checks
    assert all(check['ap50'] >= 0.95 for check in checks.values()), checks
