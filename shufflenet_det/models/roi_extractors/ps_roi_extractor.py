"""Position-sensitive RoI extractor: grid-sample PSRoIAlign or torchvision's
PSRoIAlign / PSRoIPool."""
from typing import List, Optional, Sequence, Tuple

import torch.nn as nn
from mmdet.models.roi_heads.roi_extractors import BaseRoIExtractor
from mmdet.registry import MODELS
from torch import Tensor
from torch.nn.modules.utils import _pair
from torchvision import ops

from ..layers.onnx_nms import ExportError
from ..layers.ps_roi_align import GridPSRoIAlign


@MODELS.register_module()
class PSRoIExtractor(BaseRoIExtractor):
    """Pool C_out = C / (k x k) channels per RoI from one PS score map.

    mmcv has no position-sensitive RoI op, and mmdet's ``SingleRoIExtractor``
    resolves ``roi_layer.type`` in ``mmcv.ops`` only, hence this extractor.
    Bin (i, j) of output channel c is read from input channel
    ``(c * k + i) * k + j``, the layout of the official Light-Head R-CNN
    kernels.

    ``roi_layer.type``:

    - ``'GridPSRoIAlign'`` (:class:`GridPSRoIAlign`): one ``grid_sample``
      call, CPU and CUDA, with gradients, exportable to ONNX; ``mode`` and
      ``aligned`` select the official op's semantics (``'max'``, False:
      maximum of the bilinear samples of a bin, no -0.5 shift; Table 7
      configs) or torchvision's (``'avg'``, True).
    - ``'PSRoIAlign'`` / ``'PSRoIPool'``: torchvision's ops (average,
      -0.5 shift), single-threaded on the CPU.

    Args:
        roi_layer (dict): ``type`` (see above), ``output_size`` (int or
            pair) and the layer's own arguments (``sampling_ratio``,
            ``mode``, ``aligned``). ``spatial_scale`` comes from
            ``featmap_strides``. Default: ``dict(type='GridPSRoIAlign',
            output_size=7, sampling_ratio=2, mode='max', aligned=False)``.
        out_channels (int): Channels per pooled RoI, 10 in Light-Head. The
            input map must have ``out_channels * k_h * k_w`` channels.
            Default: 10.
        featmap_strides (Sequence[int], optional): The stride of the single
            input map. ``LightHeadRCNN`` fills it from
            ``backbone.out_strides``. Default: None (must then be set).
        init_cfg (dict | list[dict], optional): Default: None.

    Example:
        >>> import torch
        >>> ext = PSRoIExtractor(featmap_strides=[32])
        >>> rois = torch.tensor([[0., 0., 0., 320., 320.]])
        >>> tuple(ext((torch.rand(1, 490, 20, 20),), rois).shape)
        (1, 10, 7, 7)
    """

    roi_layer_types = {'GridPSRoIAlign': GridPSRoIAlign,
                       'PSRoIAlign': ops.PSRoIAlign,
                       'PSRoIPool': ops.PSRoIPool}

    def __init__(self,
                 roi_layer: dict = dict(
                     type='GridPSRoIAlign', output_size=7, sampling_ratio=2,
                     mode='max', aligned=False),
                 out_channels: int = 10,
                 featmap_strides: Optional[Sequence[int]] = None,
                 init_cfg=None) -> None:
        if featmap_strides is None or len(featmap_strides) != 1:
            raise ValueError(
                'PSRoIExtractor: featmap_strides must hold exactly one stride '
                '(LightHeadRCNN fills it from backbone.out_strides), but '
                f'received {featmap_strides!r}')
        super().__init__(roi_layer=roi_layer, out_channels=out_channels,
                         featmap_strides=list(featmap_strides),
                         init_cfg=init_cfg)
        self.output_size: Tuple[int, int] = self.roi_layers[0].output_size

    def build_roi_layers(self, layer_cfg: dict,
                         featmap_strides: List[int]) -> nn.ModuleList:
        """Build one PS op per stride (only one is allowed).

        ``output_size`` is stored as a tuple: mmdet reads
        ``roi_layers[0].output_size`` to size empty outputs, and torchvision
        keeps whatever it is given.
        """
        cfg = dict(layer_cfg)
        layer_type = cfg.pop('type', None)
        if layer_type not in self.roi_layer_types:
            raise ValueError(
                f'PSRoIExtractor: roi_layer.type must be one of '
                f'{sorted(self.roi_layer_types)}, but received {layer_type!r}')
        cfg['output_size'] = tuple(_pair(cfg.get('output_size', 7)))
        layer_cls = self.roi_layer_types[layer_type]
        return nn.ModuleList(
            [layer_cls(spatial_scale=1. / s, **cfg) for s in featmap_strides])

    def forward(self,
                feats: Tuple[Tensor],
                rois: Tensor,
                roi_scale_factor: Optional[float] = None) -> Tensor:
        """Pool every RoI from the PS score map.

        Args:
            feats (tuple[Tensor]): ``feats[0]`` of shape
                (N, out_channels * k_h * k_w, H, W).
            rois (Tensor): Shape (K, 5), ``[batch_idx, x1, y1, x2, y2]`` in
                input-image pixels.
            roi_scale_factor (float, optional): Scale RoIs about their
                centres before pooling.

        Returns:
            Tensor: Shape (K, out_channels, k_h, k_w); (0, out_channels, k_h,
            k_w) when K is 0.
        """
        feat = feats[0]
        expected = self.out_channels * self.output_size[0] * \
            self.output_size[1]
        if feat.size(1) != expected:
            raise ValueError(
                f'PSRoIExtractor: the score map has {feat.size(1)} channels, '
                f'but out_channels={self.out_channels} with output_size='
                f'{self.output_size} needs {expected}')
        if rois.size(0) == 0:
            return feat.new_zeros(0, self.out_channels, *self.output_size)
        if roi_scale_factor is not None:
            rois = self.roi_rescale(rois, roi_scale_factor)
        layer = self.roi_layers[0]
        # GridPSRoIAlign keeps RoIs and sampling grid in float32 (at least)
        # whatever the map's dtype; torchvision's ops need the map's dtype.
        return layer(feat, rois if isinstance(layer, GridPSRoIAlign) else
                     rois.to(feat.dtype))

    def check_export(self) -> None:
        """Raise :class:`ExportError` unless the RoI layer has a batched,
        traceable form: only ``GridPSRoIAlign`` (GridSample) has one."""
        layer = self.roi_layers[0]
        if not isinstance(layer, GridPSRoIAlign):
            raise ExportError(
                f'roi_head.bbox_roi_extractor.roi_layer is '
                f'{type(layer).__name__}: torchvision ps_roi_align/pool have '
                "no ONNX operator; use dict(type='GridPSRoIAlign', ...) "
                '(GridSample)')

    def forward_batched(self, feat: Tensor, rois: Tensor) -> Tensor:
        """Pool (N, P, 4) RoIs of each image from (N, C, H, W) ``feat`` in
        static shapes, for export: (N, P, out_channels, k_h, k_w)."""
        self.check_export()
        return self.roi_layers[0].forward_batched(feat, rois)
