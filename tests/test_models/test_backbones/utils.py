"""Helpers shared by the backbone tests."""
from torch.nn.modules.batchnorm import _BatchNorm


def check_norm_state(modules, train_state: bool) -> bool:
    """True if every ``_BatchNorm`` in ``modules`` has ``training == train_state``."""
    return all(m.training == train_state for m in modules
               if isinstance(m, _BatchNorm))


def bn_running_stats(module):
    """Copies of the running statistics of every ``_BatchNorm`` in ``module``."""
    return [(m.running_mean.clone(), m.running_var.clone())
            for m in module.modules() if isinstance(m, _BatchNorm)]


def randomise_like_trained(model, seed: int = 0):
    """Give ``model`` weights whose every tensor shows in the output.

    Convs: Kaiming (fan_in) normal, so activations neither vanish nor blow up
    over the depth. BN: running mean ~ N(0, 0.5), running variance
    ~ U(0.5, 2), weight ~ U(0.5, 1.5), bias ~ N(0, 0.5): far from the
    defaults (0, 1, 1, 0), so a BN tensor loaded into the wrong layer, or not
    loaded at all, changes the features well beyond float rounding.

    Returns:
        The same module, in eval mode (mmpretrain's ``train`` returns None,
        hence not ``model.eval()``).
    """
    import torch
    import torch.nn as nn
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen)
                               * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, _BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.5)
    model.eval()
    return model


def save_mmpretrain_classifier(backbone, path, feat_channels: int) -> str:
    """Save ``backbone``'s own state dict as an mmpretrain classifier
    checkpoint (``backbone.`` prefix, a ``head.fc`` beside it, ``meta``):
    the file our ``init_cfg=dict(type='Pretrained')`` path must read."""
    import torch
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(1000, feat_channels)
    state['head.fc.bias'] = torch.zeros(1000)
    torch.save({'meta': {'mmpretrain_version': '1.2.0'},
                'state_dict': state}, path)
    return str(path)


def assert_features_equal(ours, reference, rtol: float = 1e-5):
    """Each pair of feature maps equal up to float rounding, relative to the
    map's own scale (deep random networks reach values in the thousands)."""
    import torch
    assert len(ours) == len(reference)
    for i, (a, b) in enumerate(zip(ours, reference)):
        assert a.shape == b.shape, (i, a.shape, b.shape)
        scale = b.abs().max().item()
        assert scale > 0, i
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * scale,
                                   msg=lambda m: f'output {i}: {m}')


def assert_loads_mmpretrain_features(ref, build, tmp_path, feat_channels: int,
                                     size=(96, 128)):
    """Save mmpretrain backbone ``ref`` as a classifier checkpoint, build ours
    from it through ``init_cfg`` (``build(init_cfg)``) and compare features.

    Every tensor of ours must come from the file (nothing kept at its init),
    and each stage's output must equal ``ref``'s on a (2, 3, *size) input.
    """
    import torch
    path = save_mmpretrain_classifier(ref, tmp_path / 'mmpretrain.pth',
                                      feat_channels)
    ours = build(dict(type='Pretrained', checkpoint=path))
    ours.init_weights()
    ours.eval()
    assert ours.loaded_keys == set(ours.state_dict())
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert_features_equal(ours(x), ref(x))
