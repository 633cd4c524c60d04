import pytest
import torch
from mmdet.registry import MODELS

import shufflenet_det  # noqa: F401  (registers the backbones)
from shufflenet_det.analysis.complexity import classifier_complexity
from shufflenet_det.table7 import (LEVEL_TOLERANCE, LEVELS, PAPER_COMPLEXITY,
                                   TABLE7_BACKBONES)
from shufflenet_det.models.backbones import XceptionLike
from shufflenet_det.models.backbones.xception_like import XceptionUnit

ARCHS = ('0.5x', '1.0x', '1.5x', '2.0x')
# arch: (stage2, stage3, stage4) channels, tuned per level (class docstring).
CHANNELS = {'0.5x': (64, 128, 256), '1.0x': (136, 272, 544),
            '1.5x': (208, 416, 832), '2.0x': (272, 544, 1088)}
LEVEL_OF = dict(zip(ARCHS, LEVELS))
LIGHT_HEAD = dict(stem=24, channels=(144, 288, 576), repeats=(4, 8, 4))


def _re(text: str) -> str:
    return text.replace('(', r'\(').replace(')', r'\)').replace('.', r'\.')


@pytest.mark.parametrize('kwargs, culprit', [
    (dict(arch='3.0x'), '3.0x'),
    (dict(arch=0.75), '0.75'),
    (dict(arch=dict(stem=24, channels=(144, 288, 576))), 'repeats'),
    (dict(arch=dict(stem=24, channels=(144, 288), repeats=(4, 8))),
     '(144, 288)'),
    (dict(arch=dict(stem=24, channels=(24, 288, 576), repeats=(4, 8, 4))),
     '24 -> 24'),
    (dict(out_indices=(3,)), '(3,)'),
    (dict(out_indices=[0, 5]), '(0, 5)'),
    (dict(frozen_stages=4), '4'),
    (dict(frozen_stages=-2), '-2'),
])
def test_invalid_arguments_name_the_value(kwargs, culprit):
    with pytest.raises(ValueError, match=_re(culprit)):
        XceptionLike(**kwargs)


@pytest.mark.parametrize('arch', ARCHS)
def test_output_shapes_every_index(arch):
    model = XceptionLike(arch, out_indices=(0, 1, 2)).eval()
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 224, 224))
    assert [tuple(f.shape) for f in feats] == [
        (1, c, s, s) for c, s in zip(CHANNELS[arch], (28, 14, 7))]
    assert model.out_channels == CHANNELS[arch]
    assert model.out_strides == (8, 16, 32)


@pytest.mark.parametrize('index', [0, 1, 2])
def test_single_out_index(index):
    model = XceptionLike('0.5x', out_indices=(index,)).eval()
    (feat,) = model(torch.rand(2, 3, 64, 96))
    stride = model.stage_strides[index]
    assert tuple(feat.shape) == (2, CHANNELS['0.5x'][index], 64 // stride,
                                 96 // stride)


def test_default_outputs_feed_rpn_at_16_and_head_at_32():
    model = MODELS.build(dict(type='XceptionLike', arch=2.0))
    assert isinstance(model, XceptionLike)
    assert model.out_strides == (16, 32)
    assert model.out_channels == (544, 1088)


def test_light_head_widths_as_custom_arch():
    model = XceptionLike(LIGHT_HEAD, out_indices=(0, 1, 2)).eval()
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 224, 224))
    assert [tuple(f.shape)[1:] for f in feats] == [(144, 28, 28),
                                                   (288, 14, 14),
                                                   (576, 7, 7)]
    # Units per stage: Light-Head's 1+3, 1+7, 1+3.
    assert [len(stage) for stage in model.layers] == [4, 8, 4]


def test_unit_receptive_field_and_shortcuts():
    unit = XceptionUnit(144, 144, 1, dict(type='BN'), dict(type='ReLU'))
    dw = [m for m in unit.modules()
          if isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1]
    # Three stacked 3x3 depthwise convs: receptive field 7.
    assert [m.kernel_size for m in dw] == [(3, 3)] * 3
    # Bottleneck 1/4; the input passes through unchanged in the shortcut.
    assert unit.sep1.pointwise_conv.conv.out_channels == 36
    unit.eval()
    with torch.no_grad():
        for m in unit.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.zero_()
                m.bias.zero_()
        x = torch.rand(1, 144, 8, 8)
        torch.testing.assert_close(unit(x), x)
    down = XceptionUnit(144, 288, 2, dict(type='BN'), dict(type='ReLU'))
    x = torch.rand(1, 144, 8, 8)
    out = down.eval()(x)
    assert out.shape == (1, 288, 4, 4)
    torch.testing.assert_close(out[:, :144], down.avgpool(x))


@pytest.mark.slow
@pytest.mark.parametrize('arch', ARCHS)
def test_macs_within_10_percent_of_level_and_of_table8(arch):
    level = LEVEL_OF[arch]
    cfg = TABLE7_BACKBONES['Xception'][level]
    assert cfg == dict(type='XceptionLike', arch=arch)
    mmacs = classifier_complexity(cfg)['macs'] / 1e6
    assert abs(mmacs / LEVELS[level] - 1) <= LEVEL_TOLERANCE
    paper = PAPER_COMPLEXITY['Xception'][level]['mflops']
    assert abs(mmacs / paper - 1) <= LEVEL_TOLERANCE


def test_light_head_widths_count_as_documented():
    # The reason 1.0x is not Light-Head's 144/288/576: 11% over 140M.
    mmacs = classifier_complexity(dict(type='XceptionLike',
                                       arch=LIGHT_HEAD))['macs'] / 1e6
    assert 1.10 * LEVELS['140M'] < mmacs < 1.10 * 145
