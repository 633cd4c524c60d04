"""Markdown of the benchmark's results: the Table 7 report and the time
breakdown (``tools/table7.py`` and ``tools/benchmark.py`` both call these).

Rendering only: :mod:`.report` merges the measurements, nothing here
measures or reads files.
"""
import os.path as osp
from typing import List, Optional, Sequence

from shufflenet_det.markdown import fmt, markdown_table
from shufflenet_det.table7 import FAMILIES, FOCUS_CELL, LEVELS, MISSING


def _gemm_sentence(gemm: dict) -> str:
    kinds = [(k, gemm[k]) for k in ('mm', 'conv1x1') if k in gemm]
    detail = ', '.join(
        f"{'torch.mm' if k == 'mm' else '1x1 conv (oneDNN/cuDNN)'} "
        f"{v['macs_per_s_best'] / 1e9:.1f}" for k, v in kinds)
    return (f"fp32 GEMM reference: {_gemm_reference(gemm) / 1e9:.1f} GMAC/s, "
            f"the best n={gemm['n']} product (GMAC/s: {detail}; best of "
            f"{gemm['iters']} at the start"
            + (' and at the end' if 'end' in gemm else '')
            + ' of the run, same threads). "of GEMM" = multiply-adds executed'
            ' per second / this rate.')


def _gemm_reference(gemm: dict) -> float:
    """The GEMM rate that ``gemm_fraction`` values are relative to."""
    return gemm.get('macs_per_s_reference', gemm['macs_per_s_best'])


def _speed(images_per_s: Optional[dict]) -> str:
    return MISSING if not images_per_s else f"{images_per_s['median']:.2f}"


def _row_table(title: str, merged: dict, cell_fn) -> List[str]:
    return markdown_table(
        [title, *LEVELS],
        ([family] + [cell_fn(merged['cells'][family][level])
                     for level in LEVELS] for family in FAMILIES))


def _deploy_steps(settings: dict) -> str:
    """The deploy steps of a run (schema 1 called them optimizations)."""
    steps = settings.get('deploy', settings.get('optimizations'))
    return ', '.join(steps or []) or 'none'


def _percent(fraction: Optional[float]) -> str:
    return MISSING if fraction is None else f'{100 * fraction:.0f}%'


def _config_row(family: str, level: str, ours: dict,
                batch_size: int) -> List[str]:
    """The cells of one row of the per-config table."""
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
             fmt(macs / 1e9 if macs else None),
             fmt(rate / 1e9 if rate else None),
             _percent(ours['gemm_fraction']),
             fmt(ours['peer_ratio'], '.2f'), same]
    return cells


def _header_lines(merged: dict) -> List[str]:
    """Title, machine, settings and command of the run."""
    env = merged.get('environment') or {}
    settings = merged.get('settings') or {}
    lines = ['# Table 7 (ShuffleNet V2, ECCV 2018) reproduced', '']
    if not env:
        return lines + ['No benchmark JSON given: every speed is missing.',
                        '']
    return lines + [
        f"Speed measured on **{env.get('device', MISSING)}**, torch threads "
        f"{env.get('torch_threads')}, {env.get('date')}; load average "
        f"(1/5/15 min) {env.get('load_average')} at start, "
        f"{env.get('load_average_end')} at end.",
        f"Batch {settings.get('batch_size')} of "
        f"{'x'.join(map(str, settings.get('img_size', [])))} images, "
        f"{'fp16 dense parts' if 'fp16' in _deploy_steps(settings) else 'fp32'}, "
        'full inference (pre-processing, backbone, RPN, large separable '
        'conv, PSRoI pooling, R-CNN, NMS) of the detector each config '
        "builds (what tools/test.py evaluates); random weights; deploy "
        f"steps applied to ours and to the peer alike: "
        f"{_deploy_steps(settings)}.", '',
        f"Command: `{env.get('command')}`", '']


def _peer_ratio_cell(ours: dict) -> str:
    if ours['peer_ratio'] is None:
        return MISSING
    inter = ours['peer_ratio_interleaved']
    return f"{ours['peer_ratio']:.2f}x" + (
        f" (interleaved: {inter['median']:.2f}x)" if inter else '')


def _peer_ratio_lines(merged: dict, peer: dict) -> List[str]:
    """Ours / the peer per cell, and every comparison of the focus cell."""
    lines = ['', f"## Speed relative to the peer ({peer['name']}, "
             f"{peer['images_per_s']['median']:.3f} images/s in the "
             'same run), both deployed alike', '']
    lines += _row_table('Model', merged,
                        lambda c: _peer_ratio_cell(c['ours']))
    lines += ['', 'Ours deployed / the peer deployed: the same deploy '
              'steps, the same runtime. Ratios divide medians of '
              'images/s measured minutes apart; "interleaved" is the '
              'median over rounds of one peer step then one step of '
              'ours, which cancels slow changes of machine load.']
    return lines + _plain_lines(merged['plain'])


def _per_config_lines(merged: dict) -> List[str]:
    batch_size = (merged.get('settings') or {}).get('batch_size', 1)
    rows = [_config_row(family, level,
                        merged['cells'][family][level]['ours'], batch_size)
            for family in FAMILIES for level in LEVELS]
    return ['', '## Per config', ''] + markdown_table(
        ['Family', 'Level', 'Config', 'images/s median [min, max]',
         'GMACs/batch', 'GMAC/s', 'of GEMM', 'x peer (both deployed)',
         '== plain (parts / detections)'], rows)


def _unplaced_lines(unplaced: List[dict]) -> List[str]:
    if not unplaced:
        return []
    return ['', '## Configs outside the table or failed', ''] + [
        f"- `{item['config']}`: " + (
            f"failed: {item['error']}" if item['error'] else
            f"{_speed(item['images_per_s'])} images/s, not a Table 7 "
            'backbone') for item in unplaced]


def to_markdown(merged: dict, plot_name: Optional[str] = None) -> str:
    """Render :func:`~shufflenet_det.benchmark.report.merge` as markdown."""
    device = (merged.get('environment') or {}).get('device', MISSING)
    peer, gemm = merged.get('peer'), merged.get('gemm')
    lines = _header_lines(merged)
    lines += [f'`{MISSING}` = not measured by this project. Paper values in '
              'parentheses.', '', '## mmAP (%), COCO val2017 = minival', '']
    lines += _row_table('Model', merged, lambda c: (
        f"{fmt(c['ours']['mmap'])} ({c['paper']['mmap']})"))
    lines += ['', f'## Speed (images/s): ours on {device} (paper: GPU, '
              'batch 4)', '']
    lines += _row_table('Model', merged, lambda c: (
        f"{_speed(c['ours']['images_per_s'])} "
        f"({c['paper']['gpu_images_per_s']})"))
    if peer:
        lines += _peer_ratio_lines(merged, peer)
    lines += ['', '## Complexity: MFLOPs at 224x224 (classifier '
              'convention of `shufflenet_det.analysis.complexity`)', '']
    lines += _row_table('Model', merged, lambda c: fmt(c['ours']['mflops']))
    if plot_name:
        lines += ['', f'![speed vs MFLOPs]({plot_name})']
    lines += _per_config_lines(merged)
    if peer:
        lines += _peer_lines(peer, (merged['plain']['rows'] or [{}])[0].get(
            'shipped'))
    if gemm:
        lines += ['', _gemm_sentence(gemm)]
    lines += _bf16_lines(merged['bf16'])
    if merged.get('backends'):
        lines += _backend_lines(merged['backends'])
    lines += _unplaced_lines(merged['unplaced'])
    return '\n'.join(lines) + '\n'


def _backend_row(r: dict) -> List[str]:
    load = '/'.join(f'{x[0]:.1f}' if x else MISSING
                    for x in r['load_average'])
    same = {None: MISSING, True: 'yes', False: 'NO'}[r['detections_equal']]
    return [r['backend'], f"{r['family']} {r['level']}",
            f"{(r['date'] or MISSING)[:16]}, {load}",
            fmt(r['images_per_s'], '.2f'),
            fmt(r['torch_images_per_s'], '.2f'),
            fmt(r['peer_images_per_s'], '.3f'),
            f"{fmt(r['peer_ratio'], '.2f')}x",
            f"{fmt(r['interleaved'], '.2f')}x", same]


def _backend_lines(rows: List[dict]) -> List[str]:
    """Other runtimes, from separate ``--backend`` runs, each named."""
    return ['', '## Other runtimes (separate runs: `tools/benchmark.py '
            '--backend`)', '',
            'Ours and the peer, both exported to ONNX and run on the same '
            'runtime, in a run of their own (its date and load average '
            'beside it): compare within a row only.', ''] + markdown_table(
                ['Runtime', 'Cell', 'Run (UTC), load avg start/end',
                 'ours images/s', 'ours in PyTorch, same run',
                 'peer on the runtime', 'ours / peer', 'interleaved',
                 '== PyTorch'], map(_backend_row, rows))


def _x(value: Optional[float], interleaved: Optional[float] = None) -> str:
    """``R.RRx`` (``(interleaved: R.RRx)``), or the missing marker."""
    return MISSING if value is None else f'{value:.2f}x' + (
        f' (interleaved: {interleaved:.2f}x)' if interleaved else '')


def _run_line(note: dict, what: str) -> str:
    load = '/'.join(f'{x[0]:.1f}' if x else MISSING
                    for x in note['load_average'])
    return (f"{what}: {note['date']}, load average (1 min) {load} at start"
            f"/end, `{note['command']}`.")


def _plain_lines(plain: dict) -> List[str]:
    """The plain run (``--deploy none``) beside the main run: each
    comparison named."""
    lines = []
    for r in plain['rows']:
        lines += ['', f"### {r['family']} {r['level']}: every comparison",
                  ''] + markdown_table(
            ['Ours', 'Peer', 'images/s ours', 'images/s peer', 'ratio'], [
                ['plain (as the config builds it)', 'as shipped',
                 fmt(r['plain'], '.2f'), fmt(r['shipped'], '.2f'),
                 _x(r['ratio'], r['interleaved'])],
                ['deployed', 'deployed alike', fmt(r['deployed'], '.2f'),
                 fmt(r['peer_deployed'], '.2f'),
                 _x(r['ratio_deployed'], r['interleaved_deployed'])],
                ['deployed', 'as shipped', fmt(r['deployed'], '.2f'),
                 fmt(r['shipped'], '.2f'), _x(r['ratio_deployed_shipped'])]])
        lines += ['', 'The fair figures are the first two rows (equal '
                  'treatment); the last row flatters us and is shown only '
                  'so that it is not mistaken for a fair one. The first row '
                  'is a run of its own with no deploy steps (`--deploy '
                  'none`), the others the main run. "interleaved": median '
                  'over rounds of one peer step then one step of ours.']
    if lines and plain['note']:
        lines += ['', _run_line(plain['note'], 'Plain run')]
    return lines


def _bf16_lines(bf16: dict) -> List[str]:
    """Ours and the peer in fp32 and with the bf16 step, side by side."""
    note = bf16['note']
    if not note:
        return []
    lines = ['', '## bf16 (dense parts in bfloat16, boxes and NMS in '
             'float32; the `bf16` deploy step, ours and the peer alike)', '']
    if note['skipped']:
        return lines + [f"Not measured: {note['skipped']}."]
    lines += markdown_table(
        ['Cell', 'ours fp32', 'ours bf16', 'speed-up', 'peer fp32',
         'peer bf16', 'peer speed-up', 'ours / peer fp32',
         'ours / peer bf16'],
        ([f"{r['family']} {r['level']}", fmt(r['fp32'], '.2f'),
          fmt(r['bf16'], '.2f'), _x(r['speedup']), fmt(r['peer_fp32'], '.3f'),
          fmt(r['peer_bf16'], '.3f'), _x(r['peer_speedup']),
          _x(r['ratio_fp32'], r['interleaved_fp32']),
          _x(r['ratio_bf16'], r['interleaved_bf16'])]
         for r in bf16['rows']))
    skipped = {r['bf16_parts']['skipped'] for r in bf16['rows']
               if 'skipped' in (r['bf16_parts'] or {})}
    return lines + [''] + [f'bf16 step skipped, model unchanged: {s}.'
                           for s in sorted(skipped)] + [
        'images/s; fp32 = the main run (default deploy steps), bf16 = a run '
        'of its own in the same job with the `bf16` step added. Ratios of '
        'medians; "interleaved": median over rounds of one peer step then '
        'one step of ours, both in the same precision.',
        _run_line(note, 'bf16 run')]


def _peer_lines(peer: dict, shipped: Optional[float]) -> List[str]:
    ips = peer['images_per_s']
    steps = ', '.join((peer.get('deploy') or {}).get('steps', [])) or 'none'
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
            + (f"; as shipped {shipped:.3f} images/s (plain run)"
               if shipped else '')
            + f"; {peer['macs_per_batch'] / 1e9:.1f} GMACs/batch"
            + (f", {peer['gemm_fraction'] * 100:.0f}% of the GEMM rate"
               if peer.get('gemm_fraction') is not None else '')
            + ('' if not det else
               f"; deployed detections == shipped ({det['detections']} "
               'detections)' if det.get('equal') else
               f"; deployed detections differ from shipped "
               f"({det.get('num_differences')})") + '.']


def _breakdown_row(r: dict, with_macs: bool) -> List[str]:
    # Time on worker threads overlaps its caller's row: shown, not added.
    cells = [f"({r['part']})" if r.get('parallel') else r['part'],
             f"{r['ms_per_batch']:.1f}", f"{100 * r['share']:.1f}%"]
    if with_macs:
        macs, rate = r.get('macs_per_batch'), r.get('macs_per_s')
        cells += [fmt(macs / 1e9 if macs else None, '.2f'),
                  fmt(rate / 1e9 if rate else None),
                  _percent(r.get('gemm_fraction'))]
    return cells


def _breakdown_table(rows: List[dict], with_macs: bool) -> List[str]:
    header = ['Part', 'ms / batch', 'share']
    if with_macs:
        header += ['GMACs / batch', 'GMAC/s', 'of GEMM']
    total = sum(r['ms_per_batch'] for r in rows if not r.get('parallel'))
    return markdown_table(header, (_breakdown_row(r, with_macs)
                                   for r in rows)) + [
        f'| **total** | {total:.1f} | 100% |' +
        (' | | |' if with_macs else '')]


def _breakdown_header(benchmark: dict) -> List[str]:
    env = benchmark.get('environment') or {}
    settings = benchmark.get('settings') or {}
    lines = [f"# Where inference time goes: {env.get('device')}, "
             f"{env.get('torch_threads')} threads", '',
             f"{env.get('date')}; batch {settings.get('batch_size')} of "
             f"{'x'.join(map(str, settings.get('img_size', [])))}; deploy "
             f"steps {_deploy_steps(settings)}; "
             f"load average {env.get('load_average')} at start.",
             f"Command: `{env.get('command')}`", '',
             'One step per model, timed part by part after the timed steps '
             '(exclusive wall time: NMS is charged to its own row, not to '
             'the part that calls it; "other" is the remainder). A row in '
             'parentheses ran on worker threads while its caller waited: '
             'its time is part of the caller\'s and not added to the total. '
             'MACs are counted on the first call with the same input.']
    if benchmark.get('gemm'):
        lines.append(_gemm_sentence(benchmark['gemm']))
    return lines


def _focus_lines(r: dict, family: str, level: str) -> List[str]:
    """One cell in detail: speed, parts and slowest operators."""
    ips = r['images_per_s']
    inter = (r.get('interleaved') or {}).get('ratio')
    lines = ['', f"## {family} {level}: `{r['name']}`", '',
             f"{ips['median']:.3f} images/s (median of {ips['iters']})"
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
                  'step; record_function rows are the parts):', '']
        lines += markdown_table(
            ['Operator', 'self ms', 'calls'],
            ([f"`{op['name']}`", f"{op['self_ms']:.1f}", str(op['calls'])]
             for op in r['top_ops']))
    return lines


def _peer_breakdown_lines(peer: dict) -> List[str]:
    return ['', f"## Peer: {peer['name']}", '',
            f"{peer['images_per_s']['median']:.3f} images/s; "
            f"{peer['macs_per_batch'] / 1e9:.1f} GMACs/batch"
            + (f" at {peer['gemm_fraction'] * 100:.0f}% of the GEMM "
               'rate' if peer.get('gemm_fraction') else '') + '.',
            ''] + _breakdown_table(peer['breakdown'], False)


def _every_config_lines(results: List[dict]) -> List[str]:
    parts = []
    for r in results:
        parts += [row['part'] for row in r['breakdown']
                  if row['part'] not in parts]
    rows = []
    for r in results:
        ms = {row['part']: row['ms_per_batch'] for row in r['breakdown']}
        total = sum(row['ms_per_batch'] for row in r['breakdown']
                    if not row.get('parallel'))
        rows.append([r['name']] + [fmt(ms.get(p), '.0f') for p in parts]
                    + [f'{total:.0f}'])
    return ['', '## Every config (ms / batch)', ''] + markdown_table(
        ['Config', *parts, 'total'], rows)


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
    lines = _breakdown_header(benchmark)
    results = [r for r in benchmark.get('results', []) if 'breakdown' in r]
    for family, level in focus:
        for r in results:
            cell = r.get('table7') or {}
            if (cell.get('family'), cell.get('level')) == (family, level):
                lines += _focus_lines(r, family, level)
    peer = benchmark.get('peer')
    if peer and 'breakdown' in peer:
        lines += _peer_breakdown_lines(peer)
    if results:
        lines += _every_config_lines(results)
    return '\n'.join(lines) + '\n'
