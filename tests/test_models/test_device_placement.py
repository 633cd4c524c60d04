"""Device placement without a GPU: every family's detector moved to the
``meta`` device runs its test-time pre-processing and dense parts there
from dataloader (host) inputs, as it must on CUDA.

A host tensor mixed into a ``meta`` computation raises, as a host tensor
mixed into a CUDA one does: with the one-pass pre-processor's output
buffer on the host (the bug of 2026-12-07, found by reading the code),
the first step below fails for all five families. NMS, PSRoI pooling and
the R-CNN's post-processing need values and are not run here.
"""
import pytest
import torch

from tests.conftest import CONFIGS

FAMILIES = ['shufflenetv2-1x', 'shufflenetv2star-1x', 'xception-1x',
            'shufflenetv1-g3-1x', 'mobilenetv2-1x']


@pytest.mark.parametrize('family', FAMILIES)
def test_dense_parts_stay_on_the_model_device(family):
    from shufflenet_det.apis import build_detector, load_config, make_batch
    cfg = load_config(str(CONFIGS / 'light_head_rcnn' /
                          f'light-head-rcnn_{family}_8xb2-150k_coco.py'))
    model = build_detector(cfg, torch.device('cpu')).to('meta')
    data = make_batch(2, (64, 96))
    assert all(t.device.type == 'cpu' for t in data['inputs'])
    with torch.no_grad():
        batch = model.data_preprocessor(data, False)
        assert batch['inputs'].device.type == 'meta'
        assert batch['inputs'].shape == (2, 3, 64, 96)
        rpn_x, rcnn_x = model._split(model.extract_feat(batch['inputs']))
        cls_scores, bbox_preds = model.rpn_head(rpn_x)
        score_map = model.roi_head.ps_score_map(rcnn_x)
    for t in (*rpn_x, *rcnn_x, *cls_scores, *bbox_preds, *score_map):
        assert t.device.type == 'meta'
