"""Exact NMS that stops once the kept boxes can no longer change.

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
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
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


_POOL: Optional[ThreadPoolExecutor] = None


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL._max_workers != workers:
        _POOL = ThreadPoolExecutor(workers, thread_name_prefix='nms')
    return _POOL


def threaded_predict_by_feat(self, cls_scores: List[Tensor],
                             bbox_preds: List[Tensor],
                             score_factors: Optional[List[Tensor]] = None,
                             batch_img_metas: Optional[List[dict]] = None,
                             cfg=None, rescale: bool = False,
                             with_nms: bool = True) -> list:
    """``BaseDenseHead.predict_by_feat`` with the images in parallel.

    The per-image work (top-k, decoding, NMS) is mostly torch operators that
    release the GIL, torchvision's single-threaded NMS among them, so the
    images of a batch are post-processed on ``torch.get_num_threads()``
    Python threads. Same calls, same results, in the same order.
    """
    from mmdet.models.utils import select_single_mlvl
    num_levels = len(cls_scores)
    mlvl_priors = self.prior_generator.grid_priors(
        [cls_scores[i].shape[-2:] for i in range(num_levels)],
        dtype=cls_scores[0].dtype, device=cls_scores[0].device)

    def one(img_id: int):
        factors = [None] * num_levels if score_factors is None else \
            select_single_mlvl(score_factors, img_id, detach=True)
        return self._predict_by_feat_single(
            cls_score_list=select_single_mlvl(cls_scores, img_id,
                                              detach=True),
            bbox_pred_list=select_single_mlvl(bbox_preds, img_id,
                                              detach=True),
            score_factor_list=factors, mlvl_priors=mlvl_priors,
            img_meta=batch_img_metas[img_id], cfg=cfg, rescale=rescale,
            with_nms=with_nms)

    workers = min(len(batch_img_metas), torch.get_num_threads())
    if workers <= 1 or cls_scores[0].device.type != 'cpu':
        return [one(i) for i in range(len(batch_img_metas))]
    return list(_pool(workers).map(one, range(len(batch_img_metas))))


def topk_rpn_bbox_post_process(self, results, cfg, rescale: bool = False,
                               with_nms: bool = True,
                               img_meta: Optional[dict] = None):
    """Drop-in for ``mmdet.models.RPNHead._bbox_post_process``.

    Same steps (rescale, min-size filter, NMS per level, keep
    ``cfg.max_per_img``) with :func:`topk_batched_nms`; configs it does not
    cover go to the original method.
    """
    from mmdet.models.dense_heads import RPNHead
    from mmdet.structures.bbox import get_box_tensor, get_box_wh, scale_boxes
    threshold = plain_nms_threshold(cfg.get('nms'))
    max_num = cfg.get('max_per_img', -1)
    if not with_nms or threshold is None or max_num <= 0:
        return RPNHead._bbox_post_process(self, results, cfg, rescale,
                                          with_nms, img_meta)
    if rescale:
        scale_factor = [1 / s for s in img_meta['scale_factor']]
        results.bboxes = scale_boxes(results.bboxes, scale_factor)
    if cfg.get('min_bbox_size', -1) >= 0:
        w, h = get_box_wh(results.bboxes)
        valid_mask = (w > cfg.min_bbox_size) & (h > cfg.min_bbox_size)
        if not valid_mask.all():
            results = results[valid_mask]
    if results.bboxes.numel() == 0:
        return RPNHead._bbox_post_process(self, results, cfg, False,
                                          with_nms, img_meta)
    dets, keep = topk_batched_nms(get_box_tensor(results.bboxes),
                                  results.scores, results.level_ids,
                                  threshold, max_num)
    results = results[keep]
    results.scores = dets[:, -1]
    results.labels = results.scores.new_zeros(len(results), dtype=torch.long)
    del results.level_ids
    return results


def topk_bbox_predict_by_feat_single(self, roi: Tensor, cls_score: Tensor,
                                     bbox_pred: Tensor, img_meta: dict,
                                     rescale: bool = False,
                                     rcnn_test_cfg=None):
    """Drop-in for ``mmdet BBoxHead._predict_by_feat_single``.

    Same steps (softmax, decode every (RoI, class) box, rescale, drop scores
    <= ``score_thr``, per-class NMS, keep ``max_per_img``) with
    :func:`topk_batched_nms` in place of ``multiclass_nms``; heads or configs
    it does not cover go to the original method.
    """
    from mmdet.models.roi_heads.bbox_heads import BBoxHead
    from mmdet.structures.bbox import get_box_tensor, scale_boxes
    from mmengine.structures import InstanceData
    original = BBoxHead._predict_by_feat_single
    threshold = None if rcnn_test_cfg is None else \
        plain_nms_threshold(rcnn_test_cfg.get('nms'))
    max_num = -1 if rcnn_test_cfg is None else \
        rcnn_test_cfg.get('max_per_img', -1)
    if (threshold is None or max_num <= 0 or roi.shape[0] == 0
            or bbox_pred is None or self.custom_cls_channels
            or self.predict_box_type != 'hbox'):
        return original(self, roi, cls_score, bbox_pred, img_meta, rescale,
                        rcnn_test_cfg)
    scores = F.softmax(cls_score, dim=-1)[:, :-1].reshape(-1)
    valid = (scores > rcnn_test_cfg.score_thr).nonzero().view(-1)
    if valid.numel() == 0:  # let mmdet build the empty result
        return original(self, roi, cls_score, bbox_pred, img_meta, rescale,
                        rcnn_test_cfg)
    num_classes = self.num_classes
    num_rois = roi.size(0)
    if self.reg_class_agnostic:
        deltas = bbox_pred.view(num_rois, 1, -1).expand(
            num_rois, num_classes, bbox_pred.size(-1))
    else:
        deltas = bbox_pred.view(num_rois, num_classes, -1)
    # Every box is decoded, as in mmdet: the max coordinate of all valid
    # boxes sets mmcv's per-class shift, hence the rounding to reproduce.
    bboxes = self.bbox_coder.decode(
        roi[:, None, 1:].expand(num_rois, num_classes, 4).reshape(-1, 4),
        deltas.reshape(-1, self.bbox_coder.encode_size),
        max_shape=img_meta['img_shape'])
    if rescale:
        scale_factor = [1 / s for s in img_meta['scale_factor']]
        bboxes = scale_boxes(bboxes, scale_factor)
    bboxes = get_box_tensor(bboxes)
    if valid.numel() == scores.numel():  # score_thr=0.0: skip the copies
        labels = torch.arange(num_classes, device=roi.device).repeat(num_rois)
    else:
        bboxes, scores, labels = bboxes[valid], scores[valid], \
            valid % num_classes
    dets, keep = topk_batched_nms(bboxes, scores, labels, threshold, max_num)
    results = InstanceData()
    results.bboxes = dets[:, :-1]
    results.scores = dets[:, -1]
    results.labels = labels[keep]
    return results
