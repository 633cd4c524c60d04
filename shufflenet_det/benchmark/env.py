"""Where and how a benchmark ran: device, threads, versions, date, command."""
import datetime
import importlib
import os
import platform
import shlex
import sys
from typing import List, Optional

import torch

from shufflenet_det.deploy.precision import cpuinfo_field


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
