"""One runner for ours and the peer: build, reference, deploy, verify, time,
breakdown, interleave; one flat JSON record per run.

Shaped like ``mmdet/utils/benchmark.py`` (``BaseBenchmark.run`` ->
``run_once``) and timm's ``benchmark.py`` (``InferenceBenchmarkRunner``):
:class:`Runner` takes a *subject* (:class:`Detector` for one of our configs,
:class:`~.peer.Peer` for the peer; each builds its model and step and names
its parts) and runs the same steps on it. A run is one set of settings:
"plain vs as shipped" is a run with no deploy steps, bf16 a run with the
``bf16`` step (:func:`run_main_job`); the report reads the records.
"""
import copy
import functools
import gc
import os.path as osp
import statistics
import time
import traceback
from dataclasses import asdict, dataclass, replace
from typing import Callable, List, Optional, Sequence, Tuple

import torch

from shufflenet_det.analysis.macs import MacCounter
from shufflenet_det.analysis.parts import (DETECTOR_PARTS, PartTimer,
                                           breakdown)
from shufflenet_det.apis import make_batch
from shufflenet_det.deploy import (DEFAULT_DEPLOY_STEPS, DENSE_PARTS,
                                   deploy_model)
from shufflenet_det.deploy.onnx import BACKENDS as ONNX_BACKENDS
from shufflenet_det.deploy.onnx import onnx_step
from shufflenet_det.deploy.verify import (PartRecorder,
                                          compare_with_recomputation,
                                          verify_parts)
from shufflenet_det.engine.atomic_io import atomic_write_json
from shufflenet_det.measure import (cuda_fp32, environment, gemm_rate,
                                    load_average, synchronize, throughput,
                                    time_interleaved, time_iterations)
from shufflenet_det.paper import FAMILIES
from shufflenet_det.table7 import FOCUS_CELL, table7_cell

from .peer import PEER_NAME, Peer

SCHEMA = 'shufflenet_det.benchmark/3'

#: ``--backend`` choices: the runner's own PyTorch path, or ours and the
#: peer exported to ONNX and run on the same runtime (same deploy steps,
#: same threads; :func:`shufflenet_det.deploy.onnx.onnx_step`,
#: :func:`.peer.peer_onnx_step`).
BACKENDS = ('torch', *ONNX_BACKENDS)

#: ``rel_diff`` above which a deployed part counts as not equivalent.
EQUIVALENCE_TOLERANCE = 1e-3

#: Runs the main job adds to its own (``--also``): name -> (deploy steps,
#: Table 7 cells). ``plain``: the focus cell and the peer as shipped;
#: ``bf16``: the 140M row of every family and the peer, dense parts in bf16.
EXTRA_RUNS = {'plain': ('none', (FOCUS_CELL, )),
              'bf16': ('default,bf16', tuple((f, '140M') for f in FAMILIES))}


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
            alike (:func:`shufflenet_det.deploy.deploy_model`); ``()``:
            the plain models, as the config builds ours and as torchvision
            ships the peer.
        backend (str): ``'torch'``, or ``'onnxruntime'`` / ``'openvino'``:
            both exported to ONNX after the deploy steps (:data:`BACKENDS`).
        seed (int): Random weights and pixels.
        verify (bool): Check every deployed part, and the final detections,
            against the plain reference step.
        breakdown (bool): Time each part in one profiled step (PyTorch).
        interleave (int): Rounds of one peer step then one step of ours
            per config, for a ratio that slow load changes cannot skew.
        inputs (str): Where both sides' timed steps start: ``'host'``, the
            same uint8 images in host memory (each step copies them to the
            device and normalises them, as from a dataloader), or
            ``'device'``, those images already on the device.
    """
    batch_size: int = 4
    img_size: Tuple[int, int] = (800, 1200)
    warmup: int = 1
    iters: int = 5
    max_seconds: Optional[float] = 20.0
    min_iters: int = 2
    deploy: Tuple[str, ...] = DEFAULT_DEPLOY_STEPS
    backend: str = 'torch'
    seed: int = 0
    verify: bool = True
    breakdown: bool = True
    interleave: int = 3
    inputs: str = 'host'

    def batch(self, device: torch.device) -> dict:
        """The batch of both sides: :func:`make_batch`'s uint8 images (and
        meta), in host memory or, with ``inputs='device'``, on ``device``."""
        if self.inputs not in INPUTS:
            raise ValueError(f'benchmark: inputs must be one of {INPUTS}, '
                             f'but received {self.inputs!r}')
        data = make_batch(self.batch_size, self.img_size, self.seed)
        if self.inputs == 'device':
            data['inputs'] = [t.to(device) for t in data['inputs']]
        return data


#: :attr:`BenchmarkSettings.inputs` choices.
INPUTS = ('host', 'device')


class Detector:
    """One of our configs as a subject of :class:`Runner` (the twin of
    :class:`~.peer.Peer`).

    Args:
        config (str): Config path.
        cfg_options (dict, optional): Config overrides.
        checkpoint (str, optional): Weights; default random.
    """
    mac_parts = ('backbone', 'neck', 'rpn_head', 'roi_head.lsc',
                 'roi_head.bbox_head')
    check_parts = ('backbone', 'neck', 'rpn_head', 'roi_head.lsc',
                   'roi_head.bbox_roi_extractor', 'roi_head.bbox_head')
    time_parts = DETECTOR_PARTS
    compile_parts = DENSE_PARTS

    def __init__(self, config: str, cfg_options: Optional[dict] = None,
                 checkpoint: Optional[str] = None) -> None:
        self.config, self.cfg_options = config, cfg_options
        self.checkpoint = checkpoint
        self.name = osp.splitext(osp.basename(config))[0]

    def build(self, settings: BenchmarkSettings, device: torch.device,
              result: dict):
        """The detector and its random batch; records what it was given.

        Returns:
            tuple: The model, its step, and ``backend -> (step, info)``.
        """
        from shufflenet_det.apis import (build_detector, detector_step,
                                         load_config)
        cfg = load_config(self.config, self.cfg_options)
        backbone = cfg.model.to_dict().get('backbone', {})
        backbone.pop('init_cfg', None)
        result.update(config=self.config, backbone=backbone,
                      table7=table7_cell(backbone))
        model = build_detector(cfg, device, self.checkpoint, settings.seed)
        data = settings.batch(device)
        result['input'] = dict(batch_size=len(data['inputs']),
                               img_size=list(data['inputs'][0].shape[-2:]),
                               start=f'{settings.inputs} uint8')

        def on_backend(backend, precision):
            return onnx_step(model, data, backend, precision)

        self.data = data
        return model, detector_step(model, data, device), on_backend

    def compare(self, reference: list, detections: list, plain, deployed
                ) -> dict:
        """The equivalence contract on the built batch: the plain model
        recomputes where the detections differ (``deployed``: the deployed
        model, whose proposals it checks; None on an ONNX runtime)."""
        batch = [(list(range(len(reference))), self.data)]
        return compare_with_recomputation(reference, detections, plain,
                                          batch, deployed)


class Runner:
    """The steps of one run, the same for every subject.

    Args:
        settings (BenchmarkSettings): Shared settings.
        device (torch.device): Device.
        progress (bool): Progress bars.
    """

    def __init__(self, settings: BenchmarkSettings, device: torch.device,
                 progress: bool = True) -> None:
        self.settings, self.device, self.progress = settings, device, progress

    @property
    def runtime_precision(self) -> str:
        """An ONNX runtime's precision: ``'bf16'`` when the deploy steps ask
        for it (OpenVINO only), else ``'f32'``."""
        return 'bf16' if 'bf16' in self.settings.deploy else 'f32'

    def run_once(self, subject, partner: Optional[Callable] = None
                 ) -> Tuple[dict, Callable[[], object]]:
        """Every step on ``subject``; ``partner`` (the peer's step) is
        interleaved with its own. Returns the result and the timed step."""
        result = dict(name=subject.name, load_average_start=load_average())
        start = time.perf_counter()
        model, step, on_backend = subject.build(self.settings, self.device,
                                                result)
        result['build_s'] = time.perf_counter() - start
        reference, calls = self.reference(model, step, subject, result)
        # The plain twin recomputes near-ties if the detections differ.
        plain = copy.deepcopy(model) if self.settings.verify else None
        self.deploy(model, calls, subject, result)
        del calls
        deployed = model
        if self.settings.backend != 'torch':
            result['torch_deployed'] = self.timed(
                step, f'{subject.name} (torch)')
            step, result['backend'] = on_backend(self.settings.backend,
                                                 self.runtime_precision)
            deployed = None  # a runtime's proposals cannot be read
        if self.settings.verify:
            result['detections'] = subject.compare(reference, step(), plain,
                                                   deployed)
        del reference, plain
        result.update(self.timed(step, subject.name, result['macs_per_batch']))
        self.part_times(model, step, subject.time_parts, result)
        if partner is not None and self.settings.interleave > 0:
            result['interleaved'] = interleaved_ratio(
                step, partner, self.device, self.settings.interleave)
        result['load_average_end'] = load_average()
        return result, step

    def reference(self, model, step, subject, result: dict):
        """One step of the plain model, before any deploy step: counts the
        multiply-adds (no deploy step adds, drops or resizes a conv or linear
        layer) and records the inputs/outputs of the parts to verify."""
        check = subject.check_parts if self.settings.verify else ()
        with MacCounter(model, subject.mac_parts) as counter, \
                PartRecorder(model, check) as recorder:
            synchronize(self.device)
            start = time.perf_counter()
            reference = step()
            synchronize(self.device)
        result.update(reference_call_s=time.perf_counter() - start,
                      macs_per_batch=counter.total,
                      macs_by_part=dict(counter.by_part))
        return reference, recorder.calls

    def deploy(self, model, calls: dict, subject, result: dict) -> None:
        """The deploy steps; each recorded part checked against the plain
        model's on identical inputs."""
        steps = self.settings.deploy
        if self.settings.backend != 'torch':
            # On an ONNX runtime bf16 is the runtime's precision (OpenVINO's
            # INFERENCE_PRECISION_HINT), not autocast hooks in the export.
            steps = tuple(s for s in steps if s != 'bf16')
        result['deploy'] = deploy_model(model, steps,
                                        compile_parts=subject.compile_parts)
        if calls:
            check = verify_parts(model, calls, self.device)
            result['equivalence'] = check
            result['equivalence_ok'] = all(
                'error' not in c and c['rel_diff'] <= EQUIVALENCE_TOLERANCE
                for c in check.values())

    def timed(self, step: Callable[[], object], desc: str,
             macs: Optional[int] = None) -> dict:
        """First call, warm-up and timed steps; images/s and MAC rate."""
        s = self.settings
        synchronize(self.device)
        start = time.perf_counter()
        step()  # first call (compiles, when asked to)
        synchronize(self.device)
        out = dict(first_call_s=time.perf_counter() - start)
        out.update(time_iterations(step, self.device, s.warmup, s.iters,
                                   s.max_seconds, s.min_iters, desc=desc,
                                   progress=self.progress))
        out['images_per_s'] = throughput(out['times_s'], s.batch_size)
        if macs:
            out['macs_per_s'] = macs * out['images_per_s']['median'] / \
                s.batch_size
        return out

    def part_times(self, model, step, parts, result: dict) -> None:
        """One step timed part by part under ``torch.profiler`` (exclusive
        times, MAC rates of the dense parts, slowest operators)."""
        if not self.settings.breakdown or self.settings.backend != 'torch':
            return
        if result['deploy']['compiled']:
            # Hooks on a compiled module's forward would recompile it.
            result['breakdown_skipped'] = 'compiled parts'
            return
        sync = (lambda: torch.cuda.synchronize(self.device)) \
            if self.device.type == 'cuda' else None
        with PartTimer(model, parts, sync=sync, device=self.device) as timer:
            synchronize(self.device)
            start = time.perf_counter()
            step()
            synchronize(self.device)
            total = time.perf_counter() - start
        result['breakdown'] = breakdown(timer.seconds, total, 1,
                                        timer.parallel)
        label_of = {path: label for label, path, method in parts
                    if method == 'forward'}
        for row in result['breakdown']:
            macs = {label_of.get(p): m for p, m in
                    result['macs_by_part'].items()}.get(row['part'])
            if macs and row['ms_per_batch'] > 0:
                row['macs_per_batch'] = macs
                row['macs_per_s'] = macs / (row['ms_per_batch'] / 1e3)
        result['top_ops'] = timer.top_operators()


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
    peer, ours = time_interleaved([peer_step, step],
                                  functools.partial(synchronize, device),
                                  rounds, warmup=0, min_sample_s=0)
    ratios = [p / t for p, t in zip(peer['samples_s'], ours['samples_s'])]
    return dict(rounds=rounds, times_s=ours['samples_s'],
                peer_times_s=peer['samples_s'],
                ratio=dict(median=statistics.median(ratios),
                           min=min(ratios), max=max(ratios)))


def _median(result: Optional[dict]) -> Optional[float]:
    return ((result or {}).get('images_per_s') or {}).get('median')


def _guarded(fn) -> Tuple[dict, Optional[Callable]]:
    """``fn()`` (a result and its step); a failure is recorded with its
    error and no step: the run goes on, the numbers stay missing."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001  (record and go on)
        return dict(error=f'{type(exc).__name__}: {exc}',
                    traceback=traceback.format_exc(limit=6)), None


def run_benchmark(configs: Sequence[str], settings: BenchmarkSettings,
                  device: torch.device, out_json: str,
                  peer: bool = True, gemm: bool = True,
                  cfg_options: Optional[dict] = None,
                  checkpoint: Optional[str] = None,
                  progress: bool = True, log=print, name: str = 'main'
                  ) -> dict:
    """One run: the GEMM reference, the peer, every config; ``out_json``
    rewritten after each.

    Returns:
        dict: ``schema``, ``run`` (its name), ``environment``,
        ``settings``, ``gemm``, ``peer`` (a result, or None) and ``results``
        (one per config: ``config``, ``name``, ``backbone``, ``table7``
        (family/level or None), ``input``, ``images_per_s``
        (``median``/``min``/``max``/``iters``), ``times_s``,
        ``macs_per_batch``, ``macs_per_s``, ``gemm_fraction``, ``deploy``,
        ``equivalence``, ``detections``, ``breakdown``, ``interleaved``,
        ``peer_ratio``, load averages; or ``error``).
    """
    cuda_fp32(device)
    report = dict(schema=SCHEMA, run=name, environment=environment(device),
                  settings=asdict(settings), gemm=None, peer=None,
                  results=[])
    report['settings']['deploy'] = list(settings.deploy)
    if gemm:
        report['gemm'] = gemm = gemm_rate(device)
        log(f"fp32 GEMM reference: {gemm['macs_per_s_best'] / 1e9:.1f} "
            f"GMAC/s ({gemm['kind']})")
    runner = Runner(settings, device, progress)
    partner = _run_peer(runner, report, log) if peer else None
    atomic_write_json(report, out_json)
    for config in configs:
        result, _ = _guarded(lambda: runner.run_once(
            Detector(config, cfg_options, checkpoint), partner))
        result.setdefault('config', config)
        result.setdefault('name', Detector(config).name)
        if _median(report['peer']) and _median(result):
            result['peer_ratio'] = _median(result) / _median(report['peer'])
        report['results'].append(result)
        log(_summary(result))
        atomic_write_json(report, out_json)
        gc.collect()
    if gemm:
        _gemm_end(report, device)
    report['environment']['load_average_end'] = load_average()
    atomic_write_json(report, out_json)
    return report


def _run_peer(runner: Runner, report: dict, log) -> Optional[Callable]:
    """The peer into ``report``; returns its step. A failure is recorded as
    ``peer_error``, and ours still run."""
    result, step = _guarded(lambda: runner.run_once(Peer()))
    if 'error' in result:
        report['peer_error'] = result['error']
        log(f"peer {PEER_NAME}: FAILED ({result['error']})")
        return None
    report['peer'] = result
    log(f'peer {PEER_NAME}: {_median(result):.3f} images/s')
    return step


def run_main_job(configs: Sequence[str], settings: BenchmarkSettings,
                 device: torch.device, out_dir: str,
                 also: Sequence[str] = (), log=print, **kwargs) -> List[dict]:
    """The run of ``configs``, then each run of :data:`EXTRA_RUNS` named in
    ``also`` on its cells of that run's configs, each written to
    ``out_dir/<name>/benchmark.json``.

    A bf16 run on a device without native bf16 is not run: its record
    says why (``skipped``).

    Returns:
        list[dict]: The records, the main one first.
    """
    from shufflenet_det.deploy import parse_deploy_steps
    from shufflenet_det.deploy.precision import native_low_precision
    main = run_benchmark(configs, settings, device,
                         osp.join(out_dir, 'benchmark.json'), log=log,
                         **kwargs)
    records = [main]
    for name in also:
        steps, cells = EXTRA_RUNS[name]
        run_settings = replace(settings, deploy=parse_deploy_steps(steps),
                               verify=False, breakdown=False)
        chosen = [r['config'] for r in main['results'] if r.get('table7')
                  and (r['table7']['family'], r['table7']['level']) in cells]
        out_json = osp.join(out_dir, name, 'benchmark.json')
        ok, why = (True, '') if 'bf16' not in run_settings.deploy else \
            native_low_precision(torch.bfloat16, 'cpu') \
            if device.type == 'cpu' else (False, 'bf16 is a CPU step')
        if not ok:
            log(f'{name}: not run ({why})')
            records.append(dict(schema=SCHEMA, run=name, skipped=why,
                                settings=asdict(run_settings), results=[]))
            atomic_write_json(records[-1], out_json)
            continue
        log(f"{name}: {len(chosen)} config(s), deploy "
            f"{','.join(run_settings.deploy) or 'none'} -> {out_json}")
        records.append(run_benchmark(chosen, run_settings, device, out_json,
                                     log=log, name=name,
                                     **dict(kwargs, gemm=False)))
    return records


def _gemm_end(report: dict, device: torch.device) -> None:
    """Contention only slows a GEMM down: measure again at the end, keep the
    best rate as this machine's reference, and set every ``gemm_fraction``
    (results and breakdown rows) relative to it."""
    gemm = report['gemm']
    gemm['end'] = gemm_rate(device)
    gemm['macs_per_s_reference'] = reference = max(
        gemm['macs_per_s_best'], gemm['end']['macs_per_s_best'])
    for item in report['results'] + [report['peer'] or {}]:
        for row in [item] + (item.get('breakdown') or []):
            if row.get('macs_per_s'):
                row['gemm_fraction'] = row['macs_per_s'] / reference


def _summary(result: dict) -> str:
    """One log line per config."""
    if 'error' in result:
        return f"{result['name']}: FAILED ({result['error']})"
    det, ok = result.get('detections'), result.get('equivalence_ok')
    return ', '.join(
        [f"{result['name']}: {_median(result):.3f} images/s"]
        + ([f"{result['peer_ratio']:.2f}x peer"] if 'peer_ratio' in result
           else [])
        + ([f"{result['interleaved']['ratio']['median']:.2f}x interleaved"]
           if 'interleaved' in result else [])
        + ([] if ok is None else ['parts == plain' if ok else
                                  'PARTS DIFFER FROM PLAIN'])
        + ([] if det is None else ['detections == plain' if det['equal'] else
                                   f"DETECTIONS DIFFER "
                                   f"({det['num_differences']})"]))
