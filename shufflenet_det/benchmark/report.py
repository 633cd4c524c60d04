"""Table 7 of the ShuffleNet V2 paper from this project's measurements.

Merges the benchmark's records (``tools/benchmark.py``: the main run, and
the plain, bf16 and ONNX-runtime runs), COCO metrics JSONs
(``tools/test.py --metrics-out``) and the complexity table
(:mod:`shufflenet_det.analysis.complexity`) into the paper's layout: one row
per backbone family, one column per complexity level, our number beside the
paper's, and flat rows for the other runs. A number this project did not
measure is shown as ``MISSING`` and stored as ``null``; nothing is filled in.
"""
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence

from shufflenet_det.engine.atomic_io import (atomic_write_bytes,
                                             atomic_write_json)
from shufflenet_det.paper import FAMILIES, LEVELS, PAPER_TABLE7
from shufflenet_det.table7 import MMAP_KEY, place

from .render import breakdown_markdown, to_markdown


def load_json(path: str) -> dict:
    """Read a JSON file, naming the file in any error."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f'table7: cannot read {path}: {exc}') from exc


def metrics_cells(paths: Sequence[str],
                  backbone_of=None) -> Dict[tuple, dict]:
    """COCO metrics per Table 7 cell.

    Args:
        paths (Sequence[str]): ``tools/test.py --metrics-out`` files:
            ``{"config": ..., "checkpoint": ..., "metrics": {...}}``.
        backbone_of (Callable, optional): config path -> backbone cfg.
            Default: read the config with mmengine.

    Returns:
        dict: ``(family, level) -> {"mmap": percent, "metrics": {...},
        "file": path, "config": ...}``.

    Raises:
        ValueError: If a file lacks ``config`` or ``metrics['coco/bbox_mAP']``,
            its config is not a Table 7 cell, or two files claim one cell.
    """
    if backbone_of is None:
        def backbone_of(config):
            from mmengine.config import Config
            return Config.fromfile(config).model.get('backbone')
    cells, seen = {}, {}
    for path in paths:
        data = load_json(path)
        metrics = data.get('metrics') or {}
        if 'config' not in data or MMAP_KEY not in metrics:
            raise ValueError(f'table7: {path} needs "config" and '
                             f'"metrics"["{MMAP_KEY}"] (tools/test.py '
                             '--metrics-out writes them)')
        key = place(f'table7: {path} (config {data["config"]})',
                    backbone_of(data['config']), seen)
        cells[key] = dict(mmap=100.0 * float(metrics[MMAP_KEY]),
                          metrics=metrics, file=path, config=data['config'])
    return cells


def complexity_cells() -> Dict[tuple, dict]:
    """Our MFLOPs and Mparams at 224x224 per cell, counted by
    :func:`shufflenet_det.analysis.complexity.table7_complexity`."""
    from shufflenet_det.analysis.complexity import table7_complexity
    return {(row['family'], row['level']): dict(mflops=row['macs'] / 1e6,
                                                mparams=row['params'] / 1e6)
            for row in table7_complexity()}


def _median(result: Optional[dict]) -> Optional[float]:
    return ((result or {}).get('images_per_s') or {}).get('median')


def _ratio(result: Optional[dict]) -> Optional[float]:
    """The interleaved ours / peer median of a result."""
    return (((result or {}).get('interleaved') or {}).get('ratio')
            or {}).get('median')


def by_cell(record: Optional[dict]) -> Dict[tuple, dict]:
    """``(family, level) -> result`` of a run's measured Table 7 configs."""
    return {(r['table7']['family'], r['table7']['level']): r
            for r in (record or {}).get('results', [])
            if r.get('table7') and 'images_per_s' in r}


def legacy_plain(record: Optional[dict]) -> Optional[dict]:
    """Schema 2 timed the plain model inside the main run (``eager``, the
    peer's ``shipped``): that timing as a run of its own (``--deploy
    none``), as schema 3 records it."""
    results = [dict(r, **r['eager'], peer_ratio=r.get('eager_peer_ratio'))
               for r in (record or {}).get('results', []) if r.get('eager')]
    shipped = ((record or {}).get('peer') or {}).get('shipped')
    if not results or not shipped:
        return None
    return dict(record, run='plain', results=results,
                settings=dict(record['settings'], deploy=[]),
                peer=dict(record['peer'], **shipped))


def classify(main: Optional[dict], runs: Sequence[dict]) -> dict:
    """The other runs of the report, by their settings: ``plain`` (no
    deploy steps), ``bf16`` (the bf16 step) and ``backends`` (ONNX
    runtimes).

    Raises:
        ValueError: For a PyTorch run that is none of these.
    """
    out = dict(plain=legacy_plain(main), bf16=None, backends=[])
    for record in runs:
        settings = record.get('settings') or {}
        deploy = settings.get('deploy') or []
        if settings.get('backend', 'torch') != 'torch':
            out['backends'].append(record)
        elif 'bf16' in deploy:
            out['bf16'] = record
        elif not deploy:
            out['plain'] = record
        else:
            raise ValueError(f'table7: a run with deploy steps {deploy} on '
                             'PyTorch is neither plain (none), bf16 nor '
                             'another runtime; give it as --benchmark')
    return out


def beside_main(main: Optional[dict], other: Optional[dict]
                ) -> Optional[dict]:
    """Another run (plain, bf16, an ONNX runtime) beside the main run.

    Returns:
        dict | None: ``backend``, ``deploy``, ``skipped`` (why it was not
        run), ``date``, ``command``, ``load_average`` (start, end) and
        ``rows``, one per cell the other run measured: ``family``,
        ``level``; ``ours``, ``peer`` (images/s medians), ``ratio``,
        ``interleaved``, ``torch`` (ours deployed in PyTorch, runtime runs),
        ``detections_equal``, ``skipped_step`` (why a precision step left
        the model unchanged) of the other run; ``main_ours``,
        ``main_peer``, ``main_ratio``, ``main_interleaved`` of the main.
    """
    if not other:
        return None
    env, settings = other.get('environment') or {}, other['settings']
    main_cells = by_cell(main)
    rows = []
    for (family, level), result in by_cell(other).items():
        base = main_cells.get((family, level))
        deploy = result.get('deploy') or {}
        rows.append(dict(
            family=family, level=level, ours=_median(result),
            peer=_median(other.get('peer')), ratio=result.get('peer_ratio'),
            interleaved=_ratio(result),
            torch=_median(result.get('torch_deployed')),
            detections_equal=(result.get('detections') or {}).get('equal'),
            skipped_step=next((deploy[s]['skipped'] for s in ('bf16', 'fp16')
                               if 'skipped' in deploy.get(s, {})), None),
            main_ours=_median(base), main_peer=_median((main or {}).get(
                'peer')), main_ratio=(base or {}).get('peer_ratio'),
            main_interleaved=_ratio(base)))
    return dict(backend=settings.get('backend', 'torch'),
                deploy=settings.get('deploy'), skipped=other.get('skipped'),
                date=env.get('date'), command=env.get('command'),
                load_average=(env.get('load_average'),
                              env.get('load_average_end')), rows=rows)


def _ours(bench: dict, metrics: dict, complexity: dict) -> dict:
    """One cell's figures; None where not measured."""
    return dict(
        mmap=metrics.get('mmap'), images_per_s=bench.get('images_per_s'),
        peer_ratio=bench.get('peer_ratio'),
        peer_ratio_interleaved=(bench.get('interleaved') or {}).get('ratio'),
        macs_per_batch=bench.get('macs_per_batch'),
        gemm_fraction=bench.get('gemm_fraction'),
        equivalence_ok=bench.get('equivalence_ok'),
        detections_equal=(bench.get('detections') or {}).get('equal'),
        config=bench.get('config') or metrics.get('config'),
        mflops=complexity.get('mflops'), mparams=complexity.get('mparams'))


def merge(benchmark: Optional[dict], metrics: Dict[tuple, dict],
          complexity: Dict[tuple, dict], runs: Sequence[dict] = ()) -> dict:
    """Everything per Table 7 cell, ours beside the paper's, and the rows
    of the other runs.

    Args:
        benchmark (dict, optional): The main run's record.
        metrics, complexity (dict): :func:`metrics_cells`,
            :func:`complexity_cells`.
        runs (Sequence[dict]): Records of other runs (plain, bf16, ONNX
            runtimes), told apart by :func:`classify`.

    Returns:
        dict: ``cells`` (``family -> level -> {ours: {...}, paper: {...}}``,
        unmeasured values None), ``unplaced`` (configs that are no Table 7
        cell, or failed), ``plain``, ``bf16`` and ``backends`` (the other
        runs, :func:`beside_main`), and ``environment``, ``settings``,
        ``gemm``, ``peer`` of the main run.
    """
    benchmark = benchmark or {}
    other = classify(benchmark, runs)
    speed = by_cell(benchmark)
    unplaced = [dict(name=r.get('name'), config=r.get('config'),
                     error=r.get('error'), images_per_s=r.get('images_per_s'))
                for r in benchmark.get('results', [])
                if r not in speed.values()]
    cells = {family: {level: dict(
        ours=_ours(speed.get((family, level), {}),
                   metrics.get((family, level), {}),
                   complexity.get((family, level), {})),
        paper=dict(mmap=PAPER_TABLE7[family]['mmap'][level],
                   gpu_images_per_s=PAPER_TABLE7[family]['gpu_images_per_s'][
                       level])) for level in LEVELS} for family in FAMILIES}
    return dict(cells=cells, unplaced=unplaced,
                plain=beside_main(benchmark, other['plain']),
                bf16=beside_main(benchmark, other['bf16']),
                backends=[beside_main(benchmark, b)
                          for b in other['backends']],
                environment=benchmark.get('environment'),
                settings=benchmark.get('settings'),
                gemm=benchmark.get('gemm'), peer=benchmark.get('peer'))


def plot(merged: dict, path: str) -> bool:
    """Speed vs MFLOPs, one line per family: ours (left), paper GPU (right).

    Returns:
        bool: False (no file written) when no speed was measured.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    env = merged.get('environment') or {}
    fig, (ax_ours, ax_paper) = plt.subplots(1, 2, figsize=(11, 4.2))
    any_point = False
    for family in FAMILIES:
        xs, ys, pxs, pys = [], [], [], []
        for level in LEVELS:
            cell = merged['cells'][family][level]
            nominal = float(level.rstrip('M'))
            mflops = cell['ours']['mflops']
            if cell['ours']['images_per_s']:
                xs.append(mflops if mflops is not None else nominal)
                ys.append(cell['ours']['images_per_s']['median'])
            pxs.append(nominal)
            pys.append(cell['paper']['gpu_images_per_s'])
        if xs:
            any_point = True
            ax_ours.plot(xs, ys, marker='o', label=family)
        ax_paper.plot(pxs, pys, marker='s', linestyle='--', label=family)
    if not any_point:
        plt.close(fig)
        return False
    ax_ours.set_title(f"This project: {env.get('device', '?')}, "
                      f"{env.get('torch_threads', '?')} threads", fontsize=9)
    ax_paper.set_title('Paper, Table 7 (GPU)', fontsize=9)
    ax_ours.set_xlabel('backbone MFLOPs at 224x224 (counted)')
    ax_paper.set_xlabel('complexity level (MFLOPs at 224x224)')
    for ax in (ax_ours, ax_paper):
        ax.set_ylabel('images/s (batch 4, 800x1200)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_report(out_dir: str, benchmark: Optional[dict],
                 metrics: Dict[tuple, dict],
                 complexity: Dict[tuple, dict],
                 runs: Sequence[dict] = ()) -> Dict[str, str]:
    """Write ``table7.md``, ``table7.json``, ``table7.png`` (when any speed
    was measured) and ``breakdown.md`` (with a benchmark) under ``out_dir``;
    returns their paths. ``runs``: records of other runs (see
    :func:`merge`), each shown in a section of its own."""
    os.makedirs(out_dir, exist_ok=True)
    merged = merge(benchmark, metrics, complexity, runs)
    paths = dict(json=osp.join(out_dir, 'table7.json'),
                 markdown=osp.join(out_dir, 'table7.md'))
    png = osp.join(out_dir, 'table7.png')
    if plot(merged, png):
        paths['plot'] = png
    text = to_markdown(merged, 'table7.png' if 'plot' in paths else None)
    atomic_write_bytes(text.encode('utf-8'), paths['markdown'])
    atomic_write_json(merged, paths['json'])
    if benchmark:
        paths['breakdown'] = osp.join(out_dir, 'breakdown.md')
        atomic_write_bytes(breakdown_markdown(benchmark).encode('utf-8'),
                           paths['breakdown'])
    return paths
