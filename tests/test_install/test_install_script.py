"""tools/install.sh: argument handling and the offline wheelhouse.

The install itself is what .ci/run does first (both lanes); the README
records its measured times.
"""
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / 'tools/install.sh'


def run(*args, env=None, timeout=600):
    return subprocess.run(['bash', str(SCRIPT), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_unknown_argument_is_named():
    out = run('--fast')
    assert out.returncode == 2 and "unknown argument '--fast'" in out.stderr


def test_python_version_needs_download():
    out = run('--python-version', '3.12')
    assert out.returncode == 1 and '--python-version only goes with --download' in out.stderr


def test_wheelhouse_must_exist(tmp_path):
    out = run('--wheelhouse', str(tmp_path / 'nope'))
    assert out.returncode == 1 and 'nope' in out.stderr and 'not a directory' in out.stderr


def _index_reachable():
    try:
        urllib.request.urlopen('https://pypi.org/simple/mmcv-lite/', timeout=10).close()
        return True
    except Exception:
        return False


@pytest.mark.slow
def test_wheelhouse_resolves_the_stack_with_no_index(tmp_path):
    """--download fills a wheels-only wheelhouse; pip resolves everything from it offline."""
    if not _index_reachable():
        pytest.skip('no package index reachable: --download needs one')
    house = tmp_path / 'wheels'
    out = run('--download', str(house))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    files = sorted(p.name for p in house.iterdir())
    assert all(f.endswith('.whl') for f in files), files  # no sdist: nothing to compile offline
    for name in ('mmcv_lite-2.1.0', 'shufflenet_det_mmcv_ext-', 'mmdet-3.3.0', 'setuptools-'):
        assert any(f.startswith(name) for f in files), name
    rest = [line for line in (REPO / 'requirements.txt').read_text().splitlines()
            if line and not line.startswith(('#', 'torch', 'torchvision'))]
    dead = 'http://127.0.0.1:9'  # any attempt to reach the network fails
    check = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--dry-run', '--ignore-installed', '--no-index',
         '--find-links', str(house), *rest, str(next(house.glob('shufflenet_det_mmcv_ext-*')))],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, 'PIP_FIND_LINKS': '', 'https_proxy': dead, 'http_proxy': dead})
    assert check.returncode == 0, check.stderr[-3000:]
    assert 'Would install' in check.stdout and 'mmcv-lite-2.1.0' in check.stdout
