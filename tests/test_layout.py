"""The README's Layout: imports point down, each floor uses only the floors
below it. Read from the source (module-level and function-level ``from``
imports alike), so a new upward import fails here, naming the file."""
import ast

from .conftest import REPO

PACKAGE = REPO / 'shufflenet_det'

#: The floors of the README's Layout, top first; a unit is a subpackage or a
#: top-level module of ``shufflenet_det``.
FLOORS = (
    ('benchmark', ),
    ('analysis', ),
    ('engine', 'datasets', 'evaluation', 'classification', 'compat'),
    ('deploy', ),
    ('measure', ),
    ('apis', ),
    ('models', ),
    ('cli', 'markdown'),
    ('table7', ),
    ('paper', ),
)
FLOOR = {unit: level for level, units in enumerate(FLOORS) for unit in units}


def _unit(parts):
    """``('deploy', 'onnx.py')`` -> ``'deploy'``; ``('apis.py',)`` ->
    ``'apis'``."""
    return parts[0][:-3] if parts[0].endswith('.py') else parts[0]


def _imported_units(source, here):
    """The package units that ``source``, a file at ``here`` (its parts
    under ``shufflenet_det/``), imports with ``from ... import``."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 0:
            names = (node.module or '').split('.')
            if names[0] == 'shufflenet_det' and len(names) > 1:
                yield names[1]
            continue
        # Relative: drop the file name, then one folder per extra dot.
        base = here[:-1][:len(here) - node.level]
        names = list(base) + (node.module.split('.') if node.module else [])
        if names:
            yield names[0]
        else:  # ``from .. import models`` at the package's top
            yield from (alias.name for alias in node.names)


def test_every_unit_has_a_floor():
    units = {_unit(p.relative_to(PACKAGE).parts)
             for p in PACKAGE.rglob('*.py')} - {'__init__'}
    assert units <= set(FLOOR), f'add to FLOORS (and the README): ' \
        f'{sorted(units - set(FLOOR))}'


def test_imports_point_down():
    upward = []
    for path in sorted(PACKAGE.rglob('*.py')):
        unit = _unit(path.relative_to(PACKAGE).parts)
        if unit == '__init__':
            continue
        here = path.relative_to(PACKAGE).parts
        for target in set(_imported_units(path.read_text(), here)) - {unit}:
            if target in FLOOR and FLOOR[target] < FLOOR[unit]:
                upward.append(f'{path.relative_to(REPO)} imports {target}')
    assert not upward, upward


def test_the_checker_sees_upward_imports():
    """The checker itself, on a file laid out as ``models/heads/x.py``:
    relative, absolute and function-level imports are all seen."""
    source = ('from ...benchmark.runner import Runner\n'
              'from .. import layers\n'
              'def f():\n    from shufflenet_det.deploy import onnx\n'
              'from ...paper import FAMILIES\n')
    found = set(_imported_units(source, ('models', 'heads', 'x.py')))
    assert found == {'benchmark', 'models', 'deploy', 'paper'}
    assert set(_imported_units(
        'from .. import models\n', ('analysis', 'x.py'))) == {'models'}
