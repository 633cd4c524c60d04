"""The twenty Table 7 configs: one per cell of TABLE7_BACKBONES, identical
except for the backbone, every backbone on the same recipe.

tests/test_configs.py already builds every config and runs loss + predict
on CPU; this file ties the configs to shufflenet_det.analysis.complexity so that the
two cannot drift apart.
"""
import argparse
from functools import lru_cache

import pytest
from mmdet.registry import MODELS
from mmengine.config import Config, DictAction
from mmengine.runner.checkpoint import get_torchvision_models
from torch.nn.modules.batchnorm import _BatchNorm

from shufflenet_det.table7 import TABLE7_BACKBONES
from shufflenet_det.analysis.model_zoo import PRETRAINED_CFG_OPTIONS
from tests.conftest import CONFIGS

TABLE7_DIR = CONFIGS / 'light_head_rcnn'
REFERENCE = 'light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco.py'
# Naming scheme: light-head-rcnn_{family}-{width}x_8xb2-150k_coco.py, the
# width as the arch or widen_factor without a trailing '.0'.
FAMILY_SLUGS = {
    'Xception': 'xception',
    'ShuffleNet v1': 'shufflenetv1-g3',
    'MobileNet v2': 'mobilenetv2',
    'ShuffleNet v2': 'shufflenetv2',
    'ShuffleNet v2*': 'shufflenetv2star',
}
# The keys by which TABLE7_BACKBONES defines a cell, and the defaults that
# equal leaving a key out.
CELL_KEYS = ('type', 'arch', 'widen_factor', 'extra_dw', 'channel_rule')
CELL_DEFAULTS = dict(extra_dw=False, channel_rule='torchvision')
CELLS = [(family, level, cell)
         for family, levels in TABLE7_BACKBONES.items()
         for level, cell in levels.items()]
IDS = [f'{family}-{level}' for family, level, _ in CELLS]


def config_name(family: str, cell: dict) -> str:
    width = cell['arch'][:-1] if 'arch' in cell else cell['widen_factor']
    return (f'light-head-rcnn_{FAMILY_SLUGS[family]}-{float(width):g}x_'
            '8xb2-150k_coco.py')


@lru_cache(maxsize=None)
def _load(name: str) -> Config:
    return Config.fromfile(str(TABLE7_DIR / name))


def load(name: str) -> dict:
    """The config as a plain dict (a fresh copy)."""
    return _load(name).to_dict()


def cell_part(backbone: dict) -> dict:
    """The backbone's CELL_KEYS, leaving out those at their default."""
    return {k: backbone[k] for k in CELL_KEYS
            if k in backbone and backbone[k] != CELL_DEFAULTS.get(k, ())}


def test_exactly_one_config_per_table7_cell():
    assert len(TABLE7_BACKBONES) == 5
    assert all(len(levels) == 4 for levels in TABLE7_BACKBONES.values())
    expected = {config_name(family, cell) for family, _, cell in CELLS}
    assert len(expected) == 20
    found = {p.name for p in TABLE7_DIR.glob('*.py')}
    assert found == expected, (
        f'missing: {sorted(expected - found)}; '
        f'not a Table 7 cell: {sorted(found - expected)}')


@pytest.mark.parametrize('family,level,cell', CELLS, ids=IDS)
def test_backbone_is_its_table7_cell(family, level, cell):
    backbone = load(config_name(family, cell))['model']['backbone']
    assert cell_part(backbone) == cell_part(cell), (
        f'{config_name(family, cell)} builds {cell_part(backbone)}, but '
        f'TABLE7_BACKBONES[{family!r}][{level!r}] is {cell}')


# Every cell but the reference: the reference against itself cannot fail.
OTHER_CELLS = [c for c in CELLS if config_name(c[0], c[2]) != REFERENCE]


@pytest.mark.parametrize(
    'family,level,cell', OTHER_CELLS,
    ids=[i for i, c in zip(IDS, CELLS) if c in OTHER_CELLS])
def test_everything_but_the_backbone_is_identical(family, level, cell):
    assert len(OTHER_CELLS) == len(CELLS) - 1  # the reference is a cell
    reference, cfg = load(REFERENCE), load(config_name(family, cell))
    assert reference['model']['backbone'] != cfg['model']['backbone']
    for c in (reference, cfg):
        del c['model']['backbone']
    differ = sorted(k for k in set(reference) | set(cfg)
                    if reference.get(k) != cfg.get(k))
    differ_model = sorted(
        k for k in set(reference['model']) | set(cfg['model'])
        if reference['model'].get(k) != cfg['model'].get(k))
    assert not differ and not differ_model, (
        f'{config_name(family, cell)} differs from {REFERENCE} in '
        f'{differ} (model: {differ_model})')


@pytest.mark.parametrize('family,level,cell', CELLS, ids=IDS)
def test_backbone_follows_the_recipe(family, level, cell):
    backbone_cfg = load(config_name(family, cell))['model']['backbone']
    assert backbone_cfg['norm_cfg'] == dict(type='BN', requires_grad=False)
    assert backbone_cfg['norm_eval'] is True
    backbone_cfg['init_cfg'] = None
    backbone = MODELS.build(backbone_cfg)
    # RPN on the stride-16 map, the light head on the stride-32 map.
    assert backbone.out_strides == (16, 32)
    # Frozen: exactly the stem and the stages before the first stride-16
    # stage (frozen_stages=1 for the ShuffleNets and Xception, 3 for
    # MobileNet v2, whose stem + groups 0-2 span strides 2-8).
    first_16 = backbone.stage_strides.index(16)
    assert backbone.frozen_stages == first_16
    backbone.train()
    for module in backbone.modules():
        if isinstance(module, _BatchNorm):
            assert not module.training
            assert not any(p.requires_grad for p in module.parameters())
    # Frozen means every pretrained parameter; V2*'s extra depthwise convs
    # are in no ImageNet V2 checkpoint and stay trainable (issue 10).
    extra = {id(p) for name, p in backbone.named_parameters()
             if '.extra_dw.conv.' in name}
    assert bool(extra) == bool(cell.get('extra_dw'))
    for stage in (backbone.stem, *backbone.layers[:first_16]):
        assert not any(p.requires_grad for p in stage.parameters()
                       if id(p) not in extra)
    assert all(p.requires_grad for name, p in backbone.named_parameters()
               if id(p) in extra)
    assert any(p.requires_grad
               for p in backbone.layers[first_16].parameters())


def public_imagenet_weights(family: str, cell: dict) -> bool:
    """Whether the model zoos themselves publish ImageNet weights for this
    cell: torchvision's registered weights (for MobileNet v2 only those
    whose parameter count is the cell's width's: torchvision's builder takes
    any ``width_mult``, its weights fit 1.0 only) and mmpretrain's model
    names (ShuffleNet v1 g=3 at 1x only). Xception-like: neither."""
    import torchvision
    from mmpretrain import list_models
    width = float(cell['arch'][:-1] if 'arch' in cell
                  else cell['widen_factor'])
    if family.startswith('ShuffleNet v2'):
        name = f'shufflenet_v2_x{width:.1f}'.replace('.', '_')
        return bool(list(torchvision.models.get_model_weights(name)))
    if family == 'MobileNet v2':
        params = sum(p.numel() for p in torchvision.models.mobilenet_v2(
            width_mult=width).parameters())
        return any(w.meta['num_params'] == params for w in
                   torchvision.models.get_model_weights('mobilenet_v2'))
    if family == 'ShuffleNet v1':
        return f'shufflenet-v1-{width:g}x_16xb64_in1k' in list_models(
            'shufflenet-v1*')
    return False


@pytest.mark.parametrize('family,level,cell', CELLS, ids=IDS)
def test_pretrained_weights_are_loadable_names(family, level, cell):
    """Every cell starts from ImageNet weights (the Table 7 recipe freezes
    the first layers): a public checkpoint where one exists, else a
    ``checkpoint=None`` that stops the run at start-up with a message
    naming this project's ImageNet config and the key to set."""
    from shufflenet_det.models.backbones.base_backbone import \
        check_pretrained_weights
    name = config_name(family, cell)
    backbone_cfg = load(name)['model']['backbone']
    init = backbone_cfg['init_cfg']
    assert init is not None and init['type'] == 'Pretrained', init
    checkpoint = init['checkpoint']
    assert (checkpoint is not None) == public_imagenet_weights(family, cell)
    if checkpoint is None:
        assert set(init) == {'type', 'checkpoint'}
        with pytest.raises(ValueError) as exc:
            check_pretrained_weights(backbone_cfg, name)
        imagenet = name.replace('light-head-rcnn_', '').replace(
            '_8xb2-150k_coco.py', '_8xb128_in1k.py')
        assert (CONFIGS / 'imagenet' / imagenet).is_file(), imagenet
        message = str(exc.value)
        assert message.startswith(f'{name}: model.backbone.init_cfg.'
                                  'checkpoint is None'), message
        assert f'configs/imagenet/{imagenet}' in message, message
        assert '--cfg-options model.backbone.init_cfg.checkpoint=PATH' in \
            message, message
    elif checkpoint.startswith('torchvision://'):
        tv_name = checkpoint[len('torchvision://'):]
        assert tv_name in get_torchvision_models(), checkpoint
    else:
        assert checkpoint.startswith('https://download.openmmlab.com/'), \
            checkpoint
        assert init.get('prefix') == 'backbone.'


def test_documented_override_gives_a_scratch_config_weights():
    scratch = [config_name(f, c) for f, _, c in CELLS
               if load(config_name(f, c))['model']['backbone']['init_cfg']
               ['checkpoint'] is None]
    assert scratch, 'expected configs without public ImageNet weights'
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    options = parser.parse_args(
        ['--cfg-options'] +
        [o.replace('PATH', 'w.pth') for o in PRETRAINED_CFG_OPTIONS])
    cfg = Config.fromfile(str(TABLE7_DIR / scratch[0]))
    cfg.merge_from_dict(options.cfg_options)
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained',
                                               checkpoint='w.pth')
