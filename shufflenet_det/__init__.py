"""shufflenet_det: ShuffleNet V2 detection experiments on MMDetection 3.x.

Importing this package registers every component in mmdet's registries and
makes mmengine checkpoints resumable under torch>=2.6 (see :mod:`.compat`).
"""
from . import models  # noqa: F401
from . import datasets, engine, evaluation  # noqa: F401
from .compat import register_checkpoint_safe_globals

register_checkpoint_safe_globals()

__version__ = '0.1.0'
