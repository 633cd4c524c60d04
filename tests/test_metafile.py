"""configs/light_head_rcnn/metafile.yml and docs/model_zoo.md agree with the
code: every Table 7 config listed once, its backbone MACs and params equal to
shufflenet_det.analysis.complexity's count, both files equal to what
tools/gen_metafile.py writes.

Counts the twenty backbones once (about a minute on 2 CPU cores), shared by
every test of this file.
"""
import re
from pathlib import Path

import pytest
import yaml
from mmengine.config import Config

from shufflenet_det.analysis.complexity import classifier_complexity
from shufflenet_det.analysis.model_zoo import (
    CONFIG_DIR, MACS_DIGITS, MACS_KEY, METAFILE, MODEL_ZOO_MD, PARAMS_DIGITS,
    PARAMS_KEY, format_metafile, format_model_zoo, table7_rows)
from shufflenet_det.table7 import LEVELS, table7_cell
from tests.conftest import REPO

METAFILE_PATH = REPO / METAFILE
MODEL_ZOO_PATH = REPO / MODEL_ZOO_MD
META = (yaml.safe_load(METAFILE_PATH.read_text())
        if METAFILE_PATH.is_file() else {})
META_MODELS = META.get('Models') or []
REGENERATE = 'rerun python tools/gen_metafile.py'


_COUNTS = {}


def count(backbone: dict) -> dict:
    """classifier_complexity, counted once per backbone in this session."""
    cfg = {k: v for k, v in backbone.items()
           if k not in ('init_cfg', 'out_indices')}  # ignored by the count
    key = repr(sorted(cfg.items()))
    if key not in _COUNTS:
        _COUNTS[key] = classifier_complexity(cfg)
    return _COUNTS[key]


def test_metafile_lists_every_table7_config_once():
    assert METAFILE_PATH.is_file(), f'{METAFILE} missing; {REGENERATE}'
    collections = {c['Name'] for c in META['Collections']}
    for c in META['Collections']:
        assert (REPO / c['README']).is_file(), c['README']
    configs = sorted(p.relative_to(REPO).as_posix()
                     for p in (REPO / CONFIG_DIR).glob('*.py'))
    assert len(configs) == 20
    assert sorted(m['Config'] for m in META_MODELS) == configs
    for model in META_MODELS:
        assert model['Name'] == Path(model['Config']).stem
        assert model['In Collection'] in collections


@pytest.mark.slow
@pytest.mark.parametrize('model', META_MODELS,
                         ids=[m['Name'] for m in META_MODELS])
def test_metafile_complexity_equals_the_code(model):
    backbone = Config.fromfile(str(REPO / model['Config'])).model.backbone
    backbone = backbone.to_dict()
    result = count(backbone)
    meta = model['Metadata']
    assert meta[MACS_KEY] == round(result['macs'] / 1e6, MACS_DIGITS), \
        f"{model['Name']}: {MACS_KEY} is stale; {REGENERATE}"
    assert meta[PARAMS_KEY] == round(result['params'] / 1e6, PARAMS_DIGITS), \
        f"{model['Name']}: {PARAMS_KEY} is stale; {REGENERATE}"
    cell = table7_cell(backbone)
    assert meta['Table 7 Level (MFLOPs)'] == LEVELS[cell['level']]
    assert meta['Backbone'] == cell['family']


def test_model_zoo_table_matches_metafile():
    text = MODEL_ZOO_PATH.read_text()
    rows = re.findall(r'^\| (.+?) \| (\d+) MFLOPs \| \[config\]\(\.\./(.+?)\) '
                      r'\| ([\d.]+) \| ([\d.]+) \|', text, flags=re.M)
    assert len(rows) == len(META_MODELS) == 20
    by_config = {m['Config']: m['Metadata'] for m in META_MODELS}
    for backbone, level, config, mmacs, mparams in rows:
        meta = by_config[config]
        assert (REPO / config).is_file(), config
        assert backbone == f"{meta['Backbone']} {meta['Backbone Width']}"
        assert int(level) == meta['Table 7 Level (MFLOPs)']
        assert float(mmacs) == meta[MACS_KEY], config
        assert float(mparams) == meta[PARAMS_KEY], config


@pytest.mark.slow
def test_committed_files_are_the_generator_output():
    rows = table7_rows(str(REPO), complexity=count)
    assert METAFILE_PATH.read_text() == format_metafile(rows), \
        f'{METAFILE} is stale; {REGENERATE}'
    assert MODEL_ZOO_PATH.read_text() == format_model_zoo(rows), \
        f'{MODEL_ZOO_MD} is stale; {REGENERATE}'
