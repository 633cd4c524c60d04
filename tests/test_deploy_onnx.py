"""The whole detector as a standard ONNX graph (shufflenet_det.deploy.onnx,
tools/deploy/): export, checker, default-domain operators, padded outputs,
and detections equal to the PyTorch model's on ONNX Runtime (and OpenVINO
when installed).

Parity (issues 11, 19): matched detections have the same label, boxes
within 0.5 px and scores within 1e-3; a detection on one side only must be
a near-tie that the package's one equivalence contract names
(:func:`shufflenet_det.deploy.verify.compare_detections`: an IoU within
IOU_EPS of an NMS threshold, a score tie within TIE_EPS, a cut, or a
near-tie at the RPN's proposal cut, checked against PyTorch's own
recomputed candidates); anything else, and any box PyTorch never computes,
fails.

Instruction-set caps tried (``python tools/isa_caps.py``, 2026-12-08, a
2-core AMD EPYC with AVX-512 BF16): ``default`` (ATen default, oneDNN
SSE41, MKL SSE4_2), ``avx2``, ``avx512`` and native: passed under each, but
OpenVINO does not run under a lower oneDNN cap (SSE41: "bad combination";
AVX2: no bf16 primitive), so its tests run under ``avx512`` and natively
only.
"""
import copy
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import (COCO_MINI, COCO_MINI_SKIP, DEPLOY_CHECK_CONFIG,
                            REPO, base_model_cfg)

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

BOX_TOL, SCORE_TOL = 0.5, 1e-3
#: Parity export shape: about the deploy-check config's test scale (its
#: weights detect things at that scale), and a height that is padded in the
#: graph (200 -> 224).
PARITY_SHAPE = (200, 320)
PARITY_BATCH = 4


def _openvino_or_skip():
    return pytest.importorskip('openvino')


def as_instances(dets, labels):
    """Graph outputs -> one boxes/scores/labels dict per image, padding
    rows dropped."""
    dets, labels = torch.as_tensor(dets), torch.as_tensor(labels)
    return [dict(boxes=d[l >= 0, :4], scores=d[l >= 0, 4], labels=l[l >= 0])
            for d, l in zip(dets, labels)]


def tiny_model(score_thr=0.0, **rcnn):
    """ShuffleNet v2 0.5x with spread random scores (no near-ties) and box
    deltas of realistic size, :data:`~tests.utils_detector.PROPOSALS`
    proposals (see ``tests.utils_detector.robust_batch``)."""
    from tests.utils_detector import PROPOSALS, calibrated_detector
    cfg = base_model_cfg()
    cfg.backbone.arch = '0.5x'
    cfg.test_cfg.rpn.max_per_img = PROPOSALS
    cfg.test_cfg.rcnn.score_thr = score_thr
    cfg.test_cfg.rcnn.update(rcnn)
    model, _ = calibrated_detector(cfg, batch_size=2, img_size=(128, 160))
    return model


def robust_images(model, batch, shape):
    """(batch, 3, H, W) uint8 images on which every NMS decision of
    ``model`` is away from its threshold (``robust_batch``), so that two
    paths must agree on every detection."""
    from tests.utils_detector import robust_batch
    data, _, _ = robust_batch(model, batch, shape)
    return torch.stack(data['inputs'])


def as_batch(images, shape):
    """(N, 3, H, W) uint8 images as a batch whose img_shape is the input
    shape (the graph's convention)."""
    from mmdet.structures import DetDataSample
    samples = [DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape,
                                           scale_factor=(1., 1.)))
               for _ in images]
    return dict(inputs=list(images), data_samples=samples)


def reference(model, images, shape):
    """``model.test_step`` on :func:`as_batch`."""
    with torch.no_grad():
        return model.test_step(as_batch(images, shape))


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A random-weight detector exported at 128x160, batch 2, with a score
    threshold high enough that images have fewer than 100 detections."""
    from shufflenet_det.deploy.onnx import export_onnx
    model = tiny_model(score_thr=0.5)
    path = str(tmp_path_factory.mktemp('onnx') / 'tiny.onnx')
    info = export_onnx(model, path, (128, 160), batch=2, name='tiny')
    return model, path, info, robust_images(model, 2, (128, 160))


def test_export_is_standard_onnx(tiny):
    from shufflenet_det.deploy.onnx import non_default_ops
    model, path, info, _ = tiny
    assert not model.training  # the export leaves the detector in eval
    graph = onnx.load(path)
    onnx.checker.check_model(graph, full_check=True)
    assert non_default_ops(graph) == []
    ops = {n.op_type for n in graph.graph.node}
    assert {'GridSample', 'NonMaxSuppression', 'TopK'} <= ops, ops
    assert [i.name for i in graph.graph.input] == ['input']
    assert [o.name for o in graph.graph.output] == ['dets', 'labels']
    assert info['outputs'] == dict(dets=[2, 100, 5], labels=[2, 100])


def test_non_default_ops_are_found():
    from onnx import TensorProto, helper

    from shufflenet_det.deploy.onnx import non_default_ops
    node = helper.make_node('grid_sampler', ['x'], ['y'], domain='mmdeploy')
    graph = helper.make_graph(
        [node], 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                                    [1])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])])
    assert non_default_ops(helper.make_model(graph)) == [
        'mmdeploy::grid_sampler']


def test_padded_outputs_and_equal_to_pytorch(tiny):
    from shufflenet_det.deploy.verify import compare_detections
    from shufflenet_det.deploy.onnx import build_runner
    model, path, _, images = tiny
    dets, labels = build_runner(path)(images.float().numpy())
    assert dets.shape == (2, 100, 5) and dets.dtype == np.float32
    assert labels.shape == (2, 100) and labels.dtype == np.int64
    for d, lab in zip(dets, labels):
        real = lab >= 0
        count = int(real.sum())
        assert 0 < count < 100, count  # both kinds of rows are present
        assert real[:count].all() and not real[count:].any()  # best first
        assert (d[~real] == 0).all() and (lab[~real] == -1).all()
        assert (np.diff(d[real, 4]) <= 0).all() and (d[real, 4] > 0.5).all()
    # Another runtime, but no NMS decision near a threshold: every
    # detection matches (within the runtime tolerances).
    check = compare_detections(reference(model, images, (128, 160)),
                               as_instances(dets, labels), box_tol=BOX_TOL,
                               score_tol=SCORE_TOL)
    assert check['equal'] and not check['explained'], check
    assert check['matched'] == check['detections'] > 0, check


@pytest.fixture(scope='module')
def eager_case():
    """A detector (score_thr 0) and 2 images of 120x150 (not a multiple of
    32: padded in-graph) with robust NMS decisions (with 3 images the first
    robust seed is the 24th: 8 s of searching)."""
    model = tiny_model()
    return model, robust_images(model, 2, (120, 150))


def eager_check(model, images):
    """LightHeadONNX in PyTorch vs ``model.test_step`` on ``images``, at
    the same-runtime tolerances (0.01 px, 1e-4)."""
    from shufflenet_det.deploy.onnx import LightHeadONNX
    from shufflenet_det.deploy.verify import compare_detections
    shape = tuple(images.shape[-2:])
    with torch.no_grad():
        dets, labels = LightHeadONNX(model, shape)(images.float())
    return compare_detections(reference(model, images, shape),
                              as_instances(dets, labels), box_tol=0.01,
                              score_tol=1e-4)


def test_eager_wrapper_equals_model_with_batch_and_padding(eager_case):
    """LightHeadONNX in PyTorch (the NMS's eager twin) == model.test_step,
    including an input that is not a multiple of 32 (padded in-graph)."""
    check = eager_check(*eager_case)
    assert check['equal'] and not check['explained'], check
    assert check['matched'] == check['detections'] == 200, check


def _decode_ignoring_stds(coder, priors, deltas, img_shape):
    from shufflenet_det.models.layers.onnx_nms import decode_clipped
    unscaled = copy.copy(coder)
    unscaled.stds = (1., ) * 4
    return decode_clipped(unscaled, priors, deltas, img_shape)


def _decode_swapping_dw_dh(coder, priors, deltas, img_shape):
    from shufflenet_det.models.layers.onnx_nms import decode_clipped
    swapped = deltas.view(deltas.shape[0], -1, 4)[..., [0, 1, 3, 2]]
    return decode_clipped(coder, priors, swapped.reshape(deltas.shape),
                          img_shape)


@pytest.mark.parametrize('bug', [_decode_ignoring_stds,
                                 _decode_swapping_dw_dh])
def test_eager_check_catches_wrong_decoding(eager_case, bug, monkeypatch):
    """The export path's decoder written wrong (issue 21: coder stds
    ignored, dw and dh swapped), in both heads: the comparison above
    fails."""
    import shufflenet_det.models.bbox_heads.light_head_bbox_head as bbox
    import shufflenet_det.models.dense_heads.light_head_rpn_head as rpn
    for mod in (rpn, bbox):
        monkeypatch.setattr(mod, 'decode_clipped', bug)
    check = eager_check(*eager_case)
    assert not check['equal'], check
    assert check['num_differences'] > 100, check


def test_letterbox_padding_normalises_to_zero():
    from shufflenet_det.deploy.onnx import LightHeadONNX, letterbox
    model = tiny_model()
    pre = model.data_preprocessor
    image = np.full((50, 100, 3), 7, np.uint8)
    canvas, scale = letterbox(image, (128, 160),
                              pre.mean.view(-1).flip(0).tolist())
    assert canvas.shape == (3, 128, 160) and scale == 1.6
    x = LightHeadONNX(model, (128, 160)).preprocess(
        torch.from_numpy(canvas)[None])
    assert (x[..., 80:, :] == 0).all() and (x[..., :80, :] != 0).all()


def test_onnx_nms_matches_eager():
    from shufflenet_det.deploy.onnx import ONNXNonMaxSuppression

    class NMS(torch.nn.Module):
        def forward(self, boxes, scores):
            return ONNXNonMaxSuppression.apply(boxes, scores, 7, 0.5, 0.2)

    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(2, 60, 2, generator=gen) * 100
    boxes = torch.cat([xy, xy + 5 + torch.rand(2, 60, 2, generator=gen) * 40],
                      -1)
    scores = torch.rand(2, 3, 60, generator=gen)
    eager = NMS()(boxes, scores)
    buf = __import__('io').BytesIO()
    torch.onnx.export(NMS(), (boxes, scores), buf, dynamo=False,
                      opset_version=17, input_names=['b', 's'])
    session = ort.InferenceSession(buf.getvalue(),
                                   providers=['CPUExecutionProvider'])
    got = session.run(None, dict(b=boxes.numpy(), s=scores.numpy()))[0]
    assert eager.shape[0] == 2 * 3 * 7  # max_output reached everywhere
    assert got.tolist() == eager.tolist()


def test_unexportable_roi_layer_names_it(tmp_path):
    from mmdet.registry import MODELS

    from shufflenet_det.deploy.onnx import ExportError, export_onnx
    cfg = base_model_cfg()
    cfg.backbone.arch = '0.5x'
    cfg.roi_head.bbox_roi_extractor.roi_layer = dict(
        type='PSRoIAlign', output_size=7, sampling_ratio=2)
    model = MODELS.build(cfg).eval()
    with pytest.raises(ExportError, match='my_config.py.*PSRoIAlign'):
        export_onnx(model, str(tmp_path / 'x.onnx'), (128, 160),
                    name='my_config.py')
    with pytest.raises(ExportError, match='GridSample.*opset >= 16'):
        export_onnx(tiny_model(), str(tmp_path / 'x.onnx'), (128, 160),
                    opset=13, name='my_config.py')


@pytest.mark.slow
@pytest.mark.parametrize('family', ['shufflenetv1-g3-0.5x',
                                    'mobilenetv2-0.15x'])
def test_export_tool_other_families(tmp_path, family):
    """tools/deploy/export_onnx.py on configs of two other backbone
    families (random weights, small shape, a padded width)."""
    config = REPO / 'configs/light_head_rcnn' / \
        f'light-head-rcnn_{family}_8xb2-150k_coco.py'
    out = tmp_path / 'm.onnx'
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools/deploy/export_onnx.py'),
         str(config), '--out', str(out), '--shape', '96', '136'],
        cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    from shufflenet_det.deploy.onnx import build_runner
    dets, labels = build_runner(str(out))(
        np.random.default_rng(0).uniform(0, 255, (1, 3, 96, 136)).astype(
            np.float32))
    assert dets.shape == (1, 100, 5) and labels.shape == (1, 100)


# --------------------------------------------------------------- parity
# Why the parity check is about boundaries (issue 19, measured 2026-12-02,
# Intel Xeon with AVX-512 and AMX, 2 cores): the runtimes' RPN objectness
# and final scores differ from PyTorch's by up to 4.2e-7 and 6.7e-7, their
# boxes by up to 0.00034 px (deploy-check weights trained here and with
# ATen/oneDNN/MKL limited to AVX2; 416 coco-mini val2017 + train2017
# images; both runtimes). With the AVX2-trained weights, OpenVINO lost one
# detection and gained another on one image: two RPN proposals with
# objectness 0.016407095 / 0.016407056 (PyTorch; OpenVINO 0.016407056 /
# 0.016407071) sat at the 1000-proposal cut, OpenVINO kept the other one,
# and its R-CNN box then suppressed a final box (IoU 0.63 > 0.5). ONNX
# Runtime reordered near-tied proposals too, but not across the cut.
# ISAs tried: ONEDNN_MAX_CPU_ISA=AVX2 (+ ATEN_CPU_CAPABILITY=avx2,
# MKL_ENABLE_INSTRUCTIONS=AVX2) for PyTorch and OpenVINO gave the same
# difference on the same image and none elsewhere on val2017. OpenVINO
# honours that variable: its f32 outputs change (final boxes by up to 3e-5
# px, same labels), its bf16 default then fails to compile, SSE41 fails
# ("bad combination"), AVX512_CORE is bit-identical to the default. Its
# EXECUTION_MODE_HINT=ACCURACY, 1 thread or DYNAMIC_QUANTIZATION_GROUP_SIZE=0
# are bit-identical to INFERENCE_PRECISION_HINT=f32 (what build_runner
# sets); without the hint this AMX CPU runs bf16 and labels change. No ISA
# switch was found for ONNX Runtime (MLAS picks kernels from CPUID).

@pytest.fixture(scope='module')
def parity(deploy_check_checkpoint, tmp_path_factory):
    """All 122 coco-mini val2017 images resized to :data:`PARITY_SHAPE`,
    through the trained model (PyTorch, with :func:`reference_worlds`) and
    its export (batch 4)."""
    import mmcv
    from mmengine.config import Config

    from shufflenet_det.apis import build_detector
    from shufflenet_det.deploy.onnx import export_onnx
    from shufflenet_det.deploy.verify import DecisionRules, reference_worlds
    cfg = Config.fromfile(str(DEPLOY_CHECK_CONFIG))
    model = build_detector(cfg, torch.device('cpu'),
                           str(deploy_check_checkpoint))
    path = str(tmp_path_factory.mktemp('parity') / 'model.onnx')
    export_onnx(model, path, PARITY_SHAPE, batch=PARITY_BATCH,
                name=str(DEPLOY_CHECK_CONFIG))
    height, width = PARITY_SHAPE
    files = sorted((COCO_MINI / 'val2017').glob('*.jpg'))
    images = torch.stack([torch.from_numpy(mmcv.imresize(
        mmcv.imread(str(f)), (width, height))).permute(2, 0, 1)
        for f in files])
    pad = (-len(images)) % PARITY_BATCH  # a static batch: repeat the last
    images = torch.cat([images, images[-1:].expand(pad, -1, -1, -1)])
    worlds = []
    for i in range(0, len(images), PARITY_BATCH):
        worlds += reference_worlds(model, as_batch(images[i:i + PARITY_BATCH],
                                                   PARITY_SHAPE))
    worlds = worlds[:len(files)]
    return dict(path=path, images=images, worlds=worlds,
                reference=[w['result'] for w in worlds], num=len(files),
                rules=DecisionRules.of(cfg.model.test_cfg.rcnn))


def _run_all(path, backend, images, num):
    from shufflenet_det.deploy.onnx import build_runner
    run = build_runner(path, backend)
    out = []
    for i in range(0, len(images), PARITY_BATCH):
        out += as_instances(*run(images[i:i + PARITY_BATCH].float().numpy()))
    return out[:num]


def _compare(parity, candidate):
    from shufflenet_det.deploy.verify import compare_detections
    return compare_detections(parity['reference'], candidate, parity['worlds'],
                              parity['rules'], BOX_TOL, SCORE_TOL)


@pytest.mark.slow
@COCO_MINI_SKIP
def test_parity_weights_detect_things(parity):
    assert parity['num'] == 122
    top = torch.tensor([float(r.pred_instances.scores.max())
                        for r in parity['reference']])
    assert float(top.median()) > 5 / 81, top  # see test_e2e_deploy.py


@pytest.mark.slow
@COCO_MINI_SKIP
@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_parity_coco_mini(parity, backend):
    if backend == 'openvino':
        _openvino_or_skip()
    got = _run_all(parity['path'], backend, parity['images'], parity['num'])
    check = _compare(parity, got)
    print(backend, check)
    assert check['images'] == 122 and check['detections'] > 10000, check
    assert check['equal'], check
    # Nearly all detections match outright; boundaries are rare.
    assert check['matched'] >= check['detections'] - 20, check


@pytest.mark.slow
@COCO_MINI_SKIP
def test_parity_comparison_rejects_wrong_detections(parity):
    """The contract's near-tie rules (``compare_detections``) explain rounding
    at NMS thresholds and cuts, never a wrong box, label or a lost
    detection (the reference itself, altered, as the candidate)."""
    same = [dict(boxes=r.pred_instances.bboxes.clone(),
                 scores=r.pred_instances.scores.clone(),
                 labels=r.pred_instances.labels.clone())
            for r in parity['reference']]
    check = _compare(parity, same)
    assert check['equal'] and check['matched'] == check['detections'], check

    def altered(image, change):
        cand = copy.deepcopy(same)
        det = cand[image]
        if change == 'box':  # the 11th box, 3 px to the right
            det['boxes'][10, 0::2] += 3
        elif change == 'box at the cut':  # the last box, 3 px lower
            det['boxes'][-1, 1::2] += 3
        elif change == 'label':
            det['labels'][10] = (det['labels'][10] + 1) % 80
        elif change == 'score':
            det['scores'][10] += 0.01
        elif change == 'lost':  # the best detection missing
            cand[image] = {k: v[1:] for k, v in det.items()}
        return cand

    for image in (0, 3, 61):
        for change in ('box', 'box at the cut', 'label', 'score', 'lost'):
            check = _compare(parity, altered(image, change))
            assert not check['equal'], (image, change, check)
            assert check['differences'][0][0] == image, (change, check)


# ------------------------------------------------------------ benchmark
@pytest.mark.slow
@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_benchmark_backend_steps(backend):
    """tools/benchmark.py --backend: ours and the peer exported and run on
    the runtime; our detections equal the PyTorch step's."""
    if backend == 'openvino':
        _openvino_or_skip()
    from shufflenet_det.apis import detector_step
    from shufflenet_det.benchmark.peer import (build_peer, peer_inputs,
                                               peer_onnx_step)
    from shufflenet_det.deploy.onnx import onnx_step
    from shufflenet_det.deploy.verify import compare_detections
    # The real thresholds (0.7, 0.5): OpenVINO 2026.4 suppresses at IoU ==
    # threshold (ONNX, ONNX Runtime and torchvision only above it), so the
    # inputs are drawn such that no NMS decision lies near a threshold
    # (robust_batch; box deltas are not zero, so boxes are not grid-aligned
    # anchors with IoUs of exactly 0.5).
    from tests.utils_detector import robust_batch
    model = tiny_model()
    assert model.test_cfg.rpn.nms.iou_threshold == 0.7
    assert model.test_cfg.rcnn.nms.iou_threshold == 0.5
    data, _, _ = robust_batch(model, 2, (128, 160))
    expected = detector_step(model, data, torch.device('cpu'))()
    step, info = onnx_step(model, data, backend)
    assert info['backend'] == backend and info['version']
    check = compare_detections(expected, step(), box_tol=BOX_TOL,
                               score_tol=SCORE_TOL)
    assert check['equal'] and not check['explained'], check
    assert check['matched'] == check['detections'] == 200, check
    if backend == 'openvino':  # --deploy ...,bf16 --backend openvino
        step, info = onnx_step(model, data, backend, 'bf16')
        assert info['precision'] == 'bf16'
        out = step()
        assert len(out) == 2 and all(o['boxes'].shape[1:] == (4, )
                                     for o in out)
    peer = build_peer(torch.device('cpu'), (128, 160))
    step, _ = peer_onnx_step(peer, peer_inputs(2, (128, 160),
                                               torch.device('cpu')), backend)
    out = step()
    assert len(out) == 2 and all(set(o) == {'boxes', 'scores', 'labels'}
                                 for o in out)
    assert all(o['boxes'].shape[1:] == (4, ) for o in out)
