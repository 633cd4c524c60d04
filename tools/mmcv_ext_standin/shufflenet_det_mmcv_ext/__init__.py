"""Make ``import mmcv._ext`` find :mod:`shufflenet_det_mmcv_ext._ext` when mmcv has no compiled ops.

mmcv-lite is mmcv's Python code without the compiled ``mmcv._ext``; every
``mmcv.ops`` module imports that extension at import time, so ``import
mmcv.ops`` (and so ``import mmdet.models``) fails without it. The ``.pth``
file installed beside this package calls :func:`install` at interpreter
start-up, which appends :class:`StandInFinder` to ``sys.meta_path``. Appended,
not prepended: Python's own path finder runs first, so a real compiled
``mmcv/_ext*.so`` always wins and this finder only answers when none exists.

Only the standard library is imported here: this runs in every Python process
of the environment.
"""
import importlib.util
import os
import sys

EXT_NAME = 'mmcv._ext'
_EXT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), '_ext.py')


class StandInFinder:
    """A meta-path finder that maps ``mmcv._ext`` to this package's ``_ext.py``."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != EXT_NAME:
            return None
        return importlib.util.spec_from_file_location(EXT_NAME, _EXT_FILE)


def install():
    """Append the finder to ``sys.meta_path`` once (idempotent)."""
    if not any(f is StandInFinder for f in sys.meta_path):
        sys.meta_path.append(StandInFinder)


def is_stand_in(module):
    """Whether ``module`` (e.g. ``mmcv._ext``) is this stand-in rather than compiled ops."""
    return getattr(module, '__file__', None) == _EXT_FILE
