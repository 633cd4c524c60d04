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


def test_parse_deploy_steps_names_and_messages():
    from shufflenet_det.deploy import (DEFAULT_DEPLOY_STEPS, DEPLOY_STEPS,
                                       parse_deploy_steps)
    assert parse_deploy_steps('default') == DEFAULT_DEPLOY_STEPS
    assert parse_deploy_steps(['default']) == DEFAULT_DEPLOY_STEPS
    with pytest.raises(ValueError) as err:
        parse_deploy_steps('fuse_conv_bn,int8')
    assert str(err.value) == (
        f"unknown deploy step(s) ['int8']; expected a comma-separated subset "
        f"of {DEPLOY_STEPS}, or 'none', 'default' or 'all'")
    with pytest.raises(ValueError) as err:
        parse_deploy_steps('bf16,fp16')
    assert str(err.value) == \
        "deploy steps 'bf16' and 'fp16' exclude each other"


class Net(torch.nn.Module):
    """A conv + BN (fused by the deploy step) and a lone BN (not)."""

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3),
                                            torch.nn.BatchNorm2d(4))
        self.neck = torch.nn.Sequential(torch.nn.ReLU(),
                                        torch.nn.BatchNorm2d(4))

    def forward(self, x):
        return self.neck(self.backbone(x))


def test_deploy_model_reports_exactly_what_it_did():
    from shufflenet_det.deploy import deploy_model
    assert deploy_model(Net(), 'none') == dict(
        steps=[], fused_bn=0, unfused_bn=2, channels_last=False, compiled=[])
    model = Net()
    assert deploy_model(model, 'default') == dict(
        steps=['fuse_conv_bn', 'channels_last'], fused_bn=1, unfused_bn=1,
        channels_last=True, compiled=[])
    assert model.backbone[0].weight.is_contiguous(
        memory_format=torch.channels_last)


def test_deploy_model_compile_step(monkeypatch):
    """``compile`` compiles each present part with inductor freezing and
    lists it (torch.compile itself stubbed: this checks the step's wiring,
    not the compiler)."""
    from shufflenet_det.deploy import deploy_model
    calls = []
    monkeypatch.setattr(torch.nn.Module, 'compile',
                        lambda self, **kw: calls.append((self, kw)))
    model = Net()
    info = deploy_model(model, 'compile',
                        compile_parts=('backbone', 'roi_head.lsc', 'neck'))
    assert info['compiled'] == ['backbone', 'neck']
    assert calls == [(model.backbone, dict(options={'freezing': True})),
                     (model.neck, dict(options={'freezing': True}))]


def test_low_precision_step_wiring(monkeypatch):
    """The ``bf16`` step asks whether the model's device has native bf16
    (a model without parameters counts as CPU), wraps the parts in bf16
    autocast and reports the device; a CUDA step on a CPU model is skipped,
    saying why."""
    from shufflenet_det.deploy import deploy_model
    from shufflenet_det.deploy import precision
    asked, wrapped = [], []
    monkeypatch.setattr(precision, 'native_low_precision',
                        lambda d, t: asked.append((d, t)) or (True, 'why'))
    monkeypatch.setattr(precision, 'autocast_parts',
                        lambda m, d, t: wrapped.append((d, t)) or ([], ['p']))
    info = deploy_model(Net(), 'bf16')
    assert info['bf16'] == dict(parts=['p'], device='why')
    assert asked == wrapped == [(torch.bfloat16, 'cpu')]
    info = deploy_model(torch.nn.ReLU(), 'bf16')  # no parameters
    assert info['bf16'] == dict(parts=['p'], device='why')
    with pytest.warns(UserWarning, match="'fp16' skipped"):
        info = deploy_model(Net(), 'fp16')
    assert info['fp16'] == dict(
        skipped='fp16 is a cuda step; the model is on cpu')


def test_native_low_precision_every_branch(monkeypatch):
    from shufflenet_det.deploy import precision
    f = precision.native_low_precision
    monkeypatch.setattr(precision, 'cpu_flags',
                        lambda: {'sse', 'avx512_bf16', 'amx_bf16'})
    assert f(torch.bfloat16, 'cpu') == (True, 'CPU has amx_bf16/avx512_bf16')
    assert f(torch.float16, 'cpu') == (
        False, 'torch.float16 on the CPU: only bfloat16 is supported')
    monkeypatch.setattr(precision, 'cpu_flags', lambda: {'sse'})
    assert f(torch.bfloat16, 'cpu') == (
        False, 'CPU has no native bfloat16 (neither avx512_bf16 nor '
        'amx_bf16): emulated bf16 would be slower than fp32')
    assert f(torch.bfloat16, 'xpu') == (False,
                                        "device type 'xpu' not supported")
    cuda = torch.cuda
    monkeypatch.setattr(cuda, 'is_available', lambda: False)
    assert f(torch.float16, 'cuda') == (False, 'no CUDA device')
    monkeypatch.setattr(cuda, 'is_available', lambda: True)
    monkeypatch.setattr(cuda, 'get_device_name', lambda *a: 'GPU-X')
    monkeypatch.setattr(cuda, 'is_bf16_supported', lambda *a, **k: False)
    assert f(torch.bfloat16, 'cuda') == (False,
                                         'GPU-X has no native bfloat16')
    assert f(torch.float16, 'cuda') == (True, 'GPU-X')
    monkeypatch.setattr(cuda, 'is_bf16_supported', lambda *a, **k: True)
    assert f(torch.bfloat16, 'cuda') == (True, 'GPU-X')


def test_autocast_parts_dtype_nesting_and_outputs():
    """The parts run in the requested dtype (float16 here, not autocast's
    CPU default bfloat16), a part inside a wrapped one is not wrapped
    again, and only floating outputs come back as float32."""
    from shufflenet_det.deploy.precision import autocast_parts

    class Part(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)
            self.seen = None

        def forward(self, x):
            y = self.fc(x)
            self.seen = y.dtype
            return dict(y=y, n=torch.arange(3), t=[y, y.long()])

    model = torch.nn.Module()
    model.backbone = Part()
    handles, parts = autocast_parts(model, torch.float16, 'cpu',
                                    parts=('backbone', 'backbone.fc', 'neck'))
    assert parts == ['backbone'] and len(handles) == 2
    out = model.backbone(torch.randn(2, 4))
    assert model.backbone.seen == torch.float16
    assert out['y'].dtype == torch.float32 and out['n'].dtype == torch.int64
    assert [t.dtype for t in out['t']] == [torch.float32, torch.int64]
