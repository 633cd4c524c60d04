"""Write the ShuffleNet V2 paper's Table 7 from this project's measurements.

Merges a benchmark JSON (tools/benchmark.py), COCO metrics JSONs
(tools/test.py --metrics-out) and the complexity table
(shufflenet_det.analysis.complexity) into table7.md, table7.json and table7.png
(speed vs MFLOPs, one line per backbone), the paper's numbers beside ours.
A number that was not measured is shown as "—", never filled in.

    python tools/table7.py --benchmark work_dirs/table7/benchmark.json \
        --metrics work_dirs/*/metrics.json --out work_dirs/table7 \
        [--runs work_dirs/table7/{plain,bf16}/benchmark.json \
                results/cpu/onnxruntime/benchmark.json ...]
"""
import argparse
import os.path as osp
import sys

# Let a fresh clone run without `pip install -e .`.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from shufflenet_det.benchmark.report import (  # noqa: E402
    complexity_cells, load_json, metrics_cells, write_report)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Write the Table 7 report')
    parser.add_argument('--benchmark',
                        help='benchmark.json from tools/benchmark.py')
    parser.add_argument('--metrics', nargs='*', default=[],
                        help='COCO metrics JSONs from tools/test.py '
                        '--metrics-out')
    parser.add_argument('--runs', '--backends', nargs='*', default=[],
                        help='benchmark.json files of other runs, each in a '
                        'section of its own: --deploy none (plain vs as '
                        'shipped), --deploy default,bf16, --backend '
                        'onnxruntime|openvino')
    parser.add_argument('--no-complexity', action='store_true',
                        help='do not count backbone MFLOPs')
    parser.add_argument('--out', default='work_dirs/table7',
                        help='output directory (default: %(default)s)')
    args = parser.parse_args(argv)
    if not args.benchmark and not args.metrics:
        parser.error('give --benchmark and/or --metrics')
    return args


def main(argv=None):
    args = parse_args(argv)
    benchmark = load_json(args.benchmark) if args.benchmark else None
    paths = write_report(
        args.out, benchmark, metrics_cells(args.metrics),
        {} if args.no_complexity else complexity_cells(),
        [load_json(path) for path in args.runs])
    print('wrote ' + ', '.join(paths.values()))


if __name__ == '__main__':
    main()
