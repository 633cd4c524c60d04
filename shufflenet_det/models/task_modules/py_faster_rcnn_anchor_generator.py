"""The official Light-Head R-CNN anchors: py-faster-rcnn's generate_anchors."""
from typing import Optional, Tuple

import torch
from mmdet.models.task_modules.prior_generators import LegacyAnchorGenerator
from mmdet.registry import TASK_UTILS
from torch import Tensor


@TASK_UTILS.register_module()
class PyFasterRCNNAnchorGenerator(LegacyAnchorGenerator):
    """``LegacyAnchorGenerator`` whose base anchors are py-faster-rcnn's.

    py-faster-rcnn's ``generate_anchors`` (used by the official Light-Head
    code, ``lib/detection_opr/rpn/snippets.py``) shapes the base box
    ``[0, 0, s - 1, s - 1]`` for each ratio first, rounding its sides
    (``w = round(sqrt(s * s / ratio))``, ``h = round(w * ratio)``, numpy's
    round half to even), and only then scales them. mmdet's
    ``LegacyAnchorGenerator`` scales first and rounds the corners last, so
    its non-square anchors differ: for ratio 0.5 at scale 32 the official
    anchor is 736 x 384 px, mmdet's 724 x 362 (corners 3, 5 and 11 px apart
    at 128, 256 and 512 px; square anchors are equal). Centres, strides and
    the order of the anchors are ``LegacyAnchorGenerator``'s (with
    ``center_offset=0.5``: the official 7.5 + s i).

    Args:
        *args, **kwargs: As ``mmdet``'s ``LegacyAnchorGenerator``.
    """

    def gen_single_level_base_anchors(self,
                                      base_size: float,
                                      scales: Tensor,
                                      ratios: Tensor,
                                      center: Optional[Tuple[float]] = None
                                      ) -> Tensor:
        """The base anchors of one level.

        Args:
            base_size (float): Side of the base box (the level's stride).
            scales (Tensor): (S,) scales.
            ratios (Tensor): (R,) height / width ratios.
            center (tuple[float], optional): The base box's centre; default
                ``center_offset * (base_size - 1)`` on both axes.

        Returns:
            Tensor: (R * S, 4) or (S * R, 4) (``scale_major``) anchors
            ``x1, y1, x2, y2``.
        """
        if center is None:
            center = (self.center_offset * (base_size - 1), ) * 2
        x_center, y_center = center
        ratios = ratios.double()
        ws = torch.round(torch.sqrt(base_size * base_size / ratios))
        hs = torch.round(ws * ratios)
        scales = scales.double()
        if self.scale_major:
            ws = (ws[:, None] * scales[None, :]).view(-1)
            hs = (hs[:, None] * scales[None, :]).view(-1)
        else:
            ws = (scales[:, None] * ws[None, :]).view(-1)
            hs = (scales[:, None] * hs[None, :]).view(-1)
        return torch.stack([x_center - 0.5 * (ws - 1),
                            y_center - 0.5 * (hs - 1),
                            x_center + 0.5 * (ws - 1),
                            y_center + 0.5 * (hs - 1)], dim=-1).float()
