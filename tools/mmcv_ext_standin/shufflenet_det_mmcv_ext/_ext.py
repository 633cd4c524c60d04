"""Stand-in for mmcv's compiled ``mmcv._ext``: a few ops through torchvision, the rest refuse.

Loaded as ``mmcv._ext`` by :class:`shufflenet_det_mmcv_ext.StandInFinder` when
mmcv was installed without compiled ops (``mmcv-lite``). The signatures are
those that ``mmcv.ops`` (2.1.0) calls:

- ``nms(boxes, scores, iou_threshold, offset)`` -> kept indices, by decreasing
  score (``mmcv/ops/nms.py``). ``offset=1`` (legacy +1 box widths) is exact:
  IoU with +1 widths equals the IoU of boxes whose x2, y2 are shifted by 1.
  The threshold is rounded to float32 as mmcv's kernel does, so an IoU equal
  to it is decided as mmcv decides it.
- ``roi_align_forward`` / ``roi_align_backward`` with ``pool_mode=1`` (average),
  writing into the tensors mmcv passes (``mmcv/ops/roi_align.py``); torchvision's
  RoIAlign has the same sampling rule (adaptive ``sampling_ratio=0``, ``aligned``).

Any other op, and max-mode RoIAlign, raises :class:`MissingCompiledOpError`
naming the op: silently wrong results are worse than a clear stop.
"""
FULL_MMCV_HINT = ('it needs mmcv with compiled ops: reinstall with '
                  '`bash tools/install.sh --full-mmcv` (builds mmcv from source, ~20 min)')


class MissingCompiledOpError(NotImplementedError):
    """A compiled mmcv op that the mmcv-lite stand-in does not provide."""


def _missing(name):
    def op(*args, **kwargs):
        raise MissingCompiledOpError(
            f'mmcv op `{name}` is not available: this environment has mmcv-lite '
            f"(mmcv without compiled ops) and shufflenet_det's stand-in for mmcv._ext; {FULL_MMCV_HINT}")

    op.__name__ = name
    return op


def __getattr__(name):
    # mmcv's ext_loader checks hasattr() for every op name at import time, so
    # every name must resolve; calling an unimplemented one raises.
    if name.startswith('__'):
        raise AttributeError(name)
    return _missing(name)


def get_compiler_version():
    return 'none (mmcv-lite; shufflenet_det stand-in for mmcv._ext)'


def get_compiling_cuda_version():
    return 'none (mmcv-lite; shufflenet_det stand-in for mmcv._ext)'


def nms(boxes, scores, iou_threshold, offset=0):
    """Hard NMS. boxes (N, 4) x1y1x2y2, scores (N,) -> kept indices (K,) int64."""
    import torch
    import torchvision
    if offset not in (0, 1):
        raise ValueError(f'mmcv nms: offset must be 0 or 1, got {offset!r}')
    if offset:
        boxes = boxes.clone()
        boxes[:, 2:] += 1
    # mmcv's kernel compares the float32 IoU with a float32 threshold;
    # torchvision promotes both to double. Rounding the threshold to float32
    # first gives mmcv's decision when an IoU equals the threshold.
    thr = float(torch.tensor(float(iou_threshold), dtype=torch.float32))
    return torchvision.ops.nms(boxes.float(), scores.float(), thr)


def _check_avg(pool_mode):
    if pool_mode != 1:
        raise MissingCompiledOpError(
            f"mmcv op `roi_align` with pool_mode='max' is not available in the mmcv-lite "
            f"stand-in (torchvision's RoIAlign averages); {FULL_MMCV_HINT}")


def roi_align_forward(input, rois, output, argmax_y, argmax_x, aligned_height, aligned_width,
                      spatial_scale, sampling_ratio, pool_mode, aligned):
    """RoIAlign (average). input (N, C, H, W), rois (K, 5) -> writes output (K, C, h, w)."""
    import torchvision
    _check_avg(pool_mode)
    output.copy_(torchvision.ops.roi_align(
        input, rois.to(input.dtype), (aligned_height, aligned_width), spatial_scale,
        sampling_ratio, aligned))


def roi_align_backward(grad_output, rois, argmax_y, argmax_x, grad_input, aligned_height,
                       aligned_width, spatial_scale, sampling_ratio, pool_mode, aligned):
    """Gradient of :func:`roi_align_forward`; writes grad_input (N, C, H, W)."""
    import torch
    import torchvision  # noqa: F401  (registers torch.ops.torchvision)
    _check_avg(pool_mode)
    n, c, h, w = grad_input.shape
    grad_input.copy_(torch.ops.torchvision._roi_align_backward(
        grad_output, rois.to(grad_output.dtype), spatial_scale, aligned_height, aligned_width,
        n, c, h, w, sampling_ratio, aligned))
