"""Backbone complexity at the ShuffleNet V2 paper's convention.

The paper's complexity levels (Table 7: 40/140/300/500 MFLOPs) and its Table
5 / Table 8 numbers are multiply-adds of a *classification* network at
224x224: the backbone plus global average pooling and a 1000-class
fully-connected layer, counted by the package's one MAC counter
(:class:`~shufflenet_det.analysis.macs.MacCounter`). The table that maps
each of Table 7's 5 families x 4 levels to a backbone config, and the
paper's numbers beside it, are in :mod:`shufflenet_det.table7`; this module
has :func:`classifier_complexity`, which counts a config under that
convention.

Counting convention (:data:`COUNTING_CONVENTION`): multiply-adds of
convolutions and fully-connected layers, 1 MAC = 1 FLOP (as in the paper and
in ``mmengine.analysis``); norm layers, activations, pooling, additions,
concatenations and channel shuffles count zero; biases are not counted.
Parameters: every parameter of the backbone and of the classifier (fc weight
and bias), so ShuffleNet V2 matches torchvision's documented counts.

Example:
    >>> from shufflenet_det.table7 import TABLE7_BACKBONES
    >>> from shufflenet_det.analysis.complexity import classifier_complexity
    >>> cfg = TABLE7_BACKBONES['ShuffleNet v2']['140M']
    >>> result = classifier_complexity(cfg)
    >>> round(result['macs'] / 1e6, 1), result['params']
    (144.9, 2278604)
"""
import copy
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from .. import models  # noqa: F401  (registers the backbones)
from ..table7 import (LEVEL_TOLERANCE, LEVELS, PAPER_COMPLEXITY,
                      TABLE7_BACKBONES)
from .macs import MacCounter


class BackboneClassifier(nn.Module):
    """A backbone's last stage + global average pool + linear classifier.

    Args:
        backbone (BaseDetBackbone): Any backbone of this package, built
            with ``out_indices=(last stage,)`` so every stage exists.
        num_classes (int): Classifier outputs. Default: 1000.
    """

    def __init__(self, backbone: nn.Module, num_classes: int = 1000) -> None:
        super().__init__()
        # The classifier network is the whole backbone, every stage built.
        if len(backbone.layers) != len(backbone.stage_channels):
            raise ValueError(f'{type(backbone).__name__} must be built with '
                             'out_indices=(last stage,) to count as a '
                             f'classifier; got {backbone.out_indices}')
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(backbone.stage_channels[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) images -> (N, num_classes) logits."""
        (feat, ) = self.backbone(x)
        return self.fc(self.pool(feat).flatten(1))


def count_complexity(model: nn.Module,
                     input_size: int = 224) -> Dict[str, int]:
    """Count any classification network at :data:`COUNTING_CONVENTION`.

    Args:
        model (nn.Module): Takes (1, 3, input_size, input_size) images; it
            is switched to eval mode (BN in train mode would count the same,
            but would update running statistics).
        input_size (int): Square input side. Default: 224.

    Returns:
        dict: ``macs`` (int, multiply-adds for one image) and ``params``
        (int, all parameters of ``model``).
    """
    model.eval()
    with MacCounter(model) as counter, torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size))
    return dict(macs=counter.total,
                params=sum(p.numel() for p in model.parameters()))


def classifier_complexity(backbone_cfg: dict,
                          input_size: int = 224,
                          num_classes: int = 1000) -> Dict[str, int]:
    """Count a backbone config as a classifier, at the paper's convention.

    Args:
        backbone_cfg (dict): An mmdet ``MODELS`` config of a backbone of this
            package, e.g. ``dict(type='ShuffleNetV2', arch='1.0x')``.
            ``out_indices`` and ``init_cfg`` in it are ignored.
        input_size (int): Square input side. Default: 224.
        num_classes (int): Classifier outputs. Default: 1000.

    Returns:
        dict: ``macs`` (int, multiply-adds for one image, see
        :data:`COUNTING_CONVENTION`) and ``params`` (int, backbone +
        classifier parameters).
    """
    cfg = copy.deepcopy(backbone_cfg)
    cfg.pop('init_cfg', None)
    cfg.pop('out_indices', None)
    # Stages after the last out index are not built: ask for the last one.
    num_stages = len(MODELS.build(cfg).stage_channels)
    cfg['out_indices'] = (num_stages - 1, )
    model = BackboneClassifier(MODELS.build(cfg), num_classes)
    return count_complexity(model, input_size)


def table7_complexity(families: Optional[Sequence[str]] = None
                      ) -> List[dict]:
    """Count every cell of :data:`TABLE7_BACKBONES` (or of some families).

    Levels are defined at 224x224, so this always counts at 224x224.

    Args:
        families (Sequence[str], optional): Keys of :data:`TABLE7_BACKBONES`.
            Default: all five, in table order.

    Returns:
        list[dict]: One row per (family, level) with keys ``family``,
        ``level``, ``cfg``, ``macs``, ``params``, ``level_ratio`` (macs /
        level), ``within_tolerance`` (``|level_ratio - 1| <=
        LEVEL_TOLERANCE``) and ``paper`` (the :data:`PAPER_COMPLEXITY` entry).

    Raises:
        ValueError: If a family is not a key of :data:`TABLE7_BACKBONES`.
    """
    families = list(TABLE7_BACKBONES) if families is None else list(families)
    unknown = [f for f in families if f not in TABLE7_BACKBONES]
    if unknown:
        raise ValueError(f'unknown Table 7 families {unknown}; expected some '
                         f'of {list(TABLE7_BACKBONES)}')
    rows = []
    for family in families:
        for level, cfg in TABLE7_BACKBONES[family].items():
            result = classifier_complexity(cfg)
            ratio = result['macs'] / (LEVELS[level] * 1e6)
            rows.append(dict(family=family, level=level, cfg=cfg, **result,
                             level_ratio=ratio,
                             within_tolerance=abs(ratio - 1)
                             <= LEVEL_TOLERANCE,
                             paper=PAPER_COMPLEXITY[family][level]))
    return rows
