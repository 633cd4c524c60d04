"""Timing loops, and the machine a measurement ran on.

Shared by the inference benchmark (:mod:`shufflenet_det.benchmark`) and the
guideline tables (:mod:`shufflenet_det.analysis.guidelines_bench`): one
device synchronisation, one bounded timing loop, one interleaved timing
loop, the machine's GEMM rate (the reference for MAC rates), one record of
where a number was measured.
"""
import datetime
import importlib
import math
import os
import platform
import shlex
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (CUDA), so that wall time covers them; a
    no-op on CPU. ``device``: a ``torch.device`` or its string."""
    if torch.device(device).type == 'cuda':
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


def _calibrate(fn: Callable[[], object], sync: Callable[[], None],
               warmup: int, min_sample_s: float) -> int:
    """Warm ``fn`` up; return calls per sample so one lasts min_sample_s."""
    per_call = float('inf')
    # Without a minimum sample there is nothing to calibrate: only warm up.
    for _ in range(max(1, warmup) if min_sample_s > 0 else warmup):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        per_call = min(per_call, time.perf_counter() - start)
    if min_sample_s <= 0:
        return 1
    return max(1, math.ceil(min_sample_s / max(per_call, 1e-7)))


def time_interleaved(fns: Sequence[Callable[[], object]],
                     sync: Callable[[], None], rounds: int = 11,
                     warmup: int = 3,
                     min_sample_s: float = 0.2) -> List[Dict[str, object]]:
    """Seconds per call of each ``fn``, timed in interleaved rounds.

    Each round times one sample of every function in turn; a sample is
    ``inner`` back-to-back calls between two ``sync()`` calls, ``inner``
    chosen after warm-up so that a sample lasts ``min_sample_s``.

    Args:
        fns (Sequence[Callable]): One forward pass each (no arguments).
        sync (Callable): Device synchronisation (e.g.
            ``functools.partial(synchronize, device)``).
        rounds (int): Samples per function (>= 1). Default: 11.
        warmup (int): Untimed calls per function first. Default: 3.
        min_sample_s (float): Minimum duration of one sample. Default: 0.2.

    Returns:
        list[dict]: Per function: ``median_s`` (seconds per call),
        ``samples_s`` (per-call seconds of each sample) and ``inner``.
    """
    if rounds < 1 or warmup < 0:
        raise ValueError(f'time_interleaved: need rounds >= 1 and warmup >= '
                         f'0, got rounds={rounds}, warmup={warmup}')
    inner = [_calibrate(fn, sync, warmup, min_sample_s) for fn in fns]
    samples: List[List[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            sync()
            start = time.perf_counter()
            for _ in range(inner[i]):
                fn()
            sync()
            samples[i].append((time.perf_counter() - start) / inner[i])
    return [dict(median_s=statistics.median(s), samples_s=s, inner=n)
            for s, n in zip(samples, inner)]


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


def cpuinfo_field(name: str) -> Optional[str]:
    """The first ``name`` field of Linux ``/proc/cpuinfo`` (e.g. ``'flags'``,
    ``'model name'``); None where there is no such file or field."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith(name):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else ``platform.processor()``."""
    return (cpuinfo_field('model name') or platform.processor()
            or platform.machine())


def load_average() -> Optional[List[float]]:
    """1, 5 and 15 minute load averages (as ``uptime``), None if unknown."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def cuda_fp32(device: torch.device) -> dict:
    """On CUDA: cuDNN benchmark mode on, TF32 off (fp32 means fp32: no
    tensor-core rounding in convs or GEMMs); returns what was set."""
    if torch.device(device).type != 'cuda':
        return {}
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return dict(cudnn_benchmark=True, tf32=False,
                cudnn=torch.backends.cudnn.version())


def _version(name: str) -> str:
    try:
        return str(importlib.import_module(name).__version__)
    except Exception:  # noqa: BLE001  (any import failure = missing)
        return 'missing'


def environment(device: torch.device) -> dict:
    """Everything a result file needs to say where it was measured.

    Returns:
        dict: ``device`` (e.g. ``'2-core x86_64 CPU (AMD EPYC)'`` or the
        GPU's name), ``device_type``, ``torch_threads``,
        ``torch_interop_threads``, ``omp_num_threads`` (environment),
        ``cuda`` (CUDA/cuDNN versions, capability, TF32; None on CPU),
        ``versions``, ``date`` (local ISO 8601 with offset), ``command``
        (shell-quoted) and ``load_average``.
    """
    cuda = None if device.type != 'cuda' else dict(
        cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
        capability='.'.join(map(str, torch.cuda.get_device_capability(
            device))),
        cudnn_benchmark=torch.backends.cudnn.benchmark,
        tf32=dict(cudnn=torch.backends.cudnn.allow_tf32,
                  matmul=torch.backends.cuda.matmul.allow_tf32))
    return dict(
        device=torch.cuda.get_device_name(device) if cuda else
        f'{os.cpu_count()}-core {platform.machine()} CPU ({cpu_name()})',
        device_type=device.type, torch_threads=torch.get_num_threads(),
        torch_interop_threads=torch.get_num_interop_threads(),
        omp_num_threads=os.environ.get('OMP_NUM_THREADS'), cuda=cuda,
        versions=dict(python=platform.python_version(), **{
            name: _version(name) for name in (
                'torch', 'torchvision', 'mmcv', 'mmengine', 'mmdet',
                'numpy', 'shufflenet_det')}),
        date=datetime.datetime.now().astimezone().isoformat(
            timespec='seconds'),
        command=shlex.join(['python'] + sys.argv),
        load_average=load_average())


#: Instruction-set caps, lowest first: the environment that limits each
#: kernel library to it, and the CPU flags it needs. PyTorch's own kernels
#: follow ``ATEN_CPU_CAPABILITY``, oneDNN's (convolutions, and OpenVINO's
#: CPU plugin) ``ONEDNN_MAX_CPU_ISA``, MKL's (PyTorch's fp32 GEMM)
#: ``MKL_ENABLE_INSTRUCTIONS``; which of them change this machine's results
#: is what :func:`kernel_fingerprints` under each cap shows.
ISA_CAPS = {
    'default': (dict(ATEN_CPU_CAPABILITY='default', ONEDNN_MAX_CPU_ISA='SSE41',
                     MKL_ENABLE_INSTRUCTIONS='SSE4_2'), ('sse4_1', )),
    'avx2': (dict(ATEN_CPU_CAPABILITY='avx2', ONEDNN_MAX_CPU_ISA='AVX2',
                  MKL_ENABLE_INSTRUCTIONS='AVX2'), ('avx2', 'fma')),
    'avx512': (dict(ATEN_CPU_CAPABILITY='avx512',
                    ONEDNN_MAX_CPU_ISA='AVX512_CORE',
                    MKL_ENABLE_INSTRUCTIONS='AVX512'),
               ('avx512f', 'avx512bw', 'avx512vl', 'avx512dq')),
}


def supported_isa_caps() -> List[str]:
    """The caps of :data:`ISA_CAPS` this CPU can run, lowest first."""
    flags = set((cpuinfo_field('flags') or '').split())
    return [name for name, (_, need) in ISA_CAPS.items()
            if flags.issuperset(need)]


def kernel_fingerprints() -> Dict[str, str]:
    """A hash of the exact output of one kernel of each library: a
    convolution (oneDNN), an fp32 matrix product (MKL) and a softmax of
    exponentials (PyTorch's own vectorised kernels), on fixed inputs, plus
    the ATen capability in use. Two environments whose hashes differ run
    different kernels (or the same ones in another order)."""
    import hashlib

    def digest(t: torch.Tensor) -> str:
        return hashlib.sha1(t.contiguous().numpy().tobytes()).hexdigest()[:12]

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 24, 56, 56, generator=gen)
    w = torch.randn(48, 24, 3, 3, generator=gen)
    a = torch.randn(257, 1031, generator=gen)
    b = torch.randn(1031, 263, generator=gen)
    v = torch.randn(100003, generator=gen)
    with torch.no_grad():
        return dict(aten=torch.backends.cpu.get_cpu_capability(),
                    conv_onednn=digest(torch.nn.functional.conv2d(
                        x, w, padding=1)),
                    gemm_mkl=digest(a @ b),
                    softmax_aten=digest(v.exp().softmax(0)))


def kernel_fingerprints_under(env: Dict[str, str]) -> Dict[str, str]:
    """:func:`kernel_fingerprints` in a fresh interpreter with ``env`` added
    to the environment (the caps are read when the libraries load)."""
    import json
    import subprocess
    code = ('import json; from shufflenet_det.measure import '
            'kernel_fingerprints as k; print(json.dumps(k()))')
    out = subprocess.run([sys.executable, '-c', code],
                         env={**os.environ, **env}, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
