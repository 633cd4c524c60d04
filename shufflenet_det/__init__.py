"""shufflenet_det: ShuffleNet V2 detection experiments on MMDetection 3.x.

Importing this package registers every component in mmdet's registries.
"""
from . import models  # noqa: F401

__version__ = '0.1.0'
