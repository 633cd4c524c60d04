"""Table 7 configs whose backbone has no public ImageNet weights stop at
start-up (naming the config and --cfg-options
model.backbone.init_cfg.checkpoint=...) instead of training randomly
initialised frozen layers; the from-scratch recipe is an explicit choice."""
import argparse
import importlib.util
import re
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config, DictAction

from shufflenet_det.analysis.model_zoo import PRETRAINED_CFG_OPTIONS
from shufflenet_det.models.backbones.base_backbone import \
    check_pretrained_weights
from tests.conftest import COCO_MINI, COCO_MINI_SKIP, CONFIGS, REPO

TABLE7_DIR = CONFIGS / 'light_head_rcnn'
# No public ImageNet weights that this project can load (each config says
# why): Xception at every width, ShuffleNet v1 but 1x, MobileNet v2 but 1.0.
NO_WEIGHTS = sorted(
    [f'light-head-rcnn_xception-{w}x_8xb2-150k_coco.py'
     for w in ('0.5', '1', '1.5', '2')] +
    [f'light-head-rcnn_shufflenetv1-g3-{w}x_8xb2-150k_coco.py'
     for w in ('0.5', '1.5', '2')] +
    [f'light-head-rcnn_mobilenetv2-{w}x_8xb2-150k_coco.py'
     for w in ('0.15', '0.6', '1.4')])
SCRATCH = TABLE7_DIR / ('from-scratch/'
                        'light-head-rcnn_xception-1x_8xb2-450k-scratch_coco.py')
OPTION = 'model.backbone.init_cfg.checkpoint='


def backbone_cfg(path) -> dict:
    return Config.fromfile(str(path)).model.backbone.to_dict()


def test_exactly_the_ten_configs_without_public_weights_require_them():
    required = sorted(
        p.name for p in TABLE7_DIR.glob('*.py')
        if backbone_cfg(p)['init_cfg'] == dict(type='Pretrained',
                                               checkpoint=None))
    assert required == NO_WEIGHTS
    for p in TABLE7_DIR.glob('*.py'):  # the other ten name their weights
        if p.name not in NO_WEIGHTS:
            assert backbone_cfg(p)['init_cfg']['checkpoint'], p.name


@pytest.mark.parametrize('name', NO_WEIGHTS)
def test_backbone_init_weights_refuses_to_start(name):
    backbone = MODELS.build(backbone_cfg(TABLE7_DIR / name))
    with pytest.raises(ValueError, match=f'--cfg-options {OPTION}PATH'):
        backbone.init_weights()


@pytest.mark.parametrize('name', NO_WEIGHTS)
def test_the_model_names_the_pretraining_config_and_the_key(name):
    """The error comes from the model, so any tool shows it, and it names
    the ImageNet config that trains exactly this backbone."""
    detector = backbone_cfg(TABLE7_DIR / name)
    backbone = MODELS.build(detector)
    with pytest.raises(ValueError) as exc:
        backbone.init_weights()
    message = str(exc.value)
    pretrain = re.search(r'configs/imagenet/\S+_in1k\.py', message)
    assert pretrain, message
    assert 'model.backbone.init_cfg.checkpoint' in message
    classifier = Config.fromfile(str(REPO / pretrain.group(0)))
    theirs = classifier.model.backbone.to_dict()
    assert theirs['type'] == f"mmdet.{detector['type']}"
    for key in ('arch', 'widen_factor', 'extra_dw', 'channel_rule'):
        assert theirs.get(key) == detector.get(key), (key, pretrain.group(0))


@COCO_MINI_SKIP
def test_mmdet_own_train_tool_stops_with_the_same_message(tmp_path,
                                                          monkeypatch):
    """mmdet's tools/train.py knows nothing of this project's checks: the
    backbone's init_weights stops it, before the first iteration."""
    import mmdet
    tool = Path(mmdet.__file__).parent / '.mim/tools/train.py'
    if not tool.is_file():
        pytest.skip(f'mmdet ships no tools/train.py at {tool}')
    spec = importlib.util.spec_from_file_location('mmdet_train_tool', tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = TABLE7_DIR / 'light-head-rcnn_xception-1x_8xb2-150k_coco.py'
    root = f'{COCO_MINI}/'
    monkeypatch.setattr('sys.argv', [
        'train.py', str(path), '--work-dir', str(tmp_path), '--cfg-options',
        f'train_dataloader.dataset.data_root={root}',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None'])
    with pytest.raises(ValueError) as exc:
        module.main()
    message = str(exc.value)
    assert message.startswith('XceptionLike: ')
    assert 'configs/imagenet/xception-1x_8xb128_in1k.py' in message
    assert f'--cfg-options {OPTION}PATH' in message


def _load_train_tool():
    spec = importlib.util.spec_from_file_location(
        'train_tool', REPO / 'tools/train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('name', NO_WEIGHTS)
def test_train_tool_stops_before_building_naming_the_config(
        name, monkeypatch):
    train = _load_train_tool()

    class NoRunner:
        @staticmethod
        def from_cfg(cfg):
            raise AssertionError('the runner must not be built')

    monkeypatch.setattr(train, 'Runner', NoRunner)
    path = str(TABLE7_DIR / name)
    monkeypatch.setattr('sys.argv', ['train.py', path])
    with pytest.raises(SystemExit) as exc:
        train.main()
    message = str(exc.value.code)
    assert message.startswith(f'{path}: ')
    assert f'--cfg-options {OPTION}PATH' in message
    assert 'from-scratch' in message and 'not comparable' in message


@pytest.mark.slow
@pytest.mark.parametrize('layout', ['classifier', 'backbone'])
def test_the_documented_option_gives_the_weights(layout, tmp_path):
    assert PRETRAINED_CFG_OPTIONS == (f'{OPTION}PATH', )
    path = TABLE7_DIR / 'light-head-rcnn_xception-1x_8xb2-150k_coco.py'
    weights = tmp_path / 'xception-1x_in1k.pth'
    torch.manual_seed(0)
    source = MODELS.build(dict(backbone_cfg(path), init_cfg=None))
    if layout == 'classifier':  # as configs/imagenet/ saves it
        torch.save({'state_dict': {f'backbone.{k}': v
                                   for k, v in source.state_dict().items()}},
                   weights)
    else:
        torch.save(source.state_dict(), weights)
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(['--cfg-options', f'{OPTION}{weights}'])
    cfg = Config.fromfile(str(path))
    cfg.merge_from_dict(args.cfg_options)
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained',
                                               checkpoint=str(weights))
    check_pretrained_weights(cfg.model.backbone, str(path))  # no error
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(backbone.state_dict()[key], value), key


def test_from_scratch_variant_is_an_explicit_unfrozen_recipe():
    cfg = Config.fromfile(str(SCRATCH))
    table7 = Config.fromfile(
        str(TABLE7_DIR / 'light-head-rcnn_xception-1x_8xb2-150k_coco.py'))
    check_pretrained_weights(cfg.model.backbone, str(SCRATCH))  # no error
    assert cfg.model.backbone.init_cfg is None
    assert cfg.model.backbone.norm_cfg == dict(type='SyncBN',
                                               requires_grad=True)
    assert cfg.train_cfg.max_iters > table7.train_cfg.max_iters
    assert cfg.param_scheduler[-1].end == cfg.train_cfg.max_iters
    # Only the training recipe differs from the Table 7 config.
    ours, theirs = cfg.to_dict(), table7.to_dict()
    for c in (ours, theirs):
        for key in ('frozen_stages', 'norm_cfg', 'norm_eval', 'init_cfg'):
            del c['model']['backbone'][key]
        del c['train_cfg'], c['param_scheduler']
    assert ours == theirs
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    backbone.train()
    assert all(p.requires_grad for p in backbone.parameters())
    norms = [m for m in backbone.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(m.training for m in norms)
