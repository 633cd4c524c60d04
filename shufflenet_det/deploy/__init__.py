"""Deploy steps that change weights or layouts, applied alike to any model.

What the trained detector computes is decided by its config (its own
components: exact early-stopping NMS, one-copy channel shuffle, grid-sample
PSRoIAlign). The steps here only re-express weights for inference and are
the same for every model, ours or a peer:

- ``fuse_conv_bn``: every BatchNorm that follows a convolution is folded
  into it (``mmcv.cnn.fuse_conv_bn``): one pass over each feature map less.
- ``channels_last``: 4-D weights stored NHWC; PyTorch then runs the
  convolutions in NHWC, where 1x1 convolutions are plain GEMMs and oneDNN
  needs no reorders.
- ``bf16`` (CPU) / ``fp16`` (CUDA): the dense parts (backbone, neck, RPN
  convs, large separable conv, R-CNN FCs; the peer's backbone + FPN, RPN
  head, box head) run under autocast, everything that selects or decodes
  boxes in float32 (:mod:`shufflenet_det.deploy.precision`). Skipped, saying why,
  where the device has no native support.
- ``compile`` (optional): ``torch.compile`` with inductor freezing on the
  fixed-shape dense parts.

Used by ``tools/test.py --fuse-conv-bn`` (through :class:`DeployHook`), the
benchmark (ours and the peer) and the deployment checks in the tests.

Example:
    >>> model = MODELS.build(cfg.model).eval()
    >>> info = deploy_model(model)
    >>> info['unfused_bn']  # BatchNorms no pattern matched
    0
"""
import warnings
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

#: Every deploy step, in the order they are applied.
DEPLOY_STEPS = ('fuse_conv_bn', 'channels_last', 'bf16', 'fp16', 'compile')

#: ``'all'``: the steps that keep float32 arithmetic.
ALL_FP32_STEPS = ('fuse_conv_bn', 'channels_last', 'compile')

#: Reduced-precision steps: (dtype, device type).
PRECISION_STEPS = {'bf16': (torch.bfloat16, 'cpu'), 'fp16': (torch.float16, 'cuda')}

#: What the benchmark and ``--fuse-conv-bn`` apply unless told otherwise:
#: compile time would dominate a bounded CPU run, and on the 2-core CPU of
#: ``results/`` it ran no faster (README).
DEFAULT_DEPLOY_STEPS = ('fuse_conv_bn', 'channels_last')

#: Fixed-shape parts of an mmdet two-stage detector and of torchvision's
#: Faster R-CNN (dotted paths; missing ones are skipped) for ``compile``.
DENSE_PARTS = ('backbone', 'neck', 'rpn_head', 'roi_head.lsc', 'rpn.head')


def get_submodule(model: nn.Module, path: str) -> Optional[nn.Module]:
    """``model.<path>`` for a dotted path, or None when absent."""
    module = model
    for name in path.split('.'):
        module = getattr(module, name, None)
        if not isinstance(module, nn.Module):
            return None
    return module


def count_batchnorm(model: nn.Module) -> int:
    """Number of ``_BatchNorm`` modules left in ``model``."""
    return sum(isinstance(m, _BatchNorm) for m in model.modules())


def parse_deploy_steps(spec) -> tuple:
    """Normalise ``'fuse_conv_bn,channels_last'`` / a sequence / ``'none'``
    / ``'default'`` / ``'all'`` to a tuple in :data:`DEPLOY_STEPS` order.

    Raises:
        ValueError: Naming the unknown entries, or two steps that exclude
            each other (``bf16`` and ``fp16``; ``compile`` with either).
    """
    if isinstance(spec, str):
        spec = [s.strip() for s in spec.split(',') if s.strip()]
    spec = list(spec)
    if spec in ([], ['none']):
        return ()
    if spec == ['default']:
        return DEFAULT_DEPLOY_STEPS
    if spec == ['all']:
        return ALL_FP32_STEPS
    if 'default' in spec:  # e.g. 'default,bf16'
        spec = [s for s in spec if s != 'default'] + list(DEFAULT_DEPLOY_STEPS)
    unknown = [s for s in spec if s not in DEPLOY_STEPS]
    if unknown:
        raise ValueError(f'unknown deploy step(s) {unknown}; expected a '
                         f'comma-separated subset of {DEPLOY_STEPS}, or '
                         "'none', 'default' or 'all'")
    if 'bf16' in spec and 'fp16' in spec:
        raise ValueError("deploy steps 'bf16' and 'fp16' exclude each other")
    low = [s for s in PRECISION_STEPS if s in spec]
    if low and 'compile' in spec:
        # torch.compile of a part traces its forward hooks, where the
        # precision steps enter and leave the autocast region: Dynamo fails
        # at the first call (InternalTorchDynamoError, torch 2.14).
        raise ValueError(f"deploy step 'compile' cannot be combined with {low[0]!r}: "
                         'torch.compile cannot trace the autocast region that '
                         f'{low[0]!r} opens in forward hooks')
    return tuple(s for s in DEPLOY_STEPS if s in spec)


def deploy_model(model: nn.Module, steps=DEFAULT_DEPLOY_STEPS,
                 compile_parts: Sequence[str] = DENSE_PARTS
                 ) -> Dict[str, object]:
    """Apply deploy steps to a model in place and switch it to eval mode.

    The weights must not change afterwards (folded and compiled weights are
    copies): deploy after loading a checkpoint, never before training.

    Args:
        model (nn.Module): Any model (an mmdet detector, a torchvision
            detector, ...).
        steps (str | Sequence[str]): A subset of :data:`DEPLOY_STEPS` (see
            the module docstring), or ``'none'``, ``'default'``, ``'all'``.
        compile_parts (Sequence[str]): Dotted submodule paths to compile
            with ``'compile'``. Default: :data:`DENSE_PARTS`.

    Returns:
        dict: ``steps`` (applied, in order), ``fused_bn`` (BatchNorms
        folded), ``unfused_bn`` (left), ``channels_last`` (bool),
        ``compiled`` (paths); with ``bf16``/``fp16``, under that key the
        wrapped ``parts`` or the ``skipped`` reason.
    """
    from mmcv.cnn import fuse_conv_bn
    steps = parse_deploy_steps(steps)
    model.eval()
    before = count_batchnorm(model)
    info: Dict[str, object] = dict(steps=list(steps), fused_bn=0,
                                   unfused_bn=before, channels_last=False,
                                   compiled=[])
    if 'fuse_conv_bn' in steps:
        fuse_conv_bn(model)
        info['unfused_bn'] = count_batchnorm(model)
        info['fused_bn'] = before - info['unfused_bn']
    if 'channels_last' in steps:
        model.to(memory_format=torch.channels_last)
        info['channels_last'] = True
    for step in PRECISION_STEPS:
        if step in steps:
            info[step] = _low_precision(model, step)
    if 'compile' in steps:
        for path in compile_parts:
            part = get_submodule(model, path)
            if part is not None:
                # Freezing inlines the (folded) weights as constants, which
                # lets inductor pick prepacked oneDNN kernels on the CPU.
                part.compile(options={'freezing': True})
                info['compiled'].append(path)
    return info


def _low_precision(model: nn.Module, step: str) -> Dict[str, object]:
    """Apply the ``bf16``/``fp16`` step, or say why not (model unchanged)."""
    from shufflenet_det.deploy.precision import autocast_parts, native_low_precision
    dtype, device_type = PRECISION_STEPS[step]
    param = next(model.parameters(), None)
    here = param.device.type if param is not None else 'cpu'
    ok, why = native_low_precision(dtype, device_type) if here == device_type else (
        False, f'{step} is a {device_type} step; the model is on {here}')
    if not ok:
        warnings.warn(f'deploy step {step!r} skipped, model unchanged: {why}')
        return dict(skipped=why)
    _, parts = autocast_parts(model, dtype, device_type)
    return dict(parts=parts, device=why)
