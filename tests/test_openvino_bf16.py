"""OpenVINO in bf16 (``build_runner(..., precision='bf16')``,
``tools/deploy/infer.py --bf16``): the issue-20 accuracy check on the
exported detector, bf16 against f32 on the same runtime and graph.

Agreement: COCO AP50 of the bf16 detections with the f32 detections
scoring above 0.3 as ground truth, on the 122 coco-mini val2017 images at
the ONNX parity shape, with the confident weights of
tests/test_precision_accuracy.py: >= 0.95 (the issue's target).
"""
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from tests.conftest import COCO_MINI, COCO_MINI_SKIP, REPO
from tests.test_precision_accuracy import AGREEMENT_THR, CONFIDENT_CONFIG, confident_checkpoint

ov = pytest.importorskip('openvino')
pytest.importorskip('onnx')
SHAPE, BATCH = (200, 320), 4  # tests/test_deploy_onnx.py's parity export


class _Core:
    """An ``openvino.Core`` stand-in reporting given CPU capabilities."""

    def __init__(self, capabilities):
        self.capabilities = capabilities

    def get_property(self, device, name):
        assert (device, name) == ('CPU', 'OPTIMIZATION_CAPABILITIES')
        return self.capabilities


def test_openvino_config_precision():
    from shufflenet_det.deploy.onnx import openvino_config
    config = openvino_config(_Core(['BF16', 'FP32']), 'bf16', threads=2)
    assert config == {'INFERENCE_PRECISION_HINT': 'bf16', 'PERFORMANCE_HINT': 'LATENCY',
                      'INFERENCE_NUM_THREADS': 2}
    # f32 is always asked for: an AMX CPU's default is bf16.
    assert openvino_config(_Core(['BF16']))['INFERENCE_PRECISION_HINT'] == 'f32'
    with pytest.warns(UserWarning, match='no native BF16'):
        config = openvino_config(_Core(['FP32', 'INT8']), 'bf16')
    assert config['INFERENCE_PRECISION_HINT'] == 'f32'


def test_bf16_needs_openvino(tmp_path):
    from shufflenet_det.deploy.onnx import build_runner
    path = tmp_path / 'm.onnx'
    path.write_bytes(b'')
    with pytest.raises(ValueError, match="needs the openvino backend; 'onnxruntime'"):
        build_runner(str(path), 'onnxruntime', precision='bf16')
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        build_runner(str(path), 'openvino', precision='fp8')
    out = subprocess.run([sys.executable, str(REPO / 'tools/deploy/infer.py'), str(path),
                          str(tmp_path), '--out', str(tmp_path / 'o'), '--bf16'],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and '--bf16 needs --backend openvino' in out.stderr, out.stderr


def _runs(path, images, precision):
    from shufflenet_det.deploy.onnx import build_runner
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a skipped bf16 must not pass as bf16
        run = build_runner(path, 'openvino', precision=precision)
    out = []
    for i in range(0, len(images), BATCH):
        dets, labels = run(images[i:i + BATCH].float().numpy())
        out += [dict(boxes=d[l >= 0, :4], scores=d[l >= 0, 4], labels=l[l >= 0])
                for d, l in zip(dets, labels)]
    return out


@pytest.mark.slow
@COCO_MINI_SKIP
def test_openvino_bf16_agrees_with_f32(tmp_path_factory):
    import mmcv
    from mmengine.config import Config

    from shufflenet_det.apis import build_detector
    from shufflenet_det.deploy.onnx import export_onnx
    from shufflenet_det.deploy.verify import detection_agreement
    if 'BF16' not in ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'):
        pytest.skip('OpenVINO reports no native BF16 on this CPU')
    model = build_detector(Config.fromfile(str(CONFIDENT_CONFIG)), torch.device('cpu'),
                           str(confident_checkpoint(tmp_path_factory)))
    path = str(tmp_path_factory.mktemp('ov_bf16') / 'model.onnx')
    export_onnx(model, path, SHAPE, batch=BATCH, name=CONFIDENT_CONFIG.name)
    files = sorted((COCO_MINI / 'val2017').glob('*.jpg'))
    images = torch.stack([torch.from_numpy(mmcv.imresize(mmcv.imread(str(f)), SHAPE[::-1]))
                          .permute(2, 0, 1) for f in files])
    pad = (-len(images)) % BATCH  # a static batch: repeat the last image
    images = torch.cat([images, images[-1:].expand(pad, -1, -1, -1)])
    f32, bf16 = (_runs(path, images, p)[:len(files)] for p in ('f32', 'bf16'))
    check = detection_agreement(f32, bf16, AGREEMENT_THR)
    differ = sum(not np.array_equal(a['scores'], b['scores']) for a, b in zip(f32, bf16))
    print(f'OpenVINO bf16 vs f32: {check}; scores differ in {differ} of {len(files)} images')
    assert differ > 0, 'bf16 gave the f32 scores exactly: was bf16 applied?'
    assert check['images'] == 122 and check['gt_boxes'] >= 150, check
    assert check['ap50'] >= 0.95, check
