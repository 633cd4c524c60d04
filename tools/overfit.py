"""Overfit check: train on 8 coco-mini images until mAP on them > 0.5.

    OMP_NUM_THREADS=1 python tools/overfit.py [--config CONFIG]
        [--work-dir DIR] [--results-dir results] [--cfg-options k=v ...]

Trains with the config (its EarlyStoppingHook stops at the threshold), then
plots the training loss and the 8-image COCO bbox mAP against the iteration
into <work-dir>/overfit_curve.png, copies it to <results-dir>/, and writes
<results-dir>/overfit.json with the command, date, machine, wall time and
final numbers. Exits with status 1 when the threshold was not reached.
"""
import argparse
import json
import os
import os.path as osp
import platform
import shutil
import sys
import time
from datetime import datetime

import torch
from mmengine.config import Config, DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from shufflenet_det.engine.atomic_io import atomic_write_json  # noqa: E402

DEFAULT_CONFIG = ('configs/light_head_rcnn/overfit/'
                  'light-head-rcnn_shufflenetv2-1x_1xb2-overfit-8img_'
                  'coco-mini.py')
METRIC = 'coco/bbox_mAP'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/overfit')
    parser.add_argument('--results-dir', default='results')
    parser.add_argument('--threshold', type=float, default=0.5,
                        help='mAP the check must exceed (default 0.5)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def read_scalars(path):
    """(iter, loss) and (iter, mAP) pairs from mmengine's scalars.json."""
    losses, maps = [], []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if 'loss' in rec:
                losses.append((rec['step'], rec['loss']))
            elif METRIC in rec:
                maps.append((rec['step'], rec[METRIC]))
    return losses, maps


def plot(losses, maps, threshold, out_png, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(*zip(*losses), color='tab:blue', label='training loss')
    ax.set_xlabel('iteration')
    ax.set_ylabel('loss (mean of 10 iterations)', color='tab:blue')
    ax.set_yscale('log')
    ax2 = ax.twinx()
    if maps:
        ax2.plot(*zip(*maps), 'o-', color='tab:red', label='bbox mAP')
    ax2.axhline(threshold, color='tab:red', ls='--', lw=0.8)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel('COCO bbox mAP on the 8 training images',
                   color='tab:red')
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def main():
    args = parse_args()
    env = [f'OMP_NUM_THREADS={os.environ["OMP_NUM_THREADS"]}'] \
        if 'OMP_NUM_THREADS' in os.environ else []
    command = ' '.join([*env, 'python', *sys.argv])
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir

    from mmdet.registry import RUNNERS
    start = time.time()
    runner = RUNNERS.build(cfg)
    runner.train()
    wall = time.time() - start

    losses, maps = read_scalars(
        osp.join(runner.log_dir, 'vis_data', 'scalars.json'))
    final = maps[-1][1] if maps else None
    reached = final is not None and final > args.threshold
    png = osp.join(args.work_dir, 'overfit_curve.png')
    plot(losses, maps, args.threshold, png,
         f'Light-Head R-CNN ShuffleNet V2 1x, 8 coco-mini images: '
         f'mAP {final} after {runner.iter} iterations')
    os.makedirs(args.results_dir, exist_ok=True)
    shutil.copy(png, osp.join(args.results_dir, 'overfit_curve.png'))
    record = dict(
        command=command,
        config=args.config,
        date=datetime.now().astimezone().isoformat(timespec='seconds'),
        machine=(torch.cuda.get_device_name() if torch.cuda.is_available()
                 else f'{os.cpu_count()}-core CPU '
                 f'({platform.processor() or platform.machine()}), no GPU'),
        torch_threads=torch.get_num_threads(),
        wall_time_s=round(wall, 1),
        iterations=runner.iter,
        threshold=args.threshold,
        reached=reached,
        final_bbox_mAP=final,
        map_curve=maps,
        final_loss=losses[-1][1] if losses else None,
        curve_png=osp.join(args.results_dir, 'overfit_curve.png'),
        log_dir=runner.log_dir)
    atomic_write_json(record, osp.join(args.results_dir, 'overfit.json'),
                      indent=2)
    print(json.dumps({k: record[k] for k in (
        'wall_time_s', 'iterations', 'final_bbox_mAP', 'reached')}))
    sys.exit(0 if reached else 1)


if __name__ == '__main__':
    main()
