from .base_backbone import BaseDetBackbone
from .shufflenet_v2 import ShuffleNetV2

__all__ = ['BaseDetBackbone', 'ShuffleNetV2']
