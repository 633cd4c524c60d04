"""PSRoIExtractor: default official semantics, torchvision's ops, empty RoIs
and bad input."""
import pytest
import torch
from torchvision.ops import ps_roi_align, ps_roi_pool

from shufflenet_det.models.roi_extractors import PSRoIExtractor


def _hand_made_map(channels=490, h=10, w=12):
    # Each channel a distinct ramp, so a wrong channel or position shows.
    c = torch.arange(channels, dtype=torch.float32).view(-1, 1, 1)
    y = torch.arange(h, dtype=torch.float32).view(1, -1, 1)
    x = torch.arange(w, dtype=torch.float32).view(1, 1, -1)
    return torch.stack([c * 1000 + y * 10 + x, -(c + y * x)])  # (2, C, H, W)


ROIS = torch.tensor([[0., 0., 0., 320., 288.],
                     [1., 40., 16., 200., 300.],
                     [0., 100.5, 50.25, 130., 90.]])


def test_default_is_official_psalign_7x7_sampling2_10_channels():
    ext = PSRoIExtractor(featmap_strides=[32])
    layer = ext.roi_layers[0]
    assert type(layer).__name__ == 'GridPSRoIAlign'
    assert (layer.mode, layer.aligned) == ('max', False)
    assert layer.output_size == (7, 7)
    assert layer.sampling_ratio == 2
    assert layer.spatial_scale == 1 / 32
    assert ext.out_channels == 10 and ext.num_inputs == 1


@pytest.mark.parametrize('layer_type', ['PSRoIAlign', 'GridPSRoIAlign'])
def test_align_equals_torchvision_op(layer_type):
    feat = _hand_made_map()
    ext = PSRoIExtractor(featmap_strides=[32], roi_layer=dict(
        type=layer_type, output_size=7, sampling_ratio=2,
        **(dict(mode='avg', aligned=True) if layer_type[0] == 'G' else {})))
    out = ext((feat, ), ROIS)
    assert out.shape == (3, 10, 7, 7)
    expected = ps_roi_align(feat, ROIS, (7, 7), 1 / 32, 2)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=0.05)
    # Bin (0, 0) of output channel 0 reads input channel 0 and bin (6, 6)
    # of channel 9 reads input channel 9*49 + 48 = 489: the values encode it.
    assert 0 <= out[0, 0, 0, 0] < 1000
    assert 489 * 1000 <= out[0, 9, 6, 6] < 490 * 1000


def test_pool_equals_torchvision_op_with_tuple_size():
    feat = _hand_made_map(channels=2 * 3 * 5, h=8, w=8)
    ext = PSRoIExtractor(
        roi_layer=dict(type='PSRoIPool', output_size=(3, 5)),
        out_channels=2, featmap_strides=[16])
    out = ext((feat, ), ROIS[:2] / 2)
    torch.testing.assert_close(
        out, ps_roi_pool(feat, ROIS[:2] / 2, (3, 5), 1 / 16))
    assert out.shape == (2, 2, 3, 5)


def test_zero_rois_give_empty_tensor_of_right_shape():
    ext = PSRoIExtractor(featmap_strides=[32])
    out = ext((torch.rand(1, 490, 4, 5), ), torch.zeros(0, 5))
    assert out.shape == (0, 10, 7, 7)


def test_roi_scale_factor_scales_about_centre():
    feat = _hand_made_map()
    ext = PSRoIExtractor(featmap_strides=[32])
    roi = torch.tensor([[0., 100., 100., 200., 160.]])
    scaled = torch.tensor([[0., 50., 70., 250., 190.]])
    torch.testing.assert_close(ext((feat, ), roi, roi_scale_factor=2.0),
                               ext((feat, ), scaled))


def test_gradient_flows_to_the_score_map():
    feat = torch.rand(1, 490, 6, 6, requires_grad=True)
    PSRoIExtractor(featmap_strides=[32])((feat, ), ROIS[:1]).sum().backward()
    assert feat.grad is not None and feat.grad.abs().sum() > 0


@pytest.mark.parametrize('kwargs, match', [
    (dict(featmap_strides=None), 'featmap_strides'),
    (dict(featmap_strides=[16, 32]), 'featmap_strides'),
    (dict(featmap_strides=[32], roi_layer=dict(type='RoIAlign',
                                               output_size=7)), 'RoIAlign'),
])
def test_bad_config_names_the_culprit(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PSRoIExtractor(**kwargs)


def test_channel_mismatch_is_reported():
    ext = PSRoIExtractor(featmap_strides=[32])
    with pytest.raises(ValueError, match='464 channels'):
        ext((torch.rand(1, 464, 4, 4), ), ROIS[:1])
