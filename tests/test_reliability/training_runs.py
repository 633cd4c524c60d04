"""Launch tools/train.py / dist_train.sh on the tiny config and read logs."""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import torch

from tests.conftest import COCO_MINI, REPO

TEST_CONFIGS = REPO / 'tests/configs'
TINY = TEST_CONFIGS / 'light-head-rcnn_shufflenetv2-0.5x_tiny_coco-mini.py'


def train_env() -> dict:
    """Single-threaded, CPU-only, repo importable: the run is reproducible
    and shares the machine politely."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               CUDA_VISIBLE_DEVICES='', PYTHONHASHSEED='0',
               PYTHONPATH=os.pathsep.join(
                   [str(REPO), env.get('PYTHONPATH', '')]))
    return env


def data_options() -> List[str]:
    return [f'train_dataloader.dataset.data_root={COCO_MINI}/']


def train_cmd(config: Path, work_dir: Path, *args: str,
              options: List[str] = ()) -> List[str]:
    return [sys.executable, str(REPO / 'tools/train.py'), str(config),
            '--work-dir', str(work_dir), *args, '--cfg-options',
            *data_options(), *options]


def dist_train_cmd(config: Path, work_dir: Path, nproc: int,
                   options: List[str] = ()) -> List[str]:
    return ['bash', str(REPO / 'tools/dist_train.sh'), str(config),
            str(nproc), '--work-dir', str(work_dir), '--cfg-options',
            *data_options(), *options]


def run(cmd: List[str], timeout: int = 300,
        env: dict = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=env or train_env(),
                          capture_output=True, text=True, timeout=timeout)


def logged_scalars(work_dir: Path) -> List[Dict[int, dict]]:
    """Per run (timestamped sub-dir, oldest first): iteration -> scalars."""
    runs = []
    for path in sorted(Path(work_dir).glob('*/vis_data/scalars.json')):
        rows = {}
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if 'loss' in row:
                rows[row['step']] = row
        runs.append(rows)
    return runs


def load_state(path: Path) -> dict:
    """A training checkpoint, loaded the way ``--resume`` loads it."""
    import shufflenet_det  # noqa: F401  (torch>=2.6 safe globals)
    return torch.load(path, map_location='cpu')


def tail(proc: subprocess.CompletedProcess, n: int = 3000) -> str:
    return (proc.stdout[-n:] + '\n---stderr---\n' + proc.stderr[-n:])
