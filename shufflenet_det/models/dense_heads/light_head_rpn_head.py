"""RPN head whose proposal NMS stops as soon as its result is decided."""
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Tuple

import torch
from mmdet.models.dense_heads import RPNHead
from mmdet.models.utils import select_single_mlvl
from mmdet.registry import MODELS
from mmdet.structures.bbox import get_box_tensor, get_box_wh, scale_boxes
from mmdet.utils import InstanceList
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from ..layers.onnx_nms import (MASKED, THRESHOLD, ExportError,
                               ONNXNonMaxSuppression, decode_clipped,
                               export_nms_threshold, gather_boxes, kept_topk)
from ..layers.topk_nms import plain_nms_threshold, topk_batched_nms


@MODELS.register_module()
class LightHeadRPNHead(RPNHead):
    """mmdet's ``RPNHead`` with exact early-stopping NMS and per-image threads.

    Training, losses and every output equal ``RPNHead``'s. Two things are
    faster at inference:

    - ``_bbox_post_process`` runs :func:`topk_batched_nms` instead of
      ``mmcv.ops.batched_nms``: the same ``max_per_img`` proposals (only
      boxes with exactly equal scores may come in another order), computed
      from as few top-scoring candidates as decide them. Light-Head's test
      setting keeps 1000 of 6000 boxes, so most of the NMS is skipped.
      Configs it does not cover (soft-NMS, ``max_per_img <= 0``,
      ``with_nms=False``) fall back to ``RPNHead``.
    - ``predict_by_feat`` post-processes the images of a CPU batch on
      ``min(batch, torch.get_num_threads())`` Python threads: top-k,
      decoding and torchvision's single-threaded NMS release the GIL.

    Args:
        *args, **kwargs: As ``mmdet.models.RPNHead``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # This head's own worker threads, made on first use.
        self._pool: Optional[ThreadPoolExecutor] = None
        self._pool_workers = 0

    def _executor(self, workers: int) -> ThreadPoolExecutor:
        if self._pool is None or self._pool_workers != workers:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix='rpn')
            self._pool_workers = workers
        return self._pool

    def __getstate__(self) -> dict:
        # Threads are not copied (deepcopy, pickle): a copy makes its own.
        state = super().__getstate__() if hasattr(
            super(), '__getstate__') else self.__dict__
        state = dict(state, _pool=None, _pool_workers=0)
        return state

    def predict_by_feat(self,
                        cls_scores: List[Tensor],
                        bbox_preds: List[Tensor],
                        score_factors: Optional[List[Tensor]] = None,
                        batch_img_metas: Optional[List[dict]] = None,
                        cfg: Optional[ConfigDict] = None,
                        rescale: bool = False,
                        with_nms: bool = True) -> InstanceList:
        """``BaseDenseHead.predict_by_feat`` with the images in parallel.

        Args:
            cls_scores (list[Tensor]): Per level, (N, A * C, H, W).
            bbox_preds (list[Tensor]): Per level, (N, A * 4, H, W).
            score_factors (list[Tensor], optional): Unused by RPN.
            batch_img_metas (list[dict]): Meta of each image.
            cfg (ConfigDict, optional): Test config; ``self.test_cfg`` if
                None.
            rescale (bool): Boxes in original-image pixels.
            with_nms (bool): Apply NMS.

        Returns:
            list[InstanceData]: Per image, ``bboxes`` (K, 4), ``scores`` (K,)
            and ``labels`` (K,), in input order.
        """
        with torch.profiler.record_function(
                f'{type(self).__name__}.predict_by_feat'):
            return self._predict_by_feat(cls_scores, bbox_preds,
                                         score_factors, batch_img_metas, cfg,
                                         rescale, with_nms)

    def _predict_by_feat(self, cls_scores, bbox_preds, score_factors,
                         batch_img_metas, cfg, rescale,
                         with_nms) -> InstanceList:
        num_levels = len(cls_scores)
        mlvl_priors = self.prior_generator.grid_priors(
            [cls_scores[i].shape[-2:] for i in range(num_levels)],
            dtype=cls_scores[0].dtype, device=cls_scores[0].device)

        def one(img_id: int) -> InstanceData:
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

        num_imgs = len(batch_img_metas)
        workers = min(num_imgs, torch.get_num_threads())
        if workers <= 1 or cls_scores[0].device.type != 'cpu' or \
                torch.jit.is_tracing():
            return [one(i) for i in range(num_imgs)]
        return list(self._executor(workers).map(one, range(num_imgs)))

    def _bbox_post_process(self,
                           results: InstanceData,
                           cfg: ConfigDict,
                           rescale: bool = False,
                           with_nms: bool = True,
                           img_meta: Optional[dict] = None) -> InstanceData:
        """``RPNHead._bbox_post_process`` with :func:`topk_batched_nms`.

        Same steps: rescale, drop boxes not above ``min_bbox_size``, NMS per
        level, keep ``cfg.max_per_img``.

        Args:
            results (InstanceData): ``bboxes`` (K, 4), ``scores`` (K,),
                ``level_ids`` (K,) of one image.
            cfg (ConfigDict): Test config.
            rescale (bool): Boxes in original-image pixels.
            with_nms (bool): Apply NMS.
            img_meta (dict, optional): The image's meta.

        Returns:
            InstanceData: ``bboxes`` (P, 4), ``scores`` (P,), ``labels`` (P,)
            all zero, P <= ``cfg.max_per_img``.
        """
        threshold = plain_nms_threshold(cfg.get('nms'))
        max_num = cfg.get('max_per_img', -1)
        if not with_nms or threshold is None or max_num <= 0:
            return super()._bbox_post_process(results, cfg, rescale,
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
            # RPNHead builds the empty result (already rescaled here).
            return super()._bbox_post_process(results, cfg, False, with_nms,
                                              img_meta)
        dets, keep = topk_batched_nms(get_box_tensor(results.bboxes),
                                      results.scores, results.level_ids,
                                      threshold, max_num)
        results = results[keep]
        results.scores = dets[:, -1]
        results.labels = results.scores.new_zeros(len(results),
                                                  dtype=torch.long)
        del results.level_ids
        return results

    # ---------------------------------------------------------------- export
    def check_export(self) -> float:
        """Raise :class:`ExportError` unless :meth:`export_proposals` can
        express ``test_cfg``; returns its NMS IoU threshold."""
        if len(self.prior_generator.strides) != 1:
            raise ExportError('rpn_head: one feature level expected, got '
                              f'{len(self.prior_generator.strides)}')
        return export_nms_threshold(self.test_cfg, 'test_cfg.rpn')

    def export_proposals(self, feat: Tensor, img_shape: Tuple[int, int]
                         ) -> Tuple[Tensor, Tensor]:
        """:meth:`predict` in static shapes, for ONNX export.

        The same steps as ``_predict_by_feat_single`` + ``_bbox_post_process``
        (``nms_pre`` top-k, decoding, ``min_bbox_size``, NMS, best
        ``max_per_img``), with fewer proposal slots masked.

        Args:
            feat (Tensor): (N, C, H, W), the one RPN feature map.
            img_shape (tuple[int, int]): (H, W) every box is clipped to.

        Returns:
            tuple[Tensor, Tensor]: (N, P, 4) proposals by decreasing score
            and (N, P) validity (``P = min(max_per_img, nms_pre)``; invalid
            rows are zeros).
        """
        cfg, iou = self.test_cfg, self.check_export()
        cls_scores, bbox_preds = self((feat, ))
        cls_score, bbox_pred = cls_scores[0], bbox_preds[0]
        num = int(cls_score.shape[0])
        priors = self.prior_generator.grid_priors(
            [cls_score.shape[-2:]], dtype=cls_score.dtype,
            device=cls_score.device)[0]
        scores = cls_score.permute(0, 2, 3, 1).reshape(
            num, -1, self.cls_out_channels)
        scores = scores.sigmoid()[..., 0] if self.use_sigmoid_cls else \
            scores.softmax(-1)[..., 0]
        deltas = bbox_pred.permute(0, 2, 3, 1).reshape(num, -1, 4)
        anchors = int(scores.shape[1])  # static: never a traced size
        nms_pre = cfg.get('nms_pre', -1)
        k = nms_pre if 0 < nms_pre < anchors else anchors
        scores, index = scores.topk(k, dim=1)
        boxes = decode_clipped(self.bbox_coder, priors[index].reshape(-1, 4),
                               gather_boxes(deltas, index).reshape(-1, 4),
                               img_shape).view(num, k, 4)
        if cfg.get('min_bbox_size', -1) >= 0:
            w = boxes[..., 2] - boxes[..., 0]
            h = boxes[..., 3] - boxes[..., 1]
            big = (w > cfg.min_bbox_size) & (h > cfg.min_bbox_size)
            scores = torch.where(big, scores, torch.full_like(scores, MASKED))
        max_num = min(cfg.max_per_img, k)
        selected = ONNXNonMaxSuppression.apply(boxes, scores[:, None],
                                               max_num, iou, THRESHOLD)
        _, index, valid = kept_topk(selected, scores, max_num)
        return gather_boxes(boxes, index) * valid[..., None], valid
