from .base_backbone import BaseDetBackbone
from .shufflenet_v2 import ShuffleNetV2
from .shufflenet_v1 import ShuffleNetV1
from .mobilenet_v2 import MobileNetV2Det
from .xception_like import XceptionLike

__all__ = ['BaseDetBackbone', 'ShuffleNetV2', 'ShuffleNetV1', 'MobileNetV2Det',
           'XceptionLike']
