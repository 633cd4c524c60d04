"""An mmpretrain ImageClassifier whose head is sized by its backbone."""
from typing import Optional

import torch.nn as nn
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS


@MODELS.register_module()
class SizedImageClassifier(ImageClassifier):
    """:class:`mmpretrain.models.ImageClassifier` for this project's backbones.

    Builds the backbone first and sets ``head.in_channels`` to the width of
    its last returned feature map (``backbone.out_channels[-1]``), the way
    :class:`~shufflenet_det.models.detectors.LightHeadRCNN` sizes its heads,
    so the ImageNet configs name a backbone width once. Everything else,
    including the checkpoint layout (``backbone.*``, ``head.fc.*``), is
    ``ImageClassifier``'s.

    Args:
        backbone (dict): A backbone with an ``out_channels`` attribute, e.g.
            ``dict(type='mmdet.ShuffleNetV2', _scope_='mmdet', ...)``.
        neck (dict, optional): A neck that keeps the channel count, such as
            ``GlobalAveragePooling``.
        head (dict, optional): A head config; an ``in_channels`` it gives
            must equal the backbone's.
        **kwargs: Other ``ImageClassifier`` arguments.

    Raises:
        ValueError: If the backbone has no ``out_channels`` or the head's
            ``in_channels`` disagrees with it.
    """

    def __init__(self, backbone: dict, neck: Optional[dict] = None,
                 head: Optional[dict] = None, **kwargs) -> None:
        if not isinstance(backbone, nn.Module):
            backbone = MODELS.build(backbone)
        channels = getattr(backbone, 'out_channels', None)
        if not channels:
            raise ValueError(f'SizedImageClassifier: backbone '
                             f'{type(backbone).__name__} has no out_channels')
        if isinstance(head, dict):
            given = head.get('in_channels')
            if given is not None and given != channels[-1]:
                raise ValueError(
                    f'SizedImageClassifier: head.in_channels={given} but '
                    f'{type(backbone).__name__} returns {channels[-1]} '
                    'channels; drop head.in_channels to size it automatically')
            head = dict(head, in_channels=channels[-1])
        super().__init__(backbone=backbone, neck=neck, head=head, **kwargs)
