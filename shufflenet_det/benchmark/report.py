"""Table 7 of the ShuffleNet V2 paper from this project's measurements.

Merges a benchmark JSON (``tools/benchmark.py``), COCO metrics JSONs
(``tools/test.py --metrics-out``) and the complexity table
(:mod:`shufflenet_det.analysis.complexity`) into the paper's layout: one row per
backbone family, one column per complexity level, our number beside the
paper's. A number this project did not measure is shown as :data:`MISSING`
and stored as ``null``; nothing is filled in.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from shufflenet_det.engine.atomic_io import (atomic_write_bytes,
                                             atomic_write_json)
from shufflenet_det.table7 import (FAMILIES, LEVELS, MMAP_KEY, PAPER_TABLE7,
                                   place)

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


def backend_rows(benchmarks: Sequence[dict]) -> List[dict]:
    """One row per Table 7 config of ``tools/benchmark.py --backend`` runs.

    Returns:
        list[dict]: ``backend``, ``family``, ``level``, ``date``,
        ``load_average`` (start, end), ``images_per_s`` (ours on the
        runtime), ``torch_images_per_s`` (our deployed PyTorch path, same
        run), ``peer_images_per_s`` (the peer on the runtime),
        ``peer_ratio`` and ``interleaved`` (medians), ``detections_equal``.
    """
    rows = []
    for bench in benchmarks:
        env = bench.get('environment') or {}
        peer = bench.get('peer') or {}
        for result in bench.get('results', []):
            cell = result.get('table7')
            if not cell or 'images_per_s' not in result:
                continue
            rows.append(dict(
                backend=(bench.get('settings') or {}).get('backend',
                                                          'torch'),
                family=cell['family'], level=cell['level'],
                date=env.get('date'),
                load_average=(env.get('load_average'),
                              env.get('load_average_end')),
                images_per_s=result['images_per_s']['median'],
                torch_images_per_s=(result.get('torch_deployed') or {}).get(
                    'images_per_s', {}).get('median'),
                peer_images_per_s=(peer.get('images_per_s') or {}).get(
                    'median'),
                peer_ratio=result.get('peer_ratio'),
                interleaved=((result.get('interleaved') or {}).get('ratio')
                             or {}).get('median'),
                detections_equal=(result.get('detections') or {}).get(
                    'equal')))
    return rows


def merge(benchmark: Optional[dict], metrics: Dict[tuple, dict],
          complexity: Dict[tuple, dict],
          backends: Sequence[dict] = ()) -> dict:
    """Everything per Table 7 cell, ours beside the paper's.

    Returns:
        dict: ``cells`` (``family -> level -> {ours: {...}, paper: {...}}``
        where unmeasured values are None), ``unplaced`` (benchmarked configs
        that are no Table 7 cell, or failed), ``environment``, ``settings``,
        ``gemm`` and ``peer`` from the benchmark.
    """
    speed = {}
    unplaced = []
    for result in (benchmark or {}).get('results', []):
        cell = result.get('table7')
        if cell and 'images_per_s' in result:
            speed[(cell['family'], cell['level'])] = result
        else:
            unplaced.append(dict(name=result.get('name'),
                                 config=result.get('config'),
                                 error=result.get('error'),
                                 images_per_s=result.get('images_per_s')))
    cells = {}
    for family in FAMILIES:
        cells[family] = {}
        for level in LEVELS:
            key = (family, level)
            bench = speed.get(key, {})
            ours = dict(
                mmap=metrics.get(key, {}).get('mmap'),
                images_per_s=bench.get('images_per_s'),
                peer_ratio=bench.get('peer_ratio'),
                peer_ratio_interleaved=(bench.get('interleaved') or {}).get(
                    'ratio'),
                macs_per_batch=bench.get('macs_per_batch'),
                gemm_fraction=bench.get('gemm_fraction'),
                equivalence_ok=bench.get('equivalence_ok'),
                detections_equal=(bench.get('detections') or {}).get(
                    'equal'),
                eager=bench.get('eager'),
                eager_peer_ratio=bench.get('eager_peer_ratio'),
                peer_shipped_ratio=bench.get('peer_shipped_ratio'),
                config=bench.get('config') or metrics.get(key, {}).get(
                    'config'),
                mflops=complexity.get(key, {}).get('mflops'),
                mparams=complexity.get(key, {}).get('mparams'))
            paper = PAPER_TABLE7[family]
            cells[family][level] = dict(
                ours=ours,
                paper=dict(mmap=paper['mmap'][level],
                           gpu_images_per_s=paper['gpu_images_per_s'][level]))
    benchmark = benchmark or {}
    return dict(cells=cells, unplaced=unplaced,
                backends=backend_rows(backends),
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
                 backends: Sequence[dict] = ()) -> Dict[str, str]:
    """Write ``table7.md``, ``table7.json``, ``table7.png`` (when any speed
    was measured) and ``breakdown.md`` (with a benchmark) under ``out_dir``;
    returns their paths. ``backends``: ``tools/benchmark.py --backend``
    JSONs, shown in a section of their own."""
    os.makedirs(out_dir, exist_ok=True)
    merged = merge(benchmark, metrics, complexity, backends)
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
