"""The backbone contract, checked once for every backbone of the suite.

All backbones share ``BaseDetBackbone``'s freezing, ``norm_eval`` and
``with_cp`` code; these tests hold each of them to it.
"""
import pytest
import torch
from mmdet.registry import MODELS

import shufflenet_det  # noqa: F401  (registers the backbones)
from .utils import bn_running_stats, check_norm_state

# The smallest member of each family keeps the tests fast.
BACKBONES = {
    'ShuffleNetV2': dict(type='ShuffleNetV2', arch='0.5x'),
    'ShuffleNetV2*': dict(type='ShuffleNetV2', arch='0.5x', extra_dw=True),
    'ShuffleNetV1': dict(type='ShuffleNetV1', arch='0.5x'),
    'MobileNetV2Det': dict(type='MobileNetV2Det', widen_factor=0.25),
    'XceptionLike': dict(type='XceptionLike', arch='0.5x'),
}


def _build(name, **kwargs):
    return MODELS.build({**BACKBONES[name], **kwargs})


def _num_stages(name):
    return len(_build(name).stage_channels)


@pytest.mark.parametrize('name', BACKBONES)
@pytest.mark.parametrize('frozen', ['stem', 'first', 'all'])
def test_frozen_stages(name, frozen):
    num = _num_stages(name)
    frozen_stages = {'stem': 0, 'first': 1, 'all': num}[frozen]
    model = _build(name, frozen_stages=frozen_stages,
                   out_indices=tuple(range(num)))
    model.train()
    frozen_parts = [model.stem] + list(model.layers[:frozen_stages])
    trainable = list(model.layers[frozen_stages:])
    before = [bn_running_stats(m) for m in frozen_parts]
    model(torch.rand(2, 3, 64, 64))
    for module, stats in zip(frozen_parts, before):
        # ShuffleNet V2*'s extra depthwise convs are in no ImageNet V2
        # checkpoint and stay trainable inside frozen stages (their BN is
        # frozen like every other).
        assert all(not p.requires_grad
                   for n, p in module.named_parameters()
                   if '.extra_dw.conv.' not in f'.{n}')
        assert check_norm_state(module.modules(), False)
        for (m0, v0), (m1, v1) in zip(stats, bn_running_stats(module)):
            assert torch.equal(m0, m1) and torch.equal(v0, v1)
    for module in trainable:
        assert all(p.requires_grad for p in module.parameters())
        assert check_norm_state(module.modules(), True)


@pytest.mark.parametrize('name', BACKBONES)
def test_no_freezing_by_default(name):
    model = _build(name).train()
    assert all(p.requires_grad for p in model.parameters())
    assert check_norm_state(model.modules(), True)


@pytest.mark.parametrize('name', BACKBONES)
@pytest.mark.parametrize('norm', ['BN', 'SyncBN'])
def test_norm_eval_holds_after_train(name, norm):
    model = _build(name, norm_cfg=dict(type=norm), norm_eval=True)
    model.train()
    assert check_norm_state(model.modules(), False)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize('name', BACKBONES)
def test_stages_after_the_last_output_are_not_built(name):
    # Unused trailing stages would be dead compute and break DDP.
    model = _build(name, out_indices=(0, ))
    assert len(model.layers) == 1
    out = model.train()(torch.rand(1, 3, 64, 64))[0].sum()
    out.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize('name', BACKBONES)
def test_with_cp_matches_plain_forward_and_backward(name):
    torch.manual_seed(0)
    ref = _build(name, norm_eval=True)
    cp_model = _build(name, norm_eval=True, with_cp=True)
    cp_model.load_state_dict(ref.state_dict())
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    outs = [sum(f.sum() for f in m.train()(x)) for m in (ref, cp_model)]
    grads = [torch.autograd.grad(o, x)[0] for o in outs]
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])
