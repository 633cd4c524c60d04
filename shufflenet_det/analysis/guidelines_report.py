"""Reports of the guideline benchmarks: JSON, Markdown and one PNG per table.

The Markdown puts the paper's number beside ours in the paper's layout, both
also as a ratio to the table's first row (the comparison that survives a
change of hardware), and says per column whether our measurement ranks the
variants as the paper does.
"""
import os
import os.path as osp
import statistics
from typing import Dict, List

from ..engine.atomic_io import atomic_write_json
from ..paper import PAPER_PLATFORM, PAPER_TABLES
from .guidelines import ASSUMPTIONS


def _fmt(value: float) -> str:
    """Speeds with three significant digits, as the paper prints them."""
    if value >= 100:
        return f'{value:.0f}'
    if value >= 10:
        return f'{value:.1f}'
    return f'{value:.2f}'


def _ranking_cell(rows: List[dict], rank: dict) -> str:
    """'yes' or 'no (B > A, ...)' naming the pairs we order differently."""
    if rank['agrees']:
        return f"yes ({rank['concordant']}/{rank['pairs']} pairs)"
    def name(i):
        label = rows[i]['label']
        return f'"{label}"' if ',' in label else label

    swaps = ', '.join(f'{name(slow)} > {name(fast)}'
                      for fast, slow in rank['reversed'])
    return (f"no, {rank['concordant']}/{rank['pairs']} pairs (ours: "
            f'{swaps})')


def table_markdown(result: dict) -> str:
    """One table in the paper's layout, ours beside the paper's.

    Args:
        result (dict): One entry of :func:`~.guidelines_bench.measure_table`.

    Returns:
        str: Markdown.
    """
    spec = PAPER_TABLES[result['table']]
    platform, unit = result['platform'], result['unit']
    rows, cols = result['rows'], result['columns']
    lines = [f"### Table {result['table']} ({result['guideline']}): "
             f"{result['title']}", '',
             f"Paper: \"{result['claim']}\". Paper column: "
             f"{platform.upper()} ({PAPER_PLATFORM[platform]}), {unit}. "
             f'Cells: ours / paper, and in brackets each relative to the '
             f'first row.', '']
    head = [result['row_header'], 'widths (ours)']
    head += [f'{c} ours / paper' for c in cols]
    lines += ['| ' + ' | '.join(head) + ' |',
              '|' + '---|' * 2 + '---:|' * len(cols)]
    for row in rows:
        widths = '; '.join(_widths_text(row['widths'][c]) for c in cols)
        cells = [row['label'], widths]
        for c in cols:
            ours, paper = row['ours'][c], row['paper'][c]
            ours_rel = ours / rows[0]['ours'][c]
            paper_rel = paper / rows[0]['paper'][c]
            cells.append(f'{_fmt(ours)} / {_fmt(paper)} '
                         f'({ours_rel:.2f} / {paper_rel:.2f})')
        lines.append('| ' + ' | '.join(cells) + ' |')
    macs = '; '.join(
        f"{c}: {min(r['macs'][c] for r in rows) / 1e6:.1f}-"
        f"{max(r['macs'][c] for r in rows) / 1e6:.1f}" for c in cols)
    lines += ['', f'Conv MMACs per image across the rows (held fixed): '
              f'{macs}.']
    spreads = [max(s) / min(s) - 1 for r in rows
               for s in (r.get('samples', {}).get(c, {}).get(
                   'seconds_per_call') for c in cols) if s]
    if spreads:
        lines.append(f'Spread of the timed samples (slowest / fastest - 1) '
                     f'per cell: median {statistics.median(spreads):.0%}, '
                     f'worst {max(spreads):.0%}.')
    lines.append('')
    lines += [f'| column | fastest (ours) | fastest (paper) | '
              f'guideline\'s pick "{spec.fastest}" fastest in ours | '
              f"ranking matches the paper's |", '|---|---|---|---|---|']
    for c in cols:
        rank = result['ranking'][c]
        ours_best = rows[rank['fastest_ours']]['label']
        lines.append(
            f"| {c} | {ours_best} | {rows[rank['fastest_paper']]['label']} "
            f"| {'yes' if ours_best == spec.fastest else 'no'} | "
            f'{_ranking_cell(rows, rank)} |')
    by_best = [result['ranking'][c].get('by_fastest_sample') for c in cols]
    if all(by_best):
        lines += ['', f'Ranked by each cell\'s fastest sample instead of the '
                  f'median (other processes only add time), the ranking '
                  f"matches the paper's in {sum(b['agrees'] for b in by_best)}"
                  f' of {len(cols)} columns.']
    load = result['load_avg']
    lines += ['', f"Load average (1/5/15 min) before: {load['before']}, "
              f"after: {load['after']}.", '']
    return '\n'.join(lines)


def _widths_text(widths: dict) -> str:
    """Compact channel counts of one cell."""
    if 'c1' in widths:
        return f"({widths['c1']},{widths['c2']})"
    if 'g' in widths:
        moved = (f" (paper {widths['paper_c']})"
                 if widths['c'] != widths['paper_c'] else '')
        return f"{widths['c']}{moved}"
    if 'fragment_c' in widths:
        return f"{widths['fragment_c']}"
    return f"{widths['c']}/{widths['mid']}"


def report_markdown(report: dict) -> str:
    """The whole report: provenance, assumptions, then each table."""
    meta = report['meta']
    lines = ['# ShuffleNet V2 guidelines (paper Tables 1-4), measured', '',
             '| | |', '|---|---|']
    for key in ('date', 'command', 'device', 'machine', 'torch', 'threads',
                'batch_size', 'input_size', 'timing', 'wall_s'):
        if key in meta:
            lines.append(f'| {key} | `{meta[key]}` |')
    lines.append(f"| load average (1/5/15 min) at start / end | "
                 f"{meta.get('load_avg_start')} / "
                 f"{meta.get('load_avg_end')} |")
    lines += ['', "Speeds in the paper's unit for its "
              f"{report['tables'][0]['platform'].upper()} column "
              f"({report['tables'][0]['unit']}); the paper's numbers are the "
              "paper's, measured on its hardware. Compare the ratios to the "
              'first row, not absolute speeds.', '',
              'What the paper leaves unsaid, and what was done:', '']
    lines += [f'- {a}' for a in report['assumptions']]
    lines.append('')
    lines += [table_markdown(t) for t in report['tables']]
    return '\n'.join(lines)


def plot_table(result: dict, path: str) -> None:
    """Bar chart of speed relative to the first row, ours beside the paper's.

    Args:
        result (dict): One entry of :func:`~.guidelines_bench.measure_table`.
        path (str): PNG to write.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows, cols = result['rows'], result['columns']
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.6),
                             squeeze=False, sharey=True)
    width = 0.38
    for ax, c in zip(axes[0], cols):
        xs = range(len(rows))
        ours = [r['ours'][c] / rows[0]['ours'][c] for r in rows]
        paper = [r['paper'][c] / rows[0]['paper'][c] for r in rows]
        ax.bar([x - width / 2 for x in xs], ours, width, label='ours')
        ax.bar([x + width / 2 for x in xs], paper, width,
               label=f"paper ({result['platform'].upper()})")
        ax.axhline(1.0, color='grey', lw=0.8)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([r['label'] for r in rows], rotation=30,
                           ha='right', fontsize=8)
        ax.set_title(c)
    axes[0][0].set_ylabel('speed / first row')
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Table {result['table']} ({result['guideline']}): "
                 f"{result['title']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir: str, report: dict) -> Dict[str, str]:
    """Write guidelines.json, guidelines.md and table<N>.png under out_dir.

    Returns:
        dict: Name -> path of every file written.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = dict(json=osp.join(out_dir, 'guidelines.json'),
                 markdown=osp.join(out_dir, 'guidelines.md'))
    report = dict(report, assumptions=list(report.get('assumptions',
                                                      ASSUMPTIONS)))
    atomic_write_json(report, paths['json'], end='\n')
    with open(paths['markdown'], 'w') as f:
        f.write(report_markdown(report))
    for result in report['tables']:
        key = f"table{result['table']}"
        paths[key] = osp.join(out_dir, f'{key}.png')
        plot_table(result, paths[key])
    return paths
