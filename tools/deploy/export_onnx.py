"""Export a Light-Head R-CNN config to one standard ONNX graph.

The graph holds the whole detector (normalisation and padding, backbone,
RPN with decoding and NMS, large separable conv, PSRoIAlign as GridSample,
R-CNN, per-class NMS, top max_per_img) in default-domain operators only;
it runs on any ONNX Runtime build and on OpenVINO.

    python tools/deploy/export_onnx.py CONFIG [CHECKPOINT] --out end2end.onnx \
        [--batch 1] [--shape 800 1216] [--opset 17]

Input ``input``: float32 (N, 3, H, W), BGR pixels 0..255 at the export
shape (the whole input is the image: boxes are clipped to it). Outputs
``dets`` (N, max_per_img, 5) x1, y1, x2, y2, score and ``labels`` (N,
max_per_img) int64, padded with score 0 / label -1.
"""
import argparse
import json
import os
import os.path as osp
import sys

import torch
from mmengine.config import DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from shufflenet_det.apis import build_detector  # noqa: E402
from shufflenet_det.cli import (add_debug_flag, check_checkpoint,  # noqa: E402
                                check_config, run_tool)
from shufflenet_det.deploy.onnx import (  # noqa: E402
    DEFAULT_OPSET, ExportError, export_onnx)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a detector config to ONNX (default domain)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?',
                        help='weights (default: random weights)')
    parser.add_argument('--out', required=True, help='the .onnx file')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--shape', type=int, nargs=2, default=(800, 1216),
                        metavar=('H', 'W'),
                        help='input height and width (default: %(default)s)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help='ONNX opset, >= 16 (default: %(default)s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides key=value')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.batch < 1 or min(args.shape) < 32:
        parser.error(f'--batch must be >= 1 and --shape >= 32, got '
                     f'{args.batch} and {args.shape}')
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = check_config(args.config, args.cfg_options)
    check_checkpoint(args.checkpoint)
    model = build_detector(cfg, torch.device('cpu'), args.checkpoint)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    try:
        info = export_onnx(model, args.out, tuple(args.shape), args.batch,
                           args.opset, name=args.config)
    except ExportError as exc:
        sys.exit(f'export_onnx: {exc}')
    print(json.dumps(info))


if __name__ == '__main__':
    run_tool(main)
