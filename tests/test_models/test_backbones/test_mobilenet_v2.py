import pytest
import torch
import torchvision
from mmdet.registry import MODELS

import shufflenet_det  # noqa: F401  (registers the backbones)
from shufflenet_det.analysis.complexity import (classifier_complexity,
                                                count_complexity)
from shufflenet_det.table7 import LEVELS, TABLE7_BACKBONES
from shufflenet_det.models.backbones import MobileNetV2Det
from .utils import (assert_features_equal, randomise_like_trained,
                    save_mmpretrain_classifier)

# Table 7 level -> (width multiplier, channel rule), Table 8's rows.
WIDTHS = {'40M': (0.15, 'table8'), '140M': (0.6, 'table8'),
          '300M': (1.0, 'torchvision'), '500M': (1.4, 'torchvision')}
# Table 8, "MobileNet v2 (our impl.)" rows, MFLOPs.
TABLE8 = {'40M': 39, '140M': 141, '300M': 301, '500M': 587}
# (widen_factor, channel_rule): channels of out_indices 0..7.
CHANNELS = {
    (0.15, 'torchvision'): (8, 8, 8, 16, 16, 24, 48, 1280),
    (0.15, 'table8'): (16, 4, 8, 12, 16, 24, 48, 192),
    (0.6, 'torchvision'): (16, 16, 24, 40, 56, 96, 192, 1280),
    (0.6, 'table8'): (16, 16, 20, 40, 60, 96, 192, 768),
    (1.0, 'torchvision'): (16, 24, 32, 64, 96, 160, 320, 1280),
    (1.0, 'table8'): (16, 24, 32, 64, 96, 160, 320, 1280),
    (1.4, 'torchvision'): (24, 32, 48, 88, 136, 224, 448, 1792),
}
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
    (dict(channel_rule='ceil'), "'ceil'"),
])
def test_invalid_arguments_name_the_value(kwargs, culprit):
    with pytest.raises(ValueError, match=_re(culprit)):
        MobileNetV2Det(**kwargs)


def test_does_not_clash_with_mmdet_mobilenet_v2():
    model = MODELS.build(dict(type='MobileNetV2Det', widen_factor=0.6))
    assert isinstance(model, MobileNetV2Det)
    assert type(MODELS.build(dict(type='MobileNetV2'))) is not MobileNetV2Det


@pytest.mark.parametrize('widen_factor, rule', sorted(CHANNELS))
def test_output_shapes_every_index(widen_factor, rule):
    model = MobileNetV2Det(widen_factor, channel_rule=rule,
                           out_indices=tuple(range(8))).eval()
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 224, 224))
    assert [tuple(f.shape) for f in feats] == [
        (1, c, 224 // s, 224 // s)
        for c, s in zip(CHANNELS[widen_factor, rule], STRIDES)]
    assert model.out_channels == CHANNELS[widen_factor, rule]
    assert model.out_strides == STRIDES


@pytest.mark.parametrize('index', range(8))
def test_single_out_index(index):
    model = MobileNetV2Det(0.15, channel_rule='table8',
                           out_indices=(index,)).eval()
    (feat,) = model(torch.rand(2, 3, 64, 96))
    stride = STRIDES[index]
    assert tuple(feat.shape) == (2, CHANNELS[0.15, 'table8'][index],
                                 64 // stride, 96 // stride)


def test_default_outputs_feed_rpn_at_16_and_head_at_32():
    model = MobileNetV2Det()
    assert model.out_strides == (16, 32)
    assert model.out_channels == (96, 320)


@pytest.mark.slow
@pytest.mark.parametrize('level', list(LEVELS))
def test_table7_cell_is_the_table8_row(level):
    widen_factor, rule = WIDTHS[level]
    cfg = TABLE7_BACKBONES['MobileNet v2'][level]
    assert MODELS.build(cfg).widen_factor == widen_factor
    assert MODELS.build(cfg).channel_rule == rule
    mmacs = classifier_complexity(cfg)['macs'] / 1e6
    if level == '500M':
        # No rule tried reproduces 587 with 301 at 1.0: torchvision's 582.2
        # is the closest (the 'table8' rule: 572.4).
        assert round(mmacs, 1) == 582.2
        assert round(classifier_complexity(
            dict(cfg, channel_rule='table8'))['macs'] / 1e6, 1) == 572.4
    else:
        assert round(mmacs) == TABLE8[level]


@pytest.mark.parametrize('widen_factor', [0.15, 0.6, 1.0, 1.4])
def test_torchvision_rule_equals_torchvision(widen_factor):
    # Same network as torchvision's mobilenet_v2 at this width, except the
    # dropout before the classifier: identical MACs and parameter count.
    ours = classifier_complexity(dict(type='MobileNetV2Det',
                                      widen_factor=widen_factor))
    tv = torchvision.models.mobilenet_v2(width_mult=widen_factor)
    assert ours == count_complexity(tv)


def test_table8_rule_at_1x_is_torchvision_network():
    a = MobileNetV2Det(1.0, channel_rule='table8', out_indices=(7, ))
    b = MobileNetV2Det(1.0, out_indices=(7, ))
    assert {k: v.shape for k, v in a.state_dict().items()} == \
        {k: v.shape for k, v in b.state_dict().items()}


# The 'torchvision' channel rule builds torchvision's and mmpretrain's
# networks at every width; the 'table8' rule (Table 7's 40M and 140M cells)
# is this project's reconstruction and has no outside reference except at
# 1.0, where it builds the same network (test_table8_rule_at_1x_...).
@pytest.mark.parametrize('widen_factor', [0.15, 0.6, 1.0, 1.4])
def test_torchvision_weights_give_torchvision_features(widen_factor,
                                                       tmp_path):
    tv = randomise_like_trained(
        torchvision.models.mobilenet_v2(width_mult=widen_factor))
    path = tmp_path / 'tv.pth'
    torch.save(tv.state_dict(), path)
    model = MobileNetV2Det(widen_factor, out_indices=tuple(range(8)),
                           init_cfg=dict(type='Pretrained',
                                         checkpoint=str(path)))
    model.init_weights()
    model.eval()
    assert model.loaded_keys == set(model.state_dict())
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    ends = (1, 3, 6, 10, 13, 16, 17, 18)  # last torchvision feature per stage
    with torch.no_grad():
        ours = model(x)
        t, expected = x, []
        for i, layer in enumerate(tv.features):
            t = layer(t)
            if i in ends:
                expected.append(t)
    assert_features_equal(ours, expected)


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


@pytest.mark.parametrize('widen_factor', [0.15, 0.6, 1.0, 1.4])
def test_mmpretrain_weights_give_mmpretrain_features(widen_factor, tmp_path):
    """mmpretrain 1.2.0's own MobileNetV2, randomised with spread BN
    statistics and saved as an mmpretrain classifier checkpoint, loaded
    through our ``init_cfg`` path: same features at all eight stages."""
    from mmpretrain.models.backbones import MobileNetV2 as MMPretrainMBV2
    ref = randomise_like_trained(MMPretrainMBV2(
        widen_factor=widen_factor, out_indices=tuple(range(8))))
    channels = CHANNELS[widen_factor, 'torchvision']
    path = save_mmpretrain_classifier(ref, tmp_path / 'mmpretrain.pth',
                                      channels[-1])
    ours = MobileNetV2Det(widen_factor, out_indices=tuple(range(8)),
                          init_cfg=dict(type='Pretrained', checkpoint=path))
    ours.init_weights()
    ours.eval()
    assert ours.loaded_keys == set(ours.state_dict())
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert_features_equal(ours(x), ref(x))
