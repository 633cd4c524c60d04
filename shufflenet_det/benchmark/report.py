"""Table 7 of the ShuffleNet V2 paper from this project's measurements.

Merges the benchmark's records (``tools/benchmark.py``: the main run, and
the plain, bf16 and ONNX-runtime runs), COCO metrics JSONs and the
complexity table into the paper's layout, ours beside the paper's, and
writes it (:mod:`.render`). A number this project did not measure is shown
as ``MISSING`` and stored as ``null``; nothing is filled in.
"""
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence

from shufflenet_det.engine.atomic_io import (atomic_write_bytes,
                                             atomic_write_json)
from shufflenet_det.paper import FAMILIES, LEVELS, PAPER_TABLE7
from shufflenet_det.table7 import MMAP_KEY, place

from .render import breakdown_markdown, dig, plot, to_markdown


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
        paths (Sequence[str]): ``tools/test.py --metrics-out`` files.
        backbone_of (Callable, optional): config path -> backbone cfg.
            Default: read the config with mmengine.

    Returns:
        dict: ``(family, level) -> dict(mmap=percent, metrics, file, config)``.

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


def by_cell(record: Optional[dict]) -> Dict[tuple, dict]:
    """``(family, level) -> result`` of a run's measured Table 7 configs."""
    return {(r['table7']['family'], r['table7']['level']): r
            for r in (record or {}).get('results', [])
            if r.get('table7') and 'images_per_s' in r}


def legacy_plain(record: dict) -> Optional[dict]:
    """Schema 2 timed the plain model inside the main run (``eager``, the
    peer's ``shipped``): that timing as a run of its own (``--deploy
    none``), as schema 3 records it."""
    results = [dict(r, **r['eager'], peer_ratio=r.get('eager_peer_ratio'))
               for r in record.get('results', []) if r.get('eager')]
    shipped = dig(record, 'peer', 'shipped')
    if not results or not shipped:
        return None
    return dict(record, run='plain', results=results,
                settings=dict(record['settings'], deploy=[]),
                peer=dict(record['peer'], **shipped))


def _speeds(result: Optional[dict], peer: Optional[dict],
            prefix: str = '') -> dict:
    """Images/s medians of ours and the peer, ours / peer and its
    interleaved median, keyed ``{prefix}ours`` etc."""
    return {prefix + 'ours': dig(result, 'images_per_s', 'median'),
            prefix + 'peer': dig(peer, 'images_per_s', 'median'),
            prefix + 'ratio': dig(result, 'peer_ratio'),
            prefix + 'interleaved': dig(result, 'interleaved', 'ratio',
                                        'median')}


def beside_main(main: dict, other: Optional[dict]) -> Optional[dict]:
    """Another run (plain, bf16, an ONNX runtime) beside the main run: its
    ``backend``, ``deploy``, ``skipped`` (why it was not run), ``date``,
    ``command``, ``load_average`` (start, end) and ``rows``, one per cell
    it measured: ``family``, ``level``, :func:`_speeds` of both runs (those
    of the main run prefixed ``main_``), ``torch`` (ours deployed in
    PyTorch, runtime runs), ``detections_equal`` and ``skipped_step`` (why
    a precision step left the model unchanged). None without ``other``."""
    if not other:
        return None
    env, main_cells = other.get('environment') or {}, by_cell(main)
    rows = [dict(family=family, level=level,
                 **_speeds(result, other.get('peer')),
                 torch=dig(result, 'torch_deployed', 'images_per_s', 'median'),
                 detections_equal=dig(result, 'detections', 'equal'),
                 skipped_step=(dig(result, 'deploy', 'bf16', 'skipped')
                               or dig(result, 'deploy', 'fp16', 'skipped')),
                 **_speeds(main_cells.get((family, level)), main.get('peer'),
                           'main_'))
            for (family, level), result in by_cell(other).items()]
    return dict(backend=other['settings'].get('backend', 'torch'),
                deploy=other['settings'].get('deploy'),
                skipped=other.get('skipped'), date=env.get('date'),
                command=env.get('command'),
                load_average=(env.get('load_average'),
                              env.get('load_average_end')), rows=rows)


def _ours(bench: dict, metrics: dict, complexity: dict) -> dict:
    """One cell's figures; None where not measured."""
    return dict(
        mmap=metrics.get('mmap'), images_per_s=bench.get('images_per_s'),
        peer_ratio=bench.get('peer_ratio'),
        peer_ratio_interleaved=dig(bench, 'interleaved', 'ratio'),
        macs_per_batch=bench.get('macs_per_batch'),
        gemm_fraction=bench.get('gemm_fraction'),
        equivalence_ok=bench.get('equivalence_ok'),
        detections_equal=dig(bench, 'detections', 'equal'),
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
        runs (Sequence[dict]): Records of other runs, told apart by their
            settings: plain (no deploy steps), bf16 (the bf16 step), ONNX
            runtimes (another backend).

    Returns:
        dict: ``cells`` (``family -> level -> {ours: {...}, paper: {...}}``,
        unmeasured values None), ``unplaced`` (configs that are no Table 7
        cell, or failed), ``plain``, ``bf16``, ``backends`` (a list) by
        :func:`beside_main`, and the main run's ``environment``,
        ``settings``, ``gemm`` and ``peer``.

    Raises:
        ValueError: For a PyTorch run that is neither plain nor bf16.
    """
    main = benchmark or {}
    plain, bf16, backends = legacy_plain(main), None, []
    for run in runs:
        settings = run.get('settings') or {}
        deploy = settings.get('deploy') or []
        if settings.get('backend', 'torch') != 'torch':
            backends.append(beside_main(main, run))
        elif 'bf16' in deploy:
            bf16 = run
        elif not deploy:
            plain = run
        else:
            raise ValueError(f'table7: a run with deploy steps {deploy} on '
                             'PyTorch is neither plain (none), bf16 nor '
                             'another runtime; give it as --benchmark')
    speed = by_cell(main)
    cells = {family: {level: dict(
        ours=_ours(speed.get((family, level), {}),
                   metrics.get((family, level), {}),
                   complexity.get((family, level), {})),
        paper={key: PAPER_TABLE7[family][key][level]
               for key in ('mmap', 'gpu_images_per_s')})
        for level in LEVELS} for family in FAMILIES}
    unplaced = [{key: r.get(key) for key in ('name', 'config', 'error',
                                             'images_per_s')}
                for r in main.get('results', []) if r not in speed.values()]
    return dict(cells=cells, unplaced=unplaced,
                plain=beside_main(main, plain), bf16=beside_main(main, bf16),
                backends=backends, **{key: main.get(key) for key in (
                    'environment', 'settings', 'gemm', 'peer')})


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
