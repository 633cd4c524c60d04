"""Run the benchmark's models on an ONNX runtime instead of PyTorch.

``tools/benchmark.py --backend onnxruntime|openvino``: ours and the peer are
both exported to ONNX (after the same deploy steps) and run on the same
runtime with the same thread count. Ours is the whole detector as one graph
(:func:`shufflenet_det.deploy.onnx.export_onnx`); the peer is torchvision's
``fasterrcnn_mobilenet_v3_large_fpn`` as torchvision exports it
(TorchScript exporter, its own ``NonMaxSuppression`` / ``RoiAlign``
symbolics), pre- and post-processing included. Each step returns one
``boxes``/``scores``/``labels`` dict per image, so
:func:`~shufflenet_det.deploy.verify.compare_detections` checks them against
the PyTorch model's.
"""
import os.path as osp
import tempfile
import time
import warnings
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from shufflenet_det.deploy.onnx import BACKENDS as ONNX_BACKENDS

#: ``--backend`` choices; 'torch' is the runner's own PyTorch path.
BACKENDS = ('torch', *ONNX_BACKENDS)


def _export_and_load(export: Callable[[str], int], backend: str,
                     precision: str = 'f32'):
    """``export(path)`` (returns the opset), then load the file on
    ``backend`` at ``precision`` (``'bf16'``: OpenVINO's inference precision
    hint); returns the runner and what the step's record says."""
    from shufflenet_det.deploy.onnx import build_runner
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


def detector_backend_step(model: nn.Module, data: dict, backend: str,
                          precision: str = 'f32'
                          ) -> Tuple[Callable[[], List[dict]], Dict]:
    """Export ours at the batch's shape and run it on ``backend``.

    Args:
        model (nn.Module): The (deployed) detector, CPU.
        data (dict): A ``make_batch`` batch (equal-sized uint8 images whose
            ``img_shape`` is their size, scale factor 1).
        backend (str): ``'onnxruntime'`` or ``'openvino'``.
        precision (str): ``'f32'``, or ``'bf16'`` (OpenVINO only; see
            :func:`shufflenet_det.deploy.onnx.build_runner`).

    Returns:
        tuple: The step (one detections dict per image) and ``backend``,
        ``version``, ``export_s``, ``load_s``, ``opset``, ``precision``.
    """
    from shufflenet_det.deploy.onnx import export_onnx
    images = data['inputs']
    shape = tuple(images[0].shape[-2:])
    if any(tuple(i.shape[-2:]) != shape for i in images):
        raise ValueError('backend benchmark: the batch images must share '
                         'one size (a static ONNX input)')
    batch = torch.stack(images).float().numpy()
    run, info = _export_and_load(lambda path: export_onnx(
        model, path, shape, len(images))['opset'], backend, precision)

    def step():
        dets, labels = run(batch)
        return [_instances(d[:, :4], d[:, 4], lab, lab >= 0)
                for d, lab in zip(dets, labels)]

    return step, info


def peer_backend_step(model: nn.Module, images: Sequence[torch.Tensor],
                      backend: str, precision: str = 'f32'
                      ) -> Tuple[Callable[[], List[dict]], Dict]:
    """Export the torchvision peer with its own ONNX support and run it on
    ``backend`` (returns as :func:`detector_backend_step`; ``images``:
    ``peer_inputs``)."""
    from shufflenet_det.deploy.onnx import DEFAULT_OPSET
    inputs = [i.cpu().numpy() for i in images]

    def export(path):
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.onnx.export(model, (list(images), ), path, dynamo=False,
                              opset_version=DEFAULT_OPSET,
                              input_names=[f'image{i}'
                                           for i in range(len(images))])
        return DEFAULT_OPSET

    run, info = _export_and_load(export, backend, precision)

    def step():
        out = run(*inputs)
        # torchvision's outputs: boxes, labels, scores for each image.
        return [_instances(out[i], out[i + 2], out[i + 1])
                for i in range(0, len(out), 3)]

    return step, info


def _instances(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
               keep=None) -> dict:
    if keep is not None:
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
            (('boxes', boxes), ('scores', scores), ('labels', labels))}
