"""Tests written for mutants that survived the fast tier (docs/mutation.md):
the one-pass data preprocessor and the deploy steps."""
import copy

import pytest
import torch

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def batch(sizes=((50, 70), (64, 33)), dtype=torch.uint8, samples=True):
    from mmdet.structures import DetDataSample
    gen = torch.Generator().manual_seed(4)
    inputs = [torch.randint(0, 256, (3, h, w), generator=gen).to(dtype)
              for h, w in sizes]
    data = dict(inputs=inputs)
    if samples:
        data['data_samples'] = [DetDataSample(metainfo=dict(img_shape=s))
                                for s in sizes]
    return data


@pytest.mark.parametrize('kwargs', [
    dict(bgr_to_rgb=True),                               # no normalisation
    dict(mean=MEAN, std=STD, pad_size_divisor=1),        # no padding
    dict(mean=MEAN, std=STD, bgr_to_rgb=True, pad_size_divisor=32,
         pad_value=7),
])
@pytest.mark.parametrize('dtype', [torch.uint8, torch.float32])
def test_one_pass_equals_mmdet_every_option(kwargs, dtype):
    from mmdet.models.data_preprocessors import DetDataPreprocessor

    from shufflenet_det.models.data_preprocessors import \
        OnePassDetDataPreprocessor
    data = batch(dtype=dtype)
    expected = DetDataPreprocessor(**kwargs)(copy.deepcopy(data), False)
    got = OnePassDetDataPreprocessor(**kwargs)(copy.deepcopy(data), False)
    assert torch.equal(got['inputs'], expected['inputs'])
    assert got['inputs'].is_contiguous(memory_format=torch.channels_last)
    for e, g in zip(expected['data_samples'], got['data_samples']):
        assert (e.batch_input_shape, e.pad_shape) == (g.batch_input_shape,
                                                      g.pad_shape)


def test_one_pass_without_data_samples():
    from shufflenet_det.models.data_preprocessors import \
        OnePassDetDataPreprocessor
    pre = OnePassDetDataPreprocessor(mean=MEAN, std=STD, pad_size_divisor=32)
    out = pre(batch(samples=False), False)
    assert out['data_samples'] is None
    assert out['inputs'].shape == (2, 3, 64, 96)


def test_one_pass_path_is_taken_only_where_it_applies():
    """The one-pass path (channels-last output) for CPU lists of 3-channel
    images at test time; mmdet's path otherwise."""
    from shufflenet_det.models.data_preprocessors import \
        OnePassDetDataPreprocessor
    pre = OnePassDetDataPreprocessor(mean=MEAN, std=STD, pad_size_divisor=32)
    data = batch()
    assert pre._one_pass(data, False)
    assert pre._one_pass(batch(sizes=((50, 70), )), False)  # one image
    assert not pre._one_pass(data, True)
    assert not pre._one_pass(dict(inputs=[]), False)
    assert not pre._one_pass(dict(inputs=[torch.zeros(1, 3, 8, 8)]), False)
    assert not pre._one_pass(dict(inputs=[torch.zeros(1, 8, 8)]), False)
    gray = OnePassDetDataPreprocessor(mean=[128.], std=[64.])
    assert not gray._one_pass(data, False)
    assert OnePassDetDataPreprocessor()._one_pass(data, False)


@pytest.mark.parametrize('bgr_to_rgb', [True, False])
@pytest.mark.parametrize('size', [(50, 70), (64, 96), (50, 96), (64, 70)])
def test_export_forward_equals_forward(bgr_to_rgb, size):
    """The traceable export pre-processing computes what ``forward`` does
    for a stacked batch, padding included (none when already aligned)."""
    from shufflenet_det.models.data_preprocessors import \
        OnePassDetDataPreprocessor
    pre = OnePassDetDataPreprocessor(mean=MEAN, std=STD, pad_value=5,
                                     bgr_to_rgb=bgr_to_rgb,
                                     pad_size_divisor=32)
    data = batch(sizes=(size, size), dtype=torch.float32)
    expected = pre(copy.deepcopy(data), False)['inputs']
    got = pre.export_forward(torch.stack(data['inputs']))
    assert got.shape == expected.shape == (2, 3, 64, 96)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    plain = OnePassDetDataPreprocessor(bgr_to_rgb=bgr_to_rgb,
                                       pad_size_divisor=32)
    torch.testing.assert_close(
        plain.export_forward(torch.stack(data['inputs'])),
        plain(copy.deepcopy(data), False)['inputs'], rtol=0, atol=0)


def test_training_and_default_mode():
    """``forward(data)`` is test mode (the one-pass path); training goes
    through mmdet's path, batch augments included."""
    from shufflenet_det.models.data_preprocessors import \
        OnePassDetDataPreprocessor
    pre = OnePassDetDataPreprocessor(
        mean=MEAN, std=STD, pad_size_divisor=32,
        batch_augments=[dict(type='BatchFixedSizePad', size=(128, 160))])
    test = pre(batch())
    assert test['inputs'].shape == (2, 3, 64, 96)
    assert test['inputs'].is_contiguous(memory_format=torch.channels_last)
    train = pre(batch(), True)
    assert train['inputs'].shape == (2, 3, 128, 160)
