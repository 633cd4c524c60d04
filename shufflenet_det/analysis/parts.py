"""Where a detector's inference time goes, part by part.

:class:`PartTimer` runs one step under ``torch.profiler`` and reads the
*exclusive* wall time of each part from the profiler's events: time spent
in a nested part (NMS inside RPN proposal generation) is charged to the
nested part only. Nothing is patched: a part is a submodule's ``forward``
(a ``torch.profiler.record_function`` range opened and closed by forward
pre/post hooks), a range our own components open around a method
(``LightHeadRPNHead.predict_by_feat``), or NMS (the ``torchvision::nms``
operator in the profiler's table).
"""
import threading
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from shufflenet_det.deploy import get_submodule

#: (label, dotted submodule path, method) of each part of mmdet two-stage
#: inference, in execution order. Parts absent from a model are skipped; a
#: method other than ``forward`` is a part where the module opens a
#: ``record_function('<ClassName>.<method>')`` range itself.
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

#: Profiler operator names of NMS, timed as ``'NMS (<enclosing part>)'``.
NMS_OPS: Tuple[str, ...] = ('torchvision::nms', )


class PartTimer:
    """Exclusive wall time per inference part, from one profiled run.

    Args:
        model (nn.Module): The detector.
        parts (Sequence[tuple]): ``(label, path, method)`` triples (path
            ``''``: the model itself). Default: :data:`DETECTOR_PARTS`.
        sync (Callable, optional): Called on entering and leaving a
            ``forward`` part (e.g. ``torch.cuda.synchronize``) so that
            device work is charged to the part that queued it.
        device (torch.device): Profiled device. Default: CPU.

    Attributes:
        seconds (dict[str, float]): Exclusive seconds per label (after the
            ``with`` block).
        calls (dict[str, int]): Number of calls per label.
        parallel (set[str]): Labels timed on worker threads (e.g. per-image
            NMS run concurrently); their time overlaps the enclosing part's
            and is not subtracted from it.
        profile (torch.profiler.profile): The profiler (see
            :meth:`top_operators`).
    """

    def __init__(self, model, parts: Sequence[Tuple[str, str, str]] =
                 DETECTOR_PARTS,
                 sync: Optional[Callable[[], None]] = None,
                 device: torch.device = torch.device('cpu')) -> None:
        self.model = model
        self.sync = sync or (lambda: None)
        self.device = device
        self.labels: Dict[str, str] = {}  # profiler range name -> label
        self.modules = []  # (label, module) of forward parts
        for label, path, method in parts:
            module = model if path == '' else get_submodule(model, path)
            if module is None:
                continue
            if method == 'forward':
                self.modules.append((label, module))
                self.labels[label] = label
            else:
                self.labels[f'{type(module).__name__}.{method}'] = label
        self.seconds: Dict[str, float] = defaultdict(float)
        self.calls: Dict[str, int] = defaultdict(int)
        self.parallel = set()
        self.profile = None
        self._handles = []
        self._open = threading.local()

    def _hooks(self, label: str):
        def pre(module, args):
            self.sync()
            ranges = self._open.__dict__.setdefault('ranges', [])
            ranges.append(torch.profiler.record_function(label))
            ranges[-1].__enter__()

        def post(module, args, output):
            self.sync()
            self._open.ranges.pop().__exit__(None, None, None)
        return pre, post

    def __enter__(self) -> 'PartTimer':
        for label, module in self.modules:
            pre, post = self._hooks(label)
            self._handles += [module.register_forward_pre_hook(pre),
                              module.register_forward_hook(post)]
        from torch.profiler import ProfilerActivity, profile
        self.profile = profile(activities=[ProfilerActivity.CPU] + (
            [ProfilerActivity.CUDA] if self.device.type == 'cuda' else []))
        self.profile.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.profile.__exit__(*exc)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if exc[0] is None:
            self._read(self.profile.events())

    def _read(self, events) -> None:
        """Exclusive time per label from the profiler's events."""
        spans = [(e.time_range.start, e.time_range.end, e.thread,
                  self.labels.get(e.name) or 'NMS')
                 for e in events
                 if e.name in self.labels or e.name in NMS_OPS]
        spans.sort(key=lambda s: (s[0], -s[1]))
        main = next((s[2] for s in spans if s[3] != 'NMS'), None)
        main_parts = [s for s in spans if s[2] == main and s[3] != 'NMS']
        stacks: Dict[int, List[list]] = defaultdict(list)
        for start, end, thread, label in spans:
            stack = stacks[thread]
            while stack and stack[-1][1] <= start:
                stack.pop()
            if label == 'NMS':
                label = self._nms_label(start, end, thread, main, stack,
                                        main_parts)
            if stack:
                self.seconds[stack[-1][0]] -= (end - start) / 1e6
            self.seconds[label] += (end - start) / 1e6
            self.calls[label] += 1
            stack.append([label, end])

    def top_operators(self, limit: int = 15) -> List[dict]:
        """The operators with the largest self time in the profiled call:
        ``name``, ``self_ms`` (CPU, or device time on CUDA), ``calls``."""
        rows = [dict(name=e.key, calls=e.count, self_ms=(getattr(
            e, 'self_device_time_total', 0) or e.self_cpu_time_total) / 1e3)
            for e in self.profile.key_averages()]
        return sorted(rows, key=lambda r: r['self_ms'], reverse=True)[:limit]

    def _nms_label(self, start, end, thread, main, stack,
                   main_parts) -> str:
        if stack:
            return f'NMS ({stack[-1][0]})'
        if thread != main:
            around = [s for s in main_parts if s[0] <= start and end <= s[1]]
            if around:
                label = f'NMS ({around[-1][3]}, on threads)'
                self.parallel.add(label)
                return label
        return 'NMS (other)'


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
