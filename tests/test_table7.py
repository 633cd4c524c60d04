"""shufflenet_det.table7: Table 7's facts, and the rule that places a config."""
import ast
import subprocess
import sys

import pytest

from shufflenet_det import table7
from shufflenet_det.table7 import (FAMILIES, LEVELS, PAPER_COMPLEXITY,
                                   PAPER_TABLE7, TABLE7_BACKBONES, order,
                                   place, table7_cell)

from .conftest import REPO


def test_table7_cell_tells_v2_from_v2_star():
    v2 = dict(type='ShuffleNetV2', arch='1.0x', extra_dw=False,
              out_indices=(1, 2))
    assert table7_cell(v2) == dict(family='ShuffleNet v2', level='140M')
    assert table7_cell(dict(v2, extra_dw=True)) == dict(
        family='ShuffleNet v2*', level='140M')
    assert table7_cell(dict(v2, arch='3.0x')) is None
    assert table7_cell(None) is None


def test_every_cell_places_itself():
    seen = {}
    for family in FAMILIES:
        for level in LEVELS:
            cfg = TABLE7_BACKBONES[family][level]
            assert place(f'{family} {level}', cfg, seen) == (family, level)
    assert sorted(seen, key=lambda k: order(*k)) == list(seen)
    assert len(seen) == len(FAMILIES) * len(LEVELS)


def test_place_names_the_culprit():
    seen = {}
    cfg = TABLE7_BACKBONES['ShuffleNet v2']['140M']
    place('a.py', cfg, seen)
    with pytest.raises(ValueError, match='b.py and a.py are both'):
        place('b.py', cfg, seen)
    with pytest.raises(ValueError, match='c.py: model.backbone'):
        place('c.py', dict(type='ResNet', depth=50), seen)


def test_paper_tables_cover_every_cell():
    for table in (PAPER_COMPLEXITY, PAPER_TABLE7):
        assert tuple(table) == FAMILIES
    for family in FAMILIES:
        assert tuple(PAPER_COMPLEXITY[family]) == tuple(LEVELS)
        for column in PAPER_TABLE7[family].values():
            assert tuple(column) == tuple(LEVELS)


def test_imports_nothing_but_the_standard_library():
    tree = ast.parse(open(table7.__file__).read())
    names = {alias.name.split('.')[0] for node in ast.walk(tree)
             if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module.split('.')[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module}
    assert names <= {'typing'}
    # Loaded on its own (not through the package), it needs no torch.
    code = ('import importlib.util, sys; '
            f"s = importlib.util.spec_from_file_location('t7', "
            f"{table7.__file__!r}); m = importlib.util.module_from_spec(s); "
            "s.loader.exec_module(m); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, '-c', code], check=True,
                         capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == 'False'
