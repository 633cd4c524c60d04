"""The Xception-like backbone of Light-Head R-CNN, scaled to four levels."""
from typing import Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn import (DepthwiseSeparableConvModule,
                      build_activation_layer)
from mmdet.registry import MODELS
from torch import Tensor

from .base_backbone import BaseDetBackbone


class XceptionUnit(nn.Module):
    """A bottleneck Xception unit: three 3x3 depthwise-separable convs.

    Main branch: SepConv(in -> out/4) - SepConv(out/4 -> out/4) -
    SepConv(out/4 -> out), each a linear 3x3 depthwise conv + norm followed
    by a 1x1 conv + norm (+ activation, except the last). Three stacked 3x3
    depthwise convs give the receptive field of 7 that the ShuffleNet V2
    paper credits Xception's blocks with ("7 vs. 3", §4 object detection).
    Stride 1 adds the input, then applies the activation. Stride 2 puts the
    stride on the first depthwise conv and, as ShuffleNet v1 (same authors,
    same stage layout) does, concatenates a 3x3/2 average-pooled copy of the
    input, so the main branch produces ``out_channels - in_channels``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels of the unit.
        stride (int): 1 or 2.
        norm_cfg (dict): Norm layer config.
        act_cfg (dict): Activation config.
    """

    bottleneck_ratio = 4

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 norm_cfg: dict, act_cfg: dict) -> None:
        super().__init__()
        if stride == 1 and in_channels != out_channels:
            raise ValueError('a stride-1 unit keeps its width, got '
                             f'{in_channels} -> {out_channels}')
        main_out = out_channels - in_channels if stride == 2 else out_channels
        mid = out_channels // self.bottleneck_ratio
        if main_out <= 0 or mid <= 0:
            raise ValueError('XceptionUnit: a stride-2 unit must widen, got '
                             f'{in_channels} -> {out_channels}')

        def sep(cin, cout, s, act):
            return DepthwiseSeparableConvModule(
                cin, cout, 3, stride=s, padding=1, bias=False,
                norm_cfg=norm_cfg, dw_act_cfg=None, pw_act_cfg=act)

        self.stride = stride
        self.sep1 = sep(in_channels, mid, stride, act_cfg)
        self.sep2 = sep(mid, mid, 1, act_cfg)
        self.sep3 = sep(mid, main_out, 1, None)
        self.act = build_activation_layer(act_cfg)
        if stride == 2:
            self.avgpool = nn.AvgPool2d(3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.sep3(self.sep2(self.sep1(x)))
        if self.stride == 1:
            return self.act(out + x)
        return torch.cat((self.avgpool(x), self.act(out)), dim=1)


@MODELS.register_module()
class XceptionLike(BaseDetBackbone):
    """Light-Head R-CNN's Xception-like backbone, at four complexity levels.

    Papers: `Light-Head R-CNN <https://arxiv.org/abs/1711.07264>`_ (Table 7:
    Conv1 3x3/24 stride 2, MaxPool 3x3/2, then stages of 1 stride-2 + 3 /
    1 + 7 / 1 + 3 blocks with 144 / 288 / 576 channels, 145 MFLOPs) and
    `ShuffleNet V2 <https://arxiv.org/abs/1807.11164>`_ (Table 8 rows
    "Xception 0.5x..2x (our impl.)": 40 / 145 / 305 / 525 MFLOPs).

    Neither paper describes the block. The PyTorch port the project's notes
    cite (leowangzi/LightHeadRCNN ``lib/model/faster_rcnn/xception_like.py``)
    stacks plain ReLU-SepConv-BN layers, one per "block" and with no
    shortcut; at 144/288/576 that counts 247 M multiply-adds, not 145 M, so
    it cannot be the network the papers measured. This implementation keeps
    the stem and stage layout and uses :class:`XceptionUnit`: Xception's
    three-SepConv block, with a residual shortcut and a 1/4 bottleneck in the
    style of ShuffleNet v1. At Light-Head's widths (144/288/576) it counts
    155.3 M, 7% over the paper's 145 M but 11% over the 140M level, so each
    level's widths are tuned (keeping the 1:2:4 stage ratio and the 24-channel
    stem) to land within 10% of the level:

    ======  ===============  ========  =========
    arch    widths           MACs      Table 8
    ======  ===============  ========  =========
    0.5x    64 / 128 / 256   40.5 M    40 M
    1.0x    136 / 272 / 544  140.1 M   145 M
    1.5x    208 / 416 / 832  306.8 M   305 M
    2.0x    272 / 544 / 1088 511.2 M   525 M
    ======  ===============  ========  =========

    (Multiply-adds at 224x224 with the 1000-class classifier, counted by
    :mod:`shufflenet_det.analysis.complexity`.) ``arch=dict(stem=24,
    channels=(144, 288, 576), repeats=(4, 8, 4))`` builds Light-Head's widths
    exactly.

    Stages (``out_indices``): 0 stage2 (stride 8), 1 stage3 (stride 16),
    2 stage4 (stride 32).

    Args:
        arch (str | float | dict): A key of ``arch_settings`` ('0.5x',
            '1.0x', '1.5x', '2.0x'; also accepted as 0.5, 1.0, ...) or a dict
            with keys ``stem``, ``channels``, ``repeats``. Default: '1.0x'.
        out_indices (Sequence[int]): Default: (1, 2), the stride-16 map for
            the RPN and the stride-32 map for the R-CNN head.
        frozen_stages (int): -1 none, 0 stem, k stem + stages 1..k.
            Default: -1.
        norm_cfg (dict): Default: ``dict(type='BN')``.
        act_cfg (dict): Default: ``dict(type='ReLU')``.
        norm_eval (bool): Default: False.
        with_cp (bool): Default: False.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)``
            with a checkpoint of this module (no public ImageNet weights
            exist for this network).

    Example:
        >>> import torch
        >>> model = XceptionLike('1.0x', out_indices=(0, 1, 2)).eval()
        >>> for f in model(torch.rand(1, 3, 224, 224)):
        ...     print(tuple(f.shape))
        (1, 136, 28, 28)
        (1, 272, 14, 14)
        (1, 544, 7, 7)
    """

    # stem: Conv1 width; channels: output width of Stage2..Stage4 (tuned per
    # level, see the class docstring); repeats: units per stage, the first
    # with stride 2 (Light-Head's 1+3, 1+7, 1+3).
    arch_settings = {
        '0.5x': dict(stem=24, channels=(64, 128, 256), repeats=(4, 8, 4)),
        '1.0x': dict(stem=24, channels=(136, 272, 544), repeats=(4, 8, 4)),
        '1.5x': dict(stem=24, channels=(208, 416, 832), repeats=(4, 8, 4)),
        '2.0x': dict(stem=24, channels=(272, 544, 1088), repeats=(4, 8, 4)),
    }
    arch_keys = ('stem', 'channels', 'repeats')
    imagenet_family = 'xception'

    def __init__(self,
                 arch: Union[str, float, dict] = '1.0x',
                 out_indices: Sequence[int] = (1, 2),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg=None) -> None:
        super().__init__(out_indices, frozen_stages, norm_eval, with_cp,
                         init_cfg)
        self.arch = self._resolve_arch(arch)
        self._build_stem_and_stages(
            lambda s, i, cin, cout, stride: XceptionUnit(
                cin, cout, stride, norm_cfg, act_cfg),
            norm_cfg, act_cfg)
        self.stage_channels = tuple(self.arch['channels'])
        self.stage_strides = (8, 16, 32)
        self._check_contract()

