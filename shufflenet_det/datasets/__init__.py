from .transforms import *  # noqa: F401,F403
from .validated_coco import ValidatedCocoDataset

__all__ = ['ValidatedCocoDataset']
