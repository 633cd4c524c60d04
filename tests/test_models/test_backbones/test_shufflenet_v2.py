import pytest
import torch
import torchvision
from mmdet.registry import MODELS

import shufflenet_det  # noqa: F401  (registers the backbones)
from shufflenet_det.models.backbones import ShuffleNetV2
from .utils import (assert_features_equal,
                    assert_loads_mmpretrain_features, randomise_like_trained)

ARCHS = ('0.5x', '1.0x', '1.5x', '2.0x')
# arch: (stage2, stage3, stage4, conv5) channels, from Table 5.
CHANNELS = {'0.5x': (48, 96, 192, 1024), '1.0x': (116, 232, 464, 1024),
            '1.5x': (176, 352, 704, 1024), '2.0x': (244, 488, 976, 2048)}
TV_BUILDERS = {'0.5x': torchvision.models.shufflenet_v2_x0_5,
               '1.0x': torchvision.models.shufflenet_v2_x1_0,
               '1.5x': torchvision.models.shufflenet_v2_x1_5,
               '2.0x': torchvision.models.shufflenet_v2_x2_0}
# torchvision's documented parameter counts (classifier included).
TV_PARAMS = {'0.5x': 1_366_792, '1.0x': 2_278_604, '1.5x': 3_503_624,
             '2.0x': 7_393_996}
TABLE5_MFLOPS = {'0.5x': 41, '1.0x': 146, '1.5x': 299, '2.0x': 591}


def _classifier_params(model: ShuffleNetV2) -> int:
    fc = model.stage_channels[-1] * 1000 + 1000
    return sum(p.numel() for p in model.parameters()) + fc


@pytest.mark.parametrize('kwargs, culprit', [
    (dict(arch='3.0x'), '3.0x'),
    (dict(arch=0.75), '0.75'),
    (dict(arch=dict(stem=24, channels=(48, 96, 192))), 'repeats'),
    (dict(out_indices=(4,)), '(4,)'),
    (dict(out_indices=()), '()'),
    (dict(frozen_stages=5), '5'),
    (dict(frozen_stages=-2), '-2'),
])
def test_invalid_arguments_name_the_value(kwargs, culprit):
    with pytest.raises(ValueError, match=culprit.replace('(', r'\(')
                       .replace(')', r'\)').replace('.', r'\.')):
        ShuffleNetV2(**kwargs)


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('extra_dw', [False, True])
def test_output_shapes_every_index(arch, extra_dw):
    model = ShuffleNetV2(arch, extra_dw=extra_dw,
                         out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 224, 224))
    sizes = (28, 14, 7, 7)
    assert [tuple(f.shape) for f in feats] == [
        (1, c, s, s) for c, s in zip(CHANNELS[arch], sizes)]
    assert model.out_channels == CHANNELS[arch]
    assert model.out_strides == (8, 16, 32, 32)


@pytest.mark.parametrize('index', [0, 1, 2, 3])
def test_single_out_index(index):
    model = ShuffleNetV2('0.5x', out_indices=(index,)).eval()
    (feat,) = model(torch.rand(2, 3, 64, 96))
    stride = model.stage_strides[index]
    assert tuple(feat.shape) == (2, CHANNELS['0.5x'][index], 64 // stride,
                                 96 // stride)


def test_registered_and_built_from_config():
    model = MODELS.build(dict(type='ShuffleNetV2', arch=1.0, extra_dw=True))
    assert isinstance(model, ShuffleNetV2)
    assert model.layers[0][0].extra_dw is not None


@pytest.mark.parametrize('arch', ARCHS)
def test_parameter_count_equals_torchvision(arch):
    model = ShuffleNetV2(arch, out_indices=(3,))
    assert _classifier_params(model) == TV_PARAMS[arch]
    assert sum(p.numel() for p in TV_BUILDERS[arch]().parameters()) == \
        TV_PARAMS[arch]


@pytest.mark.slow
@pytest.mark.parametrize('arch', ARCHS)
def test_macs_within_2_percent_of_table5(arch):
    from shufflenet_det.analysis.complexity import classifier_complexity
    result = classifier_complexity(dict(type='ShuffleNetV2', arch=arch))
    assert abs(result['macs'] / 1e6 - TABLE5_MFLOPS[arch]) \
        <= 0.02 * TABLE5_MFLOPS[arch]
    assert result['params'] == TV_PARAMS[arch]


@pytest.mark.slow
@pytest.mark.parametrize('arch', ARCHS)
def test_v2_star_adds_a_few_macs(arch):
    from shufflenet_det.analysis.complexity import classifier_complexity
    v2 = classifier_complexity(dict(type='ShuffleNetV2', arch=arch))['macs']
    star = classifier_complexity(
        dict(type='ShuffleNetV2', arch=arch, extra_dw=True))['macs']
    # 3x3 depthwise before every unit's main branch: +2.4..9.5 M at 224.
    assert 0 < star - v2 < 0.06 * v2


def _tv_to_ours(tv_model, arch, extra_dw=False, tmp_path=None):
    path = tmp_path / 'tv.pth'
    torch.save(tv_model.state_dict(), path)
    model = ShuffleNetV2(arch, extra_dw=extra_dw, out_indices=(0, 1, 2, 3),
                         init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('arch', ARCHS)
def test_torchvision_weights_give_torchvision_features(arch, tmp_path):
    """torchvision's shufflenet_v2_x* is an independent reference: its
    random weights (BN statistics spread, see ``randomise_like_trained``)
    loaded through our ``init_cfg`` path give its features at every stage."""
    tv = randomise_like_trained(TV_BUILDERS[arch]())
    model = _tv_to_ours(tv, arch, tmp_path=tmp_path)
    # Every tensor of ours came from the file: nothing kept at its init.
    assert model.loaded_keys == set(model.state_dict())
    x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(x)
        t = tv.maxpool(tv.conv1(x))
        expected = []
        for stage in (tv.stage2, tv.stage3, tv.stage4, tv.conv5):
            t = stage(t)
            expected.append(t)
    assert_features_equal(ours, expected)


# Our arch -> mmpretrain 1.2.0 ShuffleNetV2 widen_factor: the same widths
# (Table 5) at all four.
MMPRETRAIN_WIDEN = {'0.5x': 0.5, '1.0x': 1.0, '1.5x': 1.5, '2.0x': 2.0}


@pytest.mark.parametrize('arch', ARCHS)
def test_mmpretrain_weights_give_mmpretrain_features(arch, tmp_path):
    """mmpretrain's own ShuffleNetV2, randomised with spread BN statistics
    and saved as an mmpretrain classifier checkpoint, loaded through our
    ``init_cfg`` path: same features at every stage, conv5 included."""
    from mmpretrain.models.backbones import ShuffleNetV2 as MMPretrainV2
    ref = randomise_like_trained(MMPretrainV2(
        widen_factor=MMPRETRAIN_WIDEN[arch], out_indices=(0, 1, 2, 3)))
    assert_loads_mmpretrain_features(
        ref, lambda init_cfg: ShuffleNetV2(arch, out_indices=(0, 1, 2, 3),
                                           init_cfg=init_cfg),
        tmp_path, CHANNELS[arch][-1])


def test_v2_weights_into_v2_star_report_missing_extra_dw(tmp_path,
                                                         monkeypatch):
    from shufflenet_det.models.backbones import base_backbone
    messages = []
    monkeypatch.setattr(base_backbone, 'print_log',
                        lambda msg, **kw: messages.append((msg, kw)))
    tv = TV_BUILDERS['0.5x']()
    model = _tv_to_ours(tv, '0.5x', extra_dw=True, tmp_path=tmp_path)
    assert torch.equal(model.stem[0].conv.weight, tv.conv1[0].weight)
    assert torch.equal(model.layers[2][3].branch2[2].bn.running_var,
                       tv.stage4[3].branch2[6].running_var)
    (msg, kw), = messages
    assert 'layers.0.0.extra_dw.conv.weight' in msg
    # The classifier is not silently dropped either.
    assert "'fc.weight'" in msg and "'fc.bias'" in msg


def test_wrong_width_checkpoint_names_the_key(tmp_path):
    path = tmp_path / 'x1.pth'
    torch.save(TV_BUILDERS['1.0x']().state_dict(), path)
    model = ShuffleNetV2('0.5x', init_cfg=dict(type='Pretrained',
                                               checkpoint=str(path)))
    with pytest.raises(ValueError, match=r'layers\.0\.0\.branch1'):
        model.init_weights()


def test_unrelated_checkpoint_is_rejected(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'fc.weight': torch.zeros(2, 2)}, path)
    model = ShuffleNetV2('0.5x', init_cfg=dict(type='Pretrained',
                                               checkpoint=str(path)))
    with pytest.raises(ValueError, match='none of its 1 keys'):
        model.init_weights()


@pytest.mark.parametrize('arch', ['0.5x', '1.0x'])
def test_v2_star_with_v2_weights_computes_v2(arch, tmp_path):
    """V2*'s extra depthwise convs start as the identity: with V2 weights,
    V2* gives V2's features (issue 10, item 1).

    "Identity at init" is the design of ``ShuffleUnitV2.reset_extra_dw``
    (the paper only says V2* adds a 3x3 depthwise conv before the first
    pointwise conv of each main branch): centre tap 1 and a BN that passes
    its input through in eval mode, which is how the Table 7 recipe runs
    BN (``norm_eval=True``)."""
    tv = randomise_like_trained(TV_BUILDERS[arch]())
    v2 = _tv_to_ours(tv, arch, tmp_path=tmp_path)
    star = _tv_to_ours(tv, arch, extra_dw=True, tmp_path=tmp_path)
    assert len(star._units_with_extra_dw()) == 16
    x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert_features_equal(star(x), v2(x))


def test_v2_star_from_scratch_starts_as_identity_too():
    torch.manual_seed(0)
    star = ShuffleNetV2('0.5x', extra_dw=True, out_indices=(0, ))
    star.init_weights()  # Kaiming everywhere else
    unit = star.layers[0][1]
    x = torch.rand(1, unit.extra_dw.conv.in_channels, 6, 7)
    torch.testing.assert_close(unit.extra_dw.eval()(x), x, atol=1e-6,
                               rtol=0)


def test_v2_star_checkpoint_keeps_its_extra_convs(tmp_path):
    """A V2* checkpoint (e.g. ImageNet-pretrained V2*) is not overwritten
    by the identity."""
    torch.manual_seed(0)
    src = ShuffleNetV2('0.5x', extra_dw=True, out_indices=(0, ))
    with torch.no_grad():
        src.layers[0][0].extra_dw.conv.weight.normal_()
    path = tmp_path / 'star.pth'
    torch.save(src.state_dict(), path)
    dst = ShuffleNetV2('0.5x', extra_dw=True, out_indices=(0, ),
                       init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    dst.init_weights()
    assert torch.equal(dst.layers[0][0].extra_dw.conv.weight,
                       src.layers[0][0].extra_dw.conv.weight)


@pytest.mark.parametrize('arch', ['0.5x', '1.0x', '1.5x', '2.0x'])
def test_v2_star_table7_extra_convs_train(arch):
    """Under each V2* Table 7 config every extra depthwise conv, frozen
    stages included, has requires_grad and receives a gradient."""
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from tests.conftest import CONFIGS
    width = arch[:-1].rstrip('0').rstrip('.')
    cfg = Config.fromfile(str(
        CONFIGS / 'light_head_rcnn' /
        f'light-head-rcnn_shufflenetv2star-{width}x_8xb2-150k_coco.py'))
    backbone_cfg = cfg.model.backbone
    backbone_cfg.init_cfg = None
    backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()
    backbone.train()
    assert backbone.frozen_stages >= 1
    out = backbone(torch.rand(1, 3, 64, 64))
    sum(o.sum() for o in out).backward()
    extra = [(n, p) for n, p in backbone.named_parameters()
             if '.extra_dw.conv.' in n]
    assert len(extra) == 16
    for name, param in extra:
        assert param.requires_grad, name
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_v2_star_extra_convs_learn_under_table7_recipe():
    """A few SGD steps under the V2* Table 7 recipe (stem and stage 2
    frozen, BN in eval mode) move every extra depthwise conv away from the
    identity, while the frozen layers' own weights stay put."""
    from mmengine.config import Config
    from tests.conftest import CONFIGS
    cfg = Config.fromfile(str(
        CONFIGS / 'light_head_rcnn' /
        'light-head-rcnn_shufflenetv2star-0.5x_8xb2-150k_coco.py'))
    backbone_cfg = cfg.model.backbone
    backbone_cfg.init_cfg = None
    torch.manual_seed(0)
    backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()
    backbone.train()
    before = {n: p.detach().clone() for n, p in backbone.named_parameters()}
    trainable = [p for p in backbone.parameters() if p.requires_grad]
    optim = torch.optim.SGD(trainable, lr=0.05)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 64, 64, generator=gen)
    for _ in range(3):
        optim.zero_grad()
        loss = sum((o - 1).pow(2).mean() for o in backbone(x))
        loss.backward()
        optim.step()
    after = dict(backbone.named_parameters())
    extra = [n for n in before if '.extra_dw.conv.' in n]
    assert len(extra) == 16
    for name in extra:
        assert not torch.equal(after[name], before[name]), name
    frozen = [n for n in before if n.startswith(('stem.', 'layers.0.'))
              and '.extra_dw.conv.' not in n]
    assert frozen
    for name in frozen:
        assert torch.equal(after[name], before[name]), name
