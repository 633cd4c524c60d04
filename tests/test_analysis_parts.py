"""shufflenet_det.analysis.parts: exclusive time per inference part, from
one profiled call, without patching anything."""
import time

import pytest
import torch
import torch.nn as nn
import torchvision

from shufflenet_det.analysis.parts import PartTimer, breakdown


class _Post(nn.Module):
    def forward(self, x):
        time.sleep(0.01)
        torchvision.ops.nms(torch.zeros(1, 4), torch.ones(1), 0.5)
        return x


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.post = _Post()

    def forward(self, x):
        time.sleep(0.01)
        with torch.profiler.record_function('_Toy.finish'):
            time.sleep(0.01)
        return self.post(x)


class _Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.toy = _Toy()


def test_part_timer_exclusive_and_patches_nothing():
    holder = _Holder()
    before = dict(vars(holder.toy)), torchvision.ops.nms
    with PartTimer(holder, [('toy', 'toy', 'forward'),
                            ('toy post', 'toy.post', 'forward'),
                            ('toy finish', 'toy', 'finish'),
                            ('absent', 'neck', 'forward')]) as timer:
        assert (dict(vars(holder.toy)), torchvision.ops.nms) == before
        start = time.perf_counter()
        holder.toy(torch.zeros(1))
        total = time.perf_counter() - start
    # Nested parts are charged to themselves only; NMS to its caller's row.
    assert set(timer.seconds) == {'toy', 'toy post', 'toy finish',
                                  'NMS (toy post)'}
    # Each part sleeps 10 ms itself (lower bounds only: no timing limits).
    for label in ('toy', 'toy post', 'toy finish'):
        assert timer.seconds[label] >= 0.009
        assert timer.calls[label] == 1
    assert sum(timer.seconds.values()) <= total + 1e-3
    # Hooks are removed on exit.
    assert not holder.toy._forward_hooks and not holder.toy._forward_pre_hooks
    # The profiler's operator table, slowest first (the NMS call is in it).
    ops = timer.top_operators(limit=50)
    assert any(op['name'] == 'torchvision::nms' and op['calls'] == 1
               for op in ops)
    assert [op['self_ms'] for op in ops] == sorted(
        (op['self_ms'] for op in ops), reverse=True)
    rows = breakdown(dict(timer.seconds), total, 1)
    assert rows[-1]['part'].startswith('other')
    assert abs(sum(r['share'] for r in rows) - 1) < 1e-9


def test_part_timer_keeps_worker_threads_inside_their_caller():
    from concurrent.futures import ThreadPoolExecutor

    def work(_):
        time.sleep(0.01)
        return torchvision.ops.nms(torch.zeros(1, 4), torch.ones(1), 0.5)

    class Head(nn.Module):
        def forward(self, x):
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(work, range(2)))
            return x

    holder = nn.Module()
    holder.head = Head()
    with PartTimer(holder, [('head', 'head', 'forward')]) as timer:
        holder.head(torch.zeros(1))
    # The part waited for its threads: their time is in its row, whether or
    # not the profiler also saw the threads' NMS (then a parallel row).
    assert timer.seconds['head'] >= 0.009
    assert set(timer.seconds) - {'head'} == timer.parallel
    rows = {r['part']: r for r in breakdown(
        {'head': 0.5, 'NMS (head, on threads)': 0.2}, 1.0, 1,
        {'NMS (head, on threads)'})}
    assert rows['NMS (head, on threads)']['parallel']
    # The threads' time is inside 'head': 'other' is 1 s minus 'head' only.
    assert rows['other (glue, data structures)']['ms_per_batch'] == \
        pytest.approx(500)
