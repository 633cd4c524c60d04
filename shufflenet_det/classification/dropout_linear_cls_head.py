"""mmpretrain's linear classifier head with dropout before the FC layer."""
from typing import Tuple

import torch.nn as nn
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class DropoutLinearClsHead(LinearClsHead):
    """:class:`mmpretrain.models.heads.LinearClsHead` with dropout.

    megvii's ShuffleNet V2 2.0x classifier (ShuffleNet-Series,
    ``ShuffleNetV2/network.py``) applies ``Dropout(0.2)`` to the pooled
    feature before its FC layer; mmpretrain's linear head has no dropout.
    Only :meth:`pre_logits`, mmpretrain's public hook, changes, so the loss,
    prediction and checkpoint keys (``head.fc.*``) are those of
    ``LinearClsHead``.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the pooled feature.
        dropout_ratio (float): Probability of zeroing an element, in
            [0, 1). Default: 0.2.
        **kwargs: Other arguments of ``LinearClsHead`` (``loss``, ``topk``,
            ``init_cfg``...).
    """

    def __init__(self, num_classes: int, in_channels: int,
                 dropout_ratio: float = 0.2, **kwargs) -> None:
        super().__init__(num_classes, in_channels, **kwargs)
        if not 0 <= dropout_ratio < 1:
            raise ValueError('DropoutLinearClsHead: dropout_ratio must be in '
                             f'[0, 1). But received {dropout_ratio!r}')
        self.dropout = nn.Dropout(p=dropout_ratio)

    def pre_logits(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """Dropout on the last feature, shape (N, in_channels)."""
        return self.dropout(feats[-1])
