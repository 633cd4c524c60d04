"""The peer detector measured in the same run: torchvision's fastest two-stage
detector, ``fasterrcnn_mobilenet_v3_large_fpn``, and its adapter for the
runner (:class:`Peer`, the twin of :class:`~.runner.Detector`)."""
import warnings
from typing import Callable, List, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from shufflenet_det.deploy import DENSE_PARTS
from shufflenet_det.deploy.verify import compare_detections

PEER_NAME = 'torchvision fasterrcnn_mobilenet_v3_large_fpn'


def build_peer(device: torch.device, img_size: Tuple[int, int]) -> nn.Module:
    """The peer with random weights, resizing to the benchmark input.

    ``min_size`` / ``max_size`` are the benchmark's shorter / longer side, so
    its internal resize keeps an 800x1200 image at 800x1200 (like our
    detectors, it then pads to a multiple of 32). Everything else is
    torchvision's default test setting (1000 proposals per image after NMS,
    score threshold 0.05, 100 detections).

    Args:
        device (torch.device): Where to put it.
        img_size (tuple[int, int]): (height, width) of the benchmark images.

    Returns:
        nn.Module: The peer, in eval mode.
    """
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn
    model = fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None, min_size=min(img_size),
        max_size=max(img_size))
    return model.eval().to(device)


def peer_onnx_step(model: nn.Module, images: Sequence[Tensor], backend: str,
                   precision: str = 'f32'
                   ) -> Tuple[Callable[[], List[dict]], dict]:
    """The peer exported with torchvision's own ONNX support (TorchScript
    exporter, its ``NonMaxSuppression`` / ``RoiAlign`` symbolics; pre- and
    post-processing included) and run on ``backend``; returns as
    :func:`shufflenet_det.deploy.onnx.onnx_step` (``images``:
    :func:`peer_inputs`)."""
    from shufflenet_det.deploy.onnx import (DEFAULT_OPSET, detections,
                                            export_and_load)
    inputs = [i.cpu().numpy() for i in images]

    def export(path):
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.onnx.export(model, (list(images), ), path, dynamo=False,
                              opset_version=DEFAULT_OPSET,
                              input_names=[f'image{i}'
                                           for i in range(len(images))])
        return DEFAULT_OPSET

    run, info = export_and_load(export, backend, precision)

    def step():
        out = run(*inputs)
        # torchvision's outputs: boxes, labels, scores for each image.
        return [detections(out[i], out[i + 2], out[i + 1])
                for i in range(0, len(out), 3)]

    return step, info


def peer_inputs(batch_size: int, img_size: Tuple[int, int],
                device: torch.device, seed: int = 0) -> List[Tensor]:
    """``batch_size`` random RGB images in [0, 1], shape (3, H, W) each."""
    gen = torch.Generator(device='cpu').manual_seed(seed)
    return [torch.rand(3, *img_size, generator=gen).to(device)
            for _ in range(batch_size)]


class Peer:
    """The peer as a subject of :class:`~.runner.Runner`: the same steps,
    settings and deploy steps as ours, through the same attributes."""
    name = PEER_NAME
    #: Parts whose multiply-adds are counted.
    mac_parts = ('backbone', 'rpn', 'roi_heads')
    #: Parts checked deployed vs plain (none: the deployed peer's final
    #: detections are compared with the plain ones).
    check_parts = ()
    #: (label, path, method) of the time breakdown; path '' is
    #: ``GeneralizedRCNN.forward``'s own time: ``transform.postprocess``
    #: (rescaling the boxes) and the glue between the parts above.
    time_parts = (
        ('pre-processing (transform)', 'transform', 'forward'),
        ('backbone + FPN', 'backbone', 'forward'),
        ('RPN', 'rpn', 'forward'),
        ('RoI heads (RoIAlign, 2 FC, post-processing)', 'roi_heads',
         'forward'),
        ('post-processing (rescale) and glue', '', 'forward'),
    )
    compile_parts = DENSE_PARTS

    def build(self, settings, device: torch.device, result: dict):
        """The peer and its random batch; records what it was given.

        Returns:
            tuple: The model, its step, and ``backend -> (step, info)``.
        """
        torch.manual_seed(settings.seed)
        model = build_peer(device, settings.img_size)
        # Our pixels, where ours start (settings.inputs): each step brings
        # them to the device as the RGB floats in [0, 1] the peer expects.
        pixels = settings.batch(device)['inputs']
        result['settings'] = dict(weights=None, weights_backbone=None,
                                  min_size=min(settings.img_size),
                                  max_size=max(settings.img_size))
        result['input'] = dict(batch_size=len(pixels),
                               img_size=list(pixels[0].shape[-2:]),
                               start=f'{settings.inputs} uint8')

        def images():
            return [p.to(device).float().div_(255) for p in pixels]

        def on_backend(backend, precision):
            return peer_onnx_step(model, images(), backend, precision)

        def step():  # what model(images) runs: transform, model, rescale
            with torch.no_grad():
                return model(images())

        return model, step, on_backend

    @staticmethod
    def compare(reference: list, detections: list, plain, deployed) -> dict:
        """The equivalence contract without recomputation (none exists for
        torchvision's detector): every difference counts, a stricter bar
        than ours, where a checked near-tie is allowed."""
        return compare_detections(reference, detections)
