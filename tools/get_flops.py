"""Print backbone complexity at 224x224 beside the paper's numbers.

Counts multiply-adds with ``mmengine.analysis`` on each backbone wrapped as a
1000-class classifier (global average pool + fc), the convention of the
paper's Tables 5, 7 and 8, and prints Table 7's 5 families x 4 levels.

Examples:
    python tools/get_flops.py                         # the whole 5 x 4 table
    python tools/get_flops.py --families "ShuffleNet v2" "ShuffleNet v2*"
    python tools/get_flops.py --json work_dirs/complexity.json
"""
import argparse

from shufflenet_det.analysis.complexity import table7_complexity
from shufflenet_det.engine.atomic_io import atomic_write_json
from shufflenet_det.markdown import fmt
from shufflenet_det.table7 import (COUNTING_CONVENTION, LEVEL_TOLERANCE,
                                   TABLE7_BACKBONES)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--families', nargs='+', choices=list(TABLE7_BACKBONES),
                        help='Table 7 rows to count (default: all five)')
    parser.add_argument('--json', help='also write the rows to this JSON file')
    return parser.parse_args()


def _vs_paper(row) -> str:
    paper = row['paper']['mflops']
    return '—' if paper is None else f"{100 * (row['macs'] / 1e6 / paper - 1):+.1f}%"


def format_table(rows) -> str:
    """Markdown table: ours (MMACs, params) beside the paper's column."""
    lines = [
        '| Backbone | Level | Config | MMACs (ours) | vs level | '
        'Params (ours) | Paper MFLOPs | vs paper | Paper params | Paper row |',
        '|---|---|---|---:|---:|---:|---:|---:|---:|---|']
    for r in rows:
        cfg = ', '.join(f'{k}={v}' for k, v in r['cfg'].items() if k != 'type')
        flag = '' if r['within_tolerance'] else ' (!)'
        lines.append(
            f"| {r['family']} | {r['level']} | {r['cfg']['type']}({cfg}) | "
            f"{r['macs'] / 1e6:.1f} | {100 * (r['level_ratio'] - 1):+.1f}%"
            f"{flag} | {r['params'] / 1e6:.3f} M | "
            f"{fmt(r['paper']['mflops'], 'g')} | {_vs_paper(r)} | "
            f"{fmt(r['paper']['mparams'], 'g')}{' M' if r['paper']['mparams'] else ''} | "
            f"{r['paper']['model']} "
            f"({r['paper']['source']}) |")
    return '\n'.join(lines)


def _notes(rows) -> list:
    """V2*'s extra multiply-adds over V2, and which flags are the paper's own."""
    by_cell = {(r['family'], r['level']): r for r in rows}
    notes = []
    for (family, level), star in by_cell.items():
        base = by_cell.get(('ShuffleNet v2', level))
        if family == 'ShuffleNet v2*' and base:
            notes.append(f'ShuffleNet v2* {level}: +{(star["macs"] - base["macs"]) / 1e6:.1f} '
                         f'MMACs over ShuffleNet v2 (the extra 3x3 depthwise convs).')
    # Table 7's cells are the paper's own rows, whose 500M models sit
    # further than LEVEL_TOLERANCE from 500: say so instead of a bare (!).
    for r in rows:
        paper = r['paper']['mflops']
        if not r['within_tolerance'] and paper and \
                abs(r['macs'] / 1e6 / paper - 1) <= LEVEL_TOLERANCE:
            notes.append(f"{r['paper']['model']} is the paper's own "
                         f"{r['level']}-level model ({paper} MFLOPs in "
                         f"{r['paper']['source']}), hence its distance to "
                         'the level.')
    return notes


def main():
    args = parse_args()
    rows = table7_complexity(args.families)
    print(f'Counting convention: {COUNTING_CONVENTION}.')
    print(f'"vs level" compares with the Table 7 level (40/140/300/500 M); '
          f'(!) marks more than {LEVEL_TOLERANCE:.0%} away.\n')
    print(format_table(rows))
    notes = _notes(rows)
    if notes:
        print('\n' + '\n'.join(notes))
    if args.json:
        atomic_write_json(rows, args.json, indent=2)
        print(f'\nwrote {args.json}')


if __name__ == '__main__':
    main()
