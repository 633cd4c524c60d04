"""The benchmark run: GEMM reference, peer, then every config, one JSON."""
import copy
import functools
import gc
import glob
import os.path as osp
import statistics
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from shufflenet_det.analysis.macs import MacCounter
from shufflenet_det.deploy import (DEFAULT_DEPLOY_STEPS, DENSE_PARTS,
                                   deploy_model)
from shufflenet_det.deploy.verify import (PartRecorder, compare_detections,
                                          verify_parts)
from shufflenet_det.engine.atomic_io import atomic_write_json
from shufflenet_det.table7 import FOCUS_CELL, table7_cell

from .env import cuda_fp32, environment, load_average
from .parts import DETECTOR_PARTS, PartTimer, breakdown
from .peer import PEER_NAME, PEER_PARTS, build_peer, peer_inputs, peer_step
from .timing import gemm_rate, synchronize, throughput, time_iterations

SCHEMA = 'shufflenet_det.benchmark/2'

#: Default config glob of ``--all``: Table 7's twenty detectors.
ALL_CONFIGS = 'configs/light_head_rcnn/*.py'

#: Parts whose multiply-adds are reported separately.
MAC_PARTS = ('backbone', 'neck', 'rpn_head', 'roi_head.lsc',
             'roi_head.bbox_head')

#: Parts checked plain vs deployed on identical inputs.
CHECK_PARTS = ('backbone', 'neck', 'rpn_head', 'roi_head.lsc',
               'roi_head.bbox_roi_extractor', 'roi_head.bbox_head')

#: ``rel_diff`` above which a deployed part counts as not equivalent.
EQUIVALENCE_TOLERANCE = 1e-3

#: Peer parts for the time breakdown: (label, path, method).
PEER_TIME_PARTS = (
    ('pre-processing (transform)', 'transform', 'forward'),
    ('backbone + FPN', 'backbone', 'forward'),
    ('RPN', 'rpn', 'forward'),
    ('RoI heads (RoIAlign, 2 FC, post-processing)', 'roi_heads', 'forward'),
    # GeneralizedRCNN.forward's own time: transform.postprocess (rescale)
    # and the glue between the parts above.
    ('post-processing (rescale) and glue', '', 'forward'),
)


@dataclass
class BenchmarkSettings:
    """What every measurement of one run shares.

    Attributes:
        batch_size (int): Images per batch (paper: 4).
        img_size (tuple[int, int]): (height, width) (paper: 800 x 1200).
        warmup (int): Untimed steps per model after the first call.
        iters (int): Maximum timed steps per model.
        max_seconds (float | None): Timed-loop budget per model; at least
            ``min_iters`` steps run regardless.
        min_iters (int): Timed steps made whatever the budget.
        deploy (tuple[str]): Deploy steps applied to ours and to the peer
            alike (:func:`shufflenet_det.deploy.deploy_model`).
        fp16 (bool): ``--fp16`` was given (recorded for the report; the
            ``fp16`` deploy step in ``deploy`` does the work).
        seed (int): Random weights and pixels.
        checkpoint (str | None): Weights for a single config.
        breakdown (bool): Time each inference part in one extra step.
        profile (bool): Keep the operators that took the most time in that
            step (it always runs under ``torch.profiler``).
        verify (bool): Check every deployed part, and the final
            detections, against the plain reference step.
        interleave (int): For the configs of ``interleave_cells`` (every
            Table 7 cell when None), this many
            extra rounds of one peer step then one step of ours, so that
            their ratio is measured under the same machine load.
        interleave_cells (tuple, optional): (family, level) cells to
            interleave; None: all.
        eager_cells (tuple): (family, level) cells also timed before the
            deploy steps (plain model vs the peer as shipped).
        backend (str): ``'torch'``, or ``'onnxruntime'`` / ``'openvino'``:
            ours and the peer exported to ONNX after the deploy steps and
            timed on that runtime (``backends.py``); the eager cells then
            also time our deployed PyTorch path (``torch_deployed``).
    """
    batch_size: int = 4
    img_size: Tuple[int, int] = (800, 1200)
    warmup: int = 1
    iters: int = 5
    max_seconds: Optional[float] = 20.0
    min_iters: int = 2
    deploy: Tuple[str, ...] = DEFAULT_DEPLOY_STEPS
    fp16: bool = False
    seed: int = 0
    checkpoint: Optional[str] = None
    breakdown: bool = True
    profile: bool = True
    verify: bool = True
    interleave: int = 3
    interleave_cells: Optional[Tuple[Tuple[str, str], ...]] = None
    eager_cells: Tuple[Tuple[str, str], ...] = (FOCUS_CELL, )
    backend: str = 'torch'


def resolve_configs(configs: Sequence[str], all_configs: bool,
                    root: str = '.') -> List[str]:
    """Config paths to run, sorted within each pattern, without duplicates.

    Args:
        configs (Sequence[str]): Paths or glob patterns (relative to the
            working directory).
        all_configs (bool): Add :data:`ALL_CONFIGS` (relative to ``root``).
        root (str): The repository root. Default: '.'.

    Returns:
        list[str]: Paths relative to the working directory.

    Raises:
        FileNotFoundError: Naming the pattern that matched nothing.
    """
    patterns = [(p, '.') for p in configs]
    if all_configs:
        patterns.append((ALL_CONFIGS, root))
    found = []
    for pattern, base in patterns:
        full = pattern if osp.isabs(pattern) else osp.join(base, pattern)
        matches = [osp.relpath(m) for m in sorted(glob.glob(full))]
        if not matches:
            raise FileNotFoundError(f'benchmark: no config matches {full!r}')
        found += [m for m in matches if m not in found]
    return found


def _rates(times_s: List[float], macs: Optional[int], batch_size: int,
           gemm: Optional[dict]) -> dict:
    out = dict(images_per_s=throughput(times_s, batch_size))
    median_s = batch_size / out['images_per_s']['median']
    if macs:
        out['macs_per_s'] = macs / median_s
        if gemm:
            out['gemm_fraction'] = out['macs_per_s'] / \
                gemm['macs_per_s_best']
    return out


def _part_macs(breakdown_rows: List[dict], macs_by_part: Dict[str, int],
               gemm: Optional[dict]) -> None:
    """Attach MACs and MAC rate to the breakdown rows of MAC-bearing parts."""
    label_of = {path: label for label, path, method in DETECTOR_PARTS
                if method == 'forward'}
    for path, macs in macs_by_part.items():
        for row in breakdown_rows:
            if row['part'] == label_of.get(path) and row['ms_per_batch'] > 0:
                row['macs_per_batch'] = macs
                row['macs_per_s'] = macs / (row['ms_per_batch'] / 1e3)
                if gemm:
                    row['gemm_fraction'] = row['macs_per_s'] / \
                        gemm['macs_per_s_best']


def top_operators(prof, limit: int = 15) -> List[dict]:
    """The operators with the largest self time in a profiler run.

    Returns:
        list[dict]: ``name``, ``self_ms`` (CPU, or device time on CUDA),
        ``calls``; largest first.
    """
    rows = []
    for event in prof.key_averages():
        self_us = getattr(event, 'self_device_time_total', 0) or \
            event.self_cpu_time_total
        rows.append(dict(name=event.key, self_ms=self_us / 1e3,
                         calls=event.count))
    rows.sort(key=lambda r: r['self_ms'], reverse=True)
    return rows[:limit]


def _in_cells(cell: Optional[dict], cells) -> bool:
    return bool(cell) and (cell['family'], cell['level']) in \
        {tuple(c) for c in cells}


def _timed(step: Callable[[], object], settings: BenchmarkSettings,
           device: torch.device, desc: str, progress: bool,
           macs: Optional[int], gemm: Optional[dict]) -> dict:
    """First call, warm-up and timed steps of one model; rates."""
    synchronize(device)
    start = time.perf_counter()
    step()  # first call (compiles, when asked to)
    synchronize(device)
    out = dict(first_call_s=time.perf_counter() - start)
    out.update(time_iterations(step, device, settings.warmup, settings.iters,
                               settings.max_seconds, settings.min_iters,
                               desc=desc, progress=progress))
    out.update(_rates(out['times_s'], macs, settings.batch_size, gemm))
    return out


def _reference(model: nn.Module, step: Callable[[], object],
               mac_parts: Sequence[str], check_parts: Sequence[str],
               device: torch.device, result: dict) -> Tuple[object, dict]:
    """One step of the plain model, before any deploy step.

    It counts the multiply-adds (no deploy step adds, drops or resizes a
    convolution or linear layer) and records the inputs and outputs of
    ``check_parts``; returns the detections and those records.
    """
    with MacCounter(model, mac_parts) as counter, \
            PartRecorder(model, check_parts) as recorder:
        synchronize(device)
        start = time.perf_counter()
        reference = step()
        synchronize(device)
    result['reference_call_s'] = time.perf_counter() - start
    result['macs_per_batch'] = counter.total
    result['macs_by_part'] = dict(counter.by_part)
    return reference, recorder.calls


def _deploy(model: nn.Module, step: Callable[[], object], calls: dict,
            settings: BenchmarkSettings, device: torch.device,
            result: dict, **deploy_kwargs) -> None:
    """Apply the deploy steps; check every recorded part against the plain
    model's (identical inputs)."""
    result['deploy'] = deploy_model(model, settings.deploy, **deploy_kwargs)
    if calls:
        check = verify_parts(model, calls, device)
        result['equivalence'] = check
        result['equivalence_ok'] = all(
            'error' not in c and c['rel_diff'] <= EQUIVALENCE_TOLERANCE
            for c in check.values())


def _breakdown(model: nn.Module, step: Callable[[], object], parts,
               settings: BenchmarkSettings, device: torch.device,
               gemm: Optional[dict], result: dict) -> None:
    """One step timed part by part (and its slowest operators)."""
    if not settings.breakdown:
        return
    if result['deploy']['compiled']:
        # Wrapping a compiled module's forward would recompile it.
        result['breakdown_skipped'] = 'compiled parts'
        return
    sync = (lambda: torch.cuda.synchronize(device)) \
        if device.type == 'cuda' else None
    with PartTimer(model, parts, sync=sync, device=device) as timer:
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        total = time.perf_counter() - start
    result['breakdown'] = breakdown(timer.seconds, total, 1, timer.parallel)
    _part_macs(result['breakdown'], result.get('macs_by_part', {}), gemm)
    if settings.profile:
        result['top_ops'] = top_operators(timer.profile)


def _build(config: str, settings: BenchmarkSettings, device: torch.device,
           cfg_options: Optional[dict], result: dict):
    """Our detector from ``config`` and one step of it on a random batch."""
    from shufflenet_det.apis import (build_detector, detector_step,
                                     load_config, make_batch)
    start = time.perf_counter()
    cfg = load_config(config, cfg_options)
    backbone_cfg = copy.deepcopy(cfg.model.get('backbone', {}))
    backbone_cfg.pop('init_cfg', None)
    result['backbone'] = backbone_cfg.to_dict() if hasattr(
        backbone_cfg, 'to_dict') else dict(backbone_cfg)
    result['table7'] = table7_cell(result['backbone'])
    model = build_detector(cfg, device, settings.checkpoint, settings.seed)
    data = make_batch(settings.batch_size, settings.img_size, settings.seed)
    result['build_s'] = time.perf_counter() - start
    return model, data, detector_step(model, data, device)


def benchmark_detector(config: str, settings: BenchmarkSettings,
                       device: torch.device,
                       gemm: Optional[dict] = None,
                       cfg_options: Optional[dict] = None,
                       progress: bool = True,
                       peer_step: Optional[Callable[[], object]] = None,
                       peer_shipped_step: Optional[Callable[[], object]] = None
                       ) -> dict:
    """Measure one config.

    Steps: build (random weights unless ``settings.checkpoint``); one
    reference step of the plain model (as the config builds it, what
    ``tools/test.py`` evaluates) counting multiply-adds and recording each
    part's inputs/outputs and the final detections; for
    ``settings.eager_cells``, time the plain model; apply the deploy steps;
    check each deployed part and the final detections against the plain
    ones; first call; warm-up; timed steps; one step with part timers
    under ``torch.profiler``.

    Args:
        config (str): Config path.
        settings (BenchmarkSettings): Shared settings.
        device (torch.device): Device.
        gemm (dict, optional): :func:`gemm_rate` result, for
            ``gemm_fraction``.
        cfg_options (dict, optional): Config overrides.
        progress (bool): Progress bar.
        peer_step (Callable, optional): One step of the deployed peer, for
            the interleaved ratio (see ``BenchmarkSettings.interleave``).
        peer_shipped_step (Callable, optional): One step of the peer as
            shipped, interleaved with the plain model in ``eager_cells``.

    Returns:
        dict: See :func:`run_benchmark`.
    """
    result = dict(config=config, name=osp.splitext(osp.basename(config))[0],
                  load_average_start=load_average())
    model, data, step = _build(config, settings, device, cfg_options, result)
    cell, name = result['table7'], result['name']
    reference, calls = _reference(model, step, MAC_PARTS, CHECK_PARTS
                                  if settings.verify else (), device, result)
    timed = functools.partial(_timed, settings=settings, device=device,
                              progress=progress,
                              macs=result['macs_per_batch'], gemm=gemm)
    eager = _in_cells(cell, settings.eager_cells)
    if eager:
        result['eager'] = timed(step, desc=name + ' (plain)')
        if peer_shipped_step is not None and settings.interleave > 0:
            result['eager']['interleaved'] = interleaved_ratio(
                step, peer_shipped_step, device, settings.interleave)
    _deploy(model, step, calls, settings, device, result)
    del calls
    if settings.backend != 'torch':
        from .backends import detector_backend_step
        if eager:
            result['torch_deployed'] = timed(step, desc=name + ' (torch)')
        step, result['backend'] = detector_backend_step(model, data,
                                                        settings.backend)
    if settings.verify:
        result['detections'] = compare_detections(reference, step())
    del reference
    result.update(timed(step, desc=name))
    _breakdown(model, step, DETECTOR_PARTS, settings, device, gemm, result)
    if peer_step is not None and settings.interleave > 0 and cell and (
            settings.interleave_cells is None
            or _in_cells(cell, settings.interleave_cells)):
        result['interleaved'] = interleaved_ratio(step, peer_step, device,
                                                  settings.interleave)
    result['load_average_end'] = load_average()
    return result


def interleaved_ratio(step: Callable[[], object],
                      peer_step: Callable[[], object],
                      device: torch.device, rounds: int) -> dict:
    """Alternate peer and own steps; the ratio of each adjacent pair.

    Machine load that changes over minutes cancels out of the ratio of two
    steps taken seconds apart.

    Returns:
        dict: ``rounds``, ``times_s``, ``peer_times_s`` and ``ratio``
        (``median``/``min``/``max`` of peer time / own time).
    """
    times, peer_times = [], []
    for _ in range(rounds):
        for fn, out in ((peer_step, peer_times), (step, times)):
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            out.append(time.perf_counter() - start)
    ratios = [p / t for p, t in zip(peer_times, times)]
    return dict(rounds=rounds, times_s=times, peer_times_s=peer_times,
                ratio=dict(median=statistics.median(ratios),
                           min=min(ratios), max=max(ratios)))


def benchmark_peer(settings: BenchmarkSettings, device: torch.device,
                   gemm: Optional[dict] = None,
                   progress: bool = True
                   ) -> Tuple[dict, Callable[[], object],
                              Callable[[], object]]:
    """Measure :data:`PEER_NAME` at the same batch and input size, as
    shipped and after the same deploy steps as ours, through the same steps
    as :func:`benchmark_detector`.

    Returns:
        tuple: The result dict, the deployed peer's step and the shipped
        peer's step (for interleaving). ``images_per_s`` and the other
        top-level figures are the deployed peer's; ``shipped`` holds the
        figures of the peer as torchvision ships it (eager); ``deploy``
        what the deploy steps did; ``detections`` the shipped-vs-deployed
        check.
    """
    result = dict(name=PEER_NAME, load_average_start=load_average(),
                  settings=dict(weights=None, weights_backbone=None,
                                min_size=min(settings.img_size),
                                max_size=max(settings.img_size)))
    torch.manual_seed(settings.seed)
    model = build_peer(device, settings.img_size)
    images = peer_inputs(settings.batch_size, settings.img_size, device,
                         settings.seed)
    step = peer_step(model, images)
    reference, _ = _reference(model, step, PEER_PARTS, (), device, result)
    del result['reference_call_s']
    timed = functools.partial(_timed, settings=settings, device=device,
                              progress=progress,
                              macs=result['macs_per_batch'], gemm=gemm)
    result['shipped'] = timed(step, desc='peer (shipped)')
    shipped_step = peer_step(copy.deepcopy(model), images)
    _deploy(model, step, {}, settings, device, result,
            compile_parts=DENSE_PARTS)
    if settings.backend != 'torch':
        from .backends import peer_backend_step
        step, result['backend'] = peer_backend_step(model, images,
                                                    settings.backend)
    if settings.verify:
        result['detections'] = compare_detections(reference, step())
    del reference
    result.update(timed(step, desc='peer'))
    _breakdown(model, step, PEER_TIME_PARTS, settings, device, None, result)
    for key in ('top_ops', 'breakdown_skipped'):
        result.pop(key, None)
    result['load_average_end'] = load_average()
    return result, step, shipped_step


def run_benchmark(configs: Sequence[str], settings: BenchmarkSettings,
                  device: torch.device, out_json: str,
                  peer: bool = True, gemm: bool = True,
                  cfg_options: Optional[dict] = None,
                  progress: bool = True, log=print) -> dict:
    """Benchmark the peer and every config; rewrite ``out_json`` after each.

    A config that fails (e.g. its backbone is not registered) is recorded
    with its ``error`` and the run goes on; its numbers stay missing.

    Returns:
        dict: ``schema``, ``environment``, ``settings``, ``gemm``, ``peer``
        and ``results`` (one dict per config: ``config``, ``name``,
        ``backbone``, ``table7`` (family/level or None), ``images_per_s``
        (``median``/``min``/``max``/``iters``), ``times_s``,
        ``macs_per_batch``, ``macs_per_s``, ``gemm_fraction``,
        ``peer_ratio``, ``interleaved``, ``optimization``, ``equivalence``,
        ``breakdown``, load averages; or ``error``).
    """
    cuda_fp32(device)
    report = dict(schema=SCHEMA, environment=environment(device),
                  settings=asdict(settings), gemm=None, peer=None,
                  results=[])
    report['settings']['deploy'] = list(settings.deploy)
    if gemm:
        report['gemm'] = _gemm_start(device, log)
    peer_steps = _run_peer(report, settings, device, progress, log) \
        if peer else (None, None)
    atomic_write_json(report, out_json)
    for config in configs:
        report['results'].append(_run_config(
            config, report, settings, device, cfg_options, progress,
            peer_steps, log))
        atomic_write_json(report, out_json)
        gc.collect()
    if gemm:
        _gemm_end(report, device)
    report['environment']['load_average_end'] = load_average()
    atomic_write_json(report, out_json)
    return report


def _gemm_start(device: torch.device, log) -> dict:
    gemm = gemm_rate(device)
    log(f"fp32 GEMM {gemm['n']}^3: torch.mm "
        f"{gemm['mm']['macs_per_s_best'] / 1e9:.1f} GMAC/s, 1x1 conv "
        f"{gemm['conv1x1']['macs_per_s_best'] / 1e9:.1f} GMAC/s (best of "
        f"{gemm['iters']})")
    return gemm


def _gemm_end(report: dict, device: torch.device) -> None:
    """Contention only slows a GEMM down: measure again at the end and keep
    the best rate as this machine's reference."""
    gemm = report['gemm']
    gemm['end'] = end = gemm_rate(device)
    gemm['macs_per_s_reference'] = max(gemm['macs_per_s_best'],
                                       end['macs_per_s_best'])
    for item in report['results'] + [report['peer'] or {}]:
        for timed in (item, item.get('eager') or {},
                      item.get('shipped') or {}):
            _set_gemm_fraction(timed, gemm['macs_per_s_reference'])


def _run_peer(report: dict, settings: BenchmarkSettings,
              device: torch.device, progress: bool, log) -> tuple:
    """:func:`benchmark_peer` into ``report``; a failure is recorded, and
    ours still run. Returns the deployed and shipped peer steps."""
    try:
        report['peer'], step, shipped_step = benchmark_peer(
            settings, device, report['gemm'], progress)
    except Exception as exc:  # noqa: BLE001  (record; ours still run)
        report['peer'] = None
        report['peer_error'] = f'{type(exc).__name__}: {exc}'
        log(f'peer {PEER_NAME}: FAILED ({report["peer_error"]})')
        return None, None
    log(f"peer {PEER_NAME}: "
        f"{report['peer']['images_per_s']['median']:.3f} images/s")
    return step, shipped_step


def _run_config(config: str, report: dict, settings: BenchmarkSettings,
                device: torch.device, cfg_options: Optional[dict],
                progress: bool, peer_steps: tuple, log) -> dict:
    """:func:`benchmark_detector`; a failure is recorded with its error and
    the run goes on."""
    try:
        result = benchmark_detector(config, settings, device, report['gemm'],
                                    cfg_options, progress, *peer_steps)
    except Exception as exc:  # noqa: BLE001  (record and go on)
        result = dict(config=config,
                      name=osp.splitext(osp.basename(config))[0],
                      error=f'{type(exc).__name__}: {exc}',
                      traceback=traceback.format_exc(limit=6))
        log(f"{result['name']}: FAILED ({result['error']})")
        return result
    if report['peer']:
        _peer_ratios(result, report['peer'])
    log(_summary(result))
    return result


def _set_gemm_fraction(result: dict, reference: float) -> None:
    """(Re)compute ``gemm_fraction`` of a result and its breakdown rows."""
    if result.get('macs_per_s'):
        result['gemm_fraction'] = result['macs_per_s'] / reference
    for row in result.get('breakdown') or []:
        if row.get('macs_per_s'):
            row['gemm_fraction'] = row['macs_per_s'] / reference


def _median(result: Optional[dict]) -> Optional[float]:
    return ((result or {}).get('images_per_s') or {}).get('median')


def _peer_ratios(result: dict, peer: dict) -> None:
    """Speed ratios against the peer, each named by what it compares.

    ``peer_ratio``: ours deployed / peer deployed (the same deploy steps,
    the same runtime). For cells timed before deploying too:
    ``eager_peer_ratio`` (ours plain / peer as shipped) and
    ``peer_shipped_ratio`` (ours deployed / peer as shipped).
    """
    result['peer_ratio'] = _median(result) / _median(peer)
    if result.get('eager') and peer.get('shipped'):
        result['eager_peer_ratio'] = _median(result['eager']) / \
            _median(peer['shipped'])
        result['peer_shipped_ratio'] = _median(result) / \
            _median(peer['shipped'])


def _summary(result: dict) -> str:
    """One log line per config."""
    parts = [f"{result['name']}: {_median(result):.3f} images/s deployed"]
    if 'peer_ratio' in result:
        parts.append(f"{result['peer_ratio']:.2f}x peer deployed")
    if 'interleaved' in result:
        parts.append(f"{result['interleaved']['ratio']['median']:.2f}x "
                     'interleaved')
    if 'eager_peer_ratio' in result:
        parts.append(f"plain {_median(result['eager']):.3f} images/s = "
                     f"{result['eager_peer_ratio']:.2f}x peer as shipped")
    ok = result.get('equivalence_ok')
    if ok is not None:
        parts.append('parts == plain' if ok else 'PARTS DIFFER FROM PLAIN')
    det = result.get('detections')
    if det is not None:
        parts.append('detections == plain' if det['equal'] else
                     f"DETECTIONS DIFFER ({det['num_differences']})")
    return ', '.join(parts)
