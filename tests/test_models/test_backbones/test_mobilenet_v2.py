import pytest
import torch
import torchvision
from mmdet.registry import MODELS

import shufflenet_det  # noqa: F401  (registers the backbones)
from shufflenet_det.complexity import (LEVEL_TOLERANCE, LEVELS,
                                       TABLE7_BACKBONES, classifier_complexity,
                                       count_complexity)
from shufflenet_det.models.backbones import MobileNetV2Det

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
