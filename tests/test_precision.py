"""The ``bf16`` / ``fp16`` deploy steps: dense parts in reduced precision,
boxes and NMS in float32, for ours and the peer alike."""
import pytest
import torch

from shufflenet_det.deploy import precision
from shufflenet_det.deploy import deploy_model, parse_deploy_steps
from tests.conftest import CONFIGS, base_model_cfg
from tests.utils_detector import calibrated_detector

NATIVE_BF16, WHY = precision.native_low_precision(torch.bfloat16, 'cpu')
needs_bf16 = pytest.mark.skipif(not NATIVE_BF16, reason=f'bf16 step not applied here: {WHY}')
OURS = ['backbone', 'rpn_head', 'roi_head.lsc', 'roi_head.bbox_head']
PEER = ['backbone', 'rpn.head', 'roi_heads.box_head', 'roi_heads.box_predictor']


def test_parse_precision_steps():
    assert parse_deploy_steps('default,bf16') == ('fuse_conv_bn', 'channels_last', 'bf16')
    assert parse_deploy_steps('all') == ('fuse_conv_bn', 'channels_last', 'compile')
    with pytest.raises(ValueError, match='exclude each other'):
        parse_deploy_steps('bf16,fp16')
    with pytest.raises(ValueError, match="'compile' cannot be combined with 'bf16'"):
        parse_deploy_steps('default,bf16,compile')


def dtypes_inside(model, paths):
    """Record the dtype of the first conv/linear output inside each part and
    of each part's own output."""
    seen, handles = {}, []
    for path in paths:
        part = model.get_submodule(path)
        inner = next(m for m in part.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
        # Hooks must return None, or they replace the output.
        handles.append(inner.register_forward_hook(
            lambda m, i, o, p=path: [seen.setdefault(p + ':inner', o.dtype)] and None))
        handles.append(part.register_forward_hook(
            lambda m, i, o, p=path: [seen.setdefault(p + ':out', _first(o).dtype)] and None))
    return seen, handles


def _first(o):
    while not torch.is_tensor(o):
        o = next(iter(o.values())) if isinstance(o, dict) else o[0]
    return o


@needs_bf16
def test_ours_dense_parts_bf16_boxes_fp32():
    from shufflenet_det.apis import detector_step
    model, data = calibrated_detector(base_model_cfg())
    reference = detector_step(model, data, torch.device('cpu'))()
    info = deploy_model(model, ('fuse_conv_bn', 'channels_last', 'bf16'))
    assert info['bf16']['parts'] == OURS, info
    seen, _ = dtypes_inside(model, OURS)
    results = detector_step(model, data, torch.device('cpu'))()
    assert all(seen[p + ':inner'] == torch.bfloat16 for p in OURS), seen
    assert all(seen[p + ':out'] == torch.float32 for p in OURS), seen
    for ref, got in zip(reference, results):
        boxes, scores = got.pred_instances.bboxes, got.pred_instances.scores
        assert boxes.dtype == scores.dtype == torch.float32 and len(boxes) > 0
        # Calibrated weights: the same top detection, within bf16 precision.
        torch.testing.assert_close(scores[0], ref.pred_instances.scores[0], atol=2e-2, rtol=0)


@needs_bf16
def test_peer_gets_the_same_step():
    from shufflenet_det.benchmark.peer import build_peer
    model = build_peer(torch.device('cpu'), (160, 224))
    info = deploy_model(model, ('fuse_conv_bn', 'channels_last', 'bf16'))
    assert info['bf16']['parts'] == PEER, info
    seen, _ = dtypes_inside(model, PEER)
    with torch.no_grad():
        out = model([torch.rand(3, 160, 224)])
    assert seen['backbone:inner'] == torch.bfloat16 and seen['backbone:out'] == torch.float32
    assert out[0]['boxes'].dtype == torch.float32


def test_no_native_bf16_leaves_model_unchanged(monkeypatch):
    monkeypatch.setattr(precision, 'cpu_flags', lambda: {'avx2', 'fma'})
    model, _ = calibrated_detector(base_model_cfg())
    with pytest.warns(UserWarning, match='no native bfloat16'):
        info = deploy_model(model, ('bf16',))
    assert 'skipped' in info['bf16'] and 'parts' not in info['bf16']
    assert not any(m._forward_pre_hooks for m in model.modules())


def test_fp16_is_a_cuda_step():
    model, _ = calibrated_detector(base_model_cfg())
    with pytest.warns(UserWarning, match="'fp16' skipped"):
        info = deploy_model(model, ('fp16',))
    assert 'cuda' in info['fp16']['skipped']


def test_autocast_region_closed_when_a_part_raises():
    layer = torch.nn.Linear(4, 4)
    model = torch.nn.ModuleDict({'backbone': layer})
    precision.autocast_parts(model, torch.bfloat16, 'cpu')
    with pytest.raises(RuntimeError):
        model['backbone'](torch.zeros(3, 5))
    assert not torch.is_autocast_enabled('cpu')


@needs_bf16
@pytest.mark.slow
def test_every_table7_config_deploys_with_bf16():
    from mmdet.registry import MODELS
    from mmengine.config import Config

    from shufflenet_det.apis import detector_step, make_batch
    configs = sorted((CONFIGS / 'light_head_rcnn').glob('light-head-rcnn_*_8xb2-150k_coco.py'))
    assert len(configs) == 20
    for config in configs:
        cfg = Config.fromfile(str(config))
        cfg.model.backbone.init_cfg = None
        model = MODELS.build(cfg.model)
        info = deploy_model(model, ('fuse_conv_bn', 'channels_last', 'bf16'))
        assert info['bf16']['parts'] == OURS, (config.name, info)
        results = detector_step(model, make_batch(1, (128, 192)), torch.device('cpu'))()
        assert results[0].pred_instances.bboxes.dtype == torch.float32, config.name
