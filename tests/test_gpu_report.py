"""tools/gpu_report.sh: refusal without CUDA, flags that exist, CPU dry run."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / 'tools/gpu_report.sh'


def _run(*args, env=None, timeout=600):
    return subprocess.run(
        ['bash', str(SCRIPT), *args], cwd=REPO, capture_output=True,
        text=True, timeout=timeout,
        env=dict(os.environ, PYTHON=sys.executable, **(env or {})))


@pytest.mark.slow
def test_refuses_without_cuda(tmp_path):
    # An empty CUDA_VISIBLE_DEVICES hides every GPU, so this holds on GPU
    # machines too.
    out = tmp_path / 'report'
    proc = _run(str(out), env=dict(CUDA_VISIBLE_DEVICES=''))
    assert proc.returncode == 3, proc.stderr
    assert 'no CUDA GPU' in proc.stderr
    assert '--device cpu --quick' in proc.stderr
    assert not out.exists()  # nothing ran


@pytest.mark.parametrize('args', [[], ['OUT', '--device', 'tpu'],
                                  ['OUT', '--bogus'], ['A', 'B']])
def test_bad_arguments(args):
    proc = _run(*args)
    assert proc.returncode == 2, proc.stderr
    assert 'usage: bash tools/gpu_report.sh OUT_DIR' in proc.stderr or (
        "got 'tpu'" in proc.stderr), proc.stderr


def _array(text, name):
    match = re.search(rf'^\s*{name}=\(([^)]*)\)', text, re.M)
    assert match, f'{name}=(...) not found in {SCRIPT}'
    return match.group(1)


def _help(tool):
    return subprocess.run([sys.executable, f'tools/{tool}', '--help'],
                          cwd=REPO, capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.slow
def test_every_flag_exists_in_the_tools():
    """The GPU run cannot die on a renamed or removed flag."""
    text = SCRIPT.read_text()
    blocks = re.findall(r'^\s*TABLE7=\(([^)]*)\)', text, re.M)
    assert len(blocks) == 2  # --quick and full
    bench = ' '.join(blocks + [_array(text, 'FP16_EXTRA'), '--device --out'])
    guide = ' '.join(re.findall(r'^\s*GUIDELINES=\(([^)]*)\)', text, re.M))
    for tool, used in (('benchmark.py', bench),
                       ('guidelines.py', guide + ' --device --out')):
        helptext = _help(tool)
        for flag in set(re.findall(r'(?<!\S)--[a-z][a-z0-9-]*', used)):
            assert re.search(rf'(?<![\w-]){flag}(?![\w-])', helptext), (
                f'{SCRIPT.name} passes {flag} to tools/{tool}, which has '
                'no such option')
    assert '--fp16' in bench and '--all' in bench


@pytest.mark.slow
def test_cpu_dry_run(tmp_path, monkeypatch):
    # Kineto's own default log level, as a user has it.
    monkeypatch.delenv('KINETO_LOG_LEVEL', raising=False)
    out = tmp_path / 'report'
    proc = _run(str(out), '--device', 'cpu', '--quick')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (out / 'gpu_report.md').read_text()
    for step in ('table7-fp32', 'table7-fp16-flag', 'guidelines'):
        assert re.search(rf'^\| {step} \| .* \| 0 \| \d+ \|$', summary,
                         re.M), summary
    assert 'Every step succeeded.' in summary
    bench = json.loads((out / 'table7-fp32/benchmark.json').read_text())
    assert [r['name'] for r in bench['results']] == [
        'light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco']
    assert 'error' not in bench['results'][0]
    assert (out / 'table7-fp32/table7.md').is_file()
    # The main job's console for this one-config run: its result line and
    # nothing from the libraries, although its per-part step ran under
    # torch.profiler, whose Kineto printed "USDT: ...
    # SyncActivityProfilerHandler.cpp ... profiler_start" / "profiler_stop"
    # (and, without a GPU, "ERROR: ... gpuGetDeviceCount failed").
    assert bench['results'][0]['top_ops'], 'no profiler run: proves nothing'
    console = (out / 'table7-fp32.log').read_text()
    library = [line for line in console.splitlines()
               if re.match(r'(USDT|ERROR|WARNING|INFO|STAGE|VERBOSE)[:\s]',
                           line) or '.cpp:' in line]
    assert not library, '\n'.join(library)
    assert len([line for line in console.splitlines() if line.startswith(
        'light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco: ')]) == 1, console
    guide = json.loads((out / 'guidelines/guidelines.json').read_text())
    assert [t['table'] for t in guide['tables']] == [1, 2, 3, 4]
