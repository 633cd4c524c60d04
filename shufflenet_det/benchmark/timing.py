"""Timing loops: warm-up, bounded timed iterations, and the GEMM reference."""
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (CUDA), so that wall time covers them."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_iterations(fn: Callable[[], object], device: torch.device,
                    warmup: int = 1, iters: int = 5,
                    max_seconds: Optional[float] = None, min_iters: int = 1,
                    desc: Optional[str] = None,
                    progress: bool = True) -> Dict[str, List[float]]:
    """Run ``fn`` ``warmup`` times untimed, then time up to ``iters`` calls,
    each bracketed by :func:`synchronize`. The timed loop stops once
    ``max_seconds`` of timed calls have elapsed and ``min_iters`` are done,
    so a slow model costs a bounded time.

    Args:
        fn (Callable): One inference step (no arguments).
        device (torch.device): Device to synchronise.
        warmup (int): Untimed calls first (>= 0).
        iters (int): Maximum timed calls (>= 1).
        max_seconds (float, optional): Time budget of the timed loop.
        min_iters (int): Timed calls made whatever the budget (>= 1).
        desc (str, optional): Progress-bar label.
        progress (bool): Show a tqdm progress bar.

    Returns:
        dict: ``warmup_s`` and ``times_s``, seconds of each call.

    Raises:
        ValueError: On a negative ``warmup`` or ``iters``/``min_iters < 1``.
    """
    if warmup < 0 or iters < 1 or min_iters < 1:
        raise ValueError(f'time_iterations: need warmup >= 0, iters >= 1 and '
                         f'min_iters >= 1, got warmup={warmup}, '
                         f'iters={iters}, min_iters={min_iters}')
    from tqdm import tqdm
    out = dict(warmup_s=[], times_s=[])
    with tqdm(total=warmup + iters, desc=desc, disable=not progress,
              leave=False, unit='it', dynamic_ncols=True) as bar:
        for i in range(warmup + iters):
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times = out['warmup_s' if i < warmup else 'times_s']
            times.append(time.perf_counter() - start)
            bar.set_postfix_str('warm-up' if i < warmup else
                                f'{times[-1]:.3f} s/it')
            bar.update()
            if (i >= warmup and max_seconds is not None
                    and len(times) >= min_iters and sum(times) >= max_seconds):
                break
    return out


def throughput(times_s: List[float], batch_size: int) -> Dict[str, float]:
    """Images/s from per-batch times: ``median``, ``min`` (slowest batch),
    ``max`` and ``iters``.

    Raises:
        ValueError: On no times.
    """
    if not times_s:
        raise ValueError('throughput: no timed iterations')
    rates = [batch_size / t for t in times_s]
    return dict(median=statistics.median(rates), min=min(rates),
                max=max(rates), iters=len(rates))


def gemm_rate(device: torch.device, n: int = 2048,
              dtype: torch.dtype = torch.float32, warmup: int = 2,
              iters: int = 10) -> Dict[str, float]:
    """This machine's dense matrix-multiply rate, the reference for MACs/s.

    Two n x n x n products (n**3 multiply-adds each) with the current thread
    settings: ``torch.mm`` (BLAS; MKL on x86 CPUs) and a 1x1 convolution on
    an n-channel, n-pixel channels-last map (oneDNN on CPU, cuDNN on CUDA),
    the GEMM the detectors' convolutions run on. On AMD CPUs oneDNN's is
    the faster; the larger rate is the reference, so a fraction of it is
    never flattered by a slow BLAS.

    Args:
        device (torch.device): Device to measure.
        n (int): Matrix side (a multiple of 32).
        dtype (torch.dtype): Default: float32.
        warmup (int): Untimed products first.
        iters (int): Timed products of each kind.

    Returns:
        dict: ``n``, ``dtype``, ``iters``, ``mm`` and ``conv1x1`` (each
        ``macs_per_s_median`` / ``macs_per_s_best``), ``kind`` (the faster)
        and its ``macs_per_s_median`` / ``macs_per_s_best``.
    """
    gen = torch.Generator(device='cpu').manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, dtype)
    b = torch.randn(n, n, generator=gen).to(device, dtype)
    conv = torch.nn.Conv2d(n, n, 1, bias=False).to(device, dtype).to(
        memory_format=torch.channels_last).eval()
    x = a.t().reshape(1, n, 32, n // 32).contiguous(
        memory_format=torch.channels_last)
    result = dict(n=n, dtype=str(dtype).replace('torch.', ''), iters=iters)
    with torch.no_grad():
        for name, fn in (('mm', lambda: torch.mm(a, b)),
                         ('conv1x1', lambda: conv(x))):
            rates = [n ** 3 / t for t in time_iterations(
                fn, device, warmup, iters, progress=False)['times_s']]
            result[name] = dict(macs_per_s_median=statistics.median(rates),
                                macs_per_s_best=max(rates))
    result['kind'] = max(('mm', 'conv1x1'),
                         key=lambda k: result[k]['macs_per_s_best'])
    result.update(result[result['kind']])
    return result
