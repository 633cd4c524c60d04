"""Run an exported detector (tools/deploy/export_onnx.py) on images and
draw the detections, as mmdet's image demo does.

    python tools/deploy/infer.py end2end.onnx IMAGE_OR_DIR \
        --backend onnxruntime|openvino [--bf16] --out DIR [--score-thr 0.3]

Each image is resized to fit the graph's input shape keeping its aspect
ratio and padded at the bottom/right with the mean pixel (0 after the
graph's normalisation); boxes are clipped to the image and mapped back to
its pixels. Writes DIR/<name>.jpg (drawn) and DIR/<name>.json.
``--bf16`` runs OpenVINO in bf16 (``INFERENCE_PRECISION_HINT``; a CPU
with AVX-512 BF16 or AMX; elsewhere it warns and runs f32).
"""
import argparse
import json
import os
import os.path as osp
import sys

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from shufflenet_det.deploy.onnx import (  # noqa: E402
    BACKENDS, build_runner, letterbox)

#: OnePassDetDataPreprocessor's mean of the configs, RGB; the input is BGR.
MEAN_RGB = (123.675, 116.28, 103.53)
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Run an ONNX detector')
    parser.add_argument('onnx', help='the .onnx file')
    parser.add_argument('images', help='an image or a directory of images')
    parser.add_argument('--backend', choices=BACKENDS, default='onnxruntime')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='draw detections above this score '
                        '(default: %(default)s)')
    parser.add_argument('--threads', type=int, help='CPU threads')
    parser.add_argument('--bf16', action='store_true',
                        help='OpenVINO: infer in bf16 (default: f32)')
    args = parser.parse_args(argv)
    if args.bf16 and args.backend != 'openvino':
        parser.error(f'--bf16 needs --backend openvino (got {args.backend})')
    # Bad paths end here with one line naming them, not in a traceback
    # from onnx.load or a runtime.
    if not osp.isfile(args.onnx):
        parser.error(f'ONNX file not found: {args.onnx}')
    try:
        args.files = list_images(args.images)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    return args


def list_images(path):
    if osp.isdir(path):
        files = sorted(osp.join(path, f) for f in os.listdir(path)
                       if f.lower().endswith(IMAGE_EXTS))
    else:
        files = [path]
    if not files or not all(osp.isfile(f) for f in files):
        raise FileNotFoundError(f'infer: no image found at {path}')
    return files


def main(argv=None):
    args = parse_args(argv)
    import mmcv
    import onnx
    import torch
    from mmdet.datasets import CocoDataset
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.structures import InstanceData

    dims = onnx.load(args.onnx, load_external_data=False).graph.input[0]
    batch, _, height, width = [d.dim_value for d in
                               dims.type.tensor_type.shape.dim]
    run = build_runner(args.onnx, args.backend, args.threads,
                       'bf16' if args.bf16 else 'f32')
    files = args.files
    os.makedirs(args.out, exist_ok=True)
    visualizer = DetLocalVisualizer()
    visualizer.dataset_meta = CocoDataset.METAINFO
    for start in range(0, len(files), batch):
        chunk = files[start:start + batch]
        images = [mmcv.imread(f) for f in chunk]
        inputs, scales = zip(*[letterbox(i, (height, width), MEAN_RGB[::-1])
                               for i in images])
        # A static batch: repeat the last image to fill it.
        inputs = list(inputs) + [inputs[-1]] * (batch - len(inputs))
        dets, labels = run(np.stack(inputs))
        for i, (path, image, scale) in enumerate(zip(chunk, images, scales)):
            keep = labels[i] >= 0
            boxes = dets[i, keep, :4] / scale
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, image.shape[1])
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, image.shape[0])
            pred = InstanceData(bboxes=torch.from_numpy(boxes),
                                scores=torch.from_numpy(dets[i, keep, 4]),
                                labels=torch.from_numpy(labels[i, keep]))
            sample = DetDataSample(pred_instances=pred)
            name = osp.splitext(osp.basename(path))[0]
            visualizer.add_datasample(
                name, mmcv.bgr2rgb(image), sample, draw_gt=False,
                pred_score_thr=args.score_thr,
                out_file=osp.join(args.out, name + '.jpg'))
            with open(osp.join(args.out, name + '.json'), 'w') as f:
                json.dump(dict(bboxes=boxes.tolist(),
                               scores=dets[i, keep, 4].tolist(),
                               labels=labels[i, keep].tolist()), f)
        print(f'{start + len(chunk)}/{len(files)} images')
    print(f'infer: {len(files)} image(s) -> {args.out}')


if __name__ == '__main__':
    main()
