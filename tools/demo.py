"""Draw a detector's detections on images (mmdet's image demo, trimmed).

    python tools/demo.py IMAGE_OR_DIR CONFIG [CHECKPOINT] --out DIR \
        [--score-thr 0.3] [--device cpu] [--cfg-options ...]

    # e.g. the repository's demo image
    python tools/demo.py demo/demo.jpg \
        configs/light_head_rcnn/light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco.py \
        work_dirs/light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco/epoch_12.pth \
        --out work_dirs/demo

Inference goes through mmdet's ``init_detector`` + ``inference_detector``,
the config's test pipeline and model (the path ``tools/test.py`` evaluates);
``DetLocalVisualizer`` draws the boxes with score >= ``--score-thr`` and
writes ``DIR/<image name>``. One line per image says how many boxes it drew.
Without CHECKPOINT the weights are random (a warning says so).
"""
import argparse
import os
import os.path as osp
import sys
import warnings

from mmengine.config import DictAction

# Let a fresh clone run without `pip install -e .`.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from shufflenet_det.cli import (ToolInputError, add_debug_flag,  # noqa: E402
                                check_checkpoint, check_config, run_tool)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff',
                    '.webp')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw detections on an image or a directory of images')
    parser.add_argument('inputs', metavar='IMAGE_OR_DIR',
                        help='an image file or a directory of images')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?',
                        help='weights (default: random weights)')
    parser.add_argument('--out', required=True,
                        help='directory for the drawn images')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='draw boxes with at least this score '
                        '(default: %(default)s)')
    parser.add_argument('--device', default='cpu',
                        help="'cpu', 'cuda', 'cuda:1', ... "
                        '(default: %(default)s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides key=value')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def list_images(path: str) -> list:
    """``path`` itself, or the images directly inside directory ``path``."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise ToolInputError(f'image or directory not found: {path}')
    images = sorted(osp.join(path, name) for name in os.listdir(path)
                    if name.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise ToolInputError(f'no image ({", ".join(IMAGE_EXTENSIONS)}) in '
                             f'directory: {path}')
    return images


def main(argv=None):
    args = parse_args(argv)
    images = list_images(args.inputs)
    cfg = check_config(args.config, args.cfg_options)
    check_checkpoint(args.checkpoint)

    import mmcv
    from mmdet.apis import inference_detector, init_detector
    from mmdet.visualization import DetLocalVisualizer

    if args.checkpoint is None:
        warnings.warn('tools/demo.py: no CHECKPOINT given, the weights are '
                      'random: the boxes mean nothing')
    with warnings.catch_warnings():
        # init_detector warns when a checkpoint has no class names; COCO's
        # are what it then uses and what every config here trains on.
        warnings.filterwarnings('ignore', message='.*COCO classes')
        model = init_detector(cfg, args.checkpoint, device=args.device)
    visualizer = DetLocalVisualizer(name='shufflenet_det_demo')
    visualizer.dataset_meta = model.dataset_meta
    os.makedirs(args.out, exist_ok=True)
    for path in images:
        try:
            result = inference_detector(model, path)
            image = mmcv.imread(path, channel_order='rgb')
        except (FileNotFoundError, ValueError) as exc:
            # RobustLoadImageFromFile names the file and the reason.
            raise ToolInputError(str(exc)) from exc
        out_file = osp.join(args.out, osp.basename(path))
        with warnings.catch_warnings():
            # mmengine warns for every box that touches the image border
            # (predicted boxes are clipped to the image: it is on it).
            warnings.filterwarnings('ignore', message='.*is out of bounds')
            visualizer.add_datasample(
                osp.basename(path), image, data_sample=result,
                draw_gt=False, show=False, out_file=out_file,
                pred_score_thr=args.score_thr)
        drawn = int((result.pred_instances.scores >= args.score_thr).sum())
        print(f'{path}: {drawn} box(es) with score >= {args.score_thr} -> '
              f'{out_file}')


if __name__ == '__main__':
    run_tool(main)
