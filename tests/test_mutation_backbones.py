"""Tests written for mutants that survived the fast tier (docs/mutation.md):
channel shuffle and the ShuffleNet units."""
import pytest
import torch


@pytest.mark.parametrize('groups', [2, 3, 4])
def test_channel_shuffle_moves_every_channel(groups):
    """Channel ``g * (C // groups) + i`` goes to ``i * groups + g``."""
    from shufflenet_det.models.layers.channel_shuffle import channel_shuffle
    c = 12
    x = torch.arange(2 * c * 3 * 5, dtype=torch.float32).view(2, c, 3, 5)
    out = channel_shuffle(x, groups)
    assert out.shape == x.shape
    for g in range(groups):
        for i in range(c // groups):
            assert torch.equal(out[:, i * groups + g],
                               x[:, g * (c // groups) + i])


@pytest.mark.parametrize('layout', ['nchw', 'nhwc', 'nhwc-slice'])
def test_interleave_is_cat_then_shuffle(layout):
    """Same values as ``channel_shuffle(cat(a, b), 2)`` in every layout,
    keeping channels-last memory when the inputs have it."""
    from shufflenet_det.models.layers.channel_shuffle import (channel_shuffle,
                                                              interleave)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(2, 6, 4, 5, generator=gen)
    b = torch.randn(2, 6, 4, 5, generator=gen)
    if layout != 'nchw':
        b = b.contiguous(memory_format=torch.channels_last)
        if layout == 'nhwc':
            a = a.contiguous(memory_format=torch.channels_last)
        else:  # the first half of an NHWC map, as a v2 unit's split gives
            a = torch.cat([a, b], 1).contiguous(
                memory_format=torch.channels_last)[:, :6]
    out = interleave(a, b)
    assert out.shape == (2, 12, 4, 5)
    assert torch.equal(out, channel_shuffle(torch.cat([a, b], 1), 2))
    assert torch.equal(out[:, 0::2], a) and torch.equal(out[:, 1::2], b)
    assert out.is_contiguous(memory_format=torch.channels_last) == \
        (layout != 'nchw')


@pytest.mark.parametrize('nhwc_side', ['a', 'b'])
def test_interleave_keeps_nhwc_when_either_input_has_it(nhwc_side):
    """The layout rule of ``interleave``: channels-last output as soon as
    ``b`` is channels-last or ``a`` has its channels innermost (a channel
    slice of an NHWC map), so a v2 unit never drops out of NHWC."""
    from shufflenet_det.models.layers.channel_shuffle import (channel_shuffle,
                                                              interleave)
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(2, 6, 4, 5, generator=gen)
    b = torch.randn(2, 6, 4, 5, generator=gen)
    if nhwc_side == 'a':
        a = torch.cat([a, b], 1).contiguous(
            memory_format=torch.channels_last)[:, :6]
        assert a.stride(1) == 1 and not a.is_contiguous()
    else:
        b = b.contiguous(memory_format=torch.channels_last)
    out = interleave(a, b)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, channel_shuffle(torch.cat([a, b], 1), 2))
