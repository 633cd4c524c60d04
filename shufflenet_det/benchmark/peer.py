"""The peer detector measured in the same run: torchvision's fastest two-stage
detector, ``fasterrcnn_mobilenet_v3_large_fpn``."""
from typing import Callable, List, Tuple

import torch
import torch.nn as nn
from torch import Tensor

PEER_NAME = 'torchvision fasterrcnn_mobilenet_v3_large_fpn'

#: Parts of the peer, for MAC counting (see :class:`MacCounter`).
PEER_PARTS = ('backbone', 'rpn', 'roi_heads')


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


def peer_inputs(batch_size: int, img_size: Tuple[int, int],
                device: torch.device, seed: int = 0) -> List[Tensor]:
    """``batch_size`` random RGB images in [0, 1], shape (3, H, W) each."""
    gen = torch.Generator(device='cpu').manual_seed(seed)
    return [torch.rand(3, *img_size, generator=gen).to(device)
            for _ in range(batch_size)]


def peer_step(model: nn.Module, images: List[Tensor]) -> Callable[[], object]:
    """One inference step of the peer: its transform, model and
    post-processing, as ``model(images)`` runs them."""

    def step():
        with torch.no_grad():
            return model(images)

    return step
