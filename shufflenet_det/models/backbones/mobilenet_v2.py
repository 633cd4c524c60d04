"""MobileNet v2 (Sandler et al., CVPR 2018) on the shared backbone contract."""
import math
import re
from collections import OrderedDict
from itertools import accumulate
from typing import Dict, Sequence

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmdet.models.layers import InvertedResidual
from mmdet.models.utils import make_divisible
from mmdet.registry import MODELS
from torch import Tensor

from .base_backbone import BaseDetBackbone


@MODELS.register_module()
class MobileNetV2Det(BaseDetBackbone):
    """MobileNet v2 backbone, the Table 7 comparison network.

    Paper: `MobileNetV2: Inverted Residuals and Linear Bottlenecks
    <https://arxiv.org/abs/1801.04381>`_. Registered as ``MobileNetV2Det``
    because mmdet already registers its own ``MobileNetV2``, which does not
    share :class:`BaseDetBackbone`'s contract (``out_channels``, one freezing
    and ``norm_eval`` code path). The blocks are mmdet's
    :class:`~mmdet.models.layers.InvertedResidual`.

    Channel rules (``channel_rule``, a key of :attr:`channel_rules`): how a
    width ``c`` of ``arch_settings`` becomes a channel count at
    ``widen_factor = w``.

    - ``'torchvision'`` (default): the torchvision / mmpretrain / original
      paper rule, ``make_divisible(c * w, 8)`` (nearest multiple of 8, never
      below 90% of ``c * w``) for every layer, final 1x1 conv
      ``1280 * max(1, w)``. ``widen_factor=1.0`` loads torchvision's
      ``mobilenet_v2`` weights.
    - ``'table8'``: a reconstruction of the ShuffleNet V2 paper's own
      MobileNet v2 ("our impl." in its Table 8, code unpublished): ``c * w``
      rounded *up* to a multiple of 4, the first bottleneck group keeps its
      16 channels, and the final 1x1 conv is ``1280 * w`` also below 1 (the
      TF-slim default without ``finegrain_classification_mode``). It is the
      rule, among those tried (divisors 1-16; nearest / floor / ceil /
      torchvision rounding; minimum widths; stem, first group and final
      conv scaled or not), that reproduces three of Table 8's four numbers.
      At 1.0 it builds exactly torchvision's network.

    Multiply-adds at 224x224 with the 1000-class classifier
    (:mod:`shufflenet_det.analysis.complexity`) beside Table 8's "our impl."
    rows:

    =====  ===========  =========  ================  =================
    w      torchvision  table8     Table 8           Table 7 config
    =====  ===========  =========  ================  =================
    0.15   30.6 M       38.6 M     39 M              ``'table8'``
    0.6    151.0 M      141.1 M    141 M             ``'table8'``
    1.0    300.8 M      300.8 M    301 M             ``'torchvision'``
    1.4    582.2 M      572.4 M    587 M             ``'torchvision'``
    =====  ===========  =========  ================  =================

    No rule tried gives 587 M at 1.4 together with 301 M at 1.0; each Table
    7 config uses the rule closer to its Table 8 row (at 1.4 torchvision's,
    which is also the original paper's 1.4 network, reported there as
    585 M).

    Stages (``out_indices``), as in mmdet's MobileNetV2: 0..6 are the seven
    inverted-residual groups of ``arch_settings`` (strides 2, 4, 8, 16, 16,
    32, 32), 7 the final 1x1 conv (stride 32).

    Args:
        widen_factor (float): Width multiplier. Default: 1.0.
        channel_rule (str): Key of :attr:`channel_rules`. Default:
            ``'torchvision'``.
        out_indices (Sequence[int]): Default: (4, 6), the last stride-16 group
            (96 * widen_factor channels) for the RPN and the last stride-32
            group (320 * widen_factor) for the R-CNN head, mirroring
            ShuffleNetV2's default that leaves out its final 1x1 conv.
        frozen_stages (int): -1 none, 0 stem, k stem + groups 1..k.
            Default: -1.
        norm_cfg (dict): Default: ``dict(type='BN')``.
        act_cfg (dict): Default: ``dict(type='ReLU6')``.
        norm_eval (bool): Default: False.
        with_cp (bool): Default: False.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)``
            accepts torchvision ``mobilenet_v2`` state dicts and mmpretrain
            MobileNetV2 checkpoints (converted on the fly).

    Example:
        >>> import torch
        >>> model = MobileNetV2Det(1.0, out_indices=(2, 4, 6, 7)).eval()
        >>> for f in model(torch.rand(1, 3, 224, 224)):
        ...     print(tuple(f.shape))
        (1, 32, 28, 28)
        (1, 96, 14, 14)
        (1, 320, 7, 7)
        (1, 1280, 7, 7)
        >>> MobileNetV2Det(0.15, channel_rule='table8',
        ...                out_indices=(7, )).stage_channels
        (16, 4, 8, 12, 16, 24, 48, 192)
    """

    # expand_ratio, channels (at widen_factor 1), blocks, stride of the first
    # block; one row per inverted-residual group (Table 2 of the paper).
    arch_settings = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2],
                     [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                     [6, 320, 1, 1]]
    stem_channels = 32
    last_channels = 1280
    #: ``channel_rule`` -> divisor and rounding of ``c * w`` ('nearest':
    #: mmdet's ``make_divisible``, never below 90%; 'ceil': round up),
    #: whether the first group (16 channels) is scaled, and the lower bound
    #: of the final conv's factor (1280 * max(w, last_min_factor)).
    channel_rules = {
        'torchvision': dict(divisor=8, rounding='nearest',
                            scale_first_group=True, last_min_factor=1.0),
        'table8': dict(divisor=4, rounding='ceil', scale_first_group=False,
                       last_min_factor=0.0),
    }
    imagenet_family = 'mobilenetv2'
    width_arg = 'widen_factor'

    _roundings = {
        'nearest': make_divisible,
        'ceil': lambda value, divisor: max(
            divisor, math.ceil(value / divisor - 1e-9) * divisor),
    }

    def __init__(self,
                 widen_factor: float = 1.0,
                 channel_rule: str = 'torchvision',
                 out_indices: Sequence[int] = (4, 6),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU6'),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg=None) -> None:
        super().__init__(out_indices, frozen_stages, norm_eval, with_cp,
                         init_cfg)
        if isinstance(widen_factor, bool) or not isinstance(
                widen_factor, (int, float)) or widen_factor <= 0:
            raise ValueError('MobileNetV2Det: widen_factor must be a positive '
                             f'number. But received {widen_factor!r}')
        if channel_rule not in self.channel_rules:
            raise ValueError('MobileNetV2Det: channel_rule must be one of '
                             f'{sorted(self.channel_rules)}. But received '
                             f'{channel_rule!r}')
        self.widen_factor = widen_factor
        self.channel_rule = channel_rule
        rule = self.channel_rules[channel_rule]
        rounding = self._roundings[rule['rounding']]

        def width(channels: int, factor: float = widen_factor) -> int:
            return rounding(channels * factor, rule['divisor'])

        in_ch = width(self.stem_channels)
        self.stem = ConvModule(3, in_ch, 3, stride=2, padding=1, bias=False,
                               norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.layers = nn.ModuleList()
        channels, strides, stride = [], [], 2
        for g, (expand_ratio, ch, blocks, first_stride) in enumerate(
                self.arch_settings):
            out_ch = width(ch) if g or rule['scale_first_group'] else ch
            group = []
            for i in range(blocks):
                group.append(InvertedResidual(
                    in_ch, out_ch,
                    mid_channels=int(round(in_ch * expand_ratio)),
                    stride=first_stride if i == 0 else 1,
                    with_expand_conv=expand_ratio != 1, norm_cfg=norm_cfg,
                    act_cfg=act_cfg))
                in_ch = out_ch
            self.layers.append(nn.Sequential(*group))
            stride *= first_stride
            channels.append(out_ch)
            strides.append(stride)
        last = width(self.last_channels,
                     max(rule['last_min_factor'], widen_factor))
        self.layers.append(ConvModule(in_ch, last, 1, bias=False,
                                      norm_cfg=norm_cfg, act_cfg=act_cfg))
        self.stage_channels = (*channels, last)
        self.stage_strides = (*strides, stride)
        self._check_contract()

    # ---------------------------------------------------------- pretrained
    def _block_index(self):
        """torchvision ``features.k`` (k = 1..17) -> (group, block)."""
        ends = list(accumulate(row[2] for row in self.arch_settings))
        index = {}
        for g, end in enumerate(ends):
            for b in range(self.arch_settings[g][2]):
                index[end - self.arch_settings[g][2] + b + 1] = (g, b)
        return index

    def convert_pretrained(self, state_dict: Dict[str, Tensor]
                           ) -> Dict[str, Tensor]:
        """Map torchvision or mmpretrain MobileNetV2 keys onto ours.

        Keys that match neither layout pass through unchanged, so the loader
        reports them by name instead of dropping them.
        """
        blocks = self._block_index()
        last = len(blocks) + 1
        out = OrderedDict()
        for key, value in state_dict.items():
            if key.startswith('backbone.'):
                key = key[len('backbone.'):]
            out[self._convert_key(key, blocks, last)] = value
        return out

    def _convert_key(self, key: str, blocks: dict, last: int) -> str:
        # torchvision: features.0 stem, features.1..17 blocks, features.18
        # last conv, each a Sequential of (conv, bn[, act]).
        m = re.fullmatch(r'features\.(\d+)\.([01])\.(.+)', key)
        if m and int(m[1]) in (0, last):
            where = 'stem' if m[1] == '0' else f'layers.{len(self.stage_channels) - 1}'
            return f'{where}.{("conv", "bn")[int(m[2])]}.{m[3]}'
        m = re.fullmatch(r'features\.(\d+)\.conv\.(\d+)\.(?:(\d)\.)?(.+)', key)
        if m and int(m[1]) in blocks:
            g, b = blocks[int(m[1])]
            names = self._block_names(g)
            # Blocks are (expand?) ConvBNReLU..., then a bare conv and a bare
            # BN for the linear projection.
            pos, sub = int(m[2]), m[3]
            n_act = len(names) - 1
            if pos < n_act and sub is not None:
                part = f'{names[pos]}.{("conv", "bn")[int(sub)]}'
            elif pos >= n_act and sub is None:
                part = f'linear_conv.{("conv", "bn")[pos - n_act]}'
            else:
                return key
            return f'layers.{g}.{b}.{part}.{m[4]}'
        # mmpretrain: conv1 / layer{1..7}.{b}.conv.{i}.{conv,bn} / conv2.
        if key.startswith('conv1.'):
            return 'stem.' + key[len('conv1.'):]
        if key.startswith('conv2.'):
            return f'layers.{len(self.stage_channels) - 1}.' + key[len('conv2.'):]
        m = re.fullmatch(r'layer(\d)\.(\d+)\.conv\.(\d)\.(.+)', key)
        if m and 1 <= int(m[1]) <= len(self.arch_settings):
            g = int(m[1]) - 1
            names = self._block_names(g)
            if int(m[3]) < len(names):
                return f'layers.{g}.{m[2]}.{names[int(m[3])]}.{m[4]}'
        return key

    def _block_names(self, group: int):
        expand = self.arch_settings[group][0] != 1
        return (('expand_conv', ) if expand else ()) + ('depthwise_conv',
                                                       'linear_conv')
