"""Reduced-precision dense parts: the ``bf16`` (CPU) and ``fp16`` (CUDA) deploy steps.

Autocast around a whole detector fails on the CPU (torchvision's CPU ``nms``
has no BFloat16 kernel) and would decode boxes in 8 mantissa bits. So only
the dense parts run under autocast: each part's forward is wrapped, through
module forward pre/post hooks, in a ``torch.autocast`` region, and its
floating-point outputs are cast back to float32. What selects or decodes
boxes (proposal top-k, NMS, delta decoding, PSRoIAlign sampling) runs
outside the parts, in float32. The same function serves ours and the peer:
the part lists name the submodules of an mmdet two-stage detector and of
torchvision's Faster R-CNN; absent paths are skipped.

Example:
    >>> handles, parts = autocast_parts(model, torch.bfloat16, 'cpu')
    >>> parts
    ['backbone', 'rpn_head', 'roi_head.lsc', 'roi_head.bbox_head']
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn

from shufflenet_det.deploy import get_submodule
from shufflenet_det.measure import cpuinfo_field

#: Dense parts: mmdet (ours: backbone, RPN convs, large separable conv,
#: R-CNN FCs; any neck) and torchvision's Faster R-CNN (backbone + FPN, RPN
#: head, box head and predictor). Their forwards compute features and raw
#: logits/deltas only; decoding and NMS happen in the callers.
AUTOCAST_PARTS = ('backbone', 'neck', 'rpn_head', 'roi_head.lsc', 'roi_head.bbox_head',
               'rpn.head', 'roi_heads.box_head', 'roi_heads.box_predictor')

_CPU_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


def cpu_flags() -> set:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    return set((cpuinfo_field('flags') or '').split())


def native_low_precision(dtype: torch.dtype, device_type: str) -> Tuple[bool, str]:
    """Whether ``device_type`` computes ``dtype`` natively, and why (not).

    Returns:
        tuple[bool, str]: (supported, reason naming the flag or device).
    """
    if device_type == 'cpu':
        if dtype != torch.bfloat16:
            return False, f'{dtype} on the CPU: only bfloat16 is supported'
        found = sorted(cpu_flags() & set(_CPU_BF16_FLAGS))
        if found:
            return True, f'CPU has {"/".join(found)}'
        return False, ('CPU has no native bfloat16 (neither avx512_bf16 nor amx_bf16): '
                       'emulated bf16 would be slower than fp32')
    if device_type == 'cuda':
        if not torch.cuda.is_available():
            return False, 'no CUDA device'
        if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            return False, f'{torch.cuda.get_device_name()} has no native bfloat16'
        return True, torch.cuda.get_device_name()
    return False, f'device type {device_type!r} not supported'


def _to_float32(value):
    if torch.is_tensor(value):
        return value.float() if value.dtype in (torch.bfloat16, torch.float16) else value
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float32(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_float32(v) for k, v in value.items()}
    return value


def autocast_parts(model: nn.Module, dtype: torch.dtype, device_type: str,
                   parts: Sequence[str] = AUTOCAST_PARTS) -> Tuple[list, List[str]]:
    """Run each present part of ``parts`` under ``torch.autocast(device_type, dtype)``.

    A forward pre-hook enters the autocast region and a forward hook (called
    even when the forward raises) leaves it and casts the part's floating
    outputs (tensors, tuples, lists, dicts of them) to float32. Nested parts
    are not wrapped twice: a part inside an already wrapped one is skipped.

    Args:
        model (nn.Module): Detector, in eval mode.
        dtype (torch.dtype): ``torch.bfloat16`` or ``torch.float16``.
        device_type (str): ``'cpu'`` or ``'cuda'``.
        parts (Sequence[str]): Dotted submodule paths. Default: :data:`AUTOCAST_PARTS`.

    Returns:
        tuple[list, list[str]]: The hook handles (``.remove()`` undoes the
        step) and the wrapped paths.
    """
    handles, wrapped = [], []
    for path in parts:
        part = get_submodule(model, path)
        if part is None or any(path.startswith(w + '.') for w in wrapped):
            continue
        regions = []

        def enter(module, args, regions=regions):
            region = torch.autocast(device_type, dtype=dtype)
            region.__enter__()
            regions.append(region)

        def leave(module, args, output, regions=regions):
            regions.pop().__exit__(None, None, None)
            return _to_float32(output)

        handles.append(part.register_forward_pre_hook(enter))
        handles.append(part.register_forward_hook(leave, always_call=True))
        wrapped.append(path)
    return handles, wrapped
