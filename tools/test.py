"""Test (and evaluate) a checkpoint (mmdet's tools/test.py, trimmed).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out PRED.pkl]
        [--metrics-out METRICS.json] [--fuse-conv-bn] [--bf16] [--cfg-options ...]

``--fuse-conv-bn`` evaluates the deployed detector (BatchNorm folded into
the convolutions, channels-last weights; ``shufflenet_det.deploy``), the
very model ``tools/benchmark.py`` times. ``--bf16`` adds the ``bf16`` deploy
step (dense parts in bfloat16 on a CPU with native bf16, boxes and NMS in
float32; ``shufflenet_det.deploy.precision``).
"""
import argparse
import os
import os.path as osp
import sys
from datetime import datetime

import torch
from mmengine.config import DictAction
from mmengine.runner import Runner

# Let a fresh clone run without `pip install -e .`.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from shufflenet_det.engine.atomic_io import atomic_write_json  # noqa: E402

from shufflenet_det.cli import (check_checkpoint, check_config,  # noqa: E402
                                parse_launcher_args, run_tool)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the dir to save logs and evaluation metrics')
    parser.add_argument(
        '--out', help='dump raw predictions to this .pkl file')
    parser.add_argument(
        '--metrics-out',
        help='write the evaluator metrics (e.g. coco/bbox_mAP) to this .json')
    parser.add_argument(
        '--fuse-conv-bn', action='store_true',
        help='evaluate the deployed model: BatchNorm folded into convs and '
        'channels-last weights, as tools/benchmark.py times it')
    parser.add_argument(
        '--bf16', action='store_true',
        help='run the dense parts in bfloat16 (CPU with native bf16), boxes '
        'and NMS in float32; with --fuse-conv-bn after its steps')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs, e.g. '
        'test_dataloader.dataset.data_root=/data/coco/ '
        'test_evaluator.ann_file=/data/coco/annotations/'
        'instances_val2017.json')
    args = parse_launcher_args(parser)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must name a .pkl file, got {args.out}')
    return args


def main():
    args = parse_args()
    cfg = check_config(args.config, args.cfg_options)
    check_checkpoint(args.checkpoint)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    steps = (['default'] if args.fuse_conv_bn else []) + (['bf16'] if args.bf16 else [])
    if steps:
        cfg.custom_hooks = [*cfg.get('custom_hooks', []),
                            dict(type='DeployHook', steps=','.join(steps))]

    # As mmdet's tools: a config may pick a Runner subclass (e.g.
    # CPUDistRunner, which makes dist_test.sh work without CUDA).
    if 'runner_type' in cfg:
        from mmdet.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    if args.out is not None:
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    metrics = runner.test()
    if args.metrics_out is not None and runner.rank == 0:
        device = torch.cuda.get_device_name() if torch.cuda.is_available() \
            else f'CPU ({os.cpu_count()} cores), no GPU'
        date = datetime.now().astimezone().isoformat(timespec='seconds')
        atomic_write_json(dict(config=args.config, checkpoint=args.checkpoint,
                               date=date, device=device, metrics=metrics),
                          args.metrics_out, indent=2)


if __name__ == '__main__':
    run_tool(main)
