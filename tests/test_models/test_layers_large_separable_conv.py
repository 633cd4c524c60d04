"""LargeSeparableConv: shapes, structure, init, argument checks."""
import pytest
import torch
import torch.nn.functional as F

from shufflenet_det.models.layers import LargeSeparableConv


@pytest.mark.parametrize('mid, expected_mid',
                         [('S', 64), ('L', 256), (32, 32)])
def test_shapes_and_widths(mid, expected_mid):
    lsc = LargeSeparableConv(in_channels=24, mid_channels=mid)
    out = lsc(torch.rand(2, 24, 9, 11))
    assert out.shape == (2, 490, 9, 11)
    assert lsc.mid_channels == expected_mid
    assert lsc.col[0].weight.shape == (expected_mid, 24, 15, 1)
    assert lsc.col[1].weight.shape == (490, expected_mid, 1, 15)
    assert lsc.row[0].weight.shape == (expected_mid, 24, 1, 15)
    assert lsc.row[1].weight.shape == (490, expected_mid, 15, 1)
    assert (out >= 0).all()  # ReLU after the sum


def test_forward_is_relu_of_two_separable_branches():
    lsc = LargeSeparableConv(in_channels=4, mid_channels=3, out_channels=8,
                             kernel_size=5)
    x = torch.randn(1, 4, 6, 7)

    def conv(m, t):
        return F.conv2d(t, m.weight, m.bias, padding=m.padding)

    col = conv(lsc.col[1], conv(lsc.col[0], x))
    row = conv(lsc.row[1], conv(lsc.row[0], x))
    torch.testing.assert_close(lsc(x), torch.relu(col + row))
    # Every conv has a bias and there is no normalisation layer.
    assert all(m.bias is not None for m in lsc.modules()
               if isinstance(m, torch.nn.Conv2d))
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for m in lsc.modules())


def test_init_is_normal_0_01_with_zero_bias():
    lsc = LargeSeparableConv(in_channels=64, mid_channels=64)
    lsc.init_weights()
    w = lsc.col[1].weight
    assert abs(w.std().item() - 0.01) < 1e-3
    assert abs(w.mean().item()) < 1e-3
    assert all((m.bias == 0).all() for m in lsc.modules()
               if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=None), 'in_channels'),
    (dict(in_channels=8, kernel_size=14), 'kernel_size'),
    (dict(in_channels=8, mid_channels='M'), "'M'"),
])
def test_bad_arguments_name_the_culprit(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LargeSeparableConv(**kwargs)
