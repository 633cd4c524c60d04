"""Every tool that reads a config or a checkpoint ends on a bad one with one
line naming the path and what is wrong, exit status 2, no traceback
(``--debug`` shows it): tools/test.py, tools/deploy/export_onnx.py,
tools/benchmark.py --checkpoint, tools/demo.py."""
import importlib.util
import subprocess
import sys

import pytest
import torch

from shufflenet_det.cli import (EXIT_BAD_INPUT, ToolInputError,
                                check_checkpoint, check_config)

from .conftest import REPO

CONFIG = REPO / 'tests/configs/light-head-rcnn_shufflenetv2-0.5x_tiny_coco-mini.py'
DEMO_IMAGE = REPO / 'demo/demo.jpg'


def _checkpoint(path):
    torch.save(dict(meta=dict(epoch=1), state_dict=dict(
        w=torch.zeros(64, 64), b=torch.zeros(64))), path)
    return path


# Each bad file: (name, how to make it in tmp_path, words of the message).
def _missing(tmp):
    return tmp / 'missing.pth'


def _empty(tmp):
    (tmp / 'empty.pth').write_bytes(b'')
    return tmp / 'empty.pth'


def _truncated(tmp):
    data = _checkpoint(tmp / 'full.pth').read_bytes()
    (tmp / 'cut.pth').write_bytes(data[:len(data) // 2])
    return tmp / 'cut.pth'


def _not_a_checkpoint(tmp):
    (tmp / 'notes.pth').write_text('epoch 12: mAP 20.1\n')
    return tmp / 'notes.pth'


def _image_as_checkpoint(tmp):
    (tmp / 'photo.pth').write_bytes(DEMO_IMAGE.read_bytes())
    return tmp / 'photo.pth'


def _no_weights(tmp):
    torch.save(dict(meta=dict(epoch=1)), tmp / 'meta.pth')
    return tmp / 'meta.pth'


BAD_CHECKPOINTS = {
    'missing': (_missing, 'checkpoint file not found'),
    'empty': (_empty, 'checkpoint file is empty (0 bytes)'),
    'truncated': (_truncated, 'checkpoint file is truncated or corrupt'),
    'text': (_not_a_checkpoint, 'not a PyTorch checkpoint'),
    'image': (_image_as_checkpoint, 'not a PyTorch checkpoint'),
    'no weights': (_no_weights, 'checkpoint file holds no weights'),
}


def _missing_config(tmp):
    return tmp / 'nowhere.py'


def _unparsable_config(tmp):
    (tmp / 'broken.py').write_text("model = dict(type='LightHeadRCNN'\n")
    return tmp / 'broken.py'


def _unknown_base_config(tmp):
    (tmp / 'orphan.py').write_text("_base_ = ['./no_such_base.py']\n")
    return tmp / 'orphan.py'


def _no_model_config(tmp):
    (tmp / 'empty_cfg.py').write_text('x = 1\n')
    return tmp / 'empty_cfg.py'


BAD_CONFIGS = {
    'missing': (_missing_config, 'config file not found'),
    'syntax error': (_unparsable_config, 'config file cannot be parsed'),
    'unknown _base_': (_unknown_base_config, 'config file cannot be parsed'),
    'no model': (_no_model_config, 'config file defines no model'),
}


# --------------------------------------------------------- the checks alone
@pytest.mark.parametrize('kind', BAD_CHECKPOINTS)
def test_check_checkpoint_names_path_and_problem(tmp_path, kind):
    make, words = BAD_CHECKPOINTS[kind]
    path = make(tmp_path)
    with pytest.raises(ToolInputError) as err:
        check_checkpoint(str(path))
    message = str(err.value)
    assert words in message and str(path) in message
    assert '\n' not in message


def test_check_checkpoint_accepts_a_checkpoint(tmp_path):
    check_checkpoint(str(_checkpoint(tmp_path / 'ok.pth')))
    torch.save(dict(w=torch.zeros(2)), tmp_path / 'bare.pth')  # state_dict
    check_checkpoint(str(tmp_path / 'bare.pth'))
    check_checkpoint(None)


@pytest.mark.parametrize('kind', BAD_CONFIGS)
def test_check_config_names_path_and_problem(tmp_path, kind):
    make, words = BAD_CONFIGS[kind]
    path = make(tmp_path)
    with pytest.raises(ToolInputError) as err:
        check_config(str(path))
    message = str(err.value)
    assert words in message and str(path) in message
    assert '\n' not in message


# ------------------------------------------------------------ every tool
def _tool(relpath):
    spec = importlib.util.spec_from_file_location(
        'tool_' + relpath.replace('/', '_').replace('.', '_'), REPO / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# How each tool is called with a config and a checkpoint.
TOOLS = {
    'tools/test.py': lambda cfg, ckpt, out: [cfg, ckpt, '--work-dir', out],
    'tools/deploy/export_onnx.py':
    lambda cfg, ckpt, out: [cfg, ckpt, '--out', f'{out}/m.onnx'],
    'tools/benchmark.py':
    lambda cfg, ckpt, out: [cfg, '--checkpoint', ckpt, '--out', out],
    'tools/demo.py':
    lambda cfg, ckpt, out: [str(DEMO_IMAGE), cfg, ckpt, '--out', out],
}


def _run_in_process(tool, args, monkeypatch, capsys):
    from shufflenet_det.cli import run_tool
    module = _tool(tool)
    monkeypatch.setattr(sys, 'argv', [str(REPO / tool), *args])
    with pytest.raises(SystemExit) as exit_:
        run_tool(module.main)
    return exit_.value.code, capsys.readouterr()


def _assert_one_line(code, captured, tool, path, words):
    name = tool.rsplit('/', 1)[-1]
    lines = captured.err.strip().splitlines()
    assert code == EXIT_BAD_INPUT, captured
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f'{name}: error: ') and words in lines[0] \
        and str(path) in lines[0], lines[0]


@pytest.mark.parametrize('kind', BAD_CHECKPOINTS)
@pytest.mark.parametrize('tool', TOOLS)
def test_tool_bad_checkpoint_one_line(tmp_path, tool, kind, monkeypatch,
                                      capsys):
    make, words = BAD_CHECKPOINTS[kind]
    path = make(tmp_path)
    code, captured = _run_in_process(
        tool, TOOLS[tool](str(CONFIG), str(path), str(tmp_path / 'out')),
        monkeypatch, capsys)
    _assert_one_line(code, captured, tool, path, words)


@pytest.mark.parametrize('kind', BAD_CONFIGS)
@pytest.mark.parametrize('tool', TOOLS)
def test_tool_bad_config_one_line(tmp_path, tool, kind, monkeypatch,
                                  capsys):
    make, words = BAD_CONFIGS[kind]
    path = make(tmp_path)
    if tool == 'tools/benchmark.py' and kind == 'missing':
        words = 'no config matches'  # it also takes glob patterns
    ckpt = _checkpoint(tmp_path / 'ok.pth')
    code, captured = _run_in_process(
        tool, TOOLS[tool](str(path), str(ckpt), str(tmp_path / 'out')),
        monkeypatch, capsys)
    _assert_one_line(code, captured, tool, path, words)


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    from shufflenet_det.cli import run_tool
    module = _tool('tools/test.py')
    path = _truncated(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['tools/test.py', str(CONFIG),
                                      str(path), '--debug'])
    with pytest.raises(ToolInputError, match='truncated'):
        run_tool(module.main)


@pytest.mark.slow
def test_truncated_checkpoint_to_tools_test_py_as_a_user_runs_it(tmp_path):
    """The report's case, in a process of its own: before, torch's "failed
    finding central directory" after a long traceback, without the file."""
    path = _truncated(tmp_path)
    run = subprocess.run([sys.executable, str(REPO / 'tools/test.py'),
                          str(CONFIG), str(path)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == EXIT_BAD_INPUT
    assert 'Traceback' not in run.stderr + run.stdout
    assert run.stderr.strip() == (
        f'test.py: error: checkpoint file is truncated or corrupt (a zip '
        f'archive without its central directory at the end, '
        f'{path.stat().st_size} bytes): {path}')
