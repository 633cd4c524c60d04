"""Timing the guideline benchmarks and comparing them with the paper.

The variants of one table column are timed in interleaved rounds, so that
load from other processes spreads over all of them; each sample runs enough
forward calls between two device synchronisations to last a minimum time.
CUDA-only steps (``torch.cuda.synchronize``, cuDNN settings) are chosen by
the device argument, so their branches run in CPU tests too.
"""
import functools
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ..measure import (cpu_name, cuda_fp32, load_average, synchronize,
                       time_interleaved)
from ..paper import INPUT_SIZE, PAPER_TABLES, PAPER_UNIT
from .guidelines import ASSUMPTIONS, build_variant, count_macs


def configure_backend(device: torch.device,
                      threads: Optional[int] = None) -> dict:
    """Set up the device as the paper's benchmarks did; return what was set.

    CUDA: cuDNN benchmark mode on (the paper "activate[s] the benchmarking
    function of CUDNN"), TF32 off so the GPU runs true fp32. CPU: ``threads``
    torch threads (the paper's ARM column is single-threaded).
    """
    device = torch.device(device)
    if device.type == 'cuda':
        return cuda_fp32(device)
    if threads:
        torch.set_num_threads(threads)
    return dict(threads=torch.get_num_threads())


def ranking_agreement(ours: Sequence[float],
                      paper: Sequence[float]) -> Dict[str, object]:
    """Does our speed order the variants as the paper's does?

    Every pair the paper orders strictly is compared; pairs the paper ties
    are left out.

    Returns:
        dict: ``agrees`` (no pair reversed), ``concordant``, ``pairs``
        (pairs the paper orders), ``reversed`` (index pairs (i, j) the
        paper has i faster than j and we have j faster), ``fastest_ours``
        and ``fastest_paper`` (row indices).
    """
    if len(ours) != len(paper):
        raise ValueError(f'ranking_agreement: {len(ours)} measured vs '
                         f'{len(paper)} paper values')
    concordant, reversed_pairs = 0, []
    for i in range(len(paper)):
        for j in range(i + 1, len(paper)):
            if paper[i] == paper[j]:
                continue
            fast, slow = (i, j) if paper[i] > paper[j] else (j, i)
            if ours[fast] > ours[slow]:
                concordant += 1
            else:
                reversed_pairs.append((fast, slow))
    pairs = concordant + len(reversed_pairs)
    return dict(agrees=not reversed_pairs, concordant=concordant, pairs=pairs,
                reversed=reversed_pairs,
                fastest_ours=max(range(len(ours)), key=ours.__getitem__),
                fastest_paper=max(range(len(paper)), key=paper.__getitem__))


@dataclass
class RunSettings:
    """How to measure.

    Attributes:
        device (str): 'cpu', 'cuda' or 'cuda:N'.
        batch_size (int): Images per forward. Default: 1.
        input_size (int): Square input side. Default: 56 (the paper's).
        rounds (int): Interleaved timing rounds. Default: 11.
        warmup (int): Untimed calls per variant. Default: 3.
        min_sample_s (float): Minimum sample duration. Default: 0.2.
        columns (tuple[int] | None): Column indices to run (None: all).
    """
    device: str = 'cpu'
    batch_size: int = 1
    input_size: int = INPUT_SIZE
    rounds: int = 11
    warmup: int = 3
    min_sample_s: float = 0.2
    columns: Optional[Tuple[int, ...]] = None

    @property
    def platform(self) -> str:
        """Whose widths and numbers: 'gpu' on CUDA, 'arm' on CPU."""
        return 'gpu' if torch.device(self.device).type == 'cuda' else 'arm'


def measure_table(table: int, settings: RunSettings,
                  sync: Optional[Callable[[], None]] = None,
                  progress: Optional[Callable[[str], None]] = None) -> dict:
    """Measure every cell of one table; compare with the paper.

    Args:
        table (int): 1-4.
        settings (RunSettings): Device, sizes and timing.
        sync (Callable, optional): Synchronisation; default
            ``synchronize(settings.device)``.
        progress (Callable, optional): Called with one line per column.

    Returns:
        dict: ``table``, ``guideline``, ``platform``, ``unit``, ``columns``
        (labels), ``rows`` (per variant and column: widths, MACs, our
        median speed ``ours``, our fastest sample's ``best``, the paper's),
        ``ranking`` (per column, see :func:`ranking_agreement`, with
        ``by_fastest_sample``) and ``load_avg`` before/after.
    """
    spec = PAPER_TABLES[table]
    device = torch.device(settings.device)
    sync = sync or functools.partial(synchronize, device)
    platform = settings.platform
    labels = spec.column_labels(platform)
    columns = (settings.columns if settings.columns is not None
               else tuple(range(len(labels))))
    bad = [c for c in columns if not 0 <= c < len(labels)]
    if bad:
        raise ValueError(f'columns {bad} out of range for Table {table} '
                         f'({len(labels)} columns)')
    load_before = load_average()
    rows = [dict(label=label, widths={}, macs={}, ours={}, samples={},
                 paper={labels[c]: spec.speed[platform][r][c]
                        for c in columns})
            for r, label in enumerate(spec.rows)]
    ranking = {}
    for col in columns:
        fns, label = [], labels[col]
        for r in range(len(spec.rows)):
            model, in_ch, widths = build_variant(table, r, col, platform)
            model = model.to(device).eval()
            x = torch.randn(settings.batch_size, in_ch, settings.input_size,
                            settings.input_size, device=device)
            rows[r]['widths'][label] = widths
            rows[r]['macs'][label] = count_macs(model, x) // x.shape[0]
            fns.append(_forward(model, x))
        timings = time_interleaved(fns, sync, settings.rounds,
                                   settings.warmup, settings.min_sample_s)
        for r, t in enumerate(timings):
            # The paper's unit: batches/s on GPU, images/s on ARM.
            per_s = 1.0 / t['median_s']
            if platform == 'arm':
                per_s *= settings.batch_size
            rows[r]['ours'][label] = per_s
            # Other processes only ever add time: the fastest sample is the
            # least disturbed one, a cross-check of the median's ranking.
            rows[r].setdefault('best', {})[label] = per_s * t['median_s'] / \
                min(t['samples_s'])
            rows[r]['samples'][label] = dict(
                seconds_per_call=t['samples_s'], calls_per_sample=t['inner'])
        ours = [rows[r]['ours'][label] for r in range(len(spec.rows))]
        paper = [rows[r]['paper'][label] for r in range(len(spec.rows))]
        ranking[label] = ranking_agreement(ours, paper)
        ranking[label]['by_fastest_sample'] = ranking_agreement(
            [rows[r]['best'][label] for r in range(len(spec.rows))], paper)
        if progress:
            progress(f'Table {table} {label}: ' + ', '.join(
                f'{spec.rows[r]} {v:.4g}' for r, v in enumerate(ours)))
        del fns
    return dict(table=table, guideline=spec.guideline, title=spec.title,
                claim=spec.claim, row_header=spec.row_header,
                fastest=spec.fastest, platform=platform,
                unit=PAPER_UNIT[platform],
                columns=[labels[c] for c in columns],
                rows=rows, ranking=ranking,
                load_avg=dict(before=load_before, after=load_average()))


def _forward(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """A no-grad forward of ``model`` on ``x`` as a zero-argument call."""
    def fn():
        with torch.inference_mode():
            return model(x)
    return fn


def machine_description(device: torch.device) -> str:
    """Host, CPU model and core count, and the GPU's name on CUDA."""
    import os
    import platform
    text = f'{platform.node()}: {cpu_name()}, {os.cpu_count()} cores'
    if torch.device(device).type == 'cuda':
        text += f', {torch.cuda.get_device_name(device)}'
    return text


def run_guidelines(tables: Sequence[int], settings: RunSettings,
                   threads: Optional[int] = None, command: str = '',
                   progress: Optional[Callable[[str], None]] = None) -> dict:
    """Measure the given tables; return the report with its provenance.

    Args:
        tables (Sequence[int]): Table numbers among 1-4.
        settings (RunSettings): Device, sizes and timing.
        threads (int, optional): CPU torch threads (CPU only).
        command (str): The command line, recorded as is.
        progress (Callable, optional): Called with one line per column.

    Returns:
        dict: ``meta`` (date, command, device, machine, versions, settings,
        load averages, wall time), ``assumptions`` and ``tables`` (one
        :func:`measure_table` result each).

    Raises:
        ValueError: On an unknown table number.
        RuntimeError: When CUDA is asked for and unavailable.
    """
    import datetime
    bad = [t for t in tables if t not in PAPER_TABLES]
    if bad:
        raise ValueError(f'tables must be among {sorted(PAPER_TABLES)}, '
                         f'got {bad}')
    device = torch.device(settings.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(f'device {settings.device!r} asked for, but '
                           'torch.cuda.is_available() is False on this '
                           'machine')
    threads_before = torch.get_num_threads()
    backend = configure_backend(device, threads)
    start = time.perf_counter()
    meta = dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime(
            '%Y-%m-%d %H:%M UTC'),
        command=command, device=str(device),
        machine=machine_description(device), torch=torch.__version__,
        threads=torch.get_num_threads(), backend=backend,
        batch_size=settings.batch_size,
        input_size=f'{settings.input_size}x{settings.input_size}',
        timing=(f'median of {settings.rounds} interleaved rounds, samples '
                f'>= {settings.min_sample_s} s, {settings.warmup} warm-up '
                'calls'),
        load_avg_start=load_average())
    try:
        results = [measure_table(t, settings, progress=progress)
                   for t in tables]
    finally:
        torch.set_num_threads(threads_before)
    meta.update(load_avg_end=load_average(),
                wall_s=round(time.perf_counter() - start, 1))
    return dict(meta=meta, assumptions=list(ASSUMPTIONS), tables=results)
