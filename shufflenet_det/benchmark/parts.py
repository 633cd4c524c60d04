"""Where a detector's inference time goes, part by part.

:class:`PartTimer` wraps the methods that implement each stage of
Light-Head R-CNN inference (and mmcv's NMS) and accumulates *exclusive* wall
time per part: time spent in a nested part (NMS inside RPN proposal
generation) is charged to the nested part only. Each wrapped call is also a
``torch.profiler.record_function`` range, so a profiler trace shows the same
parts.
"""
import threading
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from shufflenet_det.deploy import get_submodule

#: (label, dotted submodule path, method) of each part of mmdet two-stage
#: inference, in execution order. Parts absent from a model are skipped.
DETECTOR_PARTS: Tuple[Tuple[str, str, str], ...] = (
    ('pre-processing', 'data_preprocessor', 'forward'),
    ('backbone', 'backbone', 'forward'),
    ('neck', 'neck', 'forward'),
    ('RPN convs', 'rpn_head', 'forward'),
    ('RPN proposals', 'rpn_head', 'predict_by_feat'),
    ('large separable conv', 'roi_head.lsc', 'forward'),
    ('PSRoI pooling', 'roi_head.bbox_roi_extractor', 'forward'),
    ('R-CNN subnet', 'roi_head.bbox_head', 'forward'),
    ('R-CNN post-processing', 'roi_head.bbox_head', 'predict_by_feat'),
)

#: Module-level NMS functions, patched by :class:`PartTimer`: mmcv's
#: ``batched_nms`` resolves ``'nms'`` in its own module at call time, and
#: :mod:`shufflenet_det.models.layers.topk_nms` calls ``torchvision.ops.nms``.
NMS_FUNCTIONS: Tuple[Tuple[str, str], ...] = (('mmcv.ops.nms', 'nms'),
                                              ('torchvision.ops', 'nms'))


class PartTimer:
    """Accumulate exclusive wall time per inference part.

    Args:
        model (nn.Module): The detector.
        parts (Sequence[tuple]): ``(label, path, method)`` triples.
            Default: :data:`DETECTOR_PARTS`.
        nms_functions (Sequence[tuple]): ``(module, attribute)`` of NMS
            functions to time as ``'NMS (<enclosing part>)'``.
            Default: :data:`NMS_FUNCTIONS`.
        sync (Callable, optional): Called before reading the clock (e.g.
            ``torch.cuda.synchronize``) so that device work is charged to
            the part that queued it.

    Attributes:
        seconds (dict[str, float]): Exclusive seconds per label.
        calls (dict[str, int]): Number of calls per label.
        parallel (set[str]): Labels timed on worker threads (e.g. per-image
            NMS run concurrently); their time overlaps the enclosing part's
            and is not subtracted from it.
    """

    def __init__(self, model, parts: Sequence[Tuple[str, str, str]] =
                 DETECTOR_PARTS,
                 nms_functions: Sequence[Tuple[str, str]] = NMS_FUNCTIONS,
                 sync: Optional[Callable[[], None]] = None) -> None:
        self.model = model
        self.parts = [p for p in parts
                      if get_submodule(model, p[1]) is not None]
        self.nms_functions = nms_functions
        self.sync = sync or (lambda: None)
        self.seconds: Dict[str, float] = defaultdict(float)
        self.calls: Dict[str, int] = defaultdict(int)
        self.parallel = set()
        self._main_stack: List[List] = []
        self._local = threading.local()
        self._main = threading.get_ident()
        self._restore: List[Callable[[], None]] = []

    def _stack(self) -> List[List]:
        if threading.get_ident() == self._main:
            return self._main_stack
        if not hasattr(self._local, 'stack'):
            self._local.stack = []
        return self._local.stack

    def _wrap(self, label: Optional[str], fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            stack = self._stack()
            name = label
            if name is None:  # NMS: named after the part that calls it
                if stack:
                    name = f'NMS ({stack[-1][0]})'
                elif threading.get_ident() != self._main and \
                        self._main_stack:
                    name = f'NMS ({self._main_stack[-1][0]}, on threads)'
                    self.parallel.add(name)
                else:
                    name = 'NMS (other)'
            self.sync()
            frame = [name, time.perf_counter(), 0.0]  # label, start, nested
            stack.append(frame)
            try:
                with torch.profiler.record_function(name):
                    return fn(*args, **kwargs)
            finally:
                self.sync()
                elapsed = time.perf_counter() - frame[1]
                stack.pop()
                self.seconds[name] += elapsed - frame[2]
                self.calls[name] += 1
                if stack:
                    stack[-1][2] += elapsed

        return wrapper

    def __enter__(self) -> 'PartTimer':
        import importlib
        for label, path, method in self.parts:
            module = get_submodule(self.model, path)
            had_own = method in vars(module)
            original = getattr(module, method)
            setattr(module, method, self._wrap(label, original))
            self._restore.append(
                (lambda m=module, n=method, o=original, h=had_own:
                 setattr(m, n, o) if h else delattr(m, n)))
        for mod_name, attr in self.nms_functions:
            try:
                mod = importlib.import_module(mod_name)
            except ImportError:
                continue
            original = getattr(mod, attr)
            setattr(mod, attr, self._wrap(None, original))
            self._restore.append(
                lambda m=mod, a=attr, o=original: setattr(m, a, o))
        return self

    def __exit__(self, *exc) -> None:
        while self._restore:
            self._restore.pop()()

    def reset(self) -> None:
        """Forget the accumulated times."""
        self.seconds.clear()
        self.calls.clear()
        self.parallel.clear()


def breakdown(seconds: Dict[str, float], total_s: float, iterations: int,
              parallel=()) -> List[dict]:
    """Per-part rows with the unattributed rest as ``'other'``.

    Args:
        seconds (dict[str, float]): Exclusive seconds per part, summed over
            ``iterations`` steps.
        total_s (float): Wall time of those steps.
        iterations (int): Number of steps.
        parallel (Iterable[str]): Parts timed on worker threads: their rows
            get ``parallel=True`` and stay out of the sum (their time
            overlaps the part that started the threads).

    Returns:
        list[dict]: ``part``, ``ms_per_batch`` and ``share`` (of
        ``total_s``), in the order parts were first seen, then ``other``.
    """
    rows = [dict(part=k, ms_per_batch=1e3 * v / iterations,
                 share=v / total_s) for k, v in seconds.items()]
    for row in rows:
        if row['part'] in parallel:
            row['parallel'] = True
    rest = total_s - sum(v for k, v in seconds.items() if k not in parallel)
    rows.append(dict(part='other (glue, data structures)',
                     ms_per_batch=1e3 * rest / iterations,
                     share=rest / total_s))
    return rows
