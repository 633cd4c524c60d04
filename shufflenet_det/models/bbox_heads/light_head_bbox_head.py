"""R-CNN subnet of Light-Head R-CNN with exact early-stopping per-class NMS."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import get_box_tensor, scale_boxes
from mmdet.utils import InstanceList
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from ..layers.onnx_nms import (MASKED, THRESHOLD, ExportError,
                               ONNXNonMaxSuppression, decode_clipped,
                               export_nms_threshold, gather_boxes, kept_topk)
from ..layers.topk_nms import plain_nms_threshold, topk_batched_nms


@MODELS.register_module()
class LightHeadBBoxHead(ConvFCBBoxHead):
    """mmdet's ``ConvFCBBoxHead`` whose test-time NMS stops once decided.

    Architecture, training and losses are ``ConvFCBBoxHead``'s (Light-Head
    uses one shared FC of 2048). Only ``_predict_by_feat_single`` differs:
    Light-Head's test setting has no score threshold, so every
    ``num_rois x num_classes`` box (80,000 per image) enters mmdet's
    per-class NMS, of which only the best ``max_per_img`` survive.
    :func:`topk_batched_nms` returns those same boxes, scores and labels
    (only exactly equal scores may come in another order) from the
    top-scoring candidates that decide them. Configs it does not cover
    (soft-NMS, ``max_per_img <= 0``, custom classifier channels, rotated
    boxes) fall back to ``ConvFCBBoxHead``.

    Args:
        *args, **kwargs: As ``mmdet.models.ConvFCBBoxHead``.
    """

    def predict_by_feat(self, *args, **kwargs) -> InstanceList:
        """``BBoxHead.predict_by_feat`` in a profiler range of its own
        (``LightHeadBBoxHead.predict_by_feat``: the benchmark's time
        breakdown reads it)."""
        with torch.profiler.record_function(
                f'{type(self).__name__}.predict_by_feat'):
            return super().predict_by_feat(*args, **kwargs)

    def _predict_by_feat_single(self,
                                roi: Tensor,
                                cls_score: Tensor,
                                bbox_pred: Tensor,
                                img_meta: dict,
                                rescale: bool = False,
                                rcnn_test_cfg: Optional[ConfigDict] = None
                                ) -> InstanceData:
        """Detections of one image.

        Args:
            roi (Tensor): (R, 5) ``[batch_idx, x1, y1, x2, y2]``.
            cls_score (Tensor): (R, num_classes + 1) logits.
            bbox_pred (Tensor): (R, num_classes * 4) deltas (or (R, 4)
                class-agnostic).
            img_meta (dict): ``img_shape``, ``scale_factor``.
            rescale (bool): Boxes in original-image pixels.
            rcnn_test_cfg (ConfigDict, optional): ``score_thr``, ``nms``,
                ``max_per_img``.

        Returns:
            InstanceData: ``bboxes`` (K, 4), ``scores`` (K,), ``labels``
            (K,), by decreasing score, K <= ``max_per_img``.
        """
        threshold = None if rcnn_test_cfg is None else \
            plain_nms_threshold(rcnn_test_cfg.get('nms'))
        max_num = -1 if rcnn_test_cfg is None else \
            rcnn_test_cfg.get('max_per_img', -1)
        if (threshold is None or max_num <= 0 or roi.shape[0] == 0
                or bbox_pred is None or self.custom_cls_channels
                or self.predict_box_type != 'hbox'):
            return super()._predict_by_feat_single(
                roi, cls_score, bbox_pred, img_meta, rescale, rcnn_test_cfg)
        scores = F.softmax(cls_score, dim=-1)[:, :-1].reshape(-1)
        valid = (scores > rcnn_test_cfg.score_thr).nonzero().view(-1)
        if valid.numel() == 0:  # ConvFCBBoxHead builds the empty result
            return super()._predict_by_feat_single(
                roi, cls_score, bbox_pred, img_meta, rescale, rcnn_test_cfg)
        num_classes, num_rois = self.num_classes, roi.size(0)
        if self.reg_class_agnostic:
            deltas = bbox_pred.view(num_rois, 1, -1).expand(
                num_rois, num_classes, bbox_pred.size(-1))
        else:
            deltas = bbox_pred.view(num_rois, num_classes, -1)
        # Every box is decoded, as in mmdet: the largest coordinate of all
        # of them sets the per-class shift of the NMS, hence its rounding.
        bboxes = self.bbox_coder.decode(
            roi[:, None, 1:].expand(num_rois, num_classes, 4).reshape(-1, 4),
            deltas.reshape(-1, self.bbox_coder.encode_size),
            max_shape=img_meta['img_shape'])
        if rescale:
            scale_factor = [1 / s for s in img_meta['scale_factor']]
            bboxes = scale_boxes(bboxes, scale_factor)
        bboxes = get_box_tensor(bboxes)
        if valid.numel() == scores.numel():  # score_thr=0: skip the copies
            labels = torch.arange(num_classes,
                                  device=roi.device).repeat(num_rois)
        else:
            bboxes, scores = bboxes[valid], scores[valid]
            labels = valid % num_classes
        dets, keep = topk_batched_nms(bboxes, scores, labels, threshold,
                                      max_num)
        results = InstanceData()
        results.bboxes = dets[:, :-1]
        results.scores = dets[:, -1]
        results.labels = labels[keep]
        return results

    # ---------------------------------------------------------------- export
    def check_export(self, rcnn_test_cfg: ConfigDict) -> float:
        """Raise :class:`ExportError` unless :meth:`export_detections` can
        express this head and ``rcnn_test_cfg``; returns its NMS IoU."""
        if self.custom_cls_channels or getattr(self.loss_cls, 'use_sigmoid',
                                                  False):
            raise ExportError('roi_head.bbox_head: only a softmax '
                              'classifier (num_classes + 1) is supported')
        return export_nms_threshold(rcnn_test_cfg, 'test_cfg.rcnn')

    def export_detections(self, pooled: Tensor, rois: Tensor, valid: Tensor,
                          rcnn_test_cfg: ConfigDict,
                          img_shape: Tuple[int, int]
                          ) -> Tuple[Tensor, Tensor]:
        """:meth:`_predict_by_feat_single` for a batch in static shapes.

        Softmax, class-specific decoding, ``score_thr``, per-class NMS as
        one ``NonMaxSuppression`` over class-shifted boxes (mmcv's
        ``batched_nms`` shift), best ``max_per_img``.

        Args:
            pooled (Tensor): (N, P, C, k, k) pooled RoI features.
            rois (Tensor): (N, P, 4) proposals.
            valid (Tensor): (N, P) which proposal slots are real.
            rcnn_test_cfg (ConfigDict): ``score_thr``, ``nms``,
                ``max_per_img``.
            img_shape (tuple[int, int]): (H, W) boxes are clipped to.

        Returns:
            tuple[Tensor, Tensor]: ``dets`` (N, max_per_img, 5) ``x1, y1,
            x2, y2, score`` and ``labels`` (N, max_per_img) int64; padding
            rows have score 0 and label -1.
        """
        iou = self.check_export(rcnn_test_cfg)
        num, slots = (int(v) for v in valid.shape)
        cls_score, bbox_pred = self(pooled.flatten(0, 1))
        classes = self.num_classes
        scores = F.softmax(cls_score, dim=-1)[:, :-1].reshape(num, -1)
        if self.reg_class_agnostic:
            bbox_pred = bbox_pred.repeat(1, classes)
        boxes = decode_clipped(self.bbox_coder, rois.reshape(-1, 4),
                               bbox_pred, img_shape).view(
                                   num, slots * classes, 4)
        ok = valid[..., None].expand(num, slots, classes).reshape(num, -1) & \
            (scores > rcnn_test_cfg.get('score_thr', 0.0))
        scores = torch.where(ok, scores, torch.full_like(scores, MASKED))
        # mmcv's batched_nms shift, from the largest coordinate of the
        # image's candidate boxes (all boxes are clipped to >= 0).
        labels = torch.arange(classes, device=boxes.device).repeat(slots)
        top = (boxes * ok[..., None]).flatten(1).amax(1)
        shift = labels.to(boxes)[None, :, None] * \
            (top + torch.tensor(1).to(boxes))[:, None, None]
        max_num = rcnn_test_cfg.max_per_img
        k = min(max_num, slots * classes)
        selected = ONNXNonMaxSuppression.apply(boxes + shift, scores[:, None],
                                               k, iou, THRESHOLD)
        top_scores, index, keep = kept_topk(selected, scores, k)
        dets = torch.cat([gather_boxes(boxes, index), top_scores[..., None]],
                         -1) * keep[..., None]
        labels = torch.where(keep, index % classes,
                             torch.full_like(index, -1))
        if k < max_num:
            dets = F.pad(dets, (0, 0, 0, max_num - k))
            labels = F.pad(labels, (0, max_num - k), value=-1)
        return dets, labels
