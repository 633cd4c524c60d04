"""Table 7 of the ShuffleNet V2 paper: its structure, and nothing else.

The table's families and levels, the backbone config of each cell, and the
rule that places a config in a cell. The paper's numbers for Table 7 (mmAP,
GPU images/s, the complexity column of its rows) live in
:mod:`shufflenet_det.paper`, the one place any paper number lives; they are
re-exported here with the structure they fill. The report
(:mod:`shufflenet_det.benchmark.report`), the model zoo
(:mod:`shufflenet_det.analysis.model_zoo`), ``tools/get_flops.py`` and the
tests read them from here.

This module imports nothing of torch, mmdet or this package but
:mod:`shufflenet_det.paper` (standard library only), so anything can import
it cheaply and it cannot fail for want of a backbone.

Example:
    >>> from shufflenet_det.table7 import TABLE7_BACKBONES, table7_cell
    >>> table7_cell(TABLE7_BACKBONES['ShuffleNet v2*']['140M'])
    {'family': 'ShuffleNet v2*', 'level': '140M'}
"""
from typing import Dict, Optional, Tuple

from .paper import (FAMILIES, LEVELS, PAPER,  # noqa: F401  (re-exported)
                    PAPER_COMPLEXITY, PAPER_TABLE7)

#: How a number this project did not measure is shown.
MISSING = '—'

#: Table 7's twenty detector configs, relative to the repository root.
CONFIGS = 'configs/light_head_rcnn/*.py'

#: The cell the reports detail (time breakdown, plain-vs-deployed timing).
FOCUS_CELL: Tuple[str, str] = ('ShuffleNet v2', '140M')

COUNTING_CONVENTION = (
    'multiply-adds (1 MAC = 1 FLOP) of convolutions and fully-connected '
    'layers at 1x3x224x224, backbone + global average pool + 1000-class fc; '
    'norms, activations, pooling, additions and shuffles count zero')

#: Relative distance to the level beyond which ``tools/get_flops.py`` flags
#: a cell. A flag is informative only: the cells are the paper's own rows
#: (:data:`PAPER_COMPLEXITY`), and its 500M rows lie above 500 MFLOPs.
LEVEL_TOLERANCE = 0.10

#: Table 7's five families x four levels -> backbone config. The backbone
#: choices and the reasons for them are in each class's docstring.
TABLE7_BACKBONES: Dict[str, Dict[str, dict]] = {
    'Xception': {
        level: dict(type='XceptionLike', arch=arch)
        for level, arch in zip(LEVELS, ('0.5x', '1.0x', '1.5x', '2.0x'))
    },
    'ShuffleNet v1': {
        level: dict(type='ShuffleNetV1', arch=arch)
        for level, arch in zip(LEVELS, ('0.5x', '1.0x', '1.5x', '2.0x'))
    },
    # Table 8's widths; each with the channel rule that comes closer to
    # Table 8's count (MobileNetV2Det's docstring gives both counts).
    'MobileNet v2': {
        level: dict(type='MobileNetV2Det', widen_factor=w, **rule)
        for level, w, rule in zip(
            LEVELS, (0.15, 0.6, 1.0, 1.4),
            (dict(channel_rule='table8'), dict(channel_rule='table8'),
             {}, {}))
    },
    'ShuffleNet v2': {
        level: dict(type='ShuffleNetV2', arch=arch)
        for level, arch in zip(LEVELS, ('0.5x', '1.0x', '1.5x', '2.0x'))
    },
    'ShuffleNet v2*': {
        level: dict(type='ShuffleNetV2', arch=arch, extra_dw=True)
        for level, arch in zip(LEVELS, ('0.5x', '1.0x', '1.5x', '2.0x'))
    },
}


#: Key of the COCO bbox mmAP in mmdet's CocoMetric output (a fraction).
MMAP_KEY = 'coco/bbox_mAP'


def _normal(value):
    return list(value) if isinstance(value, tuple) else value


def table7_cell(backbone_cfg: Optional[dict]) -> Optional[Dict[str, str]]:
    """The (family, level) of Table 7 whose backbone config this is.

    A cell of :data:`TABLE7_BACKBONES` matches when every key it sets has
    the same value in ``backbone_cfg``; among matches, the cell setting the
    most keys wins (so ShuffleNet V2 with ``extra_dw=True`` is v2*, not v2).

    Args:
        backbone_cfg (dict, optional): ``model.backbone`` of a config.

    Returns:
        dict | None: ``{'family': ..., 'level': ...}``, or None when nothing
        matches.
    """
    if not backbone_cfg:
        return None
    best, best_keys = None, -1
    for family, levels in TABLE7_BACKBONES.items():
        for level, cell in levels.items():
            if all(_normal(backbone_cfg.get(k)) == _normal(v)
                   for k, v in cell.items()) and len(cell) > best_keys:
                best, best_keys = dict(family=family, level=level), len(cell)
    return best


def place(source: str, backbone_cfg: Optional[dict],
          seen: Dict[Tuple[str, str], str]) -> Tuple[str, str]:
    """Place one config in its Table 7 cell, at most one per cell.

    Args:
        source (str): What is being placed (a config or result file), named
            in errors.
        backbone_cfg (dict, optional): Its ``model.backbone``.
        seen (dict): ``(family, level) -> source`` of the cells placed so
            far; updated.

    Returns:
        tuple: ``(family, level)``.

    Raises:
        ValueError: If the backbone is no cell of :data:`TABLE7_BACKBONES`,
            or another source already holds the cell.
    """
    cell = table7_cell(backbone_cfg)
    if cell is None:
        raise ValueError(f'{source}: model.backbone {backbone_cfg} is no '
                         'cell of shufflenet_det.table7.TABLE7_BACKBONES')
    key = (cell['family'], cell['level'])
    if key in seen:
        raise ValueError(f'{source} and {seen[key]} are both Table 7 cell '
                         f'{key}')
    seen[key] = source
    return key


def order(family: str, level: str) -> Tuple[int, int]:
    """Sort key of a cell: family, then level, in the paper's order."""
    return FAMILIES.index(family), list(LEVELS).index(level)
