import pytest
import torch
from mmdet.registry import MODELS

import shufflenet_det  # noqa: F401  (registers the backbones)
from shufflenet_det.analysis.complexity import classifier_complexity
from shufflenet_det.table7 import (LEVEL_TOLERANCE, LEVELS, PAPER_COMPLEXITY,
                                   TABLE7_BACKBONES)
from shufflenet_det.models.backbones import ShuffleNetV1
from .utils import assert_loads_mmpretrain_features, randomise_like_trained

ARCHS = ('0.5x', '1.0x', '1.5x', '2.0x')
# arch: (stage2, stage3, stage4) channels, megvii ShuffleNetV1 g=3.
CHANNELS = {'0.5x': (120, 240, 480), '1.0x': (240, 480, 960),
            '1.5x': (360, 720, 1440), '2.0x': (480, 960, 1920)}
LEVEL_OF = dict(zip(ARCHS, LEVELS))


def _re(text: str) -> str:
    return text.replace('(', r'\(').replace(')', r'\)').replace('.', r'\.')


@pytest.mark.parametrize('kwargs, culprit', [
    (dict(arch='3.0x'), '3.0x'),
    (dict(arch=0.75), '0.75'),
    (dict(arch=dict(stem=24, channels=(240, 480, 960), repeats=(4, 8, 4))),
     'groups'),
    (dict(arch=dict(stem=24, channels=(240, 480, 960), repeats=(4, 8, 4),
                    groups=7)), 'groups=7'),
    (dict(out_indices=(3,)), '(3,)'),
    (dict(out_indices=()), '()'),
    (dict(frozen_stages=4), '4'),
    (dict(frozen_stages=-2), '-2'),
])
def test_invalid_arguments_name_the_value(kwargs, culprit):
    with pytest.raises(ValueError, match=_re(culprit)):
        ShuffleNetV1(**kwargs)


@pytest.mark.parametrize('arch', ARCHS)
def test_output_shapes_every_index(arch):
    model = ShuffleNetV1(arch, out_indices=(0, 1, 2)).eval()
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 224, 224))
    assert [tuple(f.shape) for f in feats] == [
        (1, c, s, s) for c, s in zip(CHANNELS[arch], (28, 14, 7))]
    assert model.out_channels == CHANNELS[arch]
    assert model.out_strides == (8, 16, 32)


@pytest.mark.parametrize('index', [0, 1, 2])
def test_single_out_index(index):
    model = ShuffleNetV1('0.5x', out_indices=(index,)).eval()
    (feat,) = model(torch.rand(2, 3, 64, 96))
    stride = model.stage_strides[index]
    assert tuple(feat.shape) == (2, CHANNELS['0.5x'][index], 64 // stride,
                                 96 // stride)


def test_default_outputs_feed_rpn_at_16_and_head_at_32():
    model = MODELS.build(dict(type='ShuffleNetV1', arch=1.0))
    assert isinstance(model, ShuffleNetV1)
    assert model.out_strides == (16, 32)
    assert model.out_channels == (480, 960)


def test_unit_structure():
    model = ShuffleNetV1('1.0x')
    first, second = model.layers[0][0], model.layers[0][1]
    # Stage2's first 1x1 conv sees the 24-channel stem: not grouped.
    assert first.g_conv_1x1_compress.conv.groups == 1
    assert second.g_conv_1x1_compress.conv.groups == 3
    assert model.layers[1][0].g_conv_1x1_compress.conv.groups == 3
    # Bottleneck = out/4; stride-2 main branch makes out - in channels.
    assert first.g_conv_1x1_compress.conv.out_channels == 60
    assert first.g_conv_1x1_expand.conv.out_channels == 240 - 24
    assert model.layers[1][0].g_conv_1x1_expand.conv.out_channels == 240


@pytest.mark.slow
@pytest.mark.parametrize('arch', ARCHS)
def test_macs_within_10_percent_of_level_and_2_of_table8(arch):
    level = LEVEL_OF[arch]
    cfg = TABLE7_BACKBONES['ShuffleNet v1'][level]
    assert cfg == dict(type='ShuffleNetV1', arch=arch)
    mmacs = classifier_complexity(cfg)['macs'] / 1e6
    assert abs(mmacs / LEVELS[level] - 1) <= LEVEL_TOLERANCE
    # Same channel table as the paper's rows, so close to its numbers too.
    paper = PAPER_COMPLEXITY['ShuffleNet v1'][level]['mflops']
    assert abs(mmacs / paper - 1) <= 0.02


# Our arch -> mmpretrain ShuffleNetV1(groups=3) widen_factor with the same
# network. mmpretrain's 1.5x has a 36-channel stem (int(24 * 1.5)) where
# megvii's table, ours, has 24: no reference at 1.5x.
MMPRETRAIN_WIDEN = {'0.5x': 0.5, '1.0x': 1.0, '2.0x': 2.0}


@pytest.mark.parametrize('arch', sorted(MMPRETRAIN_WIDEN))
def test_mmpretrain_weights_give_mmpretrain_features(arch, tmp_path):
    """mmpretrain 1.2.0's own ShuffleNetV1 (groups=3) is the independent
    reference: its random weights, BN statistics spread far from the
    defaults, saved as an mmpretrain classifier checkpoint and loaded through
    our ``init_cfg`` path, must give its features at every stage. Catches a
    unit computed differently (e.g. without the channel shuffle) and any
    key or BN tensor the converter maps wrongly or drops."""
    from mmpretrain.models.backbones import ShuffleNetV1 as MMPretrainV1
    ref = randomise_like_trained(MMPretrainV1(
        groups=3, widen_factor=MMPRETRAIN_WIDEN[arch], out_indices=(0, 1, 2)))
    assert_loads_mmpretrain_features(
        ref, lambda init_cfg: ShuffleNetV1(arch, out_indices=(0, 1, 2),
                                           init_cfg=init_cfg),
        tmp_path, CHANNELS[arch][-1])


def test_wrong_width_checkpoint_names_the_key(tmp_path):
    path = tmp_path / 'x1.pth'
    torch.save(ShuffleNetV1('1.0x').state_dict(), path)
    model = ShuffleNetV1('0.5x', init_cfg=dict(type='Pretrained',
                                               checkpoint=str(path)))
    with pytest.raises(ValueError, match=r'stem\.0\.conv\.weight'):
        model.init_weights()
