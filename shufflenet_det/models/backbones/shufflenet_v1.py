"""ShuffleNet v1 (Zhang et al., CVPR 2018), groups=3, as an mmdet backbone."""
from collections import OrderedDict
from typing import Dict, Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, build_activation_layer
from mmdet.registry import MODELS
from torch import Tensor

from ..layers.channel_shuffle import channel_shuffle
from .base_backbone import BaseDetBackbone


class ShuffleUnitV1(nn.Module):
    """The units of Fig. 3(a) (stride 1) and 3(b) (stride 2) of the V2 paper.

    Main branch: 1x1 group conv (compress to ``out_channels // 4``) - 3x3
    depthwise conv - channel shuffle - 1x1 group conv (expand). Stride 1 adds
    the input and applies the activation; stride 2 concatenates a 3x3/2
    average-pooled copy of the input with the activated main branch, so the
    main branch only produces ``out_channels - in_channels`` channels.

    The shuffle sits after the depthwise conv and submodules carry
    mmpretrain's ``ShuffleUnit`` names, as in megvii's and mmpretrain's
    implementations, so mmpretrain checkpoints map key for key.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels of the unit (after the concat).
        stride (int): 1 or 2.
        groups (int): Groups of the 1x1 convs.
        first_group (bool): Group the first 1x1 conv. False only for the
            first unit of stage2, whose input (the stem) is too narrow to
            split into groups.
        norm_cfg (dict): Norm layer config.
        act_cfg (dict): Activation config.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 groups: int, first_group: bool, norm_cfg: dict,
                 act_cfg: dict) -> None:
        super().__init__()
        if stride == 1 and in_channels != out_channels:
            raise ValueError('a stride-1 unit keeps its width, got '
                             f'{in_channels} -> {out_channels}')
        main_out = out_channels - in_channels if stride == 2 else out_channels
        mid = out_channels // 4
        first_groups = groups if first_group else 1
        for name, channels, g in (('in_channels', in_channels, first_groups),
                                  ('bottleneck', mid, groups),
                                  ('main-branch output', main_out, groups)):
            if channels <= 0 or channels % g:
                raise ValueError(f'ShuffleUnitV1: {name} {channels} must be '
                                 f'positive and divisible by groups={g}')
        self.stride = stride
        self.groups = groups
        self.g_conv_1x1_compress = ConvModule(
            in_channels, mid, 1, groups=first_groups, bias=False,
            norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.depthwise_conv3x3_bn = ConvModule(
            mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False,
            norm_cfg=norm_cfg, act_cfg=None)
        self.g_conv_1x1_expand = ConvModule(
            mid, main_out, 1, groups=groups, bias=False, norm_cfg=norm_cfg,
            act_cfg=None)
        self.act = build_activation_layer(act_cfg)
        if stride == 2:
            self.avgpool = nn.AvgPool2d(3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.depthwise_conv3x3_bn(self.g_conv_1x1_compress(x))
        if self.groups > 1:
            out = channel_shuffle(out, self.groups)
        out = self.g_conv_1x1_expand(out)
        if self.stride == 1:
            return self.act(out + x)
        return torch.cat((self.avgpool(x), self.act(out)), dim=1)


@MODELS.register_module()
class ShuffleNetV1(BaseDetBackbone):
    """ShuffleNet v1 backbone (groups=3), the Table 7 comparison network.

    Paper: `ShuffleNet: An Extremely Efficient Convolutional Neural Network
    for Mobile Devices <https://arxiv.org/abs/1707.01083>`_. Channel table
    from megvii-model/ShuffleNet-Series (``ShuffleNetV1/network.py``, g=3),
    which the V2 paper's Table 8 rows "ShuffleNet v1 0.5x..2x (g=3)" use.

    Multiply-adds at 224x224 with a 1000-class classifier (see
    :mod:`shufflenet_det.analysis.complexity`): 37.6 / 137.5 / 292.4 /
    524.0 M for 0.5x / 1.0x / 1.5x / 2.0x (Table 8: 38 / 140 / 292 / 524).

    Stages (``out_indices``): 0 stage2 (stride 8), 1 stage3 (stride 16),
    2 stage4 (stride 32). There is no conv5 in ShuffleNet v1.

    Args:
        arch (str | float | dict): A key of ``arch_settings`` ('0.5x',
            '1.0x', '1.5x', '2.0x'; also accepted as 0.5, 1.0, ...) or a dict
            with keys ``stem``, ``channels``, ``repeats``, ``groups``.
            Default: '1.0x'.
        out_indices (Sequence[int]): Default: (1, 2), the stride-16 map for
            the RPN and the stride-32 map for the R-CNN head.
        frozen_stages (int): -1 none, 0 stem, k stem + stages 1..k.
            Default: -1.
        norm_cfg (dict): Default: ``dict(type='BN')``.
        act_cfg (dict): Default: ``dict(type='ReLU')``.
        norm_eval (bool): Default: False.
        with_cp (bool): Default: False.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)``
            also accepts mmpretrain ShuffleNetV1 checkpoints (mmpretrain
            published 1.0x g=3 weights only).

    Example:
        >>> import torch
        >>> model = ShuffleNetV1('1.0x', out_indices=(0, 1, 2)).eval()
        >>> for f in model(torch.rand(1, 3, 224, 224)):
        ...     print(tuple(f.shape))
        (1, 240, 28, 28)
        (1, 480, 14, 14)
        (1, 960, 7, 7)
    """

    # stem: Conv1 width; channels: output width of Stage2..Stage4;
    # repeats: units per stage (the first has stride 2); groups: of the 1x1
    # convs. megvii's stage_out_channels for g=3.
    arch_settings = {
        '0.5x': dict(stem=12, channels=(120, 240, 480), repeats=(4, 8, 4), groups=3),
        '1.0x': dict(stem=24, channels=(240, 480, 960), repeats=(4, 8, 4), groups=3),
        '1.5x': dict(stem=24, channels=(360, 720, 1440), repeats=(4, 8, 4), groups=3),
        '2.0x': dict(stem=48, channels=(480, 960, 1920), repeats=(4, 8, 4), groups=3),
    }
    arch_keys = ('stem', 'channels', 'repeats', 'groups')
    imagenet_family = 'shufflenetv1-g3'

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
            lambda s, i, cin, cout, stride: ShuffleUnitV1(
                cin, cout, stride, self.arch['groups'],
                first_group=(s, i) != (0, 0), norm_cfg=norm_cfg,
                act_cfg=act_cfg),
            norm_cfg, act_cfg)
        self.stage_channels = tuple(self.arch['channels'])
        self.stage_strides = (8, 16, 32)
        self._check_contract()

    def convert_pretrained(self, state_dict: Dict[str, Tensor]
                           ) -> Dict[str, Tensor]:
        """Map mmpretrain ShuffleNetV1 keys onto ours.

        mmpretrain nests the backbone under ``backbone.`` and calls the stem
        conv ``conv1``; its ``layers.{0,1,2}`` units already use our names.
        Other keys pass through unchanged so the loader reports them by name.
        """
        out = OrderedDict()
        for key, value in state_dict.items():
            if key.startswith('backbone.'):
                key = key[len('backbone.'):]
            if key.startswith('conv1.'):
                key = 'stem.0.' + key[len('conv1.'):]
            out[key] = value
        return out
