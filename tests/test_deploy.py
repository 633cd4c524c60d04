"""Deploy steps (BN folding, channels_last) keep outputs; the model's own
fast components equal their mmdet / reference twins."""
import copy
import types

import pytest
import torch
import torch.nn as nn

from shufflenet_det.deploy import (count_batchnorm, deploy_model,
                                   parse_deploy_steps)
from tests.conftest import base_model_cfg
from tests.utils_detector import (PROPOSALS, calibrated_detector,
                                  randomize_, robust_batch)


def test_fuse_sequential_conv_bn():
    model = randomize_(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1),
                                     nn.BatchNorm2d(8), nn.ReLU(),
                                     nn.Conv2d(8, 4, 1, bias=False),
                                     nn.BatchNorm2d(4)))
    x = torch.randn(2, 3, 16, 16)
    expected = model.eval()(x)
    info = deploy_model(model, 'fuse_conv_bn')
    assert info['fused_bn'] == 2 and info['unfused_bn'] == 0
    assert not info['channels_last']
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('extra_dw', [False, True])
def test_shufflenet_v2_deployed_equals_plain(extra_dw):
    from shufflenet_det.models.backbones import ShuffleNetV2
    model = randomize_(ShuffleNetV2('0.5x', extra_dw=extra_dw,
                                    out_indices=(0, 1, 2, 3))).eval()
    bn_before = count_batchnorm(model)
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        expected = model(x)
        info = deploy_model(model)
        got = model(x)
    assert info['fused_bn'] == bn_before > 0
    assert info['unfused_bn'] == 0 and info['channels_last']
    for e, g in zip(expected, got):
        assert g.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4 * e.abs().max())


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('stride', [1, 2])
def test_shuffle_unit_is_concat_then_shuffle(channels_last, stride):
    """ShuffleUnitV2's one-copy interleave is the paper's concat + channel
    shuffle, bit for bit, and keeps the memory format."""
    from shufflenet_det.models.backbones.shufflenet_v2 import ShuffleUnitV2
    from shufflenet_det.models.layers import channel_shuffle
    unit = randomize_(ShuffleUnitV2(24, 48 if stride == 2 else 24, stride,
                                    False, dict(type='BN'),
                                    dict(type='ReLU'))).eval()
    x = torch.randn(2, 24, 12, 10)
    if channels_last:
        unit.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        if stride == 1:
            left, right = x[:, :12], unit._main(x[:, 12:])
        else:
            left, right = unit.branch1(x), unit._main(x)
        expected = channel_shuffle(torch.cat((left, right), 1), 2)
        got = unit(x)
    assert torch.equal(got, expected)
    assert got.is_contiguous(memory_format=torch.channels_last) == \
        channels_last


def test_parse_deploy_steps():
    with pytest.raises(ValueError, match=r"unknown deploy step.*'warp'"):
        parse_deploy_steps('fuse_conv_bn,warp')
    assert parse_deploy_steps('none') == ()
    assert parse_deploy_steps('channels_last,fuse_conv_bn') == (
        'fuse_conv_bn', 'channels_last')
    assert parse_deploy_steps('default') == ('fuse_conv_bn', 'channels_last')


def bound_methods_on_instances(model: nn.Module):
    """(module path, attribute) of every method stored on an instance."""
    return [(name, attr) for name, m in model.named_modules()
            for attr, value in vars(m).items()
            if isinstance(value, types.MethodType)]


@pytest.fixture(scope='module')
def detector():
    """Random weights with box deltas of realistic size and a batch whose
    NMS decisions are all away from the thresholds
    (``tests.utils_detector.robust_batch``)."""
    cfg = base_model_cfg()
    cfg.backbone.arch = '0.5x'
    cfg.test_cfg.rpn.max_per_img = PROPOSALS
    model, _ = calibrated_detector(cfg)
    return model, robust_batch(model, 2, (192, 256))[0]


def test_deployed_detector_equals_plain(detector):
    """Every part and the final detections of the deployed detector equal
    the plain detector's; nothing is patched onto instances."""
    from shufflenet_det.apis import detector_step
    from shufflenet_det.deploy.verify import (PartRecorder,
                                                 compare_detections,
                                                 verify_parts)
    model, data = detector
    device = torch.device('cpu')
    plain = copy.deepcopy(model)
    with PartRecorder(plain, ['backbone', 'rpn_head', 'roi_head.lsc',
                              'roi_head.bbox_roi_extractor',
                              'roi_head.bbox_head']) as rec:
        expected = detector_step(plain, copy.deepcopy(data), device)()
    deployed = copy.deepcopy(model)
    info = deploy_model(deployed)
    assert info['unfused_bn'] == 0 and info['fused_bn'] > 0
    assert bound_methods_on_instances(deployed) == []
    for part, diff in verify_parts(deployed, rec.calls, device).items():
        assert 'error' not in diff, (part, diff)
        assert diff['rel_diff'] < 1e-4, (part, diff)
    got = detector_step(deployed, copy.deepcopy(data), device)()
    # Same runtime, no NMS decision near a threshold: every detection
    # matches, boxes within 0.01 px and scores within 1e-4.
    check = compare_detections(expected, got, box_tol=0.01, score_tol=1e-4)
    assert check['equal'] and not check['explained'], check
    assert check['matched'] == check['detections'] == 200, check


@pytest.mark.parametrize('bgr_to_rgb,pad_value', [(True, 0), (False, 3.5)])
def test_one_pass_preprocessor_is_bit_identical(bgr_to_rgb, pad_value):
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    from mmdet.structures import DetDataSample

    from shufflenet_det.models.data_preprocessors import \
        OnePassDetDataPreprocessor
    kwargs = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                  bgr_to_rgb=bgr_to_rgb, pad_size_divisor=32,
                  pad_value=pad_value)
    stock, ours = DetDataPreprocessor(**kwargs), \
        OnePassDetDataPreprocessor(**kwargs)
    gen = torch.Generator().manual_seed(8)
    sizes = [(50, 70), (64, 33)]  # different sizes: padding to 64 x 96
    data = dict(
        inputs=[torch.randint(0, 256, (3, h, w), generator=gen,
                              dtype=torch.uint8) for h, w in sizes],
        data_samples=[DetDataSample(metainfo=dict(img_shape=s))
                      for s in sizes])
    expected = stock(copy.deepcopy(data), False)
    got = ours(copy.deepcopy(data), False)
    assert got['inputs'].shape == expected['inputs'].shape == (2, 3, 64, 96)
    assert torch.equal(got['inputs'], expected['inputs'])
    assert got['inputs'].is_contiguous(memory_format=torch.channels_last)
    for e, g in zip(expected['data_samples'], got['data_samples']):
        assert e.batch_input_shape == g.batch_input_shape == (64, 96)
        assert e.pad_shape == g.pad_shape
    train = ours(copy.deepcopy(data), True)  # training: mmdet's path
    assert torch.equal(train['inputs'], expected['inputs'])
