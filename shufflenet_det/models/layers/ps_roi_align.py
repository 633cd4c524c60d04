"""Position-sensitive RoIAlign through one ``grid_sample`` call.

One implementation for training and inference, CPU and CUDA, with gradients,
and made of standard operators only (``GridSample`` + reductions in ONNX).
It offers both sampling conventions in use:

- ``aligned=True``, ``mode='avg'``: torchvision's ``ps_roi_align``. RoI
  corners are shifted by -0.5 pixel, a sample outside ``[-1, size]`` reads
  0 and one inside is clamped to the border, and the
  ``sampling_ratio x sampling_ratio`` bilinear samples of a bin are
  averaged.
- ``aligned=False``, ``mode='max'``: the official Light-Head R-CNN op
  (``psalign_pooling_op_gpu.cu.cc``): no shift, each of the four bilinear
  taps outside the map reads 0, and the bin takes the maximum of its
  samples. (The official kernel counts a tap twice when a sample falls
  exactly on an integer coordinate, since it adds ``floor`` and ``ceil``
  taps separately; that artefact is not reproduced.)

Sample ``(i, j)`` of bin ``(p, q)`` of a RoI starting at ``(y1, x1)`` with
bin size ``(b_h, b_w)`` sits at ``y1 + b_h * (p + (i + 0.5) / s)`` (and the
same in x) in both conventions. Bin ``(p, q)`` of output channel ``c`` reads
input channel ``(c * k_h + p) * k_w + q``.

Why ``grid_sample``: torchvision's CPU kernel is a single-threaded loop that
reads a different channel plane per output bin; Light-Head pools 1000 RoIs
per image from a 490-channel map. Here the channels of bin ``k`` form one
"image" per batch element, every RoI of that image contributes its
``s * s`` samples of bin ``k`` to it, and one vectorised, multi-threaded
call does all of it.
"""
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.utils import _pair

# A normalised coordinate far outside [-1, 1]: grid_sample (zero padding)
# reads 0 there, as torchvision does for samples outside [-1, size].
_OUTSIDE = -3.0

MODES = ('avg', 'max')


def _sample_coords(start: Tensor, end: Tensor, bins: int, s: int,
                   aligned: bool) -> Tensor:
    """Sample positions along one axis, in feature pixels.

    Args:
        start (Tensor): (R, ) RoI start, already scaled (and shifted).
        end (Tensor): (R, ) RoI end.
        bins (int): Bins along the axis (k).
        s (int): Samples per bin along the axis.
        aligned (bool): torchvision's convention (no clamping of the size
            to >= 0) or the official one.

    Returns:
        Tensor: (R, k, s).
    """
    size = end - start if aligned else (end - start).clamp(min=0)
    bin_size = (size / bins)[:, None, None]
    index = torch.arange(bins, dtype=start.dtype, device=start.device)
    offset = torch.arange(s, dtype=start.dtype, device=start.device) + 0.5
    return (index[None, :, None] * bin_size + start[:, None, None]) + \
        offset * bin_size / s


def _normalise(coords: Tensor, size: int, aligned: bool) -> Tensor:
    """Feature-pixel coordinates -> ``grid_sample``'s [-1, 1]
    (``align_corners=False``: pixel ``i`` is at ``(2 i + 1) / size - 1``)."""
    if aligned:  # torchvision: 0 outside [-1, size], else clamp to border
        inside = (coords >= -1.0) & (coords <= size)
        coords = coords.clamp(0, size - 1)
        return torch.where(inside, (2 * coords + 1) / size - 1, _OUTSIDE)
    return (2 * coords + 1) / size - 1


def _pad_per_image(values: Tensor, index: Tensor, batch: int,
                   fill: float) -> Tuple[Tensor, Tensor, int]:
    """Scatter per-RoI rows into a (batch * slots, D) table, RoIs of image
    ``b`` in input order in rows ``b * slots ...``.

    Returns:
        tuple: The table, each RoI's row (R, ) and ``slots``.
    """
    num = index.numel()
    counts = torch.bincount(index, minlength=batch)
    slots = int(counts.max())
    first = torch.cumsum(counts, 0) - counts
    order = torch.argsort(index, stable=True)
    rank = torch.empty_like(index)
    rank[order] = torch.arange(num, device=index.device) - first[index[order]]
    row = index * slots + rank
    table = values.new_full((batch * slots, values.size(1)), fill)
    table.index_copy_(0, row, values)
    return table, row, slots


def _grid_dtype(feat: Tensor) -> torch.dtype:
    """float32 for a float16/bfloat16 map, else the map's dtype.

    Sample positions in float16 are off by up to 1.5 input px over a
    1200x800 image, in bfloat16 by up to 11 px (measured 2026-12-07 against
    float64 over 4,000 RoIs): RoIs and grid stay in float32 under
    ``--amp`` and the fp16/bf16 deploy steps.
    """
    return torch.promote_types(feat.dtype, torch.float32)


def _bin_grid(rois: Tensor, height: int, width: int,
              output_size: Tuple[int, int], spatial_scale: float,
              sampling_ratio: int, aligned: bool) -> Tensor:
    """``grid_sample`` positions of every sample of every bin.

    Args:
        rois (Tensor): (R, 4) ``x1, y1, x2, y2`` in input pixels.
        height (int): Feature map height.
        width (int): Feature map width.
        output_size, spatial_scale, sampling_ratio, aligned: As
            :func:`ps_roi_align_grid`.

    Returns:
        Tensor: (R, k_h * k_w, s * s, 2), ``(x, y)`` in [-1, 1], sample
        ``(i, j)`` of bin ``(p, q)`` at ``[:, p * k_w + q, i * s + j]``.
    """
    kh, kw = output_size
    s = sampling_ratio
    shift = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, i] * spatial_scale - shift for i in range(4))
    gy = _normalise(_sample_coords(y1, y2, kh, s, aligned), height, aligned)
    gx = _normalise(_sample_coords(x1, x2, kw, s, aligned), width, aligned)
    # (R, k_h, k_w, s, s, 2): (x, y) of sample (i, j) of bin (p, q).
    grid = torch.stack(torch.broadcast_tensors(
        gx[:, None, :, None, :], gy[:, :, None, :, None]), -1)
    return grid.reshape(rois.size(0), kh * kw, s * s, 2)


def _pool_padded(feat: Tensor, grid: Tensor, output_size: Tuple[int, int],
                 mode: str) -> Tensor:
    """Pool ``slots`` RoIs per image from a per-image table of grids.

    Args:
        feat (Tensor): (N, C, H, W), C = C_out * k_h * k_w.
        grid (Tensor): (N, slots, k_h * k_w, s * s, 2) from
            :func:`_bin_grid` (empty slots hold ``_OUTSIDE``).
        output_size (tuple[int, int]): (k_h, k_w).
        mode (str): ``'avg'`` or ``'max'``.

    Returns:
        Tensor: (N, slots, C_out, k_h * k_w).
    """
    batch, channels, height, width = feat.shape
    kh, kw = output_size
    bins = kh * kw
    cout = channels // bins
    slots, samples = grid.shape[1], grid.shape[3]
    grid = grid.permute(0, 2, 3, 1, 4).reshape(batch * bins, samples, slots,
                                               2)
    # (N * bins, C_out, H, W): the channels of bin k of every image.
    per_bin = feat.reshape(batch, cout, bins, height, width).transpose(
        1, 2).reshape(batch * bins, cout, height, width)
    # Sampled in the grid's precision (an exact upcast of a reduced-
    # precision map), returned in the map's.
    out = F.grid_sample(per_bin.to(grid.dtype), grid, mode='bilinear',
                        padding_mode='zeros', align_corners=False)
    # (N * bins, C_out, s * s, slots) -> reduce the samples of each bin.
    out = out.mean(2) if mode == 'avg' else out.amax(2)
    return out.to(feat.dtype).view(batch, bins, cout, slots).permute(
        0, 3, 2, 1)


def ps_roi_align_grid(feat: Tensor, rois: Tensor,
                      output_size: Tuple[int, int], spatial_scale: float,
                      sampling_ratio: int, mode: str = 'avg',
                      aligned: bool = True) -> Tensor:
    """Position-sensitive RoIAlign with ``grid_sample``.

    Args:
        feat (Tensor): (N, C, H, W), C = C_out * k_h * k_w.
        rois (Tensor): (R, 5) ``[batch_index, x1, y1, x2, y2]`` in input
            pixels.
        output_size (tuple[int, int]): (k_h, k_w).
        spatial_scale (float): Feature pixels per input pixel.
        sampling_ratio (int): Samples per bin side (> 0).
        mode (str): ``'avg'`` or ``'max'`` over the samples of a bin.
        aligned (bool): torchvision's sampling (True) or the official
            Light-Head op's (False); see the module docstring.

    Returns:
        Tensor: (R, C_out, k_h, k_w); differentiable w.r.t. ``feat``.
    """
    batch, channels, height, width = feat.shape
    kh, kw = output_size
    bins, s, num = kh * kw, sampling_ratio, rois.size(0)
    cout = channels // bins
    if num == 0:
        return feat.new_zeros(0, cout, kh, kw)
    rois = rois.detach().to(_grid_dtype(feat))
    grid = _bin_grid(rois[:, 1:], height, width, output_size, spatial_scale,
                     s, aligned)
    padded, row, slots = _pad_per_image(grid.reshape(num, -1),
                                        rois[:, 0].long(), batch, _OUTSIDE)
    out = _pool_padded(feat, padded.view(batch, slots, bins, s * s, 2),
                       output_size, mode)
    return out.reshape(batch * slots, cout, kh, kw).index_select(0, row)


def ps_roi_align_grid_batched(feat: Tensor, rois: Tensor,
                              output_size: Tuple[int, int],
                              spatial_scale: float, sampling_ratio: int,
                              mode: str = 'avg',
                              aligned: bool = True) -> Tensor:
    """:func:`ps_roi_align_grid` for the same number of RoIs per image.

    No data-dependent shape anywhere (the ONNX export path): image ``b``
    pools its own ``rois[b]``. Every RoI's output equals
    :func:`ps_roi_align_grid`'s for that RoI.

    Args:
        feat (Tensor): (N, C, H, W), C = C_out * k_h * k_w.
        rois (Tensor): (N, R, 4) ``x1, y1, x2, y2`` in input pixels.
        output_size, spatial_scale, sampling_ratio, mode, aligned: As
            :func:`ps_roi_align_grid`.

    Returns:
        Tensor: (N, R, C_out, k_h, k_w).
    """
    batch, channels, height, width = feat.shape
    kh, kw = output_size
    num = rois.shape[1]
    grid = _bin_grid(rois.reshape(batch * num, 4).to(_grid_dtype(feat)),
                     height,
                     width, output_size, spatial_scale, sampling_ratio,
                     aligned)
    out = _pool_padded(feat, grid.view(batch, num, kh * kw, -1, 2),
                       output_size, mode)
    return out.reshape(batch, num, channels // (kh * kw), kh, kw)


class GridPSRoIAlign(nn.Module):
    """Position-sensitive RoIAlign layer (see :func:`ps_roi_align_grid`).

    A ``roi_layer`` type of
    :class:`~shufflenet_det.models.roi_extractors.PSRoIExtractor`:
    ``roi_layer=dict(type='GridPSRoIAlign', output_size=7,
    sampling_ratio=2, mode='max', aligned=False)`` is the official
    Light-Head op, ``mode='avg', aligned=True`` torchvision's
    ``PSRoIAlign``.

    Args:
        output_size (int | tuple[int, int]): (k_h, k_w).
        spatial_scale (float): Feature pixels per input pixel.
        sampling_ratio (int): Samples per bin side (> 0; the adaptive
            ``0`` of torchvision has RoI-dependent sample counts, which one
            grid cannot hold). Default: 2.
        mode (str): ``'avg'`` or ``'max'``. Default: ``'avg'``.
        aligned (bool): torchvision's sampling (True) or the official
            op's (False). Default: True.

    Example:
        >>> layer = GridPSRoIAlign(7, 1 / 32, 2, mode='max', aligned=False)
        >>> rois = torch.tensor([[0., 0., 0., 320., 320.]])
        >>> tuple(layer(torch.rand(1, 490, 20, 20), rois).shape)
        (1, 10, 7, 7)
    """

    def __init__(self, output_size: Union[int, Sequence[int]],
                 spatial_scale: float, sampling_ratio: int = 2,
                 mode: str = 'avg', aligned: bool = True) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f'GridPSRoIAlign: mode must be one of {MODES}, '
                             f'but received {mode!r}')
        if not isinstance(sampling_ratio, int) or sampling_ratio <= 0:
            raise ValueError('GridPSRoIAlign: sampling_ratio must be a '
                             f'positive int, but received {sampling_ratio!r}')
        self.output_size = tuple(_pair(output_size))
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = sampling_ratio
        self.mode = mode
        self.aligned = bool(aligned)

    def forward(self, feat: Tensor, rois: Tensor) -> Tensor:
        """(N, C, H, W) map, (R, 5) RoIs -> (R, C / (k_h k_w), k_h, k_w)."""
        return ps_roi_align_grid(feat, rois, self.output_size,
                                 self.spatial_scale, self.sampling_ratio,
                                 self.mode, self.aligned)

    def forward_batched(self, feat: Tensor, rois: Tensor) -> Tensor:
        """(N, C, H, W) map, (N, R, 4) RoIs per image -> (N, R, C / (k_h
        k_w), k_h, k_w), with static shapes (ONNX export)."""
        return ps_roi_align_grid_batched(feat, rois, self.output_size,
                                         self.spatial_scale,
                                         self.sampling_ratio, self.mode,
                                         self.aligned)

    def extra_repr(self) -> str:
        return (f'output_size={self.output_size}, spatial_scale='
                f'{self.spatial_scale}, sampling_ratio={self.sampling_ratio}'
                f', mode={self.mode!r}, aligned={self.aligned}')
