"""The GEMM reference: this machine's dense multiply-add rate, against
which the benchmark states every MAC rate."""
import statistics
from typing import Dict

import torch

from shufflenet_det.measure import time_iterations


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
