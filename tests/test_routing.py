"""Which backbone outputs feed the RPN and the light head is a choice (the
papers do not give it): the Table 7 configs route stage3 -> RPN and
stage4 -> light head; conv5 -> light head is one config line away
(configs/light_head_rcnn/routing/)."""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from tests.conftest import CONFIGS, make_data_samples

TABLE7 = CONFIGS / ('light_head_rcnn/'
                    'light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco.py')
CONV5 = CONFIGS / ('light_head_rcnn/routing/'
                   'light-head-rcnn_shufflenetv2-1x-conv5_8xb2-150k_coco.py')
IMG = (128, 160)


def code_lines(path):
    return [line for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith('#')]


def test_conv5_variant_is_one_line_on_the_table7_config():
    assert code_lines(CONV5) == [
        "_base_ = '../light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco.py'",
        'model = dict(backbone=dict(out_indices=(1, 3)))']
    table7 = Config.fromfile(str(TABLE7)).to_dict()
    conv5 = Config.fromfile(str(CONV5)).to_dict()
    assert table7['model']['backbone'].pop('out_indices') == (1, 2)
    assert conv5['model']['backbone'].pop('out_indices') == (1, 3)
    assert conv5 == table7


def _build(path):
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


@pytest.mark.parametrize('path, layer, channels', [
    (TABLE7, 2, 464),  # stage4
    (CONV5, 3, 1024),  # conv5
], ids=['table7-stage4', 'conv5'])
def test_rpn_reads_stage3_and_light_head_reads_the_chosen_map(
        path, layer, channels):
    model = _build(path)
    backbone = model.backbone
    assert backbone.out_strides == (16, 32)
    assert backbone.out_channels == (232, channels)
    assert model.rpn_head.rpn_conv.in_channels == 232
    assert model.roi_head.lsc.in_channels == channels
    seen = {}
    backbone.layers[1].register_forward_hook(
        lambda m, i, o: seen.__setitem__('stage3', o))
    backbone.layers[layer].register_forward_hook(
        lambda m, i, o: seen.__setitem__('head_map', o))
    model.rpn_head.register_forward_pre_hook(
        lambda m, i: seen.__setitem__('rpn_in', i[0]))
    model.roi_head.lsc.register_forward_pre_hook(
        lambda m, i: seen.__setitem__('lsc_in', i[0]))
    model.train()
    losses = model.loss(torch.rand(1, 3, *IMG), make_data_samples(IMG))
    rpn_in = seen['rpn_in']
    rpn_in = rpn_in[0] if isinstance(rpn_in, (tuple, list)) else rpn_in
    assert rpn_in is seen['stage3']
    assert seen['lsc_in'] is seen['head_map']
    total = sum(sum(v) if isinstance(v, list) else v
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
