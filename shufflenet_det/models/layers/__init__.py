from .channel_shuffle import channel_shuffle, interleave
from .large_separable_conv import LargeSeparableConv
from .ps_roi_align import GridPSRoIAlign, ps_roi_align_grid
from .topk_nms import topk_batched_nms

__all__ = ['channel_shuffle', 'interleave', 'LargeSeparableConv',
           'GridPSRoIAlign', 'ps_roi_align_grid', 'topk_batched_nms']
