"""Light-Head R-CNN: RPN and R-CNN head on different backbone outputs."""
import copy
from typing import Tuple

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.config import ConfigDict
from torch import Tensor

from ..layers.onnx_nms import ExportError


@MODELS.register_module()
class LightHeadRCNN(TwoStageDetector):
    """Light-Head R-CNN with a backbone that returns several feature maps.

    Paper: `Light-Head R-CNN: In Defense of Two-Stage Object Detector
    <https://arxiv.org/abs/1711.07264>`_, used as the detection framework of
    ShuffleNet V2 (Ma et al., ECCV 2018, Table 7).

    mmdet's ``TwoStageDetector`` passes one feature tuple to both heads. Here
    ``rpn_in_index`` and ``rcnn_in_index`` pick, from the backbone's output
    tuple (ordered like ``backbone.out_indices``), the map that feeds the RPN
    and the map that feeds the large separable convolution + PSRoI pooling.
    Neither the ShuffleNet V2 paper nor Light-Head R-CNN's says which
    ShuffleNet output feeds which head (the official code is ResNet-101
    only). Our configs choose the RPN on the stride-16 map (stage3) and the
    head on stage4 (stride 32, no atrous convolution): with
    ``out_indices=(1, 2)`` that is ``rpn_in_index=0``, ``rcnn_in_index=1``;
    ``out_indices=(1, 3)`` puts the head on conv5 instead
    (``configs/light_head_rcnn/routing/``).

    Widths and strides are read from the built backbone
    (``backbone.out_channels`` / ``backbone.out_strides``), so a config only
    names the backbone. Left unset (absent or None), these are filled:

    - ``rpn_head.in_channels`` = ``out_channels[rpn_in_index]``
    - ``rpn_head.anchor_generator.strides`` = ``[out_strides[rpn_in_index]]``
    - ``roi_head.lsc.in_channels`` = ``out_channels[rcnn_in_index]``
    - ``roi_head.bbox_roi_extractor.featmap_strides`` =
      ``[out_strides[rcnn_in_index]]``

    Values that are set must agree with the backbone, else ``ValueError``.

    Args:
        backbone (dict): Backbone config; the built module must expose
            ``out_channels`` and ``out_strides`` (``BaseDetBackbone`` does).
        rpn_head (dict): RPN head config.
        roi_head (dict): RoI head config (``LightHeadRoIHead``).
        train_cfg (dict): ``rpn``, ``rpn_proposal`` and ``rcnn`` settings.
        test_cfg (dict): ``rpn`` and ``rcnn`` settings.
        rpn_in_index (int): Index into the backbone outputs for the RPN.
            Default: 0.
        rcnn_in_index (int): Index into the backbone outputs for the R-CNN
            head; negative values count from the end. Default: -1.
        data_preprocessor (dict, optional): ``DetDataPreprocessor`` config.
        init_cfg (dict | list[dict], optional): Default: None.
    """

    def __init__(self,
                 backbone: ConfigType,
                 rpn_head: ConfigType,
                 roi_head: ConfigType,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 rpn_in_index: int = 0,
                 rcnn_in_index: int = -1,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        if test_cfg is None or 'rpn' not in test_cfg or \
                'rcnn' not in test_cfg:
            raise ValueError('LightHeadRCNN: test_cfg must define rpn and '
                             f'rcnn, but received {test_cfg!r}')
        # The heads are sized from the built backbone, so TwoStageDetector
        # builds the backbone alone and the heads are built afterwards.
        super().__init__(backbone=backbone, train_cfg=train_cfg,
                         test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        channels, strides = self._backbone_geometry()
        self.rpn_in_index = self._check_index('rpn_in_index', rpn_in_index,
                                              len(channels))
        self.rcnn_in_index = self._check_index('rcnn_in_index',
                                               rcnn_in_index, len(channels))
        rpn_head = self._fill_rpn_head(rpn_head, channels[self.rpn_in_index],
                                       strides[self.rpn_in_index])
        roi_head = self._fill_roi_head(roi_head,
                                       channels[self.rcnn_in_index],
                                       strides[self.rcnn_in_index])
        rpn_head.update(train_cfg=train_cfg.rpn if train_cfg else None,
                        test_cfg=test_cfg.rpn)
        self.rpn_head = MODELS.build(rpn_head)
        roi_head.update(train_cfg=train_cfg.rcnn if train_cfg else None,
                        test_cfg=test_cfg.rcnn)
        self.roi_head = MODELS.build(roi_head)

    # ------------------------------------------------------------ building
    def _backbone_geometry(self) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        channels = getattr(self.backbone, 'out_channels', None)
        strides = getattr(self.backbone, 'out_strides', None)
        if channels is None or strides is None:
            raise ValueError(
                f'LightHeadRCNN: backbone {type(self.backbone).__name__} must '
                'expose out_channels and out_strides (subclass '
                'shufflenet_det BaseDetBackbone)')
        return tuple(channels), tuple(strides)

    @staticmethod
    def _check_index(name: str, index: int, num_outputs: int) -> int:
        if not isinstance(index, int) or \
                not -num_outputs <= index < num_outputs:
            raise ValueError(
                f'LightHeadRCNN: {name}={index!r} is out of range for a '
                f'backbone with {num_outputs} outputs (check '
                'backbone.out_indices)')
        return index % num_outputs

    @staticmethod
    def _fill(cfg: dict, key: str, value, where: str) -> None:
        """Set ``cfg[key]`` when unset; otherwise require it to agree."""
        if cfg.get(key) is None:
            cfg[key] = value
            return
        given = cfg[key]
        if isinstance(given, (list, tuple)):
            given = list(given)
        if given != value:
            raise ValueError(
                f'LightHeadRCNN: {where}.{key}={cfg[key]!r} disagrees with '
                f'the backbone ({value!r}); leave it unset to derive it')

    def _fill_rpn_head(self, rpn_head: ConfigType, channels: int,
                       stride: int) -> ConfigDict:
        rpn_head = ConfigDict(copy.deepcopy(rpn_head))
        self._fill(rpn_head, 'in_channels', channels, 'rpn_head')
        if rpn_head.get('anchor_generator') is not None:
            self._fill(rpn_head.anchor_generator, 'strides', [stride],
                       'rpn_head.anchor_generator')
        self._fill(rpn_head, 'num_classes', 1, 'rpn_head')
        return rpn_head

    def _fill_roi_head(self, roi_head: ConfigType, channels: int,
                       stride: int) -> ConfigDict:
        roi_head = ConfigDict(copy.deepcopy(roi_head))
        if roi_head.get('lsc') is not None:
            self._fill(roi_head.lsc, 'in_channels', channels, 'roi_head.lsc')
        extractor = roi_head.get('bbox_roi_extractor')
        if extractor is not None:
            self._fill(extractor, 'featmap_strides', [stride],
                       'roi_head.bbox_roi_extractor')
        return roi_head

    # ------------------------------------------------------------- routing
    def _split(self, x: Tuple[Tensor]) -> Tuple[Tuple[Tensor], Tuple[Tensor]]:
        """(RPN input, R-CNN input), each a one-map tuple."""
        return (x[self.rpn_in_index], ), (x[self.rcnn_in_index], )

    def _proposals(self, rpn_x: Tuple[Tensor],
                   batch_data_samples: SampleList) -> list:
        if batch_data_samples[0].get('proposals', None) is not None:
            return [s.proposals for s in batch_data_samples]
        return self.rpn_head.predict(rpn_x, batch_data_samples,
                                     rescale=False)

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: SampleList) -> tuple:
        """Tensor mode: ``((cls_score, bbox_pred), )`` for all proposals."""
        rpn_x, rcnn_x = self._split(self.extract_feat(batch_inputs))
        proposals = self._proposals(rpn_x, batch_data_samples)
        return (self.roi_head.forward(rcnn_x, proposals,
                                      batch_data_samples), )

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> dict:
        """RPN losses (``loss_rpn_cls``, ``loss_rpn_bbox``) + R-CNN losses.

        Args:
            batch_inputs (Tensor): Images, shape (N, 3, H, W).
            batch_data_samples (list[DetDataSample]): With ``gt_instances``.

        Returns:
            dict[str, Tensor]: Loss components.
        """
        rpn_x, rcnn_x = self._split(self.extract_feat(batch_inputs))
        proposal_cfg = self.train_cfg.get('rpn_proposal', self.test_cfg.rpn)
        rpn_data_samples = copy.deepcopy(batch_data_samples)
        for data_sample in rpn_data_samples:
            # The RPN is class-agnostic: every object is class 0.
            data_sample.gt_instances.labels = torch.zeros_like(
                data_sample.gt_instances.labels)
        rpn_losses, proposals = self.rpn_head.loss_and_predict(
            rpn_x, rpn_data_samples, proposal_cfg=proposal_cfg)
        losses = {(f'rpn_{k}' if 'loss' in k and 'rpn' not in k else k): v
                  for k, v in rpn_losses.items()}
        losses.update(
            self.roi_head.loss(rcnn_x, proposals, batch_data_samples))
        return losses

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Detect: ``pred_instances`` with ``bboxes`` (n, 4), ``scores`` (n,)
        and ``labels`` (n,) per image, n <= ``test_cfg.rcnn.max_per_img``."""
        rpn_x, rcnn_x = self._split(self.extract_feat(batch_inputs))
        proposals = self._proposals(rpn_x, batch_data_samples)
        results = self.roi_head.predict(rcnn_x, proposals, batch_data_samples,
                                        rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    # ---------------------------------------------------------------- export
    def check_export(self) -> None:
        """Raise ``ExportError`` unless :meth:`export_forward` can express
        this detector: every component has an export method and a config
        it can express in static shapes."""
        for name in ('data_preprocessor', 'rpn_head', 'roi_head'):
            part = getattr(self, name)
            method = 'export_forward' if name == 'data_preprocessor' else \
                'check_export'
            if not hasattr(part, method):
                raise ExportError(f'{name} is {type(part).__name__}, which '
                                  f'has no {method}(): export needs this '
                                  "package's Light-Head components")
        self.rpn_head.check_export()
        self.roi_head.check_export()

    def export_forward(self, inputs: Tensor, img_shape: Tuple[int, int]
                       ) -> Tuple[Tensor, Tensor]:
        """``test_step`` on a stacked batch in static shapes, for export.

        Args:
            inputs (Tensor): (N, 3, H, W) float BGR pixels 0..255; every
                image's ``img_shape`` is ``img_shape`` (mmdeploy's
                static-shape convention).
            img_shape (tuple[int, int]): (H, W).

        Returns:
            tuple[Tensor, Tensor]: ``dets`` (N, max_per_img, 5) ``x1, y1,
            x2, y2, score`` in input pixels, by decreasing score, and
            ``labels`` (N, max_per_img) int64 (padding: score 0, label -1).
        """
        feats = self.extract_feat(self.data_preprocessor.export_forward(
            inputs))
        rois, valid = self.rpn_head.export_proposals(
            feats[self.rpn_in_index], img_shape)
        return self.roi_head.export_predict(feats[self.rcnn_in_index], rois,
                                            valid, img_shape)
