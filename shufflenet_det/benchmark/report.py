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

from shufflenet_det.engine.atomic_io import atomic_write_json
from shufflenet_det.table7 import (FAMILIES, FOCUS_CELL, LEVELS, MISSING,
                                   MMAP_KEY, PAPER_TABLE7, place)

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


def _gemm_sentence(gemm: dict) -> str:
    kinds = [(k, gemm[k]) for k in ('mm', 'conv1x1') if k in gemm]
    detail = ', '.join(
        f"{'torch.mm' if k == 'mm' else '1x1 conv (oneDNN/cuDNN)'} "
        f"{v['macs_per_s_best'] / 1e9:.1f}" for k, v in kinds)
    return (f"fp32 GEMM reference: {gemm_reference(gemm) / 1e9:.1f} GMAC/s, "
            f"the best n={gemm['n']} product (GMAC/s: {detail}; best of "
            f"{gemm['iters']} at the start"
            + (' and at the end' if 'end' in gemm else '')
            + ' of the run, same threads). "of GEMM" = multiply-adds executed'
            ' per second / this rate.')


def gemm_reference(gemm: dict) -> float:
    """The GEMM rate that ``gemm_fraction`` values are relative to."""
    return gemm.get('macs_per_s_reference', gemm['macs_per_s_best'])


def _fmt(value, spec: str = '.1f') -> str:
    return MISSING if value is None else format(value, spec)


def _speed(images_per_s: Optional[dict]) -> str:
    return MISSING if not images_per_s else f"{images_per_s['median']:.2f}"


def _row_table(title: str, merged: dict, cell_fn) -> List[str]:
    lines = [f'| {title} | ' + ' | '.join(LEVELS) + ' |',
             '|---|' + '---|' * len(LEVELS)]
    for family in FAMILIES:
        lines.append(f'| {family} | ' + ' | '.join(
            cell_fn(merged['cells'][family][level]) for level in LEVELS)
            + ' |')
    return lines


def _deploy_steps(settings: dict) -> str:
    """The deploy steps of a run (schema 1 called them optimizations)."""
    steps = settings.get('deploy', settings.get('optimizations'))
    return ', '.join(steps or []) or 'none'


def _percent(fraction: Optional[float]) -> str:
    return MISSING if fraction is None else f'{100 * fraction:.0f}%'


def _config_row(family: str, level: str, ours: dict, batch_size: int) -> str:
    """One row of the per-config table."""
    ips, macs = ours['images_per_s'], ours['macs_per_batch']
    rate = macs * ips['median'] / batch_size if ips and macs else None
    config = osp.basename(ours['config']) if ours['config'] else MISSING
    speed = MISSING if not ips else (
        f"{ips['median']:.3f} [{ips['min']:.3f}, {ips['max']:.3f}] "
        f"({ips['iters']} it)")
    same = {None: MISSING, True: 'yes', False: 'NO'}[ours['equivalence_ok']]
    same += ' / ' + {None: MISSING, True: 'yes', False: 'NO'}[
        ours.get('detections_equal')]
    cells = [family, level, config, speed,
             _fmt(macs / 1e9 if macs else None),
             _fmt(rate / 1e9 if rate else None),
             _percent(ours['gemm_fraction']),
             _fmt(ours['peer_ratio'], '.2f'), same]
    return '| ' + ' | '.join(cells) + ' |'


def to_markdown(merged: dict, plot_name: Optional[str] = None) -> str:
    """Render :func:`merge` as markdown."""
    env = merged.get('environment') or {}
    settings = merged.get('settings') or {}
    gemm = merged.get('gemm')
    peer = merged.get('peer')
    device = env.get('device', MISSING)
    lines = ['# Table 7 (ShuffleNet V2, ECCV 2018) reproduced', '']
    if env:
        lines += [
            f"Speed measured on **{device}**, torch threads "
            f"{env.get('torch_threads')}, {env.get('date')}; load average "
            f"(1/5/15 min) {env.get('load_average')} at start, "
            f"{env.get('load_average_end')} at end.",
            f"Batch {settings.get('batch_size')} of "
            f"{'x'.join(map(str, settings.get('img_size', [])))} images, "
            f"{'fp16 autocast' if settings.get('fp16') else 'fp32'}, "
            'full inference (pre-processing, backbone, RPN, large separable '
            'conv, PSRoI pooling, R-CNN, NMS) of the detector each config '
            "builds (what tools/test.py evaluates); random weights; deploy "
            f"steps applied to ours and to the peer alike: "
            f"{_deploy_steps(settings)}.", '',
            f"Command: `{env.get('command')}`", '']
    else:
        lines += ['No benchmark JSON given: every speed is missing.', '']
    lines += [f'`{MISSING}` = not measured by this project. Paper values in '
              'parentheses.', '', '## mmAP (%), COCO val2017 = minival', '']
    lines += _row_table('Model', merged, lambda c: (
        f"{_fmt(c['ours']['mmap'])} ({c['paper']['mmap']})"))
    lines += ['', f'## Speed (images/s): ours on {device} (paper: GPU, '
              'batch 4)', '']
    lines += _row_table('Model', merged, lambda c: (
        f"{_speed(c['ours']['images_per_s'])} "
        f"({c['paper']['gpu_images_per_s']})"))
    if peer:
        lines += ['', f"## Speed relative to the peer ({peer['name']}, "
                  f"{peer['images_per_s']['median']:.3f} images/s in the "
                  'same run), both deployed alike', '']
        lines += _row_table('Model', merged, lambda c: (
            MISSING if c['ours']['peer_ratio'] is None
            else f"{c['ours']['peer_ratio']:.2f}x" + (
                '' if not c['ours']['peer_ratio_interleaved'] else
                f" (interleaved: "
                f"{c['ours']['peer_ratio_interleaved']['median']:.2f}x)")))
        lines += ['', 'Ours deployed / the peer deployed: the same deploy '
                  'steps, the same runtime. Ratios divide medians of '
                  'images/s measured minutes apart; "interleaved" is the '
                  'median over rounds of one peer step then one step of '
                  'ours, which cancels slow changes of machine load.']
        lines += _eager_lines(merged, peer)
    lines += ['', '## Complexity: MFLOPs at 224x224 (classifier '
              'convention of `shufflenet_det.analysis.complexity`)', '']
    lines += _row_table('Model', merged, lambda c: _fmt(c['ours']['mflops']))
    if plot_name:
        lines += ['', f'![speed vs MFLOPs]({plot_name})']
    lines += ['', '## Per config', '',
              '| Family | Level | Config | images/s median [min, max] | '
              'GMACs/batch | GMAC/s | of GEMM | x peer (both deployed) | '
              '== plain (parts / detections) |',
              '|---|---|---|---|---|---|---|---|---|']
    for family in FAMILIES:
        for level in LEVELS:
            lines.append(_config_row(family, level,
                                     merged['cells'][family][level]['ours'],
                                     settings.get('batch_size', 1)))
    if peer:
        lines += _peer_lines(peer)
    if gemm:
        lines += ['', _gemm_sentence(gemm)]
    if merged.get('backends'):
        lines += _backend_lines(merged['backends'])
    if merged['unplaced']:
        lines += ['', '## Configs outside the table or failed', '']
        for item in merged['unplaced']:
            lines.append(f"- `{item['config']}`: " + (
                f"failed: {item['error']}" if item['error'] else
                f"{_speed(item['images_per_s'])} images/s, not a Table 7 "
                'backbone'))
    return '\n'.join(lines) + '\n'


def _inter(interleaved: Optional[dict], ratio_only: bool = False) -> str:
    """`` (interleaved: R)`` from an :func:`interleaved_ratio` result."""
    ratio = interleaved if ratio_only else (interleaved or {}).get('ratio')
    return f" (interleaved: {ratio['median']:.2f}x)" if ratio else ''


def _backend_lines(rows: List[dict]) -> List[str]:
    """Other runtimes, from separate ``--backend`` runs, each named."""
    lines = ['', '## Other runtimes (separate runs: `tools/benchmark.py '
             '--backend`)', '',
             'Ours and the peer, both exported to ONNX and run on the same '
             'runtime, in a run of their own (its date and load average '
             'beside it): compare within a row only.', '',
             '| Runtime | Cell | Run (UTC), load avg start/end | ours '
             'images/s | ours in PyTorch, same run | peer on the runtime | '
             'ours / peer | interleaved | == PyTorch |',
             '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        load = '/'.join(f'{x[0]:.1f}' if x else MISSING
                        for x in r['load_average'])
        same = {None: MISSING, True: 'yes', False: 'NO'}[
            r['detections_equal']]
        lines.append(
            f"| {r['backend']} | {r['family']} {r['level']} | "
            f"{(r['date'] or MISSING)[:16]}, {load} | "
            f"{_fmt(r['images_per_s'], '.2f')} | "
            f"{_fmt(r['torch_images_per_s'], '.2f')} | "
            f"{_fmt(r['peer_images_per_s'], '.3f')} | "
            f"{_fmt(r['peer_ratio'], '.2f')}x | "
            f"{_fmt(r['interleaved'], '.2f')}x | {same} |")
    return lines


def _eager_lines(merged: dict, peer: dict) -> List[str]:
    """The cells timed before deploying too: each comparison named."""
    lines = []
    for family in FAMILIES:
        for level in LEVELS:
            ours = merged['cells'][family][level]['ours']
            if not ours.get('eager') or not peer.get('shipped'):
                continue
            lines += ['', f'### {family} {level}: every comparison', '',
                      '| Ours | Peer | images/s ours | images/s peer | '
                      'ratio |', '|---|---|---|---|---|',
                      f"| plain (as the config builds it) | as shipped | "
                      f"{_speed(ours['eager']['images_per_s'])} | "
                      f"{_speed(peer['shipped']['images_per_s'])} | "
                      f"{_fmt(ours['eager_peer_ratio'], '.2f')}x"
                      f"{_inter(ours['eager'].get('interleaved'))} |",
                      f"| deployed | deployed alike | "
                      f"{_speed(ours['images_per_s'])} | "
                      f"{_speed(peer['images_per_s'])} | "
                      f"{_fmt(ours['peer_ratio'], '.2f')}x"
                      f"{_inter(ours['peer_ratio_interleaved'], True)} |",
                      f"| deployed | as shipped | "
                      f"{_speed(ours['images_per_s'])} | "
                      f"{_speed(peer['shipped']['images_per_s'])} | "
                      f"{_fmt(ours['peer_shipped_ratio'], '.2f')}x |",
                      '', 'The fair figures are the first two rows (equal '
                      'treatment); the last row flatters us and is shown '
                      'only so that it is not mistaken for a fair one. '
                      '"interleaved": median over rounds of one peer step '
                      'then one step of ours.']
    return lines


def _peer_lines(peer: dict) -> List[str]:
    ips = peer['images_per_s']
    steps = ', '.join((peer.get('deploy') or {}).get('steps', [])) or 'none'
    shipped = (peer.get('shipped') or {}).get('images_per_s')
    deploy = peer.get('deploy') or {}
    det = peer.get('detections') or {}
    return ['', '## Peer', '',
            f"{peer['name']} (random weights, min_size "
            f"{peer['settings']['min_size']}, max_size "
            f"{peer['settings']['max_size']}, torchvision defaults "
            f"otherwise): deployed ({steps}"
            f"; {deploy.get('fused_bn', 0)} BatchNorms folded, "
            f"{deploy.get('unfused_bn', 0)} left) {ips['median']:.3f} "
            f"images/s [{ips['min']:.3f}, {ips['max']:.3f}] over "
            f"{ips['iters']} batches"
            + (f"; as shipped {shipped['median']:.3f} images/s"
               if shipped else '')
            + f"; {peer['macs_per_batch'] / 1e9:.1f} GMACs/batch"
            + (f", {peer['gemm_fraction'] * 100:.0f}% of the GEMM rate"
               if peer.get('gemm_fraction') is not None else '')
            + ('' if not det else
               f"; deployed detections == shipped ({det['detections']} "
               'detections)' if det.get('equal') else
               f"; deployed detections differ from shipped "
               f"({det.get('num_differences')})") + '.']


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
    """Write ``table7.md``, ``table7.json`` and ``table7.png`` (when any speed
    was measured) under ``out_dir``; returns their paths. ``backends``:
    ``tools/benchmark.py --backend`` JSONs, shown in a section of their
    own."""
    os.makedirs(out_dir, exist_ok=True)
    merged = merge(benchmark, metrics, complexity, backends)
    paths = dict(json=osp.join(out_dir, 'table7.json'),
                 markdown=osp.join(out_dir, 'table7.md'))
    png = osp.join(out_dir, 'table7.png')
    if plot(merged, png):
        paths['plot'] = png
    with open(paths['markdown'], 'w') as f:
        f.write(to_markdown(merged, 'table7.png' if 'plot' in paths
                            else None))
    atomic_write_json(merged, paths['json'])
    return paths


def _breakdown_table(rows: List[dict], with_macs: bool) -> List[str]:
    head = '| Part | ms / batch | share |'
    rule = '|---|---|---|'
    if with_macs:
        head += ' GMACs / batch | GMAC/s | of GEMM |'
        rule += '---|---|---|'
    lines = [head, rule]
    total = sum(r['ms_per_batch'] for r in rows if not r.get('parallel'))
    for r in rows:
        # Time on worker threads overlaps its caller's row: shown, not added.
        part = f"({r['part']})" if r.get('parallel') else r['part']
        line = (f"| {part} | {r['ms_per_batch']:.1f} | "
                f"{100 * r['share']:.1f}% |")
        if with_macs:
            macs, rate = r.get('macs_per_batch'), r.get('macs_per_s')
            line += (f" {_fmt(macs / 1e9 if macs else None, '.2f')}"
                     f" | {_fmt(rate / 1e9 if rate else None)}"
                     f" | {_percent(r.get('gemm_fraction'))} |")
        lines.append(line)
    lines.append(f'| **total** | {total:.1f} | 100% |' +
                 (' | | |' if with_macs else ''))
    return lines


def breakdown_markdown(benchmark: dict,
                       focus: Sequence[tuple] = (FOCUS_CELL, )
                       ) -> str:
    """Where the time goes: the ``focus`` cells and the peer in detail, then
    every config per part.

    Args:
        benchmark (dict): ``tools/benchmark.py`` JSON.
        focus (Sequence[tuple]): (family, level) cells to detail.

    Returns:
        str: Markdown.
    """
    env = benchmark.get('environment') or {}
    settings = benchmark.get('settings') or {}
    gemm = benchmark.get('gemm')
    lines = [f"# Where inference time goes: {env.get('device')}, "
             f"{env.get('torch_threads')} threads", '',
             f"{env.get('date')}; batch {settings.get('batch_size')} of "
             f"{'x'.join(map(str, settings.get('img_size', [])))}; deploy steps "
             f"{_deploy_steps(settings)}; "
             f"load average {env.get('load_average')} at start.",
             f"Command: `{env.get('command')}`", '',
             'One step per model, timed part by part after the timed steps '
             '(exclusive wall time: NMS is charged to its own row, not to '
             'the part that calls it; "other" is the remainder). A row in '
             'parentheses ran on worker threads while its caller waited: '
             'its time is part of the caller\'s and not added to the total. '
             'MACs are counted on the first call with the same input.']
    if gemm:
        lines.append(_gemm_sentence(gemm))
    results = [r for r in benchmark.get('results', []) if 'breakdown' in r]
    for family, level in focus:
        for r in results:
            cell = r.get('table7') or {}
            if (cell.get('family'), cell.get('level')) == (family, level):
                ips = r['images_per_s']
                inter = (r.get('interleaved') or {}).get('ratio')
                lines += ['', f"## {family} {level}: `{r['name']}`", '',
                          f"{ips['median']:.3f} images/s (median of "
                          f"{ips['iters']})"
                          + (f", {r['peer_ratio']:.2f}x the peer"
                             if r.get('peer_ratio') else '')
                          + (f" ({inter['median']:.2f}x interleaved, "
                             f"range {inter['min']:.2f}-{inter['max']:.2f})"
                             if inter else '')
                          + (f"; {r['macs_per_batch'] / 1e9:.1f} GMACs/batch "
                             f"at {r['gemm_fraction'] * 100:.0f}% of the GEMM"
                             ' rate' if r.get('gemm_fraction') else '')
                          + '.', '']
                lines += _breakdown_table(r['breakdown'], True)
                if r.get('top_ops'):
                    lines += ['', 'Slowest operators (torch.profiler, same '
                              'step; record_function rows are the parts):',
                              '', '| Operator | self ms | calls |',
                              '|---|---|---|']
                    lines += [f"| `{op['name']}` | {op['self_ms']:.1f} | "
                              f"{op['calls']} |" for op in r['top_ops']]
    peer = benchmark.get('peer')
    if peer and 'breakdown' in peer:
        lines += ['', f"## Peer: {peer['name']}", '',
                  f"{peer['images_per_s']['median']:.3f} images/s; "
                  f"{peer['macs_per_batch'] / 1e9:.1f} GMACs/batch"
                  + (f" at {peer['gemm_fraction'] * 100:.0f}% of the GEMM "
                     'rate' if peer.get('gemm_fraction') else '') + '.', '']
        lines += _breakdown_table(peer['breakdown'], False)
    if results:
        parts = []
        for r in results:
            for row in r['breakdown']:
                if row['part'] not in parts:
                    parts.append(row['part'])
        lines += ['', '## Every config (ms / batch)', '',
                  '| Config | ' + ' | '.join(parts) + ' | total |',
                  '|---|' + '---|' * (len(parts) + 1)]
        for r in results:
            ms = {row['part']: row['ms_per_batch'] for row in r['breakdown']}
            total = sum(row['ms_per_batch'] for row in r['breakdown']
                        if not row.get('parallel'))
            lines.append(f"| {r['name']} | " + ' | '.join(
                _fmt(ms.get(p), '.0f') for p in parts) + f' | {total:.0f} |')
    return '\n'.join(lines) + '\n'
