"""Grid-sample PSRoIAlign: both semantics against a slow, obviously correct
reference, avg/aligned against torchvision, gradients, devices."""
import math

import pytest
import torch

from shufflenet_det.models.layers.ps_roi_align import (GridPSRoIAlign,
                                                       ps_roi_align_grid)

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def bilinear(plane, y, x, aligned):
    """One bilinear sample of a (H, W) plane, written out tap by tap."""
    height, width = plane.shape
    if aligned:  # torchvision: 0 beyond [-1, size], else clamp to border
        if y < -1.0 or y > height or x < -1.0 or x > width:
            return 0.0
        y = min(max(y, 0.0), height - 1.0)
        x = min(max(x, 0.0), width - 1.0)
    y0, x0 = math.floor(y), math.floor(x)
    value = 0.0
    for yy in (y0, y0 + 1):
        for xx in (x0, x0 + 1):
            weight = (1 - abs(y - yy)) * (1 - abs(x - xx))
            if 0 <= yy < height and 0 <= xx < width and weight > 0:
                value += weight * float(plane[yy, xx])
    return value


def reference(feat, rois, k, scale, s, mode, aligned):
    """Position-sensitive RoIAlign, one sample at a time (float64)."""
    kh, kw = k
    cout = feat.shape[1] // (kh * kw)
    out = torch.zeros(len(rois), cout, kh, kw, dtype=torch.float64)
    shift = 0.5 if aligned else 0.0
    for r, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        x1, y1, x2, y2 = (v * scale - shift for v in (x1, y1, x2, y2))
        w, h = x2 - x1, y2 - y1
        if not aligned:
            w, h = max(w, 0.0), max(h, 0.0)
        for c in range(cout):
            for p in range(kh):
                for q in range(kw):
                    plane = feat[int(b), (c * kh + p) * kw + q]
                    samples = [bilinear(plane,
                                        y1 + h / kh * (p + (i + 0.5) / s),
                                        x1 + w / kw * (q + (j + 0.5) / s),
                                        aligned)
                               for i in range(s) for j in range(s)]
                    out[r, c, p, q] = sum(samples) / len(samples) \
                        if mode == 'avg' else max(samples)
    return out


def random_case(k=(3, 2), cout=2, batch=3, size=(7, 9), num=12, seed=0,
                dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    feat = torch.randn(batch, cout * k[0] * k[1], *size, generator=gen,
                       dtype=dtype)
    # Image 1 has no RoI, RoIs run past every border, order is shuffled,
    # one RoI is degenerate (x2 < x1).
    index = torch.tensor([0., 2.] * (num // 2))[:, None]
    xy = torch.rand(num, 2, generator=gen) * 360 - 60
    wh = torch.rand(num, 2, generator=gen) * 200
    rois = torch.cat([index, xy, xy + wh], 1).to(dtype)
    rois[0, 3] = rois[0, 1] - 5
    return feat, rois[torch.randperm(num, generator=gen)]


@pytest.mark.parametrize('mode', ['avg', 'max'])
@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [1, 2])
def test_matches_slow_reference(mode, aligned, sampling_ratio):
    feat, rois = random_case()
    got = ps_roi_align_grid(feat, rois, (3, 2), 1 / 32., sampling_ratio,
                            mode, aligned)
    expected = reference(feat, rois, (3, 2), 1 / 32., sampling_ratio, mode,
                         aligned)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_semantics_differ():
    """The two conventions are really different (else the tests above
    could not tell them apart)."""
    feat, rois = random_case()
    outs = {(m, a): ps_roi_align_grid(feat, rois, (3, 2), 1 / 32., 2, m, a)
            for m in ('avg', 'max') for a in (True, False)}
    values = list(outs.values())
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            assert not torch.allclose(values[i], values[j])


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('output_size,sampling_ratio', [((7, 7), 2),
                                                        ((3, 2), 3)])
def test_avg_aligned_matches_torchvision(device, output_size,
                                         sampling_ratio):
    from torchvision.ops import ps_roi_align
    feat, rois = random_case(output_size, cout=4, size=(13, 19), num=120,
                             seed=7, dtype=torch.float32)
    feat, rois = feat.to(device), rois.to(device)
    layer = GridPSRoIAlign(output_size, 1 / 32., sampling_ratio)
    got = layer(feat, rois)
    expected = ps_roi_align(feat, rois, output_size, 1 / 32., sampling_ratio)
    assert got.shape == expected.shape == (120, 4, *output_size)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert layer(feat, rois[:0]).shape == (0, 4, *output_size)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('mode', ['avg', 'max'])
@pytest.mark.parametrize('aligned', [True, False])
def test_gradients(device, mode, aligned):
    feat, rois = random_case(size=(5, 6), num=4, seed=3)
    feat = feat.to(device).requires_grad_()
    rois = rois.to(device)
    assert torch.autograd.gradcheck(
        lambda f: ps_roi_align_grid(f, rois, (3, 2), 1 / 32., 2, mode,
                                    aligned), (feat, ), eps=1e-6, atol=1e-5)


def test_one_pixel_wide_map():
    feat, rois = random_case(size=(1, 4), num=4)
    for aligned in (True, False):
        torch.testing.assert_close(
            ps_roi_align_grid(feat, rois, (3, 2), 1 / 32., 2, 'max', aligned),
            reference(feat, rois, (3, 2), 1 / 32., 2, 'max', aligned))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="mode.*'median'"):
        GridPSRoIAlign(7, 1 / 32., 2, mode='median')
    with pytest.raises(ValueError, match='sampling_ratio.*0'):
        GridPSRoIAlign(7, 1 / 32., 0)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('autocast', [False, True])
def test_sampling_grid_stays_float32_in_reduced_precision(dtype, autocast):
    """A float16/bfloat16 map (the fp16/bf16 deploy steps; CPU autocast
    for ``--amp``) is sampled at float32 positions: the result equals the
    float32 pooling of the same (upcast) map up to the output's rounding.
    With the grid in the map's dtype, positions near x = 1000 px are off by
    up to 8 px in bfloat16 (half a bin at stride 16), which this map (a
    sine of period 3 feature px) turns into errors of about 1."""
    layer = GridPSRoIAlign(7, 1 / 16, 2, mode='max', aligned=False)
    height, width = 50, 80  # an 800 x 1280 image at stride 16
    x = torch.arange(width, dtype=torch.float32)
    y = torch.arange(height, dtype=torch.float32)[:, None]
    feat = torch.sin(x * 2.1 + y * 0.7).expand(1, 490, height, width)
    feat = feat + torch.linspace(0, 0.5, 490)[None, :, None, None]
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(64, 2, generator=gen) * torch.tensor([500., 300.])
    wh = torch.rand(64, 2, generator=gen) * 200 + 30
    rois = torch.cat([torch.zeros(64, 1), xy + torch.tensor([700., 450.]),
                      xy + torch.tensor([700., 450.]) + wh], 1)
    low = feat.to(dtype)
    expected = layer(low.float(), rois)
    if autocast:
        with torch.autocast('cpu', dtype=dtype):
            got = layer(low, rois)
    else:  # the deploy steps: a reduced-precision map, float32 boxes
        got = layer(low, rois)
    assert got.dtype == dtype
    assert float((got.float() - expected).abs().max()) <= 1e-2
