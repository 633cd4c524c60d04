import pytest
import torch
import torchvision
from mmdet.registry import MODELS

import shufflenet_det  # noqa: F401  (registers the backbones)
from shufflenet_det.complexity import (LEVEL_TOLERANCE, LEVELS,
                                       TABLE7_BACKBONES, classifier_complexity,
                                       count_complexity)
from shufflenet_det.models.backbones import MobileNetV2Det
from .utils import bn_running_stats, check_norm_state

# Table 7 level -> width multiplier (see MobileNetV2Det's docstring).
WIDTHS = {'40M': 0.25, '140M': 0.6, '300M': 1.0, '500M': 1.3}
# widen_factor: channels of out_indices 0..7 (make_divisible(c * w, 8)).
CHANNELS = {0.25: (8, 8, 8, 16, 24, 40, 80, 1280),
            0.6: (16, 16, 24, 40, 56, 96, 192, 1280),
            1.0: (16, 24, 32, 64, 96, 160, 320, 1280),
            1.3: (24, 32, 40, 80, 128, 208, 416, 1664)}
STRIDES = (2, 4, 8, 16, 16, 32, 32, 32)


def _re(text: str) -> str:
    return text.replace('(', r'\(').replace(')', r'\)').replace('.', r'\.')


@pytest.mark.parametrize('kwargs, culprit', [
    (dict(widen_factor=0), '0'),
    (dict(widen_factor=-1.0), '-1.0'),
    (dict(widen_factor='1.0x'), "'1.0x'"),
    (dict(out_indices=(8,)), '(8,)'),
    (dict(out_indices=()), '()'),
    (dict(frozen_stages=9), '9'),
    (dict(frozen_stages=-2), '-2'),
])
def test_invalid_arguments_name_the_value(kwargs, culprit):
    with pytest.raises(ValueError, match=_re(culprit)):
        MobileNetV2Det(**kwargs)


def test_does_not_clash_with_mmdet_mobilenet_v2():
    model = MODELS.build(dict(type='MobileNetV2Det', widen_factor=0.6))
    assert isinstance(model, MobileNetV2Det)
    assert type(MODELS.build(dict(type='MobileNetV2'))) is not MobileNetV2Det


@pytest.mark.parametrize('widen_factor', sorted(CHANNELS))
def test_output_shapes_every_index(widen_factor):
    model = MobileNetV2Det(widen_factor, out_indices=tuple(range(8))).eval()
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 224, 224))
    assert [tuple(f.shape) for f in feats] == [
        (1, c, 224 // s, 224 // s)
        for c, s in zip(CHANNELS[widen_factor], STRIDES)]
    assert model.out_channels == CHANNELS[widen_factor]
    assert model.out_strides == STRIDES


@pytest.mark.parametrize('index', range(8))
def test_single_out_index(index):
    model = MobileNetV2Det(0.25, out_indices=(index,)).eval()
    (feat,) = model(torch.rand(2, 3, 64, 96))
    stride = STRIDES[index]
    assert tuple(feat.shape) == (2, CHANNELS[0.25][index], 64 // stride,
                                 96 // stride)


def test_default_outputs_feed_rpn_at_16_and_head_at_32():
    model = MobileNetV2Det()
    assert model.out_strides == (16, 32)
    assert model.out_channels == (96, 320)


@pytest.mark.parametrize('frozen_stages', [0, 1, 4, 8])
def test_frozen_stages(frozen_stages):
    model = MobileNetV2Det(0.25, frozen_stages=frozen_stages,
                           out_indices=tuple(range(8)))
    model.train()
    frozen = [model.stem] + list(model.layers[:frozen_stages])
    trainable = list(model.layers[frozen_stages:])
    before = [bn_running_stats(m) for m in frozen]
    model(torch.rand(2, 3, 64, 64))
    for module, stats in zip(frozen, before):
        assert all(not p.requires_grad for p in module.parameters())
        assert check_norm_state(module.modules(), False)
        for (m0, v0), (m1, v1) in zip(stats, bn_running_stats(module)):
            assert torch.equal(m0, m1) and torch.equal(v0, v1)
    for module in trainable:
        assert all(p.requires_grad for p in module.parameters())
        assert check_norm_state(module.modules(), True)


@pytest.mark.parametrize('norm_cfg', [dict(type='BN'), dict(type='SyncBN')])
def test_norm_eval(norm_cfg):
    model = MobileNetV2Det(0.25, norm_cfg=norm_cfg, norm_eval=True)
    model.train()
    assert check_norm_state(model.modules(), False)
    assert all(p.requires_grad for p in model.parameters())


def test_with_cp_matches_plain_forward_and_backward():
    torch.manual_seed(0)
    ref = MobileNetV2Det(0.25, out_indices=(4, 7), norm_eval=True)
    cp_model = MobileNetV2Det(0.25, out_indices=(4, 7), norm_eval=True,
                              with_cp=True)
    cp_model.load_state_dict(ref.state_dict())
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    outs = [sum(f.sum() for f in m.train()(x)) for m in (ref, cp_model)]
    grads = [torch.autograd.grad(o, x)[0] for o in outs]
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize('level', list(LEVELS))
def test_complexity_within_10_percent_and_equal_to_torchvision(level):
    cfg = TABLE7_BACKBONES['MobileNet v2'][level]
    assert cfg == dict(type='MobileNetV2Det', widen_factor=WIDTHS[level])
    ours = classifier_complexity(cfg)
    assert abs(ours['macs'] / (LEVELS[level] * 1e6) - 1) <= LEVEL_TOLERANCE
    # Same network as torchvision's mobilenet_v2 at this width, except the
    # dropout before the classifier: identical MACs and parameter count.
    tv = torchvision.models.mobilenet_v2(width_mult=WIDTHS[level])
    assert ours == count_complexity(tv)


def _randomise_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)


@pytest.mark.parametrize('widen_factor', [0.25, 1.0])
def test_torchvision_weights_give_torchvision_features(widen_factor,
                                                       tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.mobilenet_v2(width_mult=widen_factor).eval()
    _randomise_bn(tv)
    path = tmp_path / 'tv.pth'
    torch.save(tv.state_dict(), path)
    model = MobileNetV2Det(widen_factor, out_indices=tuple(range(8)),
                           init_cfg=dict(type='Pretrained',
                                         checkpoint=str(path)))
    model.init_weights()
    model.eval()
    x = torch.rand(2, 3, 64, 96)
    ends = (1, 3, 6, 10, 13, 16, 17, 18)  # last torchvision feature per stage
    with torch.no_grad():
        ours = model(x)
        t, expected = x, []
        for i, layer in enumerate(tv.features):
            t = layer(t)
            if i in ends:
                expected.append(t)
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_torchvision_classifier_reported_not_dropped(tmp_path, monkeypatch):
    from shufflenet_det.models.backbones import base_backbone
    messages = []
    monkeypatch.setattr(base_backbone, 'print_log',
                        lambda msg, **kw: messages.append(msg))
    path = tmp_path / 'tv.pth'
    torch.save(torchvision.models.mobilenet_v2().state_dict(), path)
    model = MobileNetV2Det(init_cfg=dict(type='Pretrained',
                                         checkpoint=str(path)))
    model.init_weights()
    (msg,) = messages
    assert 'missing' not in msg
    assert "'classifier.1.weight'" in msg and "'classifier.1.bias'" in msg


def test_mmpretrain_layout_loads(tmp_path):
    torch.manual_seed(0)
    src = MobileNetV2Det(1.0)
    # mmpretrain: conv1 / layer{i}.{b}.conv.{j}.{conv,bn} / conv2, ConvModule
    # submodules in block order (expand if t != 1, depthwise, linear).
    names = {'expand_conv': 0, 'depthwise_conv': 1, 'linear_conv': 2}
    state = {}
    for k, v in src.state_dict().items():
        parts = k.split('.')
        if parts[0] == 'stem':
            k = 'conv1.' + '.'.join(parts[1:])
        elif parts[1] == '7':
            k = 'conv2.' + '.'.join(parts[2:])
        else:
            g, b, name = int(parts[1]), parts[2], parts[3]
            j = names[name] - (MobileNetV2Det.arch_settings[g][0] == 1)
            k = f'layer{g + 1}.{b}.conv.{j}.' + '.'.join(parts[4:])
        state[f'backbone.{k}'] = v
    path = tmp_path / 'mmpretrain.pth'
    torch.save({'meta': {}, 'state_dict': state}, path)
    dst = MobileNetV2Det(1.0, init_cfg=dict(type='Pretrained',
                                            checkpoint=str(path)))
    dst.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
