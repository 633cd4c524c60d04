"""Table 7 of the ShuffleNet V2 paper: the facts, and nothing else.

The one place that holds the paper's numbers for Table 7 (mmAP, GPU
images/s) and for the complexity column of its rows (Tables 5 and 8), the
table's families and levels, the backbone config of each cell, and the rule
that places a config in a cell. The report
(:mod:`shufflenet_det.benchmark.report`), the model zoo
(:mod:`shufflenet_det.analysis.model_zoo`), ``tools/get_flops.py`` and the
tests read them from here.

This module imports nothing of torch, mmdet or this package, so anything can
import it cheaply and it cannot fail for want of a backbone.

Example:
    >>> from shufflenet_det.table7 import TABLE7_BACKBONES, table7_cell
    >>> table7_cell(TABLE7_BACKBONES['ShuffleNet v2*']['140M'])
    {'family': 'ShuffleNet v2*', 'level': '140M'}
"""
from typing import Dict, Optional, Tuple

#: How a number this project did not measure is shown.
MISSING = '—'

#: The paper.
PAPER = dict(URL='https://arxiv.org/abs/1807.11164',
             Title='ShuffleNet V2: Practical Guidelines for Efficient CNN '
             'Architecture Design')

#: Table 7's rows, in the paper's order.
FAMILIES = ('Xception', 'ShuffleNet v1', 'MobileNet v2', 'ShuffleNet v2',
            'ShuffleNet v2*')

#: Table 7's columns: complexity levels, in MFLOPs at 224x224 (iterating
#: gives the column names in order).
LEVELS: Dict[str, int] = {'40M': 40, '140M': 140, '300M': 300, '500M': 500}

#: The cell the reports detail (time breakdown, plain-vs-deployed timing).
FOCUS_CELL: Tuple[str, str] = ('ShuffleNet v2', '140M')

COUNTING_CONVENTION = (
    'multiply-adds (1 MAC = 1 FLOP) of convolutions and fully-connected '
    'layers at 1x3x224x224, backbone + global average pool + 1000-class fc; '
    'norms, activations, pooling, additions and shuffles count zero')

#: Relative distance to the level beyond which ``tools/get_flops.py`` flags
#: a cell. A flag is informative only: the cells are the paper's own rows
#: (:data:`PAPER_COMPLEXITY`), and its 500M rows are 583-591 MFLOPs.
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
    # Table 8's count (MobileNetV2Det's docstring): 38.6 / 141.1 / 300.8 /
    # 582.2 M for the paper's 39 / 141 / 301 / 587.
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


def _paper(model: str, mflops: Optional[float], source: str,
           mparams: Optional[float] = None) -> dict:
    return dict(model=model, mflops=mflops, mparams=mparams, source=source)


#: The paper's own complexity column for each cell of :data:`TABLE7_BACKBONES`
#: (``None`` where the paper prints no number). ``model`` names the row the
#: number comes from: Table 7's levels are these rows, so each cell's backbone
#: is the row's network (its width), not the nearest one to the level.
PAPER_COMPLEXITY: Dict[str, Dict[str, dict]] = {
    'Xception': {
        level: _paper(f'Xception {w} (our impl.)', f, 'Table 8')
        for level, w, f in zip(LEVELS, ('0.5x', '1x', '1.5x', '2x'),
                               (40, 145, 305, 525))
    },
    'ShuffleNet v1': {
        level: _paper(f'ShuffleNet v1 {w} (g=3)', f, 'Table 8')
        for level, w, f in zip(LEVELS, ('0.5x', '1x', '1.5x', '2x'),
                               (38, 140, 292, 524))
    },
    'MobileNet v2': {
        level: _paper(f'{w} MobileNet v2 (our impl.)', f, 'Table 8')
        for level, w, f in zip(LEVELS, ('0.15', '0.6', '1.0', '1.4'),
                               (39, 141, 301, 587))
    },
    'ShuffleNet v2': {
        level: _paper(f'ShuffleNet v2 {w}', f, 'Table 5', p)
        for level, w, f, p in zip(LEVELS, ('0.5x', '1x', '1.5x', '2x'),
                                  (41, 146, 299, 591), (1.4, 2.3, 3.5, 7.4))
    },
    # §4: "with only a few additional FLOPs"; the paper prints no number.
    'ShuffleNet v2*': {
        level: _paper(f'ShuffleNet v2* {w}', None, '§4 (no number given)')
        for level, w in zip(LEVELS, ('0.5x', '1x', '1.5x', '2x'))
    },
}

#: The paper's Table 7 (Ma et al., ECCV 2018): COCO minival mmAP (%) and GPU
#: images/s at batch 4, 800x1200 input, Light-Head R-CNN.
PAPER_TABLE7: Dict[str, Dict[str, Dict[str, float]]] = {
    'Xception': dict(mmap=dict(zip(LEVELS, (21.9, 29.0, 31.3, 32.9))),
                     gpu_images_per_s=dict(zip(LEVELS, (178, 131, 101, 83)))),
    'ShuffleNet v1': dict(mmap=dict(zip(LEVELS, (20.9, 27.0, 29.9, 32.9))),
                          gpu_images_per_s=dict(zip(LEVELS,
                                                    (152, 85, 76, 60)))),
    'MobileNet v2': dict(mmap=dict(zip(LEVELS, (20.7, 24.4, 30.0, 30.6))),
                         gpu_images_per_s=dict(zip(LEVELS,
                                                   (146, 111, 94, 72)))),
    'ShuffleNet v2': dict(mmap=dict(zip(LEVELS, (22.5, 29.0, 31.8, 33.3))),
                          gpu_images_per_s=dict(zip(LEVELS,
                                                    (188, 146, 109, 87)))),
    'ShuffleNet v2*': dict(mmap=dict(zip(LEVELS, (23.7, 29.6, 32.2, 34.2))),
                           gpu_images_per_s=dict(zip(LEVELS,
                                                     (183, 138, 105, 83)))),
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
