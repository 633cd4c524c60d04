"""Make mmengine 0.10.7 checkpoints loadable under torch>=2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7
calls ``torch.load`` without the argument, and its training checkpoints hold
more than tensors: the ``MessageHub`` state (``HistoryBuffer`` objects
wrapping numpy arrays) and numpy scalars in ``meta``. Resuming therefore
fails with ``UnpicklingError: Weights only load failed ... Unsupported global:
GLOBAL mmengine.logging.history_buffer.HistoryBuffer`` (mmengine#1655; fixed
on mmengine main by PR #1670, unreleased).

Rather than switching the restricted unpickler off (``weights_only=False``
would execute arbitrary pickled code from any checkpoint, including
downloaded ones), :func:`register_checkpoint_safe_globals` adds exactly the
classes mmengine writes to torch's allow-list. ``HistoryBuffer`` pickles its
statistics methods as ``getattr(HistoryBuffer, 'mean')``; instead of allowing
the builtin ``getattr``, the name ``builtins.getattr`` is bound to
:func:`history_buffer_getattr`, which resolves only those methods. It runs when
``shufflenet_det`` is imported, which every config does through
``custom_imports``, so ``--resume`` works with our tools and with mmdet's.
"""
import pickle
from typing import List

import numpy as np
import torch


def history_buffer_getattr(obj: object, name: str) -> object:
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods.

    Args:
        obj (object): Must be ``mmengine.logging.HistoryBuffer``.
        name (str): A statistics method (``min``, ``max``, ``current``,
            ``mean`` or one added by ``HistoryBuffer.register_statistics``).

    Returns:
        object: ``getattr(obj, name)``.

    Raises:
        pickle.UnpicklingError: For any other object or name.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed = {'min', 'max', 'current', 'mean',
               *HistoryBuffer._statistics_methods}
    if obj is not HistoryBuffer or name not in allowed:
        raise pickle.UnpicklingError(
            f'shufflenet_det.compat: refusing getattr({obj!r}, {name!r}) '
            'while loading a checkpoint; only HistoryBuffer statistics '
            f'methods {sorted(allowed)} are allowed')
    return getattr(obj, name)


def checkpoint_safe_globals() -> List[object]:
    """The non-tensor globals an mmengine 0.10.7 training checkpoint pickles.

    Returns:
        list: ``HistoryBuffer`` (with :func:`history_buffer_getattr` bound to
        the name ``builtins.getattr``), numpy's array reconstructor,
        ``ndarray``, ``dtype`` with its per-type subclasses, and the numpy
        scalar types with their unpickling helper.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    # numpy 2 moved numpy.core to numpy._core; pickles name the real module.
    multiarray = getattr(np, '_core', None) or np.core
    multiarray = multiarray.multiarray
    scalar_types = [np.bool_, np.int8, np.int16, np.int32, np.int64,
                    np.uint8, np.uint16, np.uint32, np.uint64, np.float16,
                    np.float32, np.float64, np.complex64, np.complex128]
    return [
        HistoryBuffer,
        (history_buffer_getattr, 'builtins.getattr'),
        multiarray._reconstruct,
        multiarray.scalar,
        np.ndarray,
        np.dtype,
        *scalar_types,
        *{type(np.dtype(t)) for t in scalar_types},
    ]


def register_checkpoint_safe_globals() -> bool:
    """Allow-list :func:`checkpoint_safe_globals` for ``torch.load``.

    Returns:
        bool: False on torch builds without ``add_safe_globals`` (< 2.4),
        where ``torch.load`` does not default to ``weights_only`` anyway.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return False
    add(checkpoint_safe_globals())
    return True
