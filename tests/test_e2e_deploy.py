"""End to end on real images: the deployed detector (tools/test.py
--fuse-conv-bn) gives the plain detector's detections, and both give the
detections of mmdet's stock components.

Weights that detect things are made here: ShuffleNet V2 0.5x overfitted on
8 coco-mini images (tests/configs/...deploy-check...). Every one of the 122
val2017 images goes through the real test pipeline, pre-processing, NMS and
rescaling to original-image pixels, in tools/test.py.

Tolerances (the issue's): same labels, box coordinates within 0.01 px,
scores within 1e-4, order free (exact ties may reorder); a detection may
only be swapped for another one at the top-100 cut when both scores are
within 1e-4 of it (rounding may decide a near-tie either way).
"""
import pickle
import subprocess
import sys

import pytest
import torch

from tests.conftest import COCO_MINI_SKIP, DEPLOY_CHECK_CONFIG, REPO

pytestmark = [COCO_MINI_SKIP, pytest.mark.slow]

CONFIG = DEPLOY_CHECK_CONFIG
# No cut of the RPN's proposals: 4000 per image is above the 3600 anchors at
# this scale, so every proposal that survives NMS is kept. At the 1000-proposal
# cut of the config, an objectness near-tie (1e-7 apart) decides the last
# proposal either way; folding BatchNorm moves scores by that much, and the
# flipped proposal changes ~13 detections of its image (seen 2026-12-02 with
# the weights of another commit). tests/test_deploy_onnx.py keeps the cut and
# names that boundary explicitly; here the two paths must agree exactly.
NO_RPN_CUT = ['model.test_cfg.rpn.max_per_img=4000']
STOCK = ['model.rpn_head.type=RPNHead',
         'model.roi_head.bbox_head.type=ConvFCBBoxHead',
         'model.data_preprocessor.type=DetDataPreprocessor']


def run(*args):
    out = subprocess.run([sys.executable, *map(str, args)], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


@pytest.fixture(scope='module')
def predictions(tmp_path_factory, deploy_check_checkpoint):
    work = tmp_path_factory.mktemp('deploy')
    checkpoint = deploy_check_checkpoint
    preds = {}
    for name, extra in (('plain', ['--cfg-options', *NO_RPN_CUT]),
                        ('deployed', ['--fuse-conv-bn', '--cfg-options', *NO_RPN_CUT]),
                        ('stock', ['--cfg-options', *STOCK, *NO_RPN_CUT])):
        pkl = work / f'{name}.pkl'
        log = run(REPO / 'tools/test.py', CONFIG, checkpoint, '--work-dir',
                  work / name, '--out', pkl, *extra)
        with open(pkl, 'rb') as f:
            preds[name] = pickle.load(f)
        preds[name + '_log'] = log
    return preds


def test_weights_detect_things(predictions):
    plain = predictions['plain']
    assert len(plain) == 122
    top = torch.tensor([float(p['pred_instances']['scores'].max())
                        for p in plain if len(p['pred_instances']['scores'])])
    # Untrained, every class scores about 1/81 = 0.012 and the top-100 is a
    # sea of near-ties; after this training the best detection of a typical
    # image scores several times that (0.09 median, measured 2026-11-30),
    # so the equality below is tested where scores are spread as in use.
    assert float(top.median()) > 5 / 81, top


def test_deployed_equals_plain(predictions):
    from shufflenet_det.deploy.verify import compare_detections
    assert 'DeployHook' in predictions['deployed_log']
    check = compare_detections(predictions['plain'],
                               predictions['deployed'])
    print(check)
    assert check['images'] == 122 and check['detections'] > 1000
    assert check['equal'], check


def test_own_components_equal_mmdet_stock(predictions):
    """LightHeadRPNHead / LightHeadBBoxHead / OnePassDetDataPreprocessor
    against mmdet's RPNHead / ConvFCBBoxHead / DetDataPreprocessor."""
    from shufflenet_det.deploy.verify import compare_detections
    check = compare_detections(predictions['stock'], predictions['plain'])
    print(check)
    assert check['equal'], check
