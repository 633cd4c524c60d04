"""The Table 7 report of :func:`.report.merge`'s record (:func:`to_markdown`,
:func:`plot`) and the time breakdown of a run's record
(:func:`breakdown_markdown`). Rendering only: nothing here measures or
reads files.
"""
import os
import os.path as osp
from typing import List, Optional

from shufflenet_det.markdown import fmt, markdown_table
from shufflenet_det.paper import FAMILIES, LEVELS
from shufflenet_det.table7 import FOCUS_CELL, MISSING

_YES = {None: MISSING, True: 'yes', False: 'NO'}


def dig(data: Optional[dict], *keys):
    """``data[keys[0]][keys[1]]...``, None where a level is missing."""
    for key in keys:
        data = (data or {}).get(key)
    return data


def _x(value: Optional[float], interleaved: Optional[float] = None) -> str:
    """``R.RRx`` (``(interleaved: R.RRx)``), or the missing marker."""
    return MISSING if value is None else f'{value:.2f}x' + (
        f' (interleaved: {interleaved:.2f}x)' if interleaved else '')


def _over(a: Optional[float], b: Optional[float]) -> str:
    """``a / b`` as :func:`_x`, missing unless both were measured."""
    return _x(a / b if a and b else None)


def _giga(value: Optional[float], spec: str = '.1f') -> str:
    return fmt(value / 1e9 if value else None, spec)


def _load(pair) -> str:
    """``start/end`` 1-minute load averages."""
    return '/'.join(f'{x[0]:.1f}' if x else MISSING for x in pair)


def _batch_and_steps(settings: dict):
    """``'4 of 800x1200'`` and the deploy steps of a run (or ``'none'``)."""
    return (f"{settings.get('batch_size')} of "
            f"{'x'.join(map(str, settings.get('img_size', [])))}",
            ', '.join(settings.get('deploy') or []) or 'none')


#: Where each side's timed step starts, by ``settings.inputs``.
_STARTS = {
    'host': 'Both timed steps start from the same uint8 images in host '
            'memory and copy them to the device and normalise them inside '
            'the step.',
    'device': 'Both timed steps start from the same uint8 images already '
              'on the device.',
    None: 'Inputs as before 2026-12-08 (not recorded): ours uint8 images in '
          "host memory, the peer's float images on the device.",
}


def _start(settings: dict) -> str:
    return _STARTS[settings.get('inputs')]


def _gemm_sentence(gemm: dict) -> str:
    detail = ', '.join(
        f"{'torch.mm' if k == 'mm' else '1x1 conv (oneDNN/cuDNN)'} "
        f"{gemm[k]['macs_per_s_best'] / 1e9:.1f}"
        for k in ('mm', 'conv1x1') if k in gemm)
    reference = gemm.get('macs_per_s_reference', gemm['macs_per_s_best'])
    return (f'fp32 GEMM reference: {reference / 1e9:.1f} GMAC/s, the best '
            f"n={gemm['n']} product (GMAC/s: {detail}; best of "
            f"{gemm['iters']} at the start"
            + (' and at the end' if 'end' in gemm else '')
            + ' of the run, same threads). "of GEMM" = multiply-adds executed'
            ' per second / this rate.')


def _grid(title: str, merged: dict, cell_fn) -> List[str]:
    """A titled table in the paper's layout, ``cell_fn(cell)`` per family
    and level."""
    return ['', title, ''] + markdown_table(['Model', *LEVELS], (
        [family] + [cell_fn(merged['cells'][family][level])
                    for level in LEVELS] for family in FAMILIES))


def _header_lines(merged: dict) -> List[str]:
    """Title, machine, settings and command of the main run."""
    env = merged.get('environment')
    lines = ['# Table 7 (ShuffleNet V2, ECCV 2018) reproduced', '']
    if not env:
        return lines + ['No benchmark JSON given: every speed is missing.',
                        '']
    batch, steps = _batch_and_steps(merged.get('settings') or {})
    return lines + [
        f"Speed measured on **{env.get('device', MISSING)}**, torch threads "
        f"{env.get('torch_threads')}, {env.get('date')}; load average "
        f"(1/5/15 min) {env.get('load_average')} at start, "
        f"{env.get('load_average_end')} at end.",
        f"Batch {batch} images, "
        f"{'fp16 dense parts' if 'fp16' in steps else 'fp32'}, "
        'full inference (pre-processing, backbone, RPN, large separable '
        'conv, PSRoI pooling, R-CNN, NMS) of the detector each config '
        "builds (what tools/test.py evaluates); random weights; deploy "
        f"steps applied to ours and to the peer alike: {steps}. "
        + _start(merged.get('settings') or {}), '',
        f"Command: `{env.get('command')}`", '']


def _run_line(run: dict, what: str) -> str:
    return (f"{what}: {run['date']}, load average (1 min) "
            f"{_load(run['load_average'])} at start/end, "
            f"`{run['command']}`.")


def _peer_ratio_lines(merged: dict, peer: dict) -> List[str]:
    """Ours / the peer per cell, then every comparison of the plain run
    (``--deploy none``) with the main run, each named."""
    lines = _grid(
        f"## Speed relative to the peer ({peer['name']}, "
        f"{peer['images_per_s']['median']:.3f} images/s in the same run), "
        'both deployed alike', merged, lambda c: _x(
            c['ours']['peer_ratio'],
            dig(c['ours'], 'peer_ratio_interleaved', 'median'))) + [
        '', 'Ours deployed / the peer deployed: the same deploy steps, the '
        'same runtime. Ratios divide medians of images/s measured minutes '
        'apart; "interleaved" is the median over rounds of one peer step '
        'then one step of ours, which cancels slow changes of machine '
        'load.']
    plain = merged['plain'] or {}
    for r in plain.get('rows', []):
        ours, shipped, main_ours, main_peer = (fmt(r[k], '.2f') for k in (
            'ours', 'peer', 'main_ours', 'main_peer'))
        lines += ['', f"### {r['family']} {r['level']}: every comparison",
                  ''] + markdown_table(
            ['Ours', 'Peer', 'images/s ours', 'images/s peer', 'ratio'], [
                ['plain (as the config builds it)', 'as shipped', ours,
                 shipped,
                 _x(r['ratio'], r['interleaved'])],
                ['deployed', 'deployed alike', main_ours, main_peer,
                 _x(r['main_ratio'], r['main_interleaved'])],
                ['deployed', 'as shipped', main_ours, shipped,
                 _over(r['main_ours'], r['peer'])]]) + [
            '', 'The fair figures are the first two rows (equal treatment); '
            'the last row flatters us and is shown only so that it is not '
            'mistaken for a fair one. The first row is a run of its own with '
            'no deploy steps (`--deploy none`), the others the main run.']
    return lines + (['', _run_line(plain, 'Plain run')]
                    if plain.get('rows') else [])


def _config_row(family: str, level: str, ours: dict,
                batch_size: int) -> List[str]:
    """One row of the per-config table."""
    ips, macs = ours['images_per_s'], ours['macs_per_batch']
    return [family, level,
            osp.basename(ours['config']) if ours['config'] else MISSING,
            MISSING if not ips else
            f"{ips['median']:.3f} [{ips['min']:.3f}, {ips['max']:.3f}] "
            f"({ips['iters']} it)", _giga(macs),
            _giga(macs * ips['median'] / batch_size if ips and macs
                  else None),
            fmt(ours['gemm_fraction'], '.0%'), fmt(ours['peer_ratio'], '.2f'),
            f"{_YES[ours['equivalence_ok']]} / "
            f"{_YES[ours['detections_equal']]}"]


def _peer_lines(peer: dict, shipped: Optional[float]) -> List[str]:
    """The peer: settings, deploy steps, speed (deployed and, from the
    plain run, as shipped), MACs, detections."""
    ips, deploy = peer['images_per_s'], peer.get('deploy') or {}
    det = peer.get('detections') or {}
    return ['', '## Peer', '',
            f"{peer['name']} (random weights, min_size "
            f"{peer['settings']['min_size']}, max_size "
            f"{peer['settings']['max_size']}, torchvision defaults "
            f"otherwise): deployed "
            f"({', '.join(deploy.get('steps', [])) or 'none'}"
            f"; {deploy.get('fused_bn', 0)} BatchNorms folded, "
            f"{deploy.get('unfused_bn', 0)} left) {ips['median']:.3f} "
            f"images/s [{ips['min']:.3f}, {ips['max']:.3f}] over "
            f"{ips['iters']} batches"
            + (f'; as shipped {shipped:.3f} images/s (plain run)'
               if shipped else '')
            + f"; {_giga(peer['macs_per_batch'])} GMACs/batch"
            + (f", {fmt(peer['gemm_fraction'], '.0%')} of the GEMM rate"
               if peer.get('gemm_fraction') is not None else '')
            + ('' if not det else
               f"; deployed detections == shipped ({det['detections']} "
               'detections)' if det.get('equal') else
               f"; deployed detections differ from shipped "
               f"({det.get('num_differences')})") + '.']


def _bf16_lines(bf16: dict) -> List[str]:
    """Ours and the peer in fp32 (main run) and with the bf16 step."""
    lines = ['', '## bf16 (dense parts in bfloat16, boxes and NMS in '
             'float32; the `bf16` deploy step, ours and the peer alike)', '']
    if bf16['skipped']:
        return lines + [f"Not measured: {bf16['skipped']}."]
    rows = bf16['rows']
    return lines + markdown_table(
        ['Cell', 'ours fp32', 'ours bf16', 'speed-up', 'peer fp32',
         'peer bf16', 'peer speed-up', 'ours / peer fp32',
         'ours / peer bf16'],
        ([f"{r['family']} {r['level']}", fmt(r['main_ours'], '.2f'),
          fmt(r['ours'], '.2f'), _over(r['ours'], r['main_ours']),
          fmt(r['main_peer'], '.3f'), fmt(r['peer'], '.3f'),
          _over(r['peer'], r['main_peer']),
          _x(r['main_ratio'], r['main_interleaved']),
          _x(r['ratio'], r['interleaved'])] for r in rows)) + [''] + [
        f'bf16 step skipped, model unchanged: {s}.'
        for s in sorted({r['skipped_step'] for r in rows} - {None})] + [
        'images/s; fp32 = the main run (default deploy steps), bf16 = a run '
        'of its own in the same job with the `bf16` step added. Ratios of '
        'medians; "interleaved": median over rounds of one peer step then '
        'one step of ours, both in the same precision.',
        _run_line(bf16, 'bf16 run')]


def _backend_lines(runs: List[dict]) -> List[str]:
    """Other runtimes, from separate ``--backend`` runs, each named."""
    return ['', '## Other runtimes (separate runs: `tools/benchmark.py '
            '--backend`)', '',
            'Ours and the peer, both exported to ONNX and run on the same '
            'runtime, in a run of their own (its date and load average '
            'beside it): compare within a row only.', ''] + markdown_table(
                ['Runtime', 'Cell', 'Run (UTC), load avg start/end',
                 'ours images/s', 'ours in PyTorch, same run',
                 'peer on the runtime', 'ours / peer', 'interleaved',
                 '== PyTorch'],
                ([run['backend'], f"{r['family']} {r['level']}",
                  f"{(run['date'] or MISSING)[:16]}, "
                  f"{_load(run['load_average'])}", fmt(r['ours'], '.2f'),
                  fmt(r['torch'], '.2f'), fmt(r['peer'], '.3f'),
                  _x(r['ratio']), _x(r['interleaved']),
                  _YES[r['detections_equal']]]
                 for run in runs for r in run['rows']))


def to_markdown(merged: dict, plot_name: Optional[str] = None) -> str:
    """Render :func:`~shufflenet_det.benchmark.report.merge` as markdown."""
    device = (merged.get('environment') or {}).get('device', MISSING)
    peer = merged['peer']
    lines = _header_lines(merged) + [
        f'`{MISSING}` = not measured by this project. Paper values in '
        'parentheses.'] + _grid(
        '## mmAP (%), COCO val2017 = minival', merged,
        lambda c: f"{fmt(c['ours']['mmap'])} ({c['paper']['mmap']})") + _grid(
        f'## Speed (images/s): ours on {device} (paper: GPU, batch 4)',
        merged, lambda c: fmt(dig(c['ours'], 'images_per_s', 'median'),
                              '.2f') + f" ({c['paper']['gpu_images_per_s']})")
    lines += _peer_ratio_lines(merged, peer) if peer else []
    lines += _grid('## Complexity: MFLOPs at 224x224 (classifier convention '
                   'of `shufflenet_det.analysis.complexity`)', merged,
                   lambda c: fmt(c['ours']['mflops']))
    lines += ['', f'![speed vs MFLOPs]({plot_name})'] if plot_name else []
    lines += ['', '## Per config', ''] + markdown_table(
        ['Family', 'Level', 'Config', 'images/s median [min, max]',
         'GMACs/batch', 'GMAC/s', 'of GEMM', 'x peer (both deployed)',
         '== plain (parts / detections)'],
        (_config_row(family, level, merged['cells'][family][level]['ours'],
                     dig(merged, 'settings', 'batch_size') or 1)
         for family in FAMILIES for level in LEVELS))
    if peer:
        lines += _peer_lines(peer, next((r['peer'] for r in dig(
            merged, 'plain', 'rows') or []), None))
    lines += ['', _gemm_sentence(merged['gemm'])] if merged['gemm'] else []
    lines += _bf16_lines(merged['bf16']) if merged['bf16'] else []
    lines += _backend_lines(merged['backends']) if merged['backends'] else []
    if merged['unplaced']:
        lines += ['', '## Configs outside the table or failed', ''] + [
            f"- `{item['config']}`: " + (
                f"failed: {item['error']}" if item['error'] else
                f"{fmt(dig(item, 'images_per_s', 'median'), '.2f')} "
                'images/s, not a Table 7 backbone')
            for item in merged['unplaced']]
    return '\n'.join(lines) + '\n'


def plot(merged: dict, path: str) -> bool:
    """Speed vs MFLOPs, one line per family: ours (left), paper GPU (right).

    Returns:
        bool: False (no file written) when no speed was measured.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    env = merged['environment'] or {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    any_point = False
    for family in FAMILIES:
        cells = [(merged['cells'][family][level], float(nominal))
                 for level, nominal in LEVELS.items()]
        ours = [(nominal if c['ours']['mflops'] is None
                 else c['ours']['mflops'], c['ours']['images_per_s']['median'])
                for c, nominal in cells if c['ours']['images_per_s']]
        if ours:
            any_point = True
            axes[0].plot(*zip(*ours), marker='o', label=family)
        axes[1].plot([nominal for _, nominal in cells],
                     [c['paper']['gpu_images_per_s'] for c, _ in cells],
                     marker='s', linestyle='--', label=family)
    if not any_point:
        plt.close(fig)
        return False
    for ax, title, xlabel in zip(axes, (
            f"This project: {env.get('device', '?')}, "
            f"{env.get('torch_threads', '?')} threads",
            'Paper, Table 7 (GPU)'), ('backbone MFLOPs at 224x224 (counted)',
                                      'complexity level (MFLOPs at 224x224)')):
        ax.set_title(title, fontsize=9)
        ax.set(xlabel=xlabel, ylabel='images/s (batch 4, 800x1200)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _breakdown_lines(title: str, r: dict, with_macs: bool) -> List[str]:
    """One model in detail: speed, time per part (a row in parentheses ran
    on worker threads inside its caller's time: not added) and slowest
    operators."""
    ips, inter = r['images_per_s'], dig(r, 'interleaved', 'ratio')
    lines = ['', title, '',
             f"{ips['median']:.3f} images/s (median of {ips['iters']})"
             + (f", {r['peer_ratio']:.2f}x the peer"
                if r.get('peer_ratio') else '')
             + (f" ({inter['median']:.2f}x interleaved, range "
                f"{inter['min']:.2f}-{inter['max']:.2f})" if inter else '')
             + f"; {_giga(r['macs_per_batch'])} GMACs/batch"
             + (f" at {fmt(r['gemm_fraction'], '.0%')} of the GEMM rate"
                if r.get('gemm_fraction') else '') + '.', '']
    macs = ['GMACs / batch', 'GMAC/s', 'of GEMM'] if with_macs else []
    lines += markdown_table(['Part', 'ms / batch', 'share'] + macs, (
        [f"({p['part']})" if p.get('parallel') else p['part'],
         f"{p['ms_per_batch']:.1f}", f"{100 * p['share']:.1f}%"] + (
            [_giga(p.get('macs_per_batch'), '.2f'),
             _giga(p.get('macs_per_s')), fmt(p.get('gemm_fraction'), '.0%')]
            if with_macs else []) for p in r['breakdown'])) + [
        f"| **total** | {_total_ms(r):.1f} | 100% |"
        + (' | | |' if with_macs else '')]
    if with_macs and r.get('top_ops'):
        lines += ['', 'Slowest operators (torch.profiler, same step; '
                  'record_function rows are the parts):', ''] + \
            markdown_table(['Operator', 'self ms', 'calls'], (
                [f"`{op['name']}`", f"{op['self_ms']:.1f}", str(op['calls'])]
                for op in r['top_ops']))
    return lines


def _total_ms(result: dict) -> float:
    """Sum of the parts' ms per batch, those on worker threads left out."""
    return sum(p['ms_per_batch'] for p in result['breakdown']
               if not p.get('parallel'))


def breakdown_markdown(benchmark: dict) -> str:
    """Where the time goes: the focus cell (:data:`FOCUS_CELL`) and the peer
    in detail, then every config per part. ``benchmark``: a run's record."""
    env = benchmark.get('environment') or {}
    batch, steps = _batch_and_steps(benchmark.get('settings') or {})
    lines = [f"# Where inference time goes: {env.get('device')}, "
             f"{env.get('torch_threads')} threads", '',
             f"{env.get('date')}; batch {batch}; deploy steps {steps}; "
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
    results = [r for r in benchmark.get('results', []) if 'breakdown' in r]
    for r in results:
        if tuple((r.get('table7') or {}).values()) == FOCUS_CELL:
            lines += _breakdown_lines(f'## {" ".join(FOCUS_CELL)}: '
                                      f"`{r['name']}`", r, True)
    peer = benchmark.get('peer')
    if peer and 'breakdown' in peer:
        lines += _breakdown_lines(f"## Peer: {peer['name']}", peer, False)
    if results:
        parts = list(dict.fromkeys(p['part'] for r in results
                                   for p in r['breakdown']))
        lines += ['', '## Every config (ms / batch)', ''] + markdown_table(
            ['Config', *parts, 'total'], ([r['name']] + [fmt(
                {p['part']: p['ms_per_batch'] for p in r['breakdown']}.get(
                    part), '.0f') for part in parts]
                + [f'{_total_ms(r):.0f}'] for r in results))
    return '\n'.join(lines) + '\n'
