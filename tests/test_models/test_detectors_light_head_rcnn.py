"""LightHeadRCNN: widths/strides from the backbone, routing, three modes."""
import copy

import pytest
import torch
from mmdet.registry import MODELS

from tests.conftest import base_model_cfg, make_data_samples

IMG = (128, 160)


def build(cfg=None):
    model = MODELS.build(cfg or base_model_cfg())
    model.init_weights()
    return model


def inputs(batch_size=1):
    torch.manual_seed(0)
    data = dict(inputs=[torch.randint(0, 255, (3, *IMG), dtype=torch.uint8)
                        for _ in range(batch_size)],
                data_samples=make_data_samples(IMG, batch_size=batch_size))
    return data


@pytest.mark.parametrize('arch, extra_dw, c16, c32', [
    ('0.5x', False, 96, 192), ('1.0x', True, 232, 464),
    ('2.0x', False, 488, 976)])
def test_widths_and_strides_come_from_the_backbone(arch, extra_dw, c16, c32):
    cfg = base_model_cfg()
    cfg.backbone.update(arch=arch, extra_dw=extra_dw)
    model = build(cfg)
    assert model.backbone.out_channels == (c16, c32)
    assert model.rpn_head.in_channels == c16
    assert model.rpn_head.rpn_conv.in_channels == c16
    assert model.rpn_head.rpn_conv.out_channels == 256
    assert model.rpn_head.prior_generator.strides == [(16, 16)]
    assert model.roi_head.lsc.in_channels == c32
    assert model.roi_head.bbox_roi_extractor.featmap_strides == [32]
    assert model.roi_head.bbox_roi_extractor.roi_layers[0].spatial_scale \
        == 1 / 32
    # Anchors 32..512 px, ratios 0.5/1/2: 15 per location.
    assert model.rpn_head.num_base_priors == 15
    sizes = model.rpn_head.prior_generator.base_anchors[0]
    areas = ((sizes[:, 2] - sizes[:, 0]) * (sizes[:, 3] - sizes[:, 1]))
    # py-faster-rcnn rounds the base box per ratio before scaling: the
    # ratio-2 anchor of scale 2 is 22 x 44 px (x2 - x1 = 21 x 43).
    assert torch.allclose(areas.sqrt().min(), torch.tensor(32.), rtol=0.07)
    assert torch.allclose(areas.sqrt().max(), torch.tensor(512.), rtol=0.07)


def test_rpn_reads_stride16_and_head_reads_stride32():
    model = build().eval()
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen[name] = args[0].shape
        return hook

    model.rpn_head.rpn_conv.register_forward_hook(record('rpn'))
    model.roi_head.lsc.register_forward_hook(record('lsc'))
    data = model.data_preprocessor(inputs(), False)
    with torch.no_grad():
        model(**data, mode='predict')
    assert seen['rpn'] == (1, 232, IMG[0] // 16, IMG[1] // 16)
    assert seen['lsc'] == (1, 464, IMG[0] // 32, IMG[1] // 32)


def test_indices_are_a_config_setting():
    cfg = base_model_cfg()
    cfg.update(rpn_in_index=1, rcnn_in_index=0)
    cfg.rpn_head.anchor_generator.strides = None
    model = build(cfg)
    assert model.rpn_head.in_channels == 464
    assert model.rpn_head.prior_generator.strides == [(32, 32)]
    assert model.roi_head.lsc.in_channels == 232
    assert model.roi_head.bbox_roi_extractor.featmap_strides == [16]


@pytest.mark.parametrize('edit, match', [
    (lambda c: c.update(rpn_in_index=2), 'rpn_in_index'),
    (lambda c: c.update(rcnn_in_index=-3), 'rcnn_in_index'),
    (lambda c: c.rpn_head.update(in_channels=256), 'rpn_head.in_channels'),
    (lambda c: c.roi_head.lsc.update(in_channels=1024),
     'roi_head.lsc.in_channels'),
    (lambda c: c.roi_head.bbox_roi_extractor.update(featmap_strides=[16]),
     'featmap_strides'),
    (lambda c: c.rpn_head.anchor_generator.update(strides=[32]),
     'anchor_generator.strides'),
])
def test_disagreeing_settings_are_rejected(edit, match):
    cfg = base_model_cfg()
    edit(cfg)
    with pytest.raises(ValueError, match=match):
        build(cfg)


def test_explicit_matching_values_are_accepted():
    cfg = base_model_cfg()
    cfg.rpn_head.in_channels = 232
    cfg.roi_head.lsc.in_channels = 464
    cfg.roi_head.bbox_roi_extractor.featmap_strides = (32, )
    cfg.rpn_head.anchor_generator.strides = [16]
    assert build(cfg).roi_head.lsc.in_channels == 464


def test_loss_predict_tensor_modes():
    model = build()
    model.train()
    data = model.data_preprocessor(inputs(batch_size=2), True)
    losses = model(**data, mode='loss')
    assert set(losses) >= {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls',
                           'loss_bbox', 'acc'}
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total) and total > 0
    assert losses['loss_bbox'] > 0 and sum(losses['loss_rpn_bbox']) > 0
    total.backward()
    assert model.roi_head.lsc.row[1].weight.grad.abs().sum() > 0
    assert model.rpn_head.rpn_conv.weight.grad.abs().sum() > 0

    model.eval()
    data = model.data_preprocessor(inputs(), False)
    with torch.no_grad():
        (pred, ) = model(**data, mode='predict')
        outs = model(**data, mode='tensor')
    assert len(pred.pred_instances) <= 100
    assert pred.pred_instances.bboxes.shape[1] == 4
    cls_score, bbox_pred = outs[0]
    assert cls_score.shape[1] == 81 and bbox_pred.shape[1] == 320


def test_no_gt_gives_zero_box_loss():
    model = build().train()
    data = inputs()
    data['data_samples'] = make_data_samples(IMG, boxes=(), labels=())
    data = model.data_preprocessor(data, True)
    losses = model(**data, mode='loss')
    assert losses['loss_bbox'] == 0
    assert sum(losses['loss_rpn_bbox']) == 0
    assert losses['loss_cls'] > 0


def test_base_config_freezes_like_the_official_recipe():
    model = build().train()
    bb = model.backbone
    assert not any(p.requires_grad for p in bb.stem.parameters())
    assert not any(p.requires_grad for p in bb.layers[0].parameters())
    bn = [m for m in bb.modules()
          if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bn and not any(m.training for m in bn)
    assert not any(p.requires_grad for m in bn for p in m.parameters())
    assert all(p.requires_grad for p in bb.layers[1].parameters()
               if p.dim() > 1)


def test_backbone_without_geometry_is_rejected():
    cfg = copy.deepcopy(base_model_cfg())
    cfg.backbone = dict(type='mmdet.ResNet', depth=18, out_indices=(2, 3),
                        init_cfg=None)
    with pytest.raises(ValueError, match='out_channels and out_strides'):
        build(cfg)
