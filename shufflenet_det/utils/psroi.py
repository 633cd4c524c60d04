"""Position-sensitive RoIAlign on the CPU through ``grid_sample``.

torchvision's CPU ``ps_roi_align`` is a single-threaded loop that, for every
output bin, reads a different channel plane of the score map. Light-Head
R-CNN pools 1000 RoIs per image from a 490-channel map, so at batch 4 that
loop is about a tenth of the detector's CPU time. The same numbers come out
of one ``torch.nn.functional.grid_sample`` call (vectorised and
multi-threaded): the channels of bin ``k`` (``c * k_h * k_w + k``) form one
"image" per batch element, every RoI contributes its ``sampling_ratio**2``
sample points of bin ``k`` to it, and the samples are averaged.

Sample positions, the -0.5 shift, the zero outside ``[-1, size]`` and the
clamping to the border inside it follow torchvision's kernel; the results
differ from it only by rounding (``grid_sample`` works in normalised
coordinates).
"""
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import ps_roi_align

# Normalised coordinate far outside [-1, 1]: grid_sample (zero padding)
# returns 0 there, as torchvision does for samples outside [-1, size].
_OUTSIDE = -3.0


def ps_roi_align_grid(feat: Tensor, rois: Tensor,
                      output_size: Tuple[int, int], spatial_scale: float,
                      sampling_ratio: int) -> Tensor:
    """``torchvision.ops.ps_roi_align`` computed with ``grid_sample``.

    Args:
        feat (Tensor): (N, C, H, W), C = C_out * k_h * k_w, H, W >= 2.
        rois (Tensor): (R, 5) ``[batch_index, x1, y1, x2, y2]``.
        output_size (tuple[int, int]): (k_h, k_w).
        spatial_scale (float): Feature pixels per input pixel.
        sampling_ratio (int): Samples per bin side (> 0).

    Returns:
        Tensor: (R, C_out, k_h, k_w).
    """
    batch, channels, height, width = feat.shape
    kh, kw = output_size
    bins = kh * kw
    cout = channels // bins
    s = sampling_ratio
    num = rois.size(0)
    if num == 0:
        return feat.new_zeros(0, cout, kh, kw)
    index = rois[:, 0].long()
    x1 = rois[:, 1] * spatial_scale - 0.5
    y1 = rois[:, 2] * spatial_scale - 0.5
    x2 = rois[:, 3] * spatial_scale - 0.5
    y2 = rois[:, 4] * spatial_scale - 0.5
    bin_w = ((x2 - x1) / kw)[:, None, None]
    bin_h = ((y2 - y1) / kh)[:, None, None]

    def arange(n):
        return torch.arange(n, dtype=feat.dtype, device=feat.device)

    offset = arange(s) + 0.5
    # (R, k_h, s) and (R, k_w, s): torchvision's expressions.
    ys = (arange(kh)[None, :, None] * bin_h + y1[:, None, None]) + \
        offset * bin_h / s
    xs = (arange(kw)[None, :, None] * bin_w + x1[:, None, None]) + \
        offset * bin_w / s
    gy = torch.where((ys >= -1.0) & (ys <= height),
                     ys.clamp(0, height - 1) * (2.0 / (height - 1)) - 1,
                     _OUTSIDE)
    gx = torch.where((xs >= -1.0) & (xs <= width),
                     xs.clamp(0, width - 1) * (2.0 / (width - 1)) - 1,
                     _OUTSIDE)
    grid = feat.new_empty(num, kh, kw, s, s, 2)
    grid[..., 0] = gx[:, None, :, None, :]
    grid[..., 1] = gy[:, :, None, :, None]

    # Slot of each RoI among its image's RoIs, in input order.
    counts = torch.bincount(index, minlength=batch)
    slots = int(counts.max())
    first = torch.cumsum(counts, 0) - counts
    order = torch.argsort(index, stable=True)
    rank = torch.empty_like(index)
    rank[order] = torch.arange(num, device=index.device) - first[index[order]]
    row = index * slots + rank
    padded = feat.new_full((batch * slots, bins * s * s * 2), _OUTSIDE)
    padded.index_copy_(0, row, grid.view(num, -1))
    padded = padded.view(batch, slots, bins, s * s, 2).permute(
        0, 2, 3, 1, 4).reshape(batch * bins, s * s, slots, 2)
    # (N * bins, C_out, H, W): the channels of bin k of every image.
    per_bin = feat.reshape(batch, cout, bins, height, width).transpose(
        1, 2).reshape(batch * bins, cout, height, width)
    out = F.grid_sample(per_bin, padded, mode='bilinear',
                        padding_mode='zeros', align_corners=True)
    out = out.sum(2).view(batch, bins * cout, slots).transpose(1, 2)
    out = out.reshape(batch * slots, bins, cout).index_select(0, row)
    return (out / (s * s)).transpose(1, 2).reshape(num, cout, kh, kw)


class GridPSRoIAlign(nn.Module):
    """Drop-in for ``torchvision.ops.PSRoIAlign`` that uses
    :func:`ps_roi_align_grid` on CPU float tensors and torchvision elsewhere
    (CUDA, adaptive sampling, maps narrower than 2 pixels).

    Args:
        output_size (int | tuple[int, int]): (k_h, k_w).
        spatial_scale (float): Feature pixels per input pixel.
        sampling_ratio (int): Samples per bin side.
    """

    def __init__(self, output_size: Union[int, Sequence[int]],
                 spatial_scale: float, sampling_ratio: int) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio

    def forward(self, feat: Tensor, rois: Tensor) -> Tensor:
        """(N, C, H, W) map, (R, 5) RoIs -> (R, C / (k_h k_w), k_h, k_w)."""
        size = tuple(self.output_size) if isinstance(
            self.output_size, (tuple, list)) else (self.output_size, ) * 2
        if (feat.device.type != 'cpu' or self.sampling_ratio <= 0
                or min(feat.shape[-2:]) < 2
                or feat.dtype not in (torch.float32, torch.float64)):
            return ps_roi_align(feat, rois, size, self.spatial_scale,
                                self.sampling_ratio)
        return ps_roi_align_grid(feat, rois.to(feat.dtype), size,
                                 self.spatial_scale, self.sampling_ratio)

    def extra_repr(self) -> str:
        return (f'output_size={self.output_size}, spatial_scale='
                f'{self.spatial_scale}, sampling_ratio={self.sampling_ratio}')
