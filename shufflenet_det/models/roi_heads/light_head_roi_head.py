"""Light-Head R-CNN head: thin PS score map, PSRoI pooling, R-CNN subnet."""
from typing import List, Tuple

import torch
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi
from mmdet.utils import ConfigType, InstanceList, OptConfigType
from torch import Tensor


@MODELS.register_module()
class LightHeadRoIHead(StandardRoIHead):
    """Light-Head R-CNN RoI head with the official top-k OHEM.

    Paper: `Light-Head R-CNN: In Defense of Two-Stage Object Detector
    <https://arxiv.org/abs/1711.07264>`_. Per image, the head computes the
    thin map ``lsc(x)`` of ``10 * 7 * 7`` channels once, pools every RoI to
    ``10 x 7 x 7`` with ``bbox_roi_extractor`` (a ``PSRoIExtractor``) and
    feeds it to ``bbox_head``, an R-CNN subnet such as mmdet's
    ``ConvFCBBoxHead(num_shared_fcs=1, fc_out_channels=2048)``: flatten 490
    -> FC 2048 + ReLU -> class scores (num_classes + 1) and class-specific
    deltas.

    R-CNN sampling. ``train_cfg.ohem_topk = k`` enables the official rule
    (``sum_ohem_loss`` in zengarden/light_head_rcnn
    ``lib/detection_opr/utils/loss_opr_without_box_weight.py``): the loss of
    every candidate RoI is computed without gradient and only the
    ``k x num_images`` hardest RoIs of the whole batch enter the loss,
    normalised by their number. RoIs are ranked by the *unweighted* sum
    cross-entropy + smooth L1 (summed over the 4 deltas); the official code
    doubles the box loss (``loss_box *= 2``) only after the selection, so
    here ``loss_cls.loss_weight`` and ``loss_bbox.loss_weight`` (2.0 in the
    configs) scale the kept RoIs' losses but never the ranking. The official code keeps all proposals plus
    the ground truth as candidates, which a ``RandomSampler`` with ``num``
    above ``max_per_img + #GT`` and ``pos_fraction=1.0`` reproduces. mmdet's
    ``OHEMSampler`` is a different rule: it ranks by classification loss
    only, and per image, keeping ``pos_fraction`` positives separately from
    negatives. Set ``ohem_topk=None`` to use plain mmdet sampling instead.

    Args:
        lsc (dict): Config of the large separable convolution
            (``LargeSeparableConv``); ``in_channels`` is filled by
            ``LightHeadRCNN`` from the backbone.
        bbox_roi_extractor (dict): Config of the PS RoI extractor. Its
            ``out_channels * output_size**2`` must equal
            ``lsc.out_channels``.
        bbox_head (dict): Config of the R-CNN subnet; its ``in_channels`` and
            ``roi_feat_size`` must match the extractor.
        train_cfg (dict, optional): ``assigner``, ``sampler``, ``pos_weight``
            and ``ohem_topk`` (int per image, or None).
        test_cfg (dict, optional): ``score_thr``, ``nms``, ``max_per_img``.
        init_cfg (dict | list[dict], optional): Default: None.
    """

    def __init__(self,
                 lsc: ConfigType,
                 bbox_roi_extractor: ConfigType,
                 bbox_head: ConfigType,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg=None) -> None:
        super().__init__(
            bbox_roi_extractor=bbox_roi_extractor,
            bbox_head=bbox_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            init_cfg=init_cfg)
        self.lsc = MODELS.build(lsc)
        self.ohem_topk = train_cfg.get('ohem_topk') if train_cfg else None
        self._check_consistency()

    def _check_consistency(self) -> None:
        """Fail at build time, naming the keys, when widths do not chain."""
        ext, head = self.bbox_roi_extractor, self.bbox_head
        kh, kw = ext.output_size
        if self.lsc.out_channels != ext.out_channels * kh * kw:
            raise ValueError(
                f'LightHeadRoIHead: lsc.out_channels={self.lsc.out_channels}'
                f' must equal bbox_roi_extractor.out_channels '
                f'({ext.out_channels}) x output_size {ext.output_size}')
        if getattr(head, 'in_channels', ext.out_channels) != ext.out_channels:
            raise ValueError(
                f'LightHeadRoIHead: bbox_head.in_channels={head.in_channels} '
                f'must equal bbox_roi_extractor.out_channels='
                f'{ext.out_channels}')
        roi_feat_size = tuple(getattr(head, 'roi_feat_size', (kh, kw)))
        if roi_feat_size != (kh, kw):
            raise ValueError(
                f'LightHeadRoIHead: bbox_head.roi_feat_size={roi_feat_size} '
                f'must equal bbox_roi_extractor output_size={(kh, kw)}')
        if self.ohem_topk is not None:
            if not isinstance(self.ohem_topk, int) or self.ohem_topk <= 0:
                raise ValueError('LightHeadRoIHead: train_cfg.ohem_topk must '
                                 'be a positive int or None, but received '
                                 f'{self.ohem_topk!r}')
            for name in ('loss_cls', 'loss_bbox'):
                weight = getattr(getattr(head, name), 'loss_weight', 1.0)
                if not weight > 0:
                    raise ValueError(
                        f'LightHeadRoIHead: train_cfg.ohem_topk ranks RoIs '
                        f'by the unweighted loss and needs bbox_head.{name}.'
                        f'loss_weight > 0, but received {weight!r}')
            if head.reg_decoded_bbox:
                raise ValueError('LightHeadRoIHead: train_cfg.ohem_topk '
                                 'ranks encoded deltas and does not support '
                                 'bbox_head.reg_decoded_bbox=True')

    def ps_score_map(self, x: Tuple[Tensor]) -> Tuple[Tensor]:
        """Apply the large separable convolution.

        Args:
            x (tuple[Tensor]): One feature map of shape (N, C, H, W), the
                backbone output selected by ``LightHeadRCNN.rcnn_in_index``.

        Returns:
            tuple[Tensor]: One map of shape (N, lsc.out_channels, H, W).
        """
        if len(x) != 1:
            raise ValueError('LightHeadRoIHead expects exactly one feature '
                             f'map, but received {len(x)}')
        return (self.lsc(x[0]), )

    def forward(self,
                x: Tuple[Tensor],
                rpn_results_list: InstanceList,
                batch_data_samples: SampleList = None) -> tuple:
        """Tensor-mode forward: ``(cls_score, bbox_pred)`` for every RoI."""
        return super().forward(self.ps_score_map(x), rpn_results_list,
                               batch_data_samples)

    def loss(self, x: Tuple[Tensor], rpn_results_list: InstanceList,
             batch_data_samples: SampleList) -> dict:
        """Assign, sample and compute ``loss_cls``, ``acc``, ``loss_bbox``."""
        return super().loss(self.ps_score_map(x), rpn_results_list,
                            batch_data_samples)

    def predict(self,
                x: Tuple[Tensor],
                rpn_results_list: InstanceList,
                batch_data_samples: SampleList,
                rescale: bool = False) -> InstanceList:
        """Detections per image, after per-class NMS (``test_cfg``)."""
        return super().predict(self.ps_score_map(x), rpn_results_list,
                               batch_data_samples, rescale=rescale)

    def bbox_loss(self, x: Tuple[Tensor],
                  sampling_results: List[SamplingResult]) -> dict:
        """Box-head loss, restricted to the hardest RoIs when OHEM is on.

        Args:
            x (tuple[Tensor]): The PS score map from :meth:`ps_score_map`.
            sampling_results (list[SamplingResult]): One per image.

        Returns:
            dict: ``cls_score`` (K, num_classes + 1), ``bbox_pred``
            (K, 4 * num_classes) and ``bbox_feats`` for the K RoIs in the loss
            (all sampled RoIs, or the kept ones under OHEM), and
            ``loss_bbox``, the dict of losses.
        """
        if not self.ohem_topk:
            return super().bbox_loss(x, sampling_results)
        rois = bbox2roi([res.priors for res in sampling_results])
        targets = self.bbox_head.get_targets(sampling_results, self.train_cfg)
        # Rank all RoIs without autograd, then run the head again on the
        # kept ones only: same gradients as back-propagating through a
        # gather of the full forward, without the backward over all RoIs.
        with torch.no_grad():
            ranked = self._bbox_forward(x, rois)
            keep = self.hardest_rois(ranked['cls_score'], ranked['bbox_pred'],
                                     *targets,
                                     self.ohem_topk * len(sampling_results))
        bbox_results = self._bbox_forward(x, rois[keep])
        loss_bbox = self.bbox_head.loss(bbox_results['cls_score'],
                                        bbox_results['bbox_pred'], rois[keep],
                                        *[t[keep] for t in targets])
        bbox_results.update(loss_bbox=loss_bbox)
        return bbox_results

    @torch.no_grad()
    def hardest_rois(self, cls_score: Tensor, bbox_pred: Tensor,
                     labels: Tensor, label_weights: Tensor,
                     bbox_targets: Tensor, bbox_weights: Tensor,
                     k: int) -> Tensor:
        """Indices of the ``k`` RoIs with the largest cls + box loss.

        The official ``sum_ohem_loss`` rule: the per-RoI cross-entropy plus
        the smooth L1 of the RoI's class deltas, both *without* the heads'
        ``loss_weight`` (the official x2 on the box loss is applied after
        the selection, by ``bbox_head.loss``).

        Args:
            cls_score (Tensor): (K, num_classes + 1).
            bbox_pred (Tensor): (K, 4 * num_classes), or (K, 4) when
                class-agnostic.
            labels (Tensor): (K, ); ``num_classes`` is background.
            label_weights (Tensor): (K, ).
            bbox_targets (Tensor): (K, 4) encoded deltas.
            bbox_weights (Tensor): (K, 4); zero for background RoIs.
            k (int): Number of RoIs to keep (clipped to K).

        Returns:
            Tensor: Long indices, shape (min(k, K), ), hardest first.
        """
        head = self.bbox_head
        # mmdet's losses multiply by loss_weight inside forward; divide it
        # out (checked > 0 at build time) to rank by the unweighted sum.
        loss = head.loss_cls(cls_score, labels, label_weights,
                             reduction_override='none') / _loss_weight(
                                 head.loss_cls)
        if not isinstance(loss, Tensor) or loss.shape != labels.shape:
            raise ValueError(
                'LightHeadRoIHead: train_cfg.ohem_topk needs a per-RoI '
                f'classification loss, but {type(head.loss_cls).__name__} '
                "with reduction 'none' did not return shape (K, )")
        pos = (labels >= 0) & (labels < head.num_classes)
        if pos.any():
            pred = bbox_pred.view(bbox_pred.size(0), -1, 4)
            pred = pred[pos, 0] if head.reg_class_agnostic else \
                pred[pos, labels[pos]]
            box = head.loss_bbox(pred, bbox_targets[pos], bbox_weights[pos],
                                 reduction_override='none')
            loss[pos] += box.sum(dim=-1) / _loss_weight(head.loss_bbox)
        return loss.topk(min(k, loss.numel())).indices

    # ---------------------------------------------------------------- export
    def check_export(self) -> None:
        """Raise ``ExportError`` unless :meth:`export_predict` can express
        this head and its ``test_cfg``."""
        self.bbox_roi_extractor.check_export()
        self.bbox_head.check_export(self.test_cfg)

    def export_predict(self, feat: Tensor, rois: Tensor, valid: Tensor,
                       img_shape: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
        """:meth:`predict` in static shapes, for export.

        Args:
            feat (Tensor): (N, C, H, W), the one R-CNN feature map.
            rois (Tensor): (N, P, 4) proposals.
            valid (Tensor): (N, P) which proposal slots are real.
            img_shape (tuple[int, int]): (H, W) boxes are clipped to.

        Returns:
            tuple[Tensor, Tensor]: ``dets`` (N, max_per_img, 5) and
            ``labels`` (N, max_per_img), see
            ``LightHeadBBoxHead.export_detections``.
        """
        score_map = self.ps_score_map((feat, ))[0]
        pooled = self.bbox_roi_extractor.forward_batched(score_map, rois)
        return self.bbox_head.export_detections(pooled, rois, valid,
                                                self.test_cfg, img_shape)


def _loss_weight(loss_module) -> float:
    """``loss_weight`` of an mmdet loss module (1.0 when it has none)."""
    return float(getattr(loss_module, 'loss_weight', 1.0))
