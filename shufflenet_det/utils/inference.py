"""Inference-time rewrites that keep a detector's outputs unchanged.

Eager mmdet inference on a CPU spends much of its time outside the
multiply-adds. Each rewrite below removes one such cost without changing
what is computed:

- ``pre``: mmdet's test-time pre-processing (BGR to RGB, normalise, pad,
  stack) writes each image once, straight into a channels-last batch (see
  :mod:`shufflenet_det.utils.preprocess`); bit-identical.
- ``fold``: every eval-mode BatchNorm that directly follows a convolution is
  folded into the convolution's weight and bias (``W' = W * g / s``,
  ``b' = (b - mu) * g / s + beta``) and replaced by ``nn.Identity``, saving
  one pass over every feature map.
- ``cl`` (channels_last): 4-D weights are stored NHWC; PyTorch propagates
  NHWC through the convolutions, where 1x1 convolutions become plain GEMMs
  and oneDNN needs no reorders.
- ``shuffle``: a ShuffleNet V2 unit's concatenation + channel shuffle (two
  copies, the second a strided transpose) becomes one interleaving copy
  that keeps channels-last; bit-identical.
- ``nms``: the RPN's and the R-CNN's NMS stop as soon as the kept boxes can
  no longer change (see :mod:`shufflenet_det.utils.nms`): the same boxes as
  mmdet's, bit for bit, without suppressing 80,000 boxes per image; and the
  images of a batch go through RPN post-processing on parallel threads
  (torchvision's NMS releases the GIL).
- ``psroi``: torchvision's single-threaded CPU ``ps_roi_align`` is replaced
  by the same pooling through one multi-threaded ``grid_sample`` call (see
  :mod:`shufflenet_det.utils.psroi`); same values up to rounding.
- ``compile`` (optional, off by default): ``torch.compile`` with inductor
  freezing on the dense, fixed-shape parts (backbone, neck, RPN
  convolutions, large separable convolution). On the 2-core CPU used for
  ``results/`` it compiled (tens of seconds per config) but ran no faster
  than the eager rewrites above, hence not a default.

The results equal eager inference up to floating-point rounding, which
:func:`verify_parts` measures part by part (the benchmark records it for
every config and ``tests/test_benchmark_optim.py`` asserts it).

Example:
    >>> model = MODELS.build(cfg.model).eval()
    >>> info = optimize_for_inference(model, ('fold', 'cl', 'nms'))
    >>> info['unfolded_bn']  # BatchNorms that no pattern matched
    0
"""
import types
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval

#: Every optimisation, in the order they are applied.
OPTIMIZATIONS = ('pre', 'fold', 'cl', 'shuffle', 'nms', 'psroi', 'compile')

#: What the benchmark applies unless told otherwise: all but ``compile``,
#: whose compile time would dominate a bounded CPU run.
DEFAULT_OPTIMIZATIONS = ('pre', 'fold', 'cl', 'shuffle', 'nms', 'psroi')

#: Submodules (dotted paths) whose forward has fixed shapes for a fixed input
#: size, so that a compiled graph is reused; missing ones are skipped.
DENSE_PARTS = ('backbone', 'neck', 'rpn_head', 'roi_head.lsc')


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv2d) and isinstance(bn, _BatchNorm)
            and not conv.training and not bn.training
            and bn.track_running_stats and bn.running_mean is not None
            and bn.num_features == conv.out_channels)


def _conv_module_parts(module: nn.Module) -> Optional[Tuple[str, str]]:
    """(conv attr, norm attr) of an mmcv ``ConvModule`` with conv -> norm."""
    order = getattr(module, 'order', None)
    norm_name = getattr(module, 'norm_name', None)
    if (order is None or norm_name is None
            or not getattr(module, 'with_norm', False)
            or not isinstance(getattr(module, 'conv', None), nn.Conv2d)):
        return None
    if list(order).index('conv') > list(order).index('norm'):
        return None  # pre-activation order: the norm sees the input
    return 'conv', norm_name


def fold_batchnorm(model: nn.Module) -> int:
    """Fold eval-mode BatchNorms into the convolutions they follow, in place.

    Two patterns are recognised: an mmcv ``ConvModule`` whose order puts the
    convolution before the norm, and a convolution immediately followed by
    a BatchNorm inside an ``nn.Sequential``. Any other BatchNorm is left as
    it is (still correct, just not faster); :func:`count_batchnorm` reports
    what is left.

    Args:
        model (nn.Module): In eval mode (a BatchNorm in training mode uses
            batch statistics and cannot be folded; it is skipped).

    Returns:
        int: Number of BatchNorms folded.
    """
    folded = 0
    for module in list(model.modules()):
        parts = _conv_module_parts(module)
        if parts is not None:
            conv, bn = getattr(module, parts[0]), getattr(module, parts[1])
            if _foldable(conv, bn):
                setattr(module, parts[0], fuse_conv_bn_eval(conv, bn))
                setattr(module, parts[1], nn.Identity())
                folded += 1
            continue
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                conv, bn = module._modules[a], module._modules[b]
                if _foldable(conv, bn):
                    module._modules[a] = fuse_conv_bn_eval(conv, bn)
                    module._modules[b] = nn.Identity()
                    folded += 1
    return folded


def interleave(a: Tensor, b: Tensor) -> Tensor:
    """``channel_shuffle(torch.cat((a, b), 1), 2)`` in one copy.

    Output channel ``2i`` is ``a[:, i]`` and ``2i + 1`` is ``b[:, i]``. In
    channels-last memory the pairs are adjacent floats of one pixel, so
    stacking on a new last axis writes the result once and keeps NHWC.

    Args:
        a (Tensor): (N, C, H, W).
        b (Tensor): (N, C, H, W).

    Returns:
        Tensor: (N, 2C, H, W), channels-last if the inputs are.
    """
    n, c, h, w = a.shape
    # ``a`` may be a channel slice of an NHWC map (strided, but channels
    # innermost): NHWC as well.
    if b.is_contiguous(memory_format=torch.channels_last) or a.stride(1) == 1:
        return torch.stack((a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)),
                           4).reshape(n, h, w, 2 * c).permute(0, 3, 1, 2)
    return torch.stack((a, b), 2).reshape(n, 2 * c, h, w)


def _fused_unit_forward(self, x: Tensor) -> Tensor:
    """``ShuffleUnitV2.forward`` with :func:`interleave`."""
    if self.stride == 1:
        half = x.shape[1] // 2
        return interleave(x[:, :half], self._main(x[:, half:]))
    return interleave(self.branch1(x), self._main(x))


def fuse_shuffle_units(model: nn.Module) -> int:
    """Give every ShuffleNet V2 unit the one-copy concat + shuffle.

    Returns:
        int: Number of units rewritten.
    """
    from shufflenet_det.models.backbones.shufflenet_v2 import ShuffleUnitV2
    units = [m for m in model.modules() if type(m) is ShuffleUnitV2]
    for unit in units:
        _override_method(unit, 'forward', _fused_unit_forward)
    return len(units)


def replace_psroi_align(model: nn.Module) -> List[str]:
    """Swap every ``torchvision.ops.PSRoIAlign`` for
    :class:`~shufflenet_det.utils.psroi.GridPSRoIAlign` (same settings).

    Returns:
        list[str]: Names of the replaced modules.
    """
    from torchvision.ops import PSRoIAlign

    from .psroi import GridPSRoIAlign
    replaced = []
    for name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            if type(child) is PSRoIAlign:
                setattr(parent, child_name, GridPSRoIAlign(
                    child.output_size, child.spatial_scale,
                    child.sampling_ratio))
                replaced.append(f'{name}.{child_name}' if name else
                                child_name)
    return replaced


def count_batchnorm(model: nn.Module) -> int:
    """Number of ``_BatchNorm`` modules in ``model``."""
    return sum(isinstance(m, _BatchNorm) for m in model.modules())


def get_submodule(model: nn.Module, path: str) -> Optional[nn.Module]:
    """``model.<path>`` for a dotted path, or None when absent."""
    module = model
    for name in path.split('.'):
        module = getattr(module, name, None)
        if not isinstance(module, nn.Module):
            return None
    return module


def parse_optimizations(spec) -> Tuple[str, ...]:
    """Normalise ``'fold,cl'`` / ``['fold', 'cl']`` / ``'none'`` / ``'all'``.

    Raises:
        ValueError: Naming the unknown entries.
    """
    if isinstance(spec, str):
        spec = [s.strip() for s in spec.split(',') if s.strip()]
    spec = list(spec)
    if spec in (['none'], ['eager'], []):
        return ()
    if spec == ['all']:
        return OPTIMIZATIONS
    if spec == ['default']:
        return DEFAULT_OPTIMIZATIONS
    unknown = [s for s in spec if s not in OPTIMIZATIONS]
    if unknown:
        raise ValueError(f'unknown optimisation(s) {unknown}; expected a '
                         f'comma-separated subset of {OPTIMIZATIONS}, or '
                         "'none', 'default' or 'all'")
    return tuple(o for o in OPTIMIZATIONS if o in spec)


def _override_method(obj: object, name: str, function) -> bool:
    """Bind ``function`` as ``obj.<name>`` (this instance only)."""
    if obj is None or not hasattr(obj, name):
        return False
    setattr(obj, name, types.MethodType(function, obj))
    return True


def optimize_for_inference(model: nn.Module,
                           optimizations=DEFAULT_OPTIMIZATIONS,
                           compile_parts: Sequence[str] = DENSE_PARTS
                           ) -> Dict[str, object]:
    """Rewrite an eval-mode model in place for faster inference.

    Args:
        model (nn.Module): The detector, already in eval mode and on its
            device. Its weights must not change afterwards (folded and
            compiled weights are copies).
        optimizations (str | Sequence[str]): A subset of
            :data:`OPTIMIZATIONS` (see the module docstring), or ``'none'``,
            ``'default'`` (:data:`DEFAULT_OPTIMIZATIONS`), ``'all'``.
        compile_parts (Sequence[str]): Dotted submodule paths to compile
            with ``'compile'``. Default: :data:`DENSE_PARTS`.

    Returns:
        dict: ``optimizations`` (applied, in order), ``fast_preprocess``
        (bool), ``folded_bn``, ``fused_shuffle`` (units),
        ``unfolded_bn`` (BatchNorms left), ``channels_last`` (bool),
        ``topk_nms`` (heads whose NMS was replaced), ``grid_psroi`` (PS RoI
        layers replaced) and ``compiled`` (paths).

    Raises:
        ValueError: If an optimisation is unknown or the model is in
            training mode.
    """
    opts = parse_optimizations(optimizations)
    if model.training:
        raise ValueError('optimize_for_inference: call model.eval() first '
                         '(training-mode BatchNorms cannot be folded)')
    info: Dict[str, object] = dict(optimizations=list(opts),
                                   fast_preprocess=False, folded_bn=0,
                                   channels_last=False, fused_shuffle=0,
                                   topk_nms=[],
                                   grid_psroi=[], compiled=[])
    if 'pre' in opts:
        from mmdet.models.data_preprocessors import DetDataPreprocessor

        from .preprocess import fast_det_preprocess
        pre = getattr(model, 'data_preprocessor', None)
        if isinstance(pre, DetDataPreprocessor) and \
                type(pre).forward is DetDataPreprocessor.forward:
            info['fast_preprocess'] = _override_method(
                pre, 'forward', fast_det_preprocess)
    if 'fold' in opts:
        info['folded_bn'] = fold_batchnorm(model)
    if 'cl' in opts:
        model.to(memory_format=torch.channels_last)
        info['channels_last'] = True
    if 'shuffle' in opts:
        info['fused_shuffle'] = fuse_shuffle_units(model)
    if 'nms' in opts:
        from mmdet.models.dense_heads import RPNHead
        from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
        from mmdet.models.roi_heads.bbox_heads import BBoxHead

        from .nms import (threaded_predict_by_feat,
                          topk_bbox_predict_by_feat_single,
                          topk_rpn_bbox_post_process)

        # Only heads that use mmdet's own post-processing: a subclass that
        # overrides it keeps its version.
        for path, base, method, function in (
                ('rpn_head', RPNHead, '_bbox_post_process',
                 topk_rpn_bbox_post_process),
                ('roi_head.bbox_head', BBoxHead, '_predict_by_feat_single',
                 topk_bbox_predict_by_feat_single)):
            head = get_submodule(model, path)
            if isinstance(head, base) and \
                    getattr(type(head), method) is getattr(base, method):
                _override_method(head, method, function)
                info['topk_nms'].append(path)
        rpn_head = get_submodule(model, 'rpn_head')
        if 'rpn_head' in info['topk_nms'] and type(
                rpn_head).predict_by_feat is BaseDenseHead.predict_by_feat:
            _override_method(rpn_head, 'predict_by_feat',
                             threaded_predict_by_feat)
    if 'psroi' in opts:
        info['grid_psroi'] = replace_psroi_align(model)
    if 'compile' in opts:
        for path in compile_parts:
            part = get_submodule(model, path)
            if part is not None:
                # Freezing inlines the (folded) weights as constants, which
                # lets inductor pick prepacked oneDNN kernels on CPU.
                part.compile(options={'freezing': True})
                info['compiled'].append(path)
    info['unfolded_bn'] = count_batchnorm(model)
    return info


class PartRecorder:
    """Record the first call (inputs and output) of named submodules.

    An optimised model is checked part by part: each optimised part is fed
    the inputs its eager twin saw and its output is compared with the eager
    output (:func:`verify_parts`). Comparing the final detections instead
    would be fragile: a randomly initialised detector's scores are nearly
    tied, and top-k / NMS may legitimately swap near-tied boxes on a
    rounding-level difference.

    Args:
        model (nn.Module): The model to watch.
        paths (Iterable[str]): Dotted submodule paths; missing ones are
            ignored.

    Attributes:
        calls (dict[str, tuple]): ``path -> (args, kwargs, output)``, the
            first call of each part, detached, on the CPU.

    Example:
        >>> with PartRecorder(model, ['backbone']) as rec:
        ...     model.test_step(data)
        >>> args, kwargs, output = rec.calls['backbone']
    """

    def __init__(self, model: nn.Module, paths: Iterable[str]) -> None:
        self.model = model
        self.paths = [p for p in paths if get_submodule(model, p) is not None]
        self.calls: Dict[str, tuple] = {}
        self._handles: List[object] = []

    def __enter__(self) -> 'PartRecorder':
        for path in self.paths:
            module = get_submodule(self.model, path)

            def hook(_module, args, kwargs, output, path=path):
                if path not in self.calls:
                    self.calls[path] = (_detach(args), _detach(kwargs),
                                        _detach(output))

            self._handles.append(
                module.register_forward_hook(hook, with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def verify_parts(model: nn.Module, calls: Dict[str, tuple],
                 device: torch.device) -> Dict[str, dict]:
    """Rerun each recorded part of ``model`` on its recorded inputs.

    Args:
        model (nn.Module): The optimised model (same structure as the
            recorded one).
        calls (dict): ``PartRecorder.calls`` of the eager model.
        device (torch.device): The model's device.

    Returns:
        dict: Per part, :func:`compare_outputs` of eager vs optimised.
    """
    result = {}
    with torch.no_grad():
        for path, (args, kwargs, output) in calls.items():
            part = get_submodule(model, path)
            got = part(*_to(args, device), **_to(kwargs, device))
            result[path] = compare_outputs(output, _detach(got))
    return result


def _to(obj, device: torch.device):
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, tuple) and hasattr(obj, '_fields'):
        return type(obj)(*(_to(o, device) for o in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


def _detach(output):
    """Detached contiguous CPU copies of the tensors in a nested structure;
    other objects are kept as they are."""
    if isinstance(output, Tensor):
        return output.detach().to('cpu', memory_format=torch.contiguous_format)
    if isinstance(output, tuple) and hasattr(output, '_fields'):
        return type(output)(*(_detach(o) for o in output))
    if isinstance(output, (list, tuple)):
        return type(output)(_detach(o) for o in output)
    if isinstance(output, dict):
        return {k: _detach(v) for k, v in output.items()}
    return output


def _flatten(output) -> List[Tensor]:
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, (list, tuple)):
        return [t for o in output for t in _flatten(o)]
    if isinstance(output, dict):
        return [t for k in sorted(output) for t in _flatten(output[k])]
    return []


def compare_outputs(reference, candidate) -> dict:
    """Largest difference between two (nested) tensor outputs.

    Args:
        reference: Tensor, or list/tuple/dict of them (the eager output).
        candidate: The same structure (the optimised output).

    Returns:
        dict: ``max_abs_diff``, ``ref_max_abs`` and ``rel_diff``
        (``max_abs_diff / ref_max_abs``), or ``error`` when the structures
        or shapes differ.
    """
    refs, cands = _flatten(reference), _flatten(candidate)
    shapes = [tuple(t.shape) for t in refs]
    if shapes != [tuple(t.shape) for t in cands]:
        return dict(error=f'shapes differ: eager {shapes} vs optimised '
                    f'{[tuple(t.shape) for t in cands]}')
    diff = max((float((a.float() - b.float()).abs().max())
                for a, b in zip(refs, cands) if a.numel()), default=0.0)
    scale = max((float(a.float().abs().max()) for a in refs if a.numel()),
                default=0.0)
    return dict(max_abs_diff=diff, ref_max_abs=scale,
                rel_diff=diff / scale if scale else diff)
