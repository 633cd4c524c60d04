"""Every config under configs/ builds and runs loss + predict on CPU."""
import ast
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from tests.conftest import (COCO_MINI, COCO_MINI_SKIP, CONFIGS, REPO,
                            leaf_configs, make_data_samples)

LEAVES = leaf_configs()
IDS = [str(p.relative_to(CONFIGS)) for p in LEAVES]
# The Table 7 configs; other leaves (e.g. the overfit check) may differ more.
TABLE7 = [p for p in LEAVES if p.name.endswith('_8xb2-150k_coco.py')]
SHUFFLENETV2 = [p for p in TABLE7 if '_shufflenetv2' in p.name]
REFERENCE = CONFIGS / \
    'light_head_rcnn/light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco.py'
IMG = (128, 160)


def inheritance_depth(path: Path) -> int:
    """Number of config files on the longest _base_ chain, path included."""
    tree = ast.parse(path.read_text())
    bases = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, 'id', None) == '_base_' for t in node.targets):
            value = ast.literal_eval(node.value)
            bases = [value] if isinstance(value, str) else list(value)
    return 1 + max((inheritance_depth((path.parent / b).resolve())
                    for b in bases), default=0)


def test_all_table7_shufflenet_configs_exist():
    names = {p.name for p in SHUFFLENETV2}
    for width in ('0.5x', '1x', '1.5x', '2x'):
        for kind in ('shufflenetv2', 'shufflenetv2star'):
            assert f'light-head-rcnn_{kind}-{width}_8xb2-150k_coco.py' \
                in names


@pytest.mark.slow
@pytest.mark.parametrize('path', LEAVES, ids=IDS)
def test_config_builds_and_runs_loss_and_predict(path):
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports == dict(imports=['shufflenet_det'],
                                      allow_failed_imports=False)
    assert inheritance_depth(path) <= 3, 'at most 3 levels of inheritance'
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    data = dict(inputs=[torch.randint(0, 255, (3, *IMG), dtype=torch.uint8)],
                data_samples=make_data_samples(IMG))

    model.train()
    losses = model(**model.data_preprocessor(data, True), mode='loss')
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total) and total > 0

    model.eval()
    with torch.no_grad():
        (pred, ) = model(**model.data_preprocessor(data, False),
                         mode='predict')
    assert len(pred.pred_instances) <= cfg.model.test_cfg.rcnn.max_per_img
    assert pred.pred_instances.bboxes.shape[-1] == 4


# The reference against itself would be a comparison that cannot fail.
OTHER_TABLE7 = [p for p in TABLE7 if p.name != REFERENCE.name]


def test_reference_is_one_of_the_twenty():
    assert REFERENCE in TABLE7
    assert len(OTHER_TABLE7) == len(TABLE7) - 1


@pytest.mark.parametrize('path', OTHER_TABLE7,
                         ids=[p.name for p in OTHER_TABLE7])
def test_leaf_overrides_only_the_backbone(path):
    base = Config.fromfile(str(REFERENCE))
    cfg = Config.fromfile(str(path))
    assert cfg.model.backbone != base.model.backbone
    for key in ('rpn_head', 'roi_head', 'train_cfg', 'test_cfg'):
        assert cfg.model[key] == base.model[key], key
    assert cfg.train_dataloader == base.train_dataloader
    assert cfg.optim_wrapper == base.optim_wrapper


def test_recipe_values():
    cfg = Config.fromfile(str(REFERENCE))
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    # 500 warm-up iterations before the 150k, as the official tools/train.py
    assert cfg.train_cfg.max_iters == 150500
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16)
    warmup, steps = cfg.param_scheduler
    assert warmup.end == 500 and abs(warmup.start_factor - 1 / 3) < 1e-9
    assert steps.milestones == [95500, 125500]
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    assert cfg.train_dataloader.dataset.ann_file.endswith(
        'instances_train2017.json')
    assert cfg.test_dataloader.dataset.ann_file.endswith(
        'instances_val2017.json')
    resize = [t for t in cfg.train_pipeline if t.type == 'Resize'][0]
    assert resize.scale == (1200, 800) and resize.keep_ratio
    rpn = cfg.model.train_cfg.rpn_proposal
    assert (rpn.nms_pre, rpn.max_per_img, rpn.nms.iou_threshold) == \
        (12000, 2000, 0.7)
    rpn = cfg.model.test_cfg.rpn
    assert (rpn.nms_pre, rpn.max_per_img) == (6000, 1000)
    rcnn = cfg.model.test_cfg.rcnn
    assert (rcnn.nms.iou_threshold, rcnn.max_per_img) == (0.5, 100)
    assert cfg.model.train_cfg.rcnn.ohem_topk == 256


@COCO_MINI_SKIP
def test_data_root_override_points_datasets_elsewhere():
    from mmdet.registry import DATASETS, METRICS
    root = f'{COCO_MINI}/'
    cfg = Config.fromfile(str(REFERENCE))
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.data_root': root,
        'test_evaluator.ann_file':
        f'{root}annotations/instances_val2017.json'})
    train = DATASETS.build(cfg.train_dataloader.dataset)
    assert 0 < len(train) <= 294
    assert train.get_data_info(0)['img_path'].startswith(
        f'{root}train2017/')
    test = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(test) == 122
    metric = METRICS.build(cfg.test_evaluator)
    assert len(metric._coco_api.get_img_ids()) == 122



@pytest.mark.slow
def test_mmdet_tools_resolve_the_runner():
    """mmdet's tools/train.py builds ``runner_type`` from mmengine's root
    RUNNERS registry before any default scope exists; tools/test.py from
    mmdet's. Checked in a fresh interpreter, as those tools run."""
    import subprocess
    import sys
    code = (
        'import sys\n'
        'from mmengine.config import Config\n'
        'from mmengine.registry import RUNNERS as ROOT\n'
        'from mmdet.registry import RUNNERS as MMDET\n'
        'for path in sys.argv[1:]:\n'
        '    t = Config.fromfile(path).get("runner_type", "Runner")\n'
        '    assert ROOT.get(t) and MMDET.get(t), (path, t)\n')
    result = subprocess.run(
        [sys.executable, '-c', code, *map(str, LEAVES)], cwd=str(REPO),
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_pretrained_checkpoints_resolve_to_the_matching_width():
    """torchvision:// names must exist in mmengine's table (no download)."""
    from mmengine.runner.checkpoint import get_torchvision_models
    urls = get_torchvision_models()
    for path in SHUFFLENETV2:
        backbone = Config.fromfile(str(path)).model.backbone
        name = backbone.init_cfg.checkpoint
        assert name.startswith('torchvision://'), path.name
        url = urls.get(name[len('torchvision://'):])
        assert url is not None, (path.name, name)
        # e.g. arch '1.5x' -> shufflenetv2_x1_5-....pth, '1.0x' -> x1-...
        width = backbone.arch.rstrip('x').replace('.0', '').replace('.', '_')
        assert f'shufflenetv2_x{width}' in url.replace('x0.5', 'x0_5'), \
            (path.name, url)
