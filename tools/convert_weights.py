"""Convert an ImageNet ShuffleNetV2 checkpoint to shufflenet_det's key layout.

Accepts torchvision ``shufflenet_v2_x*`` state dicts and mmpretrain
ShuffleNetV2 checkpoints. Conversion also happens on the fly when a config
points ``init_cfg=dict(type='Pretrained', checkpoint=...)`` at the original
file; this tool is for inspecting the result or shipping converted weights.

Example:
    python tools/convert_weights.py shufflenetv2_x1-5666bf0f80.pth \
        work_dirs/shufflenetv2_1x_converted.pth --arch 1.0x
"""
import argparse

import torch
from mmdet.registry import MODELS

import shufflenet_det  # noqa: F401


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='torchvision/mmpretrain checkpoint path or URL')
    parser.add_argument('dst', help='output .pth (backbone state dict)')
    parser.add_argument('--arch', default='1.0x', help='0.5x, 1.0x, 1.5x, 2.0x')
    parser.add_argument('--prefix', default=None,
                        help="keep only keys under this prefix, e.g. 'backbone.'")
    return parser.parse_args()


def main():
    args = parse_args()
    model = MODELS.build(dict(type='ShuffleNetV2', arch=args.arch,
                              out_indices=(0, 1, 2, 3)))
    # Loads through the same path as init_cfg, so unknown, missing and
    # mis-shaped keys are reported (or raise) exactly as in training.
    model.load_pretrained(args.src, prefix=args.prefix)
    torch.save(model.state_dict(), args.dst)
    print(f'wrote {len(model.state_dict())} tensors to {args.dst}')


if __name__ == '__main__':
    main()
