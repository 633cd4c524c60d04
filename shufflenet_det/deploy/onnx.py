"""The whole Light-Head R-CNN detector as one standard ONNX graph.

:class:`LightHeadONNX` wraps a built detector and calls its export
methods (``LightHeadRCNN.export_forward``, which calls the data
pre-processor's, the RPN head's, the RoI head's and the bbox head's export
methods, each beside its eager twin; the NMS pieces are in
:mod:`shufflenet_det.models.layers.onnx_nms`). It computes what
``model.test_step`` computes for images whose ``img_shape`` is the input
shape (mmdeploy's static-shape convention), with static shapes and
default-domain ONNX operators only:

- normalisation (BGR to RGB, mean, std) and padding to the size divisor;
- RPN: TopK(``nms_pre``), delta decoding, boxes not above ``min_bbox_size``
  dropped, ``NonMaxSuppression`` (IoU ``rpn.nms``), best ``max_per_img``
  proposals per image (fewer slots are masked, as mmdet has fewer RoIs);
- large separable conv, PSRoIAlign as ``GridSample`` + ``ReduceMax``;
- R-CNN: softmax, class-specific decoding, ``score_thr``, per-class NMS as
  one ``NonMaxSuppression`` over class-shifted boxes (mmcv's
  ``batched_nms`` trick, with mmcv's shift), best ``max_per_img``.

Outputs follow mmdeploy: ``dets`` (N, max_per_img, 5) ``x1, y1, x2, y2,
score`` in input pixels, by decreasing score, and ``labels`` (N,
max_per_img) int64; rows past an image's detections have score 0 and label
-1.

Kept boxes are selected per image by scattering the NMS output into a mask
and taking TopK of the masked scores: no data-dependent loop.

Example:
    >>> wrapper = LightHeadONNX(model, img_shape=(320, 512))
    >>> dets, labels = wrapper(torch.zeros(1, 3, 320, 512))  # eager
    >>> export_onnx(model, 'model.onnx', (320, 512), batch=1)
"""
import os.path as osp
import re
import tempfile
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from shufflenet_det.models.layers.onnx_nms import (  # noqa: F401 (re-export)
    ExportError, ONNXNonMaxSuppression)

#: Default opset: GridSample needs 16; OpenVINO's and older ONNX Runtime's
#: GridSample importers read opsets 16-19 (``docs``: deploy reference).
DEFAULT_OPSET = 17

BACKENDS = ('onnxruntime', 'openvino')

#: Inference precisions of :func:`build_runner` (``'bf16'``: OpenVINO only).
PRECISIONS = ('f32', 'bf16')


class LightHeadONNX(nn.Module):
    """A Light-Head R-CNN detector as a static-shape export model.

    A thin wrapper: the post-processing is the detector's own
    (``LightHeadRCNN.export_forward`` and the heads' ``export_*`` methods,
    beside their eager twins); this module fixes the input shape for
    ``torch.onnx.export``.

    Args:
        model (nn.Module): A built ``LightHeadRCNN`` (eval mode); its
            submodules are used, not copied.
        img_shape (tuple[int, int]): (H, W) of the input, the export shape.
            Boxes are clipped to it (it is every image's ``img_shape``).

    Raises:
        ExportError: Naming the component or setting that has no standard
            ONNX form.
    """

    def __init__(self, model: nn.Module, img_shape: Tuple[int, int]) -> None:
        super().__init__()
        if not hasattr(model, 'check_export'):
            raise ExportError(f'{type(model).__name__} has no export '
                              'methods: LightHeadONNX exports LightHeadRCNN')
        model.check_export()
        self.detector = model
        self.img_shape = tuple(int(v) for v in img_shape)
        # A new module starts in training mode, and torch.onnx.export
        # restores the wrapper's mode afterwards, recursively: without this
        # the detector would be left in training mode.
        self.eval()

    def preprocess(self, x: Tensor) -> Tensor:
        """BGR 0..255 (N, 3, H, W) -> normalised, padded to the divisor."""
        return self.detector.data_preprocessor.export_forward(x)

    def forward(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """Detect.

        Args:
            inputs (Tensor): (N, 3, H, W) float BGR pixels 0..255, (H, W) =
                ``img_shape``.

        Returns:
            tuple[Tensor, Tensor]: ``dets`` (N, max_per_img, 5) and
            ``labels`` (N, max_per_img) int64 (padding: score 0, label -1).
        """
        if tuple(inputs.shape[-2:]) != self.img_shape:
            raise ValueError(f'LightHeadONNX: input {tuple(inputs.shape)} '
                             f'does not match img_shape {self.img_shape}')
        return self.detector.export_forward(inputs, self.img_shape)


# ----------------------------------------------------------------- export
def _failed_operator(message: str) -> Optional[str]:
    """The operator named by a torch.onnx error message, if any."""
    for pattern in (r"operator '?([\w:.]+)'?", r'(aten::\w+)',
                    r'(torchvision::\w+)', r'(prim::\w+)'):
        found = re.search(pattern, message)
        if found:
            return found.group(1)
    return None


def non_default_ops(model) -> List[str]:
    """``domain::op`` of every node outside the default ONNX domain."""
    return sorted({f'{n.domain}::{n.op_type}' for n in model.graph.node
                   if n.domain not in ('', 'ai.onnx')})


def export_onnx(model: nn.Module, out: str, img_shape: Tuple[int, int],
                batch: int = 1, opset: int = DEFAULT_OPSET,
                name: Optional[str] = None) -> Dict[str, object]:
    """Export a built Light-Head detector to ``out`` and check the graph.

    Args:
        model (nn.Module): The detector (weights loaded), eval mode, CPU.
        out (str): The ``.onnx`` file to write.
        img_shape (tuple[int, int]): (H, W) of the input.
        batch (int): Images per call (static).
        opset (int): ONNX opset (>= 16 for GridSample).
        name (str, optional): The config, named in errors.

    Returns:
        dict: ``file``, ``opset``, ``input`` shape, ``outputs`` shapes,
        ``operators`` (sorted op types used).

    Raises:
        ExportError: Naming ``name`` and the operator that failed, or the
            non-default-domain operators found.
    """
    import onnx
    name = name or type(model).__name__
    if opset < 16:
        raise ExportError(f'{name}: GridSample (PSRoIAlign) needs opset >= '
                          f'16, got --opset {opset}')
    try:
        wrapper = LightHeadONNX(model.eval(), img_shape)
    except ExportError as exc:
        raise ExportError(f'{name}: {exc}') from exc
    dummy = torch.randint(0, 256, (batch, 3, *img_shape)).float()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Shapes are static by design: the tracer's constant-folding
            # warnings about them say nothing.
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            torch.onnx.export(wrapper, (dummy, ), out, dynamo=False,
                              opset_version=opset, input_names=['input'],
                              output_names=['dets', 'labels'],
                              do_constant_folding=True)
    except Exception as exc:  # noqa: BLE001  (re-raised with the culprit)
        op = _failed_operator(str(exc))
        raise ExportError(f'{name}: torch.onnx.export failed'
                          + (f' on operator {op}' if op else '')
                          + f' (opset {opset}): {exc}') from exc
    graph = onnx.load(out)
    bad = non_default_ops(graph)
    if bad:
        raise ExportError(f'{name}: operators outside the default ONNX '
                          f'domain: {bad}')
    onnx.checker.check_model(graph, full_check=True)
    return dict(file=out, opset=opset, input=[batch, 3, *img_shape],
                outputs=dict(dets=[batch, model.test_cfg.rcnn.max_per_img,
                                   5],
                             labels=[batch,
                                     model.test_cfg.rcnn.max_per_img]),
                operators=sorted({n.op_type for n in graph.graph.node}))


# ---------------------------------------------------------------- runtimes
def build_runner(path: str, backend: str = 'onnxruntime',
                 threads: Optional[int] = None, precision: str = 'f32'
                 ) -> Callable[..., List[np.ndarray]]:
    """A callable running an ONNX file on a CPU runtime.

    Args:
        path (str): The ``.onnx`` file.
        backend (str): ``'onnxruntime'`` or ``'openvino'``.
        threads (int, optional): CPU threads (runtime default if None).
        precision (str): Inference precision, one of :data:`PRECISIONS`:
            ``'f32'``, or ``'bf16'`` (OpenVINO only; see
            :func:`openvino_config`). Default: ``'f32'``.

    Returns:
        Callable: ``runner(*inputs)`` with float32 numpy arrays, returning
        the outputs as numpy arrays in graph order.

    Raises:
        ValueError: An unknown backend or precision, or ``'bf16'`` on ONNX
            Runtime.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'ONNX file not found: {path}')
    if precision not in PRECISIONS:
        raise ValueError(f'unknown precision {precision!r}; expected one of {PRECISIONS}')
    if precision != 'f32' and backend != 'openvino':
        raise ValueError(f'precision {precision!r} needs the openvino backend; '
                         f'{backend!r} runs f32 only')
    if backend == 'onnxruntime':
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Idle intra-op threads sleep instead of spin-waiting: on a CPU
        # shared with other processes, spinning steals their cores (4
        # interleaved rounds, batch 4 at 800x1200, ShuffleNet v2 1x, 2-core
        # CPU at load ~3, 2026-11-30: 1.74 s per batch spinning, 1.34 s not).
        options.add_session_config_entry('session.intra_op.allow_spinning',
                                         '0')
        session = ort.InferenceSession(path, options,
                                       providers=['CPUExecutionProvider'])
        names = [i.name for i in session.get_inputs()]

        def run_ort(*inputs):
            # ONNX Runtime reads the buffer as C-contiguous, whatever the
            # strides of the array (a transposed view gives wrong images).
            return session.run(None, dict(zip(
                names, [np.ascontiguousarray(i) for i in inputs])))
        return run_ort
    if backend == 'openvino':
        import openvino as ov
        core = ov.Core()
        config = openvino_config(core, precision, threads)
        compiled = core.compile_model(path, 'CPU', config)
        request = compiled.create_infer_request()

        def run_ov(*inputs):
            result = request.infer([np.ascontiguousarray(i)
                                    for i in inputs])
            return [np.asarray(result[o]) for o in compiled.outputs]
        return run_ov
    raise ValueError(f'unknown backend {backend!r}; expected one of '
                     f'{BACKENDS}')


def openvino_config(core, precision: str = 'f32',
                    threads: Optional[int] = None) -> Dict[str, object]:
    """OpenVINO CPU plugin properties for ``precision``.

    ``INFERENCE_PRECISION_HINT`` is always set: on a CPU with AVX-512 BF16
    or AMX the plugin's default is bf16, which changes labels (README,
    deploy section), so f32 must be asked for. With ``'bf16'`` the plugin
    picks the nodes itself: in our exported detector (runtime model,
    OpenVINO 2026.4.1) every convolution and fully connected layer and
    the reshapes/concats between them ran in bf16; TopK,
    NonMaxSuppression, Softmax, GridSample and most element-wise
    subgraphs (box decoding) stayed f32. On a CPU without native bf16 (no
    ``BF16`` in the plugin's ``OPTIMIZATION_CAPABILITIES``) it warns and
    asks for f32, like the ``bf16`` deploy step of
    :mod:`shufflenet_det.deploy.precision`.

    Args:
        core (openvino.Core): The runtime core.
        precision (str): ``'f32'`` or ``'bf16'``.
        threads (int, optional): ``INFERENCE_NUM_THREADS``.

    Returns:
        dict: Properties for ``core.compile_model(..., 'CPU', config)``.
    """
    if precision == 'bf16' and 'BF16' not in core.get_property(
            'CPU', 'OPTIMIZATION_CAPABILITIES'):
        warnings.warn('OpenVINO bf16 skipped, running f32: the CPU plugin '
                      'reports no native BF16 in OPTIMIZATION_CAPABILITIES')
        precision = 'f32'
    config = {'INFERENCE_PRECISION_HINT': precision,
              'PERFORMANCE_HINT': 'LATENCY'}
    if threads:
        config['INFERENCE_NUM_THREADS'] = threads
    return config


def export_and_load(export: Callable[[str], int], backend: str,
                    precision: str = 'f32'
                    ) -> Tuple[Callable[..., List[np.ndarray]], dict]:
    """``export(path)`` (writes an ONNX file, returns its opset) into a
    temporary folder, then that file loaded by :func:`build_runner`.

    Returns:
        tuple: The runner and ``backend``, ``version``, ``export_s``,
        ``load_s``, ``opset``, ``precision``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'model.onnx')
        start = time.perf_counter()
        opset = export(path)
        export_s = time.perf_counter() - start
        start = time.perf_counter()
        run = build_runner(path, backend, threads=torch.get_num_threads(),
                           precision=precision)
        load_s = time.perf_counter() - start
    if backend == 'onnxruntime':
        import onnxruntime
        version = onnxruntime.__version__
    else:
        import openvino
        version = openvino.get_version()
    return run, dict(backend=backend, version=version, export_s=export_s,
                     load_s=load_s, opset=opset, precision=precision)


def onnx_step(model: nn.Module, data: dict, backend: str,
              precision: str = 'f32'
              ) -> Tuple[Callable[[], List[dict]], dict]:
    """Our detector exported at a batch's shape and run on ``backend``, as
    a step that returns what the PyTorch step's detections are compared by
    (:func:`shufflenet_det.deploy.verify.compare_detections`).

    Args:
        model (nn.Module): The (deployed) detector, CPU.
        data (dict): A ``make_batch`` batch (equal-sized uint8 images whose
            ``img_shape`` is their size, scale factor 1).
        backend (str): ``'onnxruntime'`` or ``'openvino'``.
        precision (str): One of :data:`PRECISIONS` (see
            :func:`build_runner`).

    Returns:
        tuple: The step (one ``boxes``/``scores``/``labels`` dict per
        image) and :func:`export_and_load`'s record.
    """
    images = data['inputs']
    shape = tuple(images[0].shape[-2:])
    if any(tuple(i.shape[-2:]) != shape for i in images):
        raise ValueError('onnx_step: the batch images must share one size '
                         '(a static ONNX input)')
    batch = torch.stack(images).float().numpy()
    run, info = export_and_load(lambda path: export_onnx(
        model, path, shape, len(images))['opset'], backend, precision)

    def step():
        dets, labels = run(batch)
        return [detections(d[:, :4], d[:, 4], lab, lab >= 0)
                for d, lab in zip(dets, labels)]

    return step, info


def detections(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
               keep: Optional[np.ndarray] = None) -> Dict[str, Tensor]:
    """One image's runtime outputs (rows ``keep`` only) as tensors."""
    if keep is not None:
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
            (('boxes', boxes), ('scores', scores), ('labels', labels))}


def letterbox(image: np.ndarray, img_shape: Tuple[int, int],
              mean: Sequence[float]) -> Tuple[np.ndarray, float]:
    """Resize an (H, W, 3) BGR image to fit ``img_shape`` keeping its
    ratio, pad bottom/right with the mean pixel (0 after normalisation).

    Returns:
        tuple: (3, H, W) float32 input and the scale applied.
    """
    import mmcv
    height, width = img_shape
    scale = min(height / image.shape[0], width / image.shape[1])
    resized = mmcv.imresize(image, (max(1, round(image.shape[1] * scale)),
                                    max(1, round(image.shape[0] * scale))))
    canvas = np.empty((height, width, 3), np.float32)
    canvas[...] = np.asarray(mean, np.float32)
    canvas[:resized.shape[0], :resized.shape[1]] = resized
    return canvas.transpose(2, 0, 1), scale
