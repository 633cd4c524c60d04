"""Exact NMS that stops once the kept boxes can no longer change.

Used by :class:`~shufflenet_det.models.dense_heads.LightHeadRPNHead` and
:class:`~shufflenet_det.models.bbox_heads.LightHeadBBoxHead`.

Light-Head R-CNN's test settings (official code, kept by our configs) make
mmdet's NMS the single largest cost of CPU inference:

- RPN: NMS 0.7 over the top 6000 anchors, of which only the first 1000
  kept boxes are used;
- R-CNN: *no* score threshold (``score_thr=0.0``), so every one of the
  1000 RoIs x 80 classes = 80,000 boxes enters a per-class NMS 0.5, of which
  only the best 100 kept boxes are used.

Greedy NMS decides a box's fate from higher-scoring boxes of the same group
alone. So if the ``m`` highest-scoring candidates already yield at least
``max_num`` kept boxes, no lower-scoring candidate can enter the first
``max_num`` kept boxes nor remove one of them: NMS over those ``m``
candidates, truncated to ``max_num``, *is* the full NMS truncated to
``max_num``. :func:`topk_batched_nms` starts with a small ``m`` and grows it
until that holds (or every candidate is in).

The result is bit-identical to ``mmcv.ops.batched_nms`` followed by
``[:max_num]``: boxes are shifted per group by ``group x (max coordinate +
1)`` exactly as mmcv does (which rounds coordinates, so IoUs that sit within
float rounding of the threshold are decided as mmcv decides them), and
``torchvision.ops.nms`` evaluates IoU with the same float expression as
mmcv's CPU kernel. Only the order of boxes with exactly equal scores may
differ (mmcv's sort is not stable).
"""
from typing import Optional, Tuple

import torch
import torchvision.ops
from torch import Tensor

#: Candidates examined first, as a multiple of ``max_num``; grown 4x.
CHUNK_FACTOR = 2


def plain_nms_threshold(nms_cfg) -> Optional[float]:
    """IoU threshold of a plain ``dict(type='nms', iou_threshold=t)`` config
    (``split_thr`` allowed), else None: other NMS variants (soft-NMS,
    class-agnostic, offsets, max_num) are not handled here."""
    if nms_cfg is None:
        return None
    cfg = dict(nms_cfg)
    if cfg.pop('type', 'nms') != 'nms' or 'iou_threshold' not in cfg:
        return None
    threshold = cfg.pop('iou_threshold')
    cfg.pop('split_thr', None)
    if cfg.pop('class_agnostic', False) or cfg.pop('offset', 0) != 0 \
            or cfg.pop('max_num', -1) > 0 or cfg:
        return None
    return float(threshold)


def group_offsets(boxes: Tensor, groups: Tensor) -> Tensor:
    """mmcv's per-group shift, ``group x (boxes.max() + 1)``, as (N, 1)."""
    max_coordinate = boxes.max()
    return (groups.to(boxes) *
            (max_coordinate + torch.tensor(1).to(boxes)))[:, None]


def topk_batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor,
                     iou_threshold: float,
                     max_num: int) -> Tuple[Tensor, Tensor]:
    """``mmcv.ops.batched_nms(...)`` truncated to ``max_num``, computed on as
    few candidates as possible.

    Args:
        boxes (Tensor): (N, 4) ``x1, y1, x2, y2``, N > 0.
        scores (Tensor): (N, ).
        groups (Tensor): (N, ) group ids; NMS runs within each group.
        iou_threshold (float): NMS IoU threshold.
        max_num (int): Boxes to return (> 0).

    Returns:
        tuple[Tensor, Tensor]: ``dets`` (K, 5) ``x1, y1, x2, y2, score`` by
        decreasing score and ``keep`` (K, ) indices into the inputs,
        K <= ``max_num``.
    """
    shifted = boxes + group_offsets(boxes, groups)
    num = scores.numel()
    m = min(num, CHUNK_FACTOR * max_num)
    while True:
        top_scores, cand = scores.topk(m)
        keep = torchvision.ops.nms(shifted[cand], top_scores, iou_threshold)
        if keep.numel() >= max_num or m == num:
            break
        m = min(num, 4 * m)
    keep = cand[keep[:max_num]]
    return torch.cat([boxes[keep], scores[keep, None]], -1), keep
