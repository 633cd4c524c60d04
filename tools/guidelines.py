"""Measure the ShuffleNet V2 paper's four guidelines (its Tables 1-4).

    # the four tables on this CPU (the paper's single-thread ARM widths)
    python tools/guidelines.py --device cpu --out results/cpu/guidelines
    # on a GPU (the paper's GTX 1080Ti widths, cuDNN benchmark mode)
    python tools/guidelines.py --device cuda --out work_dirs/guidelines
    # seconds-long smoke run at tiny sizes
    python tools/guidelines.py --quick --out /tmp/guidelines

Writes guidelines.json (every sample, machine, command, date, load averages),
guidelines.md (the paper's numbers beside ours, rankings compared) and
table<N>.png under --out. Setups and assumptions:
shufflenet_det/analysis/guidelines.py; timing: guidelines_bench.py.
"""
import argparse
import os.path as osp
import shlex
import sys

import torch

# Let a fresh clone run without `pip install -e .`.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from shufflenet_det.analysis.guidelines_bench import (  # noqa: E402
    INPUT_SIZE, RunSettings, run_guidelines)
from shufflenet_det.analysis.guidelines_report import write_report  # noqa

#: --quick: tiny sizes and one short round, for smoke tests only.
QUICK = dict(input_size=8, rounds=2, warmup=1, min_sample_s=0.0,
             columns=(0,))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Measure the paper's guideline Tables 1-4 and write "
        'them beside the paper\'s numbers')
    parser.add_argument('--tables', type=int, nargs='+', default=[1, 2, 3, 4],
                        choices=[1, 2, 3, 4])
    parser.add_argument('--device', default='auto',
                        help="'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when "
                        'available; default: %(default)s)')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: 8x8 input, first column only, 2 '
                        'rounds (numbers meaningless)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--input-size', type=int, default=INPUT_SIZE)
    parser.add_argument('--rounds', type=int, default=11,
                        help='interleaved timing rounds (default: '
                        '%(default)s)')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--min-sample-s', type=float, default=0.2,
                        help='minimum seconds per timed sample (default: '
                        '%(default)s)')
    parser.add_argument('--threads', type=int, default=1,
                        help='CPU torch threads (default: %(default)s, as '
                        "the paper's single-thread ARM column)")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.input_size < 1 or args.rounds < 1:
        parser.error(f'--batch-size, --input-size and --rounds must be >= 1, '
                     f'got {args.batch_size}, {args.input_size}, '
                     f'{args.rounds}')
    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        parser.error(f'--device {args.device!r}: {exc}')
    if device.type not in ('cpu', 'cuda'):
        parser.error(f"--device must be cpu or cuda[:N], got {args.device!r}")
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: torch.cuda.is_available() is '
                     'False on this machine')
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    settings = RunSettings(
        device=args.device, batch_size=args.batch_size,
        input_size=args.input_size, rounds=args.rounds, warmup=args.warmup,
        min_sample_s=args.min_sample_s)
    if args.quick:
        settings = RunSettings(device=args.device, batch_size=args.batch_size,
                               **QUICK)
    command = 'python ' + ' '.join(
        shlex.quote(a) for a in ['tools/guidelines.py'] + argv)
    report = run_guidelines(args.tables, settings, threads=args.threads,
                            command=command,
                            progress=lambda line: print(line, flush=True))
    paths = write_report(args.out, report)
    print(f"done in {report['meta']['wall_s']} s: " + ', '.join(
        paths.values()))


if __name__ == '__main__':
    main()
