"""Multiply-adds actually executed by a forward pass, per part.

``mmengine.analysis`` counts by tracing with fixed example inputs, which
cannot follow a detector's data-dependent path (proposals surviving NMS feed
the R-CNN subnet). Here forward hooks on convolutions and linear layers count
what ran, at the real input, under the convention of
:mod:`shufflenet_det.analysis.complexity`: one multiply-add per weight use, biases,
norms, activations and pooling excluded.
"""
from collections import defaultdict
from typing import Dict, Sequence

import torch.nn as nn


def layer_macs(module: nn.Module, output) -> int:
    """Multiply-adds of one call of a conv or linear layer.

    Args:
        module (nn.Module): ``nn.Conv{1,2,3}d`` or ``nn.Linear``.
        output (Tensor): Its output.

    Returns:
        int: ``output.numel() * in_channels / groups * prod(kernel_size)``
        for convolutions, ``output.numel() * in_features`` for linear layers,
        0 otherwise.
    """
    if isinstance(module, nn.modules.conv._ConvNd) and \
            not module.transposed:
        per_output = module.in_channels // module.groups
        for k in module.kernel_size:
            per_output *= k
        return output.numel() * per_output
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


class MacCounter:
    """Count multiply-adds of every conv/linear call, grouped by part.

    Args:
        model (nn.Module): The model to watch.
        parts (Sequence[str]): Dotted submodule prefixes to group by
            (longest match wins), e.g. ``('backbone', 'rpn_head',
            'roi_head.lsc', 'roi_head.bbox_head')``; other layers go to
            ``'other'``.

    Example:
        >>> with MacCounter(model, ['backbone']) as counter:
        ...     model.test_step(data)
        >>> counter.total, counter.by_part
    """

    def __init__(self, model: nn.Module, parts: Sequence[str] = ()) -> None:
        self.model = model
        self.parts = sorted(parts, key=len, reverse=True)
        self.by_part: Dict[str, int] = defaultdict(int)
        self._handles = []

    def _part(self, name: str) -> str:
        for part in self.parts:
            if name == part or name.startswith(part + '.'):
                return part
        return 'other'

    def __enter__(self) -> 'MacCounter':
        for name, module in self.model.named_modules():
            if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
                part = self._part(name)

                def hook(mod, _args, output, part=part):
                    self.by_part[part] += layer_macs(mod, output)

                self._handles.append(module.register_forward_hook(hook))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def total(self) -> int:
        """All multiply-adds counted so far."""
        return sum(self.by_part.values())
