"""The command-line tools as a user meets them: each bad argument read back
from the tool's own message, and the tools that had no test at all
(tools/convert_weights.py, tools/get_flops.py, tools/overfit.py and the box
mapping of tools/deploy/infer.py).

Tools run in-process (their ``main``), not in a subprocess, to keep the
fast tier fast. tools/benchmark.py and tools/table7.py: tests/test_benchmark*
and tests/test_table7*. Bad config and checkpoint *files*:
tests/test_tool_inputs.py.
"""
import importlib.util
import json
import sys

import numpy as np
import pytest
import torch

from shufflenet_det.cli import EXIT_BAD_INPUT, run_tool
from tests.conftest import COCO_MINI_SKIP, REPO

TINY = REPO / ('tests/configs/'
               'light-head-rcnn_shufflenetv2-0.5x_tiny_coco-mini.py')


def _tool(relpath: str):
    spec = importlib.util.spec_from_file_location(
        'cli_' + relpath.replace('/', '_').replace('.', '_'), REPO / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(relpath, argv, monkeypatch, capsys, argv_main=False):
    """Run a tool as ``python <relpath> *argv`` does, in this process.

    Returns:
        tuple: (exit status or None, stdout, stderr).
    """
    module = _tool(relpath)
    monkeypatch.setattr(sys, 'argv', [str(REPO / relpath), *argv])
    code = None
    try:
        if argv_main:
            module.main(list(argv))
        else:
            run_tool(module.main)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------ bad arguments, read
BAD_ARGUMENTS = [
    # (tool, argv, how main takes argv, exit status, words of the message)
    ('tools/test.py', [str(TINY), 'x.pth', '--out', 'preds.json'], False, 2,
     'error: --out must name a .pkl file, got preds.json'),
    ('tools/test.py', [str(TINY), 'x.pth', '--launcher', 'k8s'], False, 2,
     "argument --launcher: invalid choice: 'k8s'"),
    ('tools/test.py', [str(TINY)], False, 2,
     'the following arguments are required: checkpoint'),
    ('tools/train.py', ['--launcher', 'k8s', str(TINY)], False, 2,
     "argument --launcher: invalid choice: 'k8s'"),
    ('tools/train.py', ['nowhere/no_such_config.py'], False, EXIT_BAD_INPUT,
     'train.py: error: config file not found: nowhere/no_such_config.py'),
    ('tools/deploy/export_onnx.py', [str(TINY), '--out', 'm.onnx',
                                     '--batch', '0'], True, 2,
     '--batch must be >= 1 and --shape >= 32, got 0 and (800, 1216)'),
    ('tools/deploy/export_onnx.py', [str(TINY), '--out', 'm.onnx',
                                     '--shape', '16', '800'], True, 2,
     '--batch must be >= 1 and --shape >= 32, got 1 and [16, 800]'),
    ('tools/deploy/export_onnx.py', [str(TINY)], True, 2,
     'the following arguments are required: --out'),
    ('tools/deploy/infer.py', ['nowhere.onnx', str(REPO / 'demo'), '--out',
                               'o'], True, 2,
     'error: ONNX file not found: nowhere.onnx'),
    ('tools/deploy/infer.py', [str(TINY), str(REPO / 'demo'), '--out', 'o',
                               '--backend', 'tensorrt'], True, 2,
     "argument --backend: invalid choice: 'tensorrt'"),
    ('tools/deploy/infer.py', [str(TINY), str(REPO / 'tests/configs'),
                               '--out', 'o'], True, 2,
     f"error: infer: no image found at {REPO / 'tests/configs'}"),
    ('tools/deploy/infer.py', [str(TINY), str(REPO / 'demo'), '--out', 'o',
                               '--score-thr', 'high'], True, 2,
     "argument --score-thr: invalid float value: 'high'"),
]


@pytest.mark.parametrize(
    'tool, argv, argv_main, status, message', BAD_ARGUMENTS,
    ids=[f'{t.rsplit("/", 1)[-1]}:{" ".join(a[-2:])}'
         for t, a, *_ in BAD_ARGUMENTS])
def test_bad_argument_message(tool, argv, argv_main, status, message,
                              monkeypatch, capsys, tmp_path):
    """Exit status 2 (argparse's, and :data:`EXIT_BAD_INPUT`) and a message
    naming the argument and the value given, without a traceback."""
    monkeypatch.chdir(tmp_path)  # whatever a tool might write lands here
    code, out, err = _run(tool, argv, monkeypatch, capsys, argv_main)
    assert code == status, (code, out, err)
    assert message in err, err
    assert 'Traceback' not in err
    assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())


def test_export_onnx_refuses_an_opset_without_gridsample(monkeypatch,
                                                         capsys, tmp_path):
    out = tmp_path / 'm.onnx'
    code, _, _ = _run('tools/deploy/export_onnx.py',
                      [str(TINY), '--out', str(out), '--opset', '15'],
                      monkeypatch, capsys, argv_main=True)
    # sys.exit(message): status 1, the message printed by the interpreter.
    assert code == (f'export_onnx: {TINY}: GridSample (PSRoIAlign) needs '
                    'opset >= 16, got --opset 15')
    assert not out.exists()


def test_train_auto_scale_lr_needs_a_base_batch_size(monkeypatch, capsys,
                                                     tmp_path):
    cfg = tmp_path / 'no_base_batch.py'
    cfg.write_text(f"_base_ = '{TINY}'\n"
                   'auto_scale_lr = dict(_delete_=True, enable=False)\n')
    code, _, err = _run('tools/train.py', [str(cfg), '--auto-scale-lr',
                                           '--work-dir', str(tmp_path / 'w')],
                        monkeypatch, capsys)
    assert code == EXIT_BAD_INPUT
    assert err.strip() == (f'train.py: error: {cfg}: --auto-scale-lr needs '
                           'auto_scale_lr.base_batch_size in the config')
    assert not (tmp_path / 'w').exists()  # stopped before the Runner


# ----------------------------------------------------- convert_weights.py
def test_convert_weights_gives_the_torchvision_network(tmp_path,
                                                       monkeypatch, capsys):
    """A torchvision checkpoint (random weights, BN statistics spread)
    converted by the tool loads *strictly* into our ShuffleNetV2 and gives
    torchvision's features."""
    import torchvision
    from shufflenet_det.models.backbones import ShuffleNetV2
    from tests.test_models.test_backbones.utils import (
        assert_features_equal, randomise_like_trained)
    tv = randomise_like_trained(torchvision.models.shufflenet_v2_x0_5())
    src, dst = tmp_path / 'tv.pth', tmp_path / 'ours.pth'
    torch.save(tv.state_dict(), src)
    code, out, _ = _run('tools/convert_weights.py',
                        [str(src), str(dst), '--arch', '0.5x'],
                        monkeypatch, capsys)
    assert code is None
    model = ShuffleNetV2('0.5x', out_indices=(0, 1, 2, 3))
    state = torch.load(dst, map_location='cpu')
    model.load_state_dict(state, strict=True)
    assert out.strip() == f'wrote {len(state)} tensors to {dst}'
    model.eval()
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        t = tv.maxpool(tv.conv1(x))
        expected = []
        for stage in (tv.stage2, tv.stage3, tv.stage4, tv.conv5):
            t = stage(t)
            expected.append(t)
        assert_features_equal(model(x), expected)


# ---------------------------------------------------------- get_flops.py
@pytest.mark.slow
def test_get_flops_prints_and_writes_the_v2_row(tmp_path, monkeypatch,
                                                capsys):
    """ShuffleNet v2's four cells against the paper's Table 5 (41, 146,
    299, 591 MFLOPs), written to --json and printed as a table."""
    path = tmp_path / 'complexity.json'
    code, out, _ = _run('tools/get_flops.py', ['--families', 'ShuffleNet v2',
                                               '--json', str(path)],
                        monkeypatch, capsys)
    assert code is None
    rows = json.loads(path.read_text())
    assert [r['level'] for r in rows] == ['40M', '140M', '300M', '500M']
    for row, paper in zip(rows, (41, 146, 299, 591)):
        assert row['family'] == 'ShuffleNet v2'
        assert abs(row['macs'] / 1e6 / paper - 1) <= 0.02, row
        line = next(ln for ln in out.splitlines()
                    if ln.startswith(f"| ShuffleNet v2 | {row['level']} |"))
        assert f"| {row['macs'] / 1e6:.1f} |" in line, line
    assert f'wrote {path}' in out


def test_get_flops_rejects_an_unknown_family(monkeypatch, capsys):
    code, _, err = _run('tools/get_flops.py', ['--families', 'ResNet'],
                        monkeypatch, capsys)
    assert code == 2
    assert "argument --families: invalid choice: 'ResNet'" in err


# ------------------------------------------------------------ overfit.py
@pytest.mark.slow
@COCO_MINI_SKIP
def test_overfit_two_iterations_records_a_miss(tmp_path, monkeypatch,
                                               capsys):
    """Two iterations cannot reach the threshold: exit status 1, and the
    record says so with the numbers of the run (the last evaluation, the
    curve, the command)."""
    from tests.conftest import COCO_MINI
    work, results = tmp_path / 'work', tmp_path / 'results'
    # The shipped config, 2 iterations instead of up to 1500, evaluated
    # after the second; the data root absolute (the config's is relative to
    # a clone beside shared/).
    options = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
               'default_hooks.logger.interval=1',
               'log_processor.window_size=1',
               f'train_dataloader.dataset.dataset.data_root={COCO_MINI}/',
               f'val_dataloader.dataset.data_root={COCO_MINI}/',
               f'test_dataloader.dataset.data_root={COCO_MINI}/',
               # mmengine keeps one Visualizer per name in the process: an
               # earlier test's would write this run's scalars elsewhere.
               f'visualizer.name=overfit_{tmp_path.name}']
    config = REPO / _tool('tools/overfit.py').DEFAULT_CONFIG
    code, out, _ = _run('tools/overfit.py',
                        ['--config', str(config), '--work-dir', str(work),
                         '--results-dir', str(results),
                         '--cfg-options', *options],
                        monkeypatch, capsys)
    assert code == 1
    record = json.loads((results / 'overfit.json').read_text())
    assert record['iterations'] == 2 and record['reached'] is False
    assert record['threshold'] == 0.5
    assert record['final_bbox_mAP'] == record['map_curve'][-1][1] <= 0.5
    assert [step for step, _ in record['map_curve']] == [2]
    assert record['command'].startswith('python ') and \
        'train_cfg.max_iters=2' in record['command']
    assert (results / 'overfit_curve.png').stat().st_size > 0
    assert json.loads(out.strip().splitlines()[-1]) == {
        k: record[k] for k in ('wall_time_s', 'iterations',
                               'final_bbox_mAP', 'reached')}


# ------------------------------------------------ infer.py's box mapping
def _constant_detector(path, shape, dets, labels):
    """An ONNX graph with export_onnx's interface (``input`` (1, 3, H, W);
    ``dets`` (1, K, 5), ``labels`` (1, K)) whose outputs are ``dets`` and
    ``labels`` plus 0 * the input's mean (so that the input is used)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    k = len(labels)
    nodes = [
        helper.make_node('ReduceMean', ['input'], ['mean'], keepdims=0),
        helper.make_node('Mul', ['mean', 'zero'], ['nothing']),
        helper.make_node('Add', ['dets_c', 'nothing'], ['dets']),
        helper.make_node('Identity', ['labels_c'], ['labels']),
    ]
    init = [numpy_helper.from_array(np.float32(0), 'zero'),
            numpy_helper.from_array(np.asarray([dets], np.float32), 'dets_c'),
            numpy_helper.from_array(np.asarray([labels], np.int64),
                                    'labels_c')]
    graph = helper.make_graph(
        nodes, 'constant_detector',
        [helper.make_tensor_value_info('input', TensorProto.FLOAT,
                                       [1, 3, *shape])],
        [helper.make_tensor_value_info('dets', TensorProto.FLOAT, [1, k, 5]),
         helper.make_tensor_value_info('labels', TensorProto.INT64, [1, k])],
        init)
    model = helper.make_model(graph,
                              opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_infer_maps_boxes_back_to_the_original_image(tmp_path, monkeypatch,
                                                     capsys):
    """A 300x200 (WxH) image into a 320x320 graph: resized by 320 / 300
    and padded at the bottom. Boxes given in graph-input pixels must come
    back in the image's pixels, clipped to it; padding rows (label -1)
    dropped."""
    import cv2
    scale = min(320 / 200, 320 / 300)  # the letterbox rule, by hand
    original = np.array([[30.0, 40.0, 150.0, 120.0],   # inside the image
                         [200.0, 150.0, 290.0, 260.0]])  # into the padding
    in_graph = original * scale
    dets = [[*in_graph[0], 0.9], [*in_graph[1], 0.8], [0, 0, 0, 0, 0]]
    onnx_path = tmp_path / 'const.onnx'
    _constant_detector(onnx_path, (320, 320), dets, [3, 7, -1])
    image = tmp_path / 'street.jpg'
    cv2.imwrite(str(image), np.full((200, 300, 3), 128, np.uint8))
    out = tmp_path / 'out'
    code, stdout, _ = _run('tools/deploy/infer.py',
                           [str(onnx_path), str(image), '--out', str(out)],
                           monkeypatch, capsys, argv_main=True)
    assert code is None, stdout
    result = json.loads((out / 'street.json').read_text())
    assert result['labels'] == [3, 7]
    np.testing.assert_allclose(result['scores'], [0.9, 0.8], atol=1e-6)
    expected = [original[0].tolist(),
                [200.0, 150.0, 290.0, 200.0]]  # y2 260 clipped to H = 200
    np.testing.assert_allclose(result['bboxes'], expected, atol=1e-3)
    assert (out / 'street.jpg').is_file()
