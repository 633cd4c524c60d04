"""Static-shape NMS pieces for ONNX export, each with an eager twin.

The export methods of the heads (``export_*`` on ``LightHeadRPNHead``,
``LightHeadBBoxHead`` and friends) build their post-processing from these:
``NonMaxSuppression`` of the default ONNX domain, and the masking and TopK
that turn its data-dependent output into fixed-size tensors.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .topk_nms import plain_nms_threshold, topk_batched_nms

#: Score given to boxes that must not enter an NMS (invalid or padded);
#: the NMS ``score_threshold`` sits between it and any real score, so that
#: ONNX Runtime (keeps > threshold) and OpenVINO (keeps >=) agree.
MASKED = -1.0
THRESHOLD = -0.5


class ExportError(RuntimeError):
    """A detector that the exporter cannot express in standard ONNX."""


def export_nms_threshold(cfg, where: str) -> float:
    """The IoU threshold of a test config's plain NMS, for export.

    Args:
        cfg (dict): A head's test config (``nms``, ``max_per_img``).
        where (str): The config's name in errors.

    Raises:
        ExportError: If the NMS is not plain NMS (the ONNX operator has no
            other form), or ``max_per_img`` is not positive (no static
            output shape).
    """
    threshold = plain_nms_threshold(cfg.get('nms'))
    if threshold is None:
        raise ExportError(
            f'{where}.nms={cfg.get("nms")!r}: only plain NMS '
            "(dict(type='nms', iou_threshold=t)) maps to ONNX "
            'NonMaxSuppression')
    if cfg.get('max_per_img', -1) <= 0:
        raise ExportError(f'{where}.max_per_img must be > 0 for a static '
                          'output shape')
    return threshold


class ONNXNonMaxSuppression(torch.autograd.Function):
    """``NonMaxSuppression`` (default ONNX domain) with an eager twin.

    Eager: per (image, class), torchvision's NMS over the boxes whose score
    is above ``score_threshold`` (a box is suppressed when its IoU with a
    kept box is strictly above ``iou_threshold``), first ``max_output`` kept
    boxes by decreasing score; rows ordered by image, class, score, as the
    ONNX operator orders them.

    Args (of ``apply``):
        boxes (Tensor): (N, M, 4) ``x1, y1, x2, y2``.
        scores (Tensor): (N, C, M).
        max_output (int): Boxes kept per image and class.
        iou_threshold (float): IoU threshold.
        score_threshold (float): Boxes with scores not above it are ignored.

    Returns:
        Tensor: (K, 3) int64 rows ``[image, class, box]``.
    """

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_output: int,
                iou_threshold: float, score_threshold: float) -> Tensor:
        rows = []
        for b in range(scores.shape[0]):
            for c in range(scores.shape[1]):
                cand = (scores[b, c] > score_threshold).nonzero().view(-1)
                if cand.numel() == 0:
                    continue
                _, keep = topk_batched_nms(
                    boxes[b, cand], scores[b, c, cand],
                    torch.zeros_like(cand), iou_threshold, max_output)
                box = cand[keep]
                rows.append(torch.stack([torch.full_like(box, b),
                                         torch.full_like(box, c), box], 1))
        if not rows:
            return boxes.new_zeros((0, 3), dtype=torch.long)
        return torch.cat(rows)

    @staticmethod
    def symbolic(g, boxes, scores, max_output, iou_threshold,
                 score_threshold):
        def const(value, dtype):
            return g.op('Constant', value_t=torch.tensor(value, dtype=dtype))
        return g.op('NonMaxSuppression', boxes, scores,
                    const(int(max_output), torch.int64),
                    const(float(iou_threshold), torch.float32),
                    const(float(score_threshold), torch.float32),
                    center_point_box_i=0)


def kept_topk(selected: Tensor, scores: Tensor, k: int
              ) -> Tuple[Tensor, Tensor, Tensor]:
    """The ``k`` best boxes of each image among those an NMS kept.

    Args:
        selected (Tensor): (K, 3) NMS rows ``[image, class, box]`` (one
            class).
        scores (Tensor): (N, M) scores of the boxes.
        k (int): Boxes per image (<= M).

    Returns:
        tuple[Tensor, Tensor, Tensor]: Scores (N, k) by decreasing score,
        box indices (N, k) and validity (N, k) (False where the image kept
        fewer than ``k``).
    """
    num, boxes = scores.shape
    flat = selected[:, 0] * boxes + selected[:, 2]
    kept = torch.zeros(num * boxes, dtype=scores.dtype,
                       device=scores.device).scatter(0, flat, 1.0)
    masked = torch.where(kept.view(num, boxes) > 0, scores,
                         torch.full_like(scores, MASKED))
    top, index = masked.topk(k, dim=1)
    return top, index, top > THRESHOLD


def gather_boxes(boxes: Tensor, index: Tensor) -> Tensor:
    """(N, M, 4) boxes, (N, k) indices -> (N, k, 4)."""
    return boxes.gather(1, index[..., None].expand(-1, -1, 4))


def decode_clipped(coder, priors: Tensor, deltas: Tensor,
                   img_shape: Optional[Tuple[int, int]]) -> Tensor:
    """mmdet's ``delta2bbox`` on (P, 4) priors and (P, 4 * C) deltas,
    clipped to ``img_shape`` without in-place slice updates (``coder``: a
    ``DeltaXYWHBBoxCoder`` or ``LegacyDeltaXYWHBBoxCoder``)."""
    from mmdet.models.task_modules.coders import LegacyDeltaXYWHBBoxCoder
    from mmdet.models.task_modules.coders.delta_xywh_bbox_coder import \
        delta2bbox
    from mmdet.models.task_modules.coders.legacy_delta_xywh_bbox_coder \
        import legacy_delta2bbox
    if isinstance(coder, LegacyDeltaXYWHBBoxCoder):
        # x2 - x1 + 1 widths and clipping to (W - 1, H - 1), as the coder's
        # decode(max_shape=img_shape) in the RPN head (the official rule).
        return legacy_delta2bbox(priors, deltas, coder.means, coder.stds, img_shape)
    boxes = delta2bbox(priors, deltas, coder.means, coder.stds, None,
                       add_ctr_clamp=coder.add_ctr_clamp,
                       ctr_clamp=coder.ctr_clamp)
    if coder.clip_border and img_shape is not None:
        height, width = img_shape
        limit = boxes.new_tensor([width, height] * (boxes.shape[-1] // 2))
        boxes = torch.min(boxes.clamp(min=0), limit)
    return boxes
