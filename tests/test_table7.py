"""shufflenet_det.table7 (Table 7's structure, the rule that places a
config) and shufflenet_det.paper (every paper number)."""
import ast
import subprocess
import sys

import pytest

from shufflenet_det import paper, table7
from shufflenet_det.paper import (FAMILIES, LEVELS, PAPER_COMPLEXITY,
                                  PAPER_TABLE7)
from shufflenet_det.table7 import TABLE7_BACKBONES, order, place, table7_cell

from .conftest import REPO

PAPER_TEXT = REPO.parent / 'shared/paper/shufflenet-v2.txt'


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


def _imported(module) -> set:
    tree = ast.parse(open(module.__file__).read())
    names = {alias.name for node in ast.walk(tree)
             if isinstance(node, ast.Import) for alias in node.names}
    return names | {('.' * node.level) + (node.module or '')
                    for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom)}


def test_imports_nothing_but_the_standard_library():
    assert _imported(paper) <= {'dataclasses', 'typing'}
    assert _imported(table7) <= {'typing', '.paper'}
    # Imported without the package's __init__ (which registers the models),
    # neither module pulls in torch.
    code = ('import sys, types; pkg = types.ModuleType("shufflenet_det"); '
            f'pkg.__path__ = [{str(REPO / "shufflenet_det")!r}]; '
            'sys.modules["shufflenet_det"] = pkg; '
            'import shufflenet_det.table7; '
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, '-c', code], check=True,
                         capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == 'False'


def test_no_paper_number_outside_paper_py():
    """table7.py holds structure only: its paper tables are paper.py's."""
    for name in ('FAMILIES', 'LEVELS', 'PAPER', 'PAPER_COMPLEXITY',
                 'PAPER_TABLE7'):
        assert getattr(table7, name) is getattr(paper, name)
    text = open(table7.__file__).read()
    for number in ('21.9', '188', '591', '587', '7.4'):
        assert number not in text


def _paper_line(lines, start):
    return next(line for line in lines if line.startswith(start))


@pytest.mark.skipif(not PAPER_TEXT.is_file(),
                    reason=f'paper text not at {PAPER_TEXT}')
def test_paper_numbers_are_the_papers():
    """Table 7 (mmAP, GPU speed) and the complexity column (Tables 5, 8),
    as printed in the paper's text."""
    lines = PAPER_TEXT.read_text().splitlines()
    caption = next(i for i, line in enumerate(lines)
                   if line.startswith('Table 7:'))
    table = lines[caption - 10:caption]
    assert _paper_line(table, 'FLOPs\t').split()[1:5] == list(LEVELS)
    for family in FAMILIES:
        start = family + (' (ours)' if family.startswith('ShuffleNet v2')
                          else '') + '\t'
        printed = [float(x) for x in
                   _paper_line(table, start)[len(start):].split()]
        expected = [*PAPER_TABLE7[family]['mmap'].values(),
                    *PAPER_TABLE7[family]['gpu_images_per_s'].values()]
        assert printed == expected, family
    table5 = lines[:next(i for i, line in enumerate(lines)
                         if line.startswith('Table 5:'))]
    for key, row in (('mflops', 'FLOPs\t'), ('mparams', '# of Weights\t')):
        printed = [float(x.rstrip('MG')) for x in
                   _paper_line(table5[::-1], row).split('\t')[1:] if x]
        assert printed == [c[key] for c in
                           PAPER_COMPLEXITY['ShuffleNet v2'].values()]
    for family in ('Xception', 'ShuffleNet v1', 'MobileNet v2'):
        for cell in PAPER_COMPLEXITY[family].values():
            assert cell['source'] == 'Table 8'
            row = _table8_row(lines, cell['model'])
            assert float(row.split('\t')[1]) == cell['mflops'], row


def _table8_row(lines, model):
    """The Table 8 line of ``model`` ('Xception 1x (our impl.)', ...)."""
    words = model.replace('(g=3)', '').replace('(our impl.)', '').split()
    for line in lines:
        name = line.split('\t')[0].replace('$', '').replace('\\times', 'x')
        name = name.replace(' ', '').replace('[12]', '').replace('[14]', '')
        name = name.replace('[15]', '').replace('(g=3)', '')
        if name == ''.join(words) + ('(ourimpl.)' if 'our impl.' in model
                                     else ''):
            return line
    raise AssertionError(f'{model} not found in the paper text')
