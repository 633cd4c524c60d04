"""Guard: the Light-Head path calls no compiled mmcv op.

With every ``mmcv._ext`` function raising (injected by the test before mmcv
is imported, whatever extension the environment has), the twenty Table 7
configs run inference and one config per backbone family (plus the conv5
routing variant) runs a training step. If a change routes any of them
through an mmcv op, this fails naming the op.
"""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CONFIGS, REPO

TABLE7 = sorted((CONFIGS / 'light_head_rcnn').glob('light-head-rcnn_*_8xb2-150k_coco.py'))
FAMILIES = ('xception', 'shufflenetv1-g3', 'mobilenetv2', 'shufflenetv2', 'shufflenetv2star')
TRAIN = [CONFIGS / f'light_head_rcnn/light-head-rcnn_{f}-1x_8xb2-150k_coco.py' for f in FAMILIES]
TRAIN += sorted((CONFIGS / 'light_head_rcnn/routing').glob('*.py'))


def test_table7_configs_found():
    assert len(TABLE7) == 20, [p.name for p in TABLE7]
    assert all(p.is_file() for p in TRAIN) and len(TRAIN) > len(FAMILIES)


@pytest.mark.slow
def test_light_head_path_calls_no_compiled_mmcv_op():
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name('guard_no_compiled_ops.py')),
         *map(str, TABLE7), '--train', *map(str, TRAIN)],
        cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    lines = out.stdout.splitlines()
    assert sum(line.endswith(' inference') for line in lines) == 20, out.stdout
    assert sum(line.endswith(' training step') for line in lines) == len(TRAIN), out.stdout
