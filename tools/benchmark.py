"""Inference speed of Light-Head R-CNN configs (ShuffleNet V2 paper, Table 7).

Times the full inference path of each config, ``model.test_step`` on a
prepared batch (mmdet pre-processing, backbone, RPN, large separable conv,
PSRoI pooling, R-CNN, NMS), at batch 4 of 800x1200 images, beside
torchvision's ``fasterrcnn_mobilenet_v3_large_fpn`` measured in the same
run; then writes the Table 7 report. The detector timed is the one the
config builds, as ``tools/test.py --fuse-conv-bn`` evaluates it: the same
deploy steps (``--deploy``, default BatchNorm folding + channels-last) are
applied to ours and to the peer. With ``--all`` (or ``--also``) the job adds
runs of its own: ``plain`` (``--deploy none``: the ShuffleNet v2 140M
detector as built and the peer as shipped) and ``bf16`` (``--deploy
default,bf16``: the 140M row of every family and the peer).

    # the main job: all twenty configs on whatever device is present
    python tools/benchmark.py --all --out work_dirs/table7
    # one config, with trained weights
    python tools/benchmark.py configs/light_head_rcnn/X.py --checkpoint X.pth

Outputs under --out: benchmark.json (every measurement, device, versions,
date, command), plain/benchmark.json and bf16/benchmark.json (the other
runs), table7.md / table7.json / table7.png (tools/table7.py's report,
merged with --metrics files when given) and breakdown.md (time per
inference part).
"""
import argparse
import os
import os.path as osp
import sys
import time

# Kineto (torch.profiler's C++ side) writes to stderr at every profiler
# start/stop: "USDT: ... profiler_start/stop" (severity 5, its highest) and,
# without a GPU, "ERROR: ... gpuGetDeviceCount failed" (3). Level 6 is above
# every severity: the main job prints only its progress bars and results.
os.environ.setdefault('KINETO_LOG_LEVEL', '6')

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

# Let a fresh clone run without `pip install -e .`.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from shufflenet_det.benchmark.runner import (  # noqa: E402
    BACKENDS, EXTRA_RUNS, INPUTS, BenchmarkSettings, run_main_job)
from shufflenet_det.cli import (add_debug_flag, check_checkpoint,  # noqa: E402
                                check_config, resolve_configs, run_tool)
from shufflenet_det.deploy import parse_deploy_steps  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark detector inference (images/s) and write the '
        'Table 7 report')
    parser.add_argument('configs', nargs='*',
                        help='config files or glob patterns')
    parser.add_argument('--all', action='store_true',
                        help='add every config of configs/light_head_rcnn/')
    parser.add_argument('--checkpoint',
                        help='weights to load (one config only); default: '
                        'random weights')
    parser.add_argument('--out', default='work_dirs/table7',
                        help='output directory (default: %(default)s)')
    _add_timing_args(parser)
    _add_comparison_args(parser)
    parser.add_argument('--metrics', nargs='*', default=[],
                        help='tools/test.py --metrics-out files to merge '
                        'into the report')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides key=value (mmengine '
                        'DictAction syntax)')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    _check_args(parser, args)
    return args


def _add_timing_args(parser: argparse.ArgumentParser) -> None:
    """What is timed, on what, how long."""
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--img-size', type=int, nargs=2, default=(800, 1200),
                        metavar=('H', 'W'))
    parser.add_argument('--warmup', type=int,
                        help='untimed steps after the first call '
                        '(default: 1 on CPU, 5 on CUDA)')
    parser.add_argument('--iters', type=int,
                        help='maximum timed steps (default: 5 on CPU, 30 on '
                        'CUDA)')
    parser.add_argument('--max-seconds', type=float, default=20.0,
                        help='stop timing a model after this many seconds '
                        '(at least --min-iters steps); <= 0: no limit '
                        '(default: %(default)s)')
    parser.add_argument('--min-iters', type=int, default=2)
    parser.add_argument('--device', default='auto',
                        help="'auto' (CUDA when available), 'cpu', 'cuda', "
                        "'cuda:1', ...")
    parser.add_argument('--threads', type=int,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--fp16', action='store_true',
                        help="CUDA: add the 'fp16' deploy step (dense parts "
                        'of ours and the peer in float16, boxes and NMS in '
                        'float32; default: fp32)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-progress', action='store_true')


def _add_comparison_args(parser: argparse.ArgumentParser) -> None:
    """Deploy steps, runtime, peer and the checks around the timing."""
    parser.add_argument('--deploy', default='default',
                        help='deploy steps applied to ours and to the peer '
                        'alike: comma-separated subset of fuse_conv_bn,'
                        'channels_last,bf16 (CPU),fp16 (CUDA),compile, or '
                        "'none', 'default' (fuse_conv_bn,channels_last), "
                        "'all' (the fp32 steps); e.g. default,bf16 (default: "
                        '%(default)s)')
    parser.add_argument('--backend', default='torch', choices=BACKENDS,
                        help='runtime timed: PyTorch, or ours and the peer '
                        'exported to ONNX and run on ONNX Runtime / OpenVINO '
                        '(CPU; no per-part breakdown) (default: '
                        '%(default)s)')
    parser.add_argument('--inputs', choices=INPUTS, default='host',
                        help="where both sides' timed steps start: the same "
                        'uint8 images in host memory (copied to the device '
                        'and normalised inside each step), or already on the '
                        'device (default: %(default)s)')
    parser.add_argument('--no-peer', action='store_true',
                        help='skip the torchvision peer')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip the plain-vs-deployed check of each '
                        'part and of the final detections')
    parser.add_argument('--no-breakdown', action='store_true',
                        help='skip the per-part timing step')
    parser.add_argument('--also', nargs='*', choices=sorted(EXTRA_RUNS),
                        help='runs added to the job, each a record of its '
                        'own: plain (--deploy none: ShuffleNet v2 140M and '
                        'the peer as shipped), bf16 (--deploy default,bf16: '
                        'the 140M row of every family and the peer) '
                        '(default: both with --all and the default deploy '
                        'steps, none otherwise)')
    parser.add_argument('--interleave', type=int, default=3,
                        help='rounds of alternating peer / own steps per '
                        'Table 7 config, for a load-independent ratio '
                        '(default: %(default)s; 0: off)')


def _check_args(parser: argparse.ArgumentParser, args) -> None:
    if not args.configs and not args.all:
        parser.error('name configs or pass --all')
    if args.checkpoint and (args.all or len(args.configs) != 1):
        parser.error('--checkpoint needs exactly one config')
    try:
        args.deploy = parse_deploy_steps(
            f'{args.deploy},fp16' if args.fp16 else args.deploy)
    except ValueError as exc:
        parser.error(f'--deploy: {exc}')
    if args.also is None:
        args.also = sorted(EXTRA_RUNS) if args.all and args.deploy == \
            parse_deploy_steps('default') and args.backend == 'torch' else []
    if args.batch_size < 1 or min(args.img_size) < 32:
        parser.error(f'--batch-size must be >= 1 and --img-size >= 32, got '
                     f'{args.batch_size} and {args.img_size}')


def main(argv=None):
    args = parse_args(argv)
    device = torch.device('cuda' if args.device == 'auto' and
                          torch.cuda.is_available() else
                          'cpu' if args.device == 'auto' else args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == 'cuda'
    if 'fp16' in args.deploy and not cuda:
        sys.exit(f"benchmark: --fp16 / the 'fp16' deploy step needs CUDA, "
                 f'got {device}; on a CPU with native bf16 use --deploy '
                 'default,bf16')
    if 'bf16' in args.deploy and args.backend == 'onnxruntime':
        sys.exit("benchmark: the 'bf16' deploy step on an ONNX runtime is "
                 "OpenVINO's bf16 precision; ONNX Runtime runs f32 only here "
                 '(use --backend openvino or --backend torch)')
    if cuda and args.backend != 'torch':
        sys.exit(f'benchmark: --backend {args.backend} runs on the CPU; '
                 'pass --device cpu')
    settings = BenchmarkSettings(
        batch_size=args.batch_size, img_size=tuple(args.img_size),
        warmup=args.warmup if args.warmup is not None else (5 if cuda else 1),
        iters=args.iters if args.iters is not None else (30 if cuda else 5),
        max_seconds=args.max_seconds if args.max_seconds > 0 else None,
        min_iters=args.min_iters, deploy=args.deploy, seed=args.seed,
        breakdown=not args.no_breakdown, verify=not args.no_verify,
        interleave=args.interleave, backend=args.backend, inputs=args.inputs)
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    configs = resolve_configs(args.configs, args.all, root)
    for config in configs:  # absolute: the error names the file unambiguously
        check_config(osp.abspath(config), args.cfg_options)
    check_checkpoint(args.checkpoint)
    print(f'benchmark: {len(configs)} config(s) on {device} '
          f'[{args.backend}] '
          f'({torch.get_num_threads()} threads), batch {settings.batch_size}'
          f' x {settings.img_size[0]}x{settings.img_size[1]}, deploy '
          f"{','.join(settings.deploy) or 'none'}, then "
          f"{', '.join(args.also) or 'no other run'} -> {args.out}")
    start = time.perf_counter()
    records = run_main_job(configs, settings, device, args.out, args.also,
                           peer=not args.no_peer,
                           cfg_options=args.cfg_options,
                           checkpoint=args.checkpoint,
                           progress=not args.no_progress)

    from shufflenet_det.benchmark.report import (complexity_cells,
                                                 metrics_cells, write_report)
    paths = write_report(args.out, records[0], metrics_cells(args.metrics),
                         complexity_cells(), records[1:])
    print(f'done in {time.perf_counter() - start:.0f} s: ' +
          ', '.join(paths.values()))


if __name__ == '__main__':
    run_tool(main)
