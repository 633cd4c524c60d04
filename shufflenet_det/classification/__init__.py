"""ImageNet classification side of the project (configs/imagenet/).

Importing this subpackage needs mmpretrain and registers the pieces that
mmpretrain lacks in mmpretrain's registry. The backbones themselves stay in
mmdet's registry and are named ``mmdet.<Type>`` with ``_scope_='mmdet'`` by
the ImageNet configs, so one class serves both the classifier and the
detector, and checkpoints move between them by key prefix only.
"""
from .dropout_linear_cls_head import DropoutLinearClsHead
from .sized_image_classifier import SizedImageClassifier

__all__ = ['DropoutLinearClsHead', 'SizedImageClassifier']
