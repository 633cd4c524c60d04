"""Train a detector from a config (mmdet's tools/train.py, trimmed).

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]]
        [--auto-scale-lr] [--cfg-options key=value ...]
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction
from mmengine.runner import Runner

# Let a fresh clone run without `pip install -e .`.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from shufflenet_det.cli import (ToolInputError, check_config,  # noqa: E402
                                parse_launcher_args, run_tool)
from shufflenet_det.models.backbones.base_backbone import \
    check_pretrained_weights  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true',
        help='enable automatic mixed precision (AmpOptimWrapper)')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale lr linearly from auto_scale_lr.base_batch_size to the '
        'actual total batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint; without a path, from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs, e.g. '
        'train_dataloader.dataset.data_root=/data/coco/')
    args = parse_launcher_args(parser)
    return args


def main():
    args = parse_args()
    # A missing, empty or unparsable config ends in one line naming it.
    cfg = check_config(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # Before building anything: a backbone that needs ImageNet weights
    # nobody published stops here, naming the config and the way out.
    try:
        check_pretrained_weights(cfg.model.get('backbone'), args.config)
    except ValueError as exc:
        sys.exit(str(exc))
    # CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ToolInputError(f'{args.config}: --auto-scale-lr needs '
                                 'auto_scale_lr.base_batch_size in the '
                                 'config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    # As mmdet's tools: a config may pick a Runner subclass (e.g.
    # CPUDistRunner, which makes dist_train.sh work without CUDA).
    if 'runner_type' in cfg:
        from mmdet.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    run_tool(main)
