"""ShuffleNet V2 and V2* (Ma et al., ECCV 2018) as an mmdet backbone."""
import re
from collections import OrderedDict
from typing import Dict, Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS
from torch import Tensor

from ..layers.channel_shuffle import interleave
from .base_backbone import BaseDetBackbone


def _dw(channels: int, stride: int, norm_cfg: dict) -> ConvModule:
    """3x3 depthwise conv + norm, no activation (linear, as in the paper)."""
    return ConvModule(channels, channels, 3, stride=stride, padding=1,
                      groups=channels, bias=False, norm_cfg=norm_cfg,
                      act_cfg=None)


def _pw(in_channels: int, out_channels: int, norm_cfg: dict,
        act_cfg: dict) -> ConvModule:
    return ConvModule(in_channels, out_channels, 1, bias=False,
                      norm_cfg=norm_cfg, act_cfg=act_cfg)


class ShuffleUnitV2(nn.Module):
    """The units of Fig. 3(c) (stride 1) and 3(d) (stride 2), torchvision layout.

    Stride 1: split channels in half, run ``branch2`` (1x1 - dw3x3 - 1x1) on
    the second half, concatenate with the untouched first half, shuffle.
    Stride 2: no split; ``branch1`` (dw3x3/2 - 1x1) and ``branch2`` both see
    the whole input and each produce half of the output.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels (even).
        stride (int): 1 or 2.
        extra_dw (bool): ShuffleNet V2*: a 3x3 depthwise conv + norm before the
            first pointwise conv of the main branch, enlarging the receptive
            field (paper §4, object detection).
        norm_cfg (dict): Norm layer config.
        act_cfg (dict): Activation config.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 extra_dw: bool, norm_cfg: dict, act_cfg: dict) -> None:
        super().__init__()
        if stride == 1 and in_channels != out_channels:
            raise ValueError('a stride-1 unit keeps its width, got '
                             f'{in_channels} -> {out_channels}')
        self.stride = stride
        mid = out_channels // 2
        branch2_in = in_channels if stride == 2 else mid
        if stride == 2:
            self.branch1 = nn.Sequential(
                _dw(in_channels, 2, norm_cfg),
                _pw(in_channels, mid, norm_cfg, act_cfg))
        # V2* keeps its extra conv apart from ``branch2`` so that V2 ImageNet
        # weights load into V2* with only these layers reported missing.
        self.extra_dw = _dw(branch2_in, 1, norm_cfg) if extra_dw else None
        self.branch2 = nn.Sequential(
            _pw(branch2_in, mid, norm_cfg, act_cfg),
            _dw(mid, stride, norm_cfg),
            _pw(mid, mid, norm_cfg, act_cfg))

    def _main(self, x: Tensor) -> Tensor:
        if self.extra_dw is not None:
            x = self.extra_dw(x)
        return self.branch2(x)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H / stride, W / stride)."""
        if self.stride == 1:
            # Slicing rather than chunk: exports to ONNX/TensorRT as plain Slice.
            half = x.shape[1] // 2
            return interleave(x[:, :half], self._main(x[:, half:]))
        # concat + channel shuffle (groups=2) in one copy.
        return interleave(self.branch1(x), self._main(x))

    def reset_extra_dw(self) -> None:
        """Make the V2* extra depthwise conv + BN compute the identity.

        Centre tap 1, other taps 0; BN with mean 0, variance ``1 - eps``
        (so that ``sqrt(var + eps) = 1``), weight 1, bias 0. A V2* unit then
        computes exactly its V2 twin, so V2 ImageNet weights give V2's
        features at the first step instead of features scrambled by random
        frozen layers.
        """
        if self.extra_dw is None:
            return
        conv, bn = self.extra_dw.conv, self.extra_dw.norm
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[:, :, conv.kernel_size[0] // 2,
                        conv.kernel_size[1] // 2] = 1.0
            if conv.bias is not None:
                conv.bias.zero_()
            if bn is not None:
                bn.weight.fill_(1.0)
                bn.bias.zero_()
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)


@MODELS.register_module()
class ShuffleNetV2(BaseDetBackbone):
    """ShuffleNet V2 backbone, with the V2* detection variant.

    Paper: `ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
    Design <https://arxiv.org/abs/1807.11164>`_, Table 5.

    Stages (``out_indices``): 0 stage2 (stride 8), 1 stage3 (stride 16),
    2 stage4 (stride 32), 3 conv5 (stride 32).

    Args:
        arch (str | dict): A key of ``arch_settings`` ('0.5x', '1.0x',
            '1.5x', '2.0x'; also accepted as 0.5, 1.0, ...) or a dict with
            keys ``stem``, ``channels``, ``repeats``, ``conv5``.
        extra_dw (bool): Build ShuffleNet V2* (see :class:`ShuffleUnitV2`).
            Default: False.
        out_indices (Sequence[int]): Default: (1, 2).
        frozen_stages (int): -1 none, 0 stem, k stem + stages 1..k.
            Default: -1.
        norm_cfg (dict): Default: ``dict(type='BN')``.
        act_cfg (dict): Default: ``dict(type='ReLU')``.
        norm_eval (bool): Default: False.
        with_cp (bool): Default: False.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)``
            accepts torchvision ``shufflenet_v2_x*`` state dicts and
            mmpretrain ShuffleNetV2 checkpoints (converted on the fly).

    Example:
        >>> import torch
        >>> model = ShuffleNetV2('1.0x', out_indices=(0, 1, 2, 3)).eval()
        >>> for f in model(torch.rand(1, 3, 224, 224)):
        ...     print(tuple(f.shape))
        (1, 116, 28, 28)
        (1, 232, 14, 14)
        (1, 464, 7, 7)
        (1, 1024, 7, 7)
    """

    # stem: Conv1 width; channels: output width of Stage2..Stage4;
    # repeats: units per stage (the first has stride 2); conv5: Conv5 width.
    arch_settings = {
        '0.5x': dict(stem=24, channels=(48, 96, 192), repeats=(4, 8, 4), conv5=1024),
        '1.0x': dict(stem=24, channels=(116, 232, 464), repeats=(4, 8, 4), conv5=1024),
        '1.5x': dict(stem=24, channels=(176, 352, 704), repeats=(4, 8, 4), conv5=1024),
        '2.0x': dict(stem=24, channels=(244, 488, 976), repeats=(4, 8, 4), conv5=2048),
    }
    arch_keys = ('stem', 'channels', 'repeats', 'conv5')
    imagenet_family = 'shufflenetv2'

    @classmethod
    def imagenet_family_of(cls, backbone_cfg: dict) -> str:
        """'shufflenetv2star' for V2* (``extra_dw=True``)."""
        return 'shufflenetv2star' if backbone_cfg.get('extra_dw') else \
            cls.imagenet_family

    def __init__(self,
                 arch: Union[str, float, dict] = '1.0x',
                 extra_dw: bool = False,
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
        in_ch = self._build_stem_and_stages(
            lambda s, i, cin, cout, stride: ShuffleUnitV2(
                cin, cout, stride, extra_dw, norm_cfg, act_cfg),
            norm_cfg, act_cfg)
        self.layers.append(_pw(in_ch, self.arch['conv5'], norm_cfg, act_cfg))
        self.stage_channels = (*self.arch['channels'], self.arch['conv5'])
        self.stage_strides = (8, 16, 32, 32)
        self._check_contract()
        for unit in self._units_with_extra_dw():
            unit.reset_extra_dw()

    def own_cfg(self) -> dict:
        """As the base class's, plus ``extra_dw`` (V2 or V2*)."""
        return dict(super().own_cfg(),
                    extra_dw=bool(self._units_with_extra_dw()))

    def _units_with_extra_dw(self):
        return [m for m in self.modules()
                if isinstance(m, ShuffleUnitV2) and m.extra_dw is not None]

    def init_weights(self) -> None:
        """Initialise or load as every backbone does; then every V2* extra
        depthwise conv that the checkpoint did not provide starts as the
        identity (:meth:`ShuffleUnitV2.reset_extra_dw`)."""
        super().init_weights()
        loaded = getattr(self, 'loaded_keys', set())
        for name, unit in self.named_modules():
            if isinstance(unit, ShuffleUnitV2) and unit.extra_dw is not None \
                    and f'{name}.extra_dw.conv.weight' not in loaded:
                unit.reset_extra_dw()

    def _freeze_stages(self) -> None:
        """Freeze as every backbone does, except V2*'s extra depthwise convs.

        They are not in any ImageNet V2 checkpoint: frozen, they would stay
        at their initial value for the whole training. Their BN follows
        ``norm_cfg`` / ``norm_eval`` like any other.
        """
        super()._freeze_stages()
        for unit in self._units_with_extra_dw():
            for param in unit.extra_dw.conv.parameters():
                param.requires_grad = True

    # torchvision: conv1.{0,1} / stageK.N.branchB.{i} / conv5.{0,1};
    # Sequential indices of (conv, bn) pairs map to ConvModule (.conv, .bn).
    _TV_BRANCH = {'branch1': {0: '0.conv', 1: '0.bn', 2: '1.conv', 3: '1.bn'},
                  'branch2': {0: '0.conv', 1: '0.bn', 3: '1.conv', 4: '1.bn',
                              5: '2.conv', 6: '2.bn'}}

    def convert_pretrained(self, state_dict: Dict[str, Tensor]
                           ) -> Dict[str, Tensor]:
        """Map torchvision or mmpretrain ShuffleNetV2 keys onto ours.

        Keys that match neither layout are passed through unchanged, so the
        loader reports them by name instead of dropping them.
        """
        out = OrderedDict()
        for key, value in state_dict.items():
            # mmpretrain classifiers nest the backbone under 'backbone.'.
            if key.startswith('backbone.'):
                key = key[len('backbone.'):]
            out[self._convert_key(key)] = value
        return out

    def _convert_key(self, key: str) -> str:
        m = re.fullmatch(r'conv1\.(0|1|conv|bn)\.(.+)', key)
        if m:
            part = {'0': 'conv', '1': 'bn'}.get(m[1], m[1])
            return f'stem.0.{part}.{m[2]}'
        m = re.fullmatch(r'conv5\.(0|1)\.(.+)', key)  # torchvision
        if m:
            return f'layers.3.{("conv", "bn")[int(m[1])]}.{m[2]}'
        m = re.fullmatch(r'stage([234])\.(\d+)\.(branch[12])\.(\d+)\.(.+)', key)
        if m and int(m[4]) in self._TV_BRANCH[m[3]]:
            sub = self._TV_BRANCH[m[3]][int(m[4])]
            return f'layers.{int(m[1]) - 2}.{m[2]}.{m[3]}.{sub}.{m[5]}'
        # mmpretrain already uses layers.{0..3} and ConvModule names.
        return key
