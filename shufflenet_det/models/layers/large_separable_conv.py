"""Large separable convolution, the "thin feature map" of Light-Head R-CNN."""
from typing import Optional, Union

import torch.nn as nn
from mmcv.cnn import build_activation_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor


@MODELS.register_module()
class LargeSeparableConv(BaseModule):
    """Two separable k x k branches, summed, producing the PS score map.

    Paper: `Light-Head R-CNN: In Defense of Two-Stage Object Detector
    <https://arxiv.org/abs/1711.07264>`_, Fig. 3 (``global_context_module`` in
    the official code). One branch is a (k x 1) then a (1 x k) convolution,
    the other a (1 x k) then a (k x 1) convolution; the two outputs are summed
    and passed through a ReLU. As in the official code, there is no
    activation between the two convolutions of a branch, every convolution
    has a bias, there is no normalisation, and weights are drawn from
    N(0, 0.01).

    Args:
        in_channels (int, optional): Channels of the backbone feature.
            ``LightHeadRCNN`` fills it from ``backbone.out_channels``; it must
            be set when the module is built on its own.
        mid_channels (int | str): C_mid, or a key of
            :attr:`mid_channel_settings`: ``'S'`` (64, the small setting used
            with every backbone of the ShuffleNet V2 paper's Table 7) or
            ``'L'`` (256, the ResNet-101 setting). Default: 'S'.
        out_channels (int): C_out = (channels per PS bin) x k_pool x k_pool;
            10 x 7 x 7 = 490 in the paper. Default: 490.
        kernel_size (int): k, odd so that the map keeps its size.
            Default: 15.
        act_cfg (dict): Activation after the sum. Default: ReLU.
        init_cfg (dict | list[dict], optional): Default: N(0, 0.01) weights,
            zero biases, for every ``Conv2d``.

    Example:
        >>> import torch
        >>> lsc = LargeSeparableConv(in_channels=464)
        >>> tuple(lsc(torch.rand(1, 464, 25, 38)).shape)
        (1, 490, 25, 38)
    """

    # C_mid per setting of the Light-Head paper (Sec. 3.2 / 4.3).
    mid_channel_settings = {'S': 64, 'L': 256}

    def __init__(self,
                 in_channels: Optional[int] = None,
                 mid_channels: Union[int, str] = 'S',
                 out_channels: int = 490,
                 kernel_size: int = 15,
                 act_cfg: dict = dict(type='ReLU'),
                 init_cfg=dict(type='Normal', layer='Conv2d', std=0.01,
                               bias=0)) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_channels, int) or in_channels <= 0:
            raise ValueError(
                'LargeSeparableConv: in_channels must be a positive int '
                '(LightHeadRCNN fills it from backbone.out_channels), but '
                f'received {in_channels!r}')
        if isinstance(mid_channels, str):
            if mid_channels not in self.mid_channel_settings:
                raise ValueError(
                    f'LargeSeparableConv: unknown mid_channels setting '
                    f'{mid_channels!r}; expected an int or one of '
                    f'{sorted(self.mid_channel_settings)}')
            mid_channels = self.mid_channel_settings[mid_channels]
        if not isinstance(kernel_size, int) or kernel_size % 2 == 0:
            raise ValueError('LargeSeparableConv: kernel_size must be an odd '
                             f'int, but received {kernel_size!r}')
        self.in_channels = in_channels
        self.mid_channels = mid_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        k, p = kernel_size, kernel_size // 2
        # Official names: "col" = [k,1] then [1,k]; "row" = [1,k] then [k,1].
        self.col = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, (k, 1), padding=(p, 0)),
            nn.Conv2d(mid_channels, out_channels, (1, k), padding=(0, p)))
        self.row = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, (1, k), padding=(0, p)),
            nn.Conv2d(mid_channels, out_channels, (k, 1), padding=(p, 0)))
        self.act = build_activation_layer(act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        """Compute the thin position-sensitive feature map.

        Args:
            x (Tensor): Shape (N, in_channels, H, W).

        Returns:
            Tensor: Shape (N, out_channels, H, W).
        """
        return self.act(self.col(x) + self.row(x))
