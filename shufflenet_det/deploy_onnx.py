"""The whole Light-Head R-CNN detector as one standard ONNX graph.

:class:`LightHeadONNX` wraps a built detector and reuses its own submodules
(data pre-processor constants, backbone, RPN convs, prior generator, box
coders, large separable conv, the extractor's ``GridPSRoIAlign``, the R-CNN
FCs). It computes what ``model.test_step`` computes for images whose
``img_shape`` is the input shape (mmdeploy's static-shape convention), with
static shapes and default-domain ONNX operators only:

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
import math
import os.path as osp
import re
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

#: Default opset: GridSample needs 16; OpenVINO's and older ONNX Runtime's
#: GridSample importers read opsets 16-19 (``docs``: deploy reference).
DEFAULT_OPSET = 17

#: Score given to boxes that must not enter an NMS (invalid or padded);
#: the NMS ``score_threshold`` sits between it and any real score, so that
#: ONNX Runtime (keeps > threshold) and OpenVINO (keeps >=) agree.
_MASKED = -1.0
_THRESHOLD = -0.5

BACKENDS = ('onnxruntime', 'openvino')


class ExportError(RuntimeError):
    """A detector that this exporter cannot express in standard ONNX."""


class ONNXNonMaxSuppression(torch.autograd.Function):
    """``NonMaxSuppression`` (default ONNX domain) with an eager twin.

    Eager: per (image, class), torchvision's NMS over the boxes whose score
    is above ``score_threshold`` (a box is suppressed when its IoU with a
    kept box is strictly above ``iou_threshold``), first ``max_output`` kept
    boxes by decreasing score; rows ordered by image, class, score, as the
    ONNX operator orders them.

    Args (of ``apply``):
        boxes (Tensor): (N, M, 4) ``x1, y1, x2, y2``.
        scores (Tensor): (N, C, M).
        max_output (int): Boxes kept per image and class.
        iou_threshold (float): IoU threshold.
        score_threshold (float): Boxes with scores not above it are ignored.

    Returns:
        Tensor: (K, 3) int64 rows ``[image, class, box]``.
    """

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_output: int,
                iou_threshold: float, score_threshold: float) -> Tensor:
        from shufflenet_det.models.layers.topk_nms import topk_batched_nms
        rows = []
        for b in range(scores.shape[0]):
            for c in range(scores.shape[1]):
                cand = (scores[b, c] > score_threshold).nonzero().view(-1)
                if cand.numel() == 0:
                    continue
                _, keep = topk_batched_nms(
                    boxes[b, cand], scores[b, c, cand],
                    torch.zeros_like(cand), iou_threshold, max_output)
                box = cand[keep]
                rows.append(torch.stack([torch.full_like(box, b),
                                         torch.full_like(box, c), box], 1))
        if not rows:
            return boxes.new_zeros((0, 3), dtype=torch.long)
        return torch.cat(rows)

    @staticmethod
    def symbolic(g, boxes, scores, max_output, iou_threshold,
                 score_threshold):
        def const(value, dtype):
            return g.op('Constant', value_t=torch.tensor(value, dtype=dtype))
        return g.op('NonMaxSuppression', boxes, scores,
                    const(int(max_output), torch.int64),
                    const(float(iou_threshold), torch.float32),
                    const(float(score_threshold), torch.float32),
                    center_point_box_i=0)


def _kept_topk(selected: Tensor, scores: Tensor, k: int
               ) -> Tuple[Tensor, Tensor, Tensor]:
    """The ``k`` best boxes of each image among those an NMS kept.

    Args:
        selected (Tensor): (K, 3) NMS rows ``[image, class, box]`` (one
            class).
        scores (Tensor): (N, M) scores of the boxes.
        k (int): Boxes per image (<= M).

    Returns:
        tuple[Tensor, Tensor, Tensor]: Scores (N, k) by decreasing score,
        box indices (N, k) and validity (N, k) (False where the image kept
        fewer than ``k``).
    """
    num, boxes = scores.shape
    flat = selected[:, 0] * boxes + selected[:, 2]
    kept = torch.zeros(num * boxes, dtype=scores.dtype,
                       device=scores.device).scatter(0, flat, 1.0)
    masked = torch.where(kept.view(num, boxes) > 0, scores,
                         torch.full_like(scores, _MASKED))
    top, index = masked.topk(k, dim=1)
    return top, index, top > _THRESHOLD


def _gather_boxes(boxes: Tensor, index: Tensor) -> Tensor:
    """(N, M, 4) boxes, (N, k) indices -> (N, k, 4)."""
    return boxes.gather(1, index[..., None].expand(-1, -1, 4))


def _plain_nms(cfg, where: str) -> float:
    from shufflenet_det.models.layers.topk_nms import plain_nms_threshold
    threshold = plain_nms_threshold(cfg.get('nms'))
    if threshold is None:
        raise ExportError(
            f'{where}.nms={cfg.get("nms")!r}: only plain NMS '
            "(dict(type='nms', iou_threshold=t)) maps to ONNX "
            'NonMaxSuppression')
    return threshold


class LightHeadONNX(nn.Module):
    """A Light-Head R-CNN detector as a static-shape export model.

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
        from shufflenet_det.models.layers.ps_roi_align import GridPSRoIAlign
        self.detector = model
        self.img_shape = tuple(int(v) for v in img_shape)
        for name in ('data_preprocessor', 'backbone', 'rpn_head', 'roi_head'):
            if not isinstance(getattr(model, name, None), nn.Module):
                raise ExportError(f'{type(model).__name__} has no {name}: '
                                  'LightHeadONNX exports LightHeadRCNN')
        roi_head = model.roi_head
        layer = roi_head.bbox_roi_extractor.roi_layers[0]
        if not isinstance(layer, GridPSRoIAlign):
            raise ExportError(
                f'roi_head.bbox_roi_extractor.roi_layer is '
                f'{type(layer).__name__}: torchvision ps_roi_align/pool have '
                "no ONNX operator; use dict(type='GridPSRoIAlign', ...) "
                '(GridSample)')
        rpn = model.rpn_head
        if len(rpn.prior_generator.strides) != 1:
            raise ExportError('rpn_head: one feature level expected, got '
                              f'{len(rpn.prior_generator.strides)}')
        head = roi_head.bbox_head
        if getattr(head, 'custom_cls_channels', False) or \
                getattr(head.loss_cls, 'use_sigmoid', False):
            raise ExportError('roi_head.bbox_head: only a softmax '
                              'classifier (num_classes + 1) is supported')
        self.rpn_cfg = model.test_cfg.rpn
        self.rcnn_cfg = model.test_cfg.rcnn
        self.rpn_iou = _plain_nms(self.rpn_cfg, 'test_cfg.rpn')
        self.rcnn_iou = _plain_nms(self.rcnn_cfg, 'test_cfg.rcnn')
        if self.rpn_cfg.get('max_per_img', -1) <= 0 or \
                self.rcnn_cfg.get('max_per_img', -1) <= 0:
            raise ExportError('test_cfg.rpn/rcnn.max_per_img must be > 0 '
                              'for a static output shape')
        # A new module starts in training mode, and torch.onnx.export
        # restores the wrapper's mode afterwards, recursively: without this
        # the detector would be left in training mode.
        self.eval()

    # ------------------------------------------------------------- parts
    def preprocess(self, x: Tensor) -> Tensor:
        """BGR 0..255 (N, 3, H, W) -> normalised, padded to the divisor."""
        pre = self.detector.data_preprocessor
        if getattr(pre, '_channel_conversion', False):
            x = x[:, [2, 1, 0]]
        if getattr(pre, '_enable_normalize', False):
            x = (x - pre.mean.view(1, -1, 1, 1)) / pre.std.view(1, -1, 1, 1)
        div = getattr(pre, 'pad_size_divisor', 1)
        height, width = x.shape[-2:]
        pad_h = math.ceil(height / div) * div - height
        pad_w = math.ceil(width / div) * div - width
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h),
                      value=float(getattr(pre, 'pad_value', 0)))
        return x

    def _decode(self, coder, priors: Tensor, deltas: Tensor) -> Tensor:
        """mmdet's ``delta2bbox`` on (P, 4) priors and (P, 4 * C) deltas,
        clipped to ``img_shape`` without in-place slice updates."""
        from mmdet.models.task_modules.coders import \
            LegacyDeltaXYWHBBoxCoder
        from mmdet.models.task_modules.coders.delta_xywh_bbox_coder import \
            delta2bbox
        from mmdet.models.task_modules.coders.legacy_delta_xywh_bbox_coder \
            import legacy_delta2bbox
        if isinstance(coder, LegacyDeltaXYWHBBoxCoder):
            # x2 - x1 + 1 widths and clipping to (W - 1, H - 1), as the
            # coder's decode(max_shape=img_shape) in the RPN head.
            return legacy_delta2bbox(priors, deltas, coder.means, coder.stds,
                                     self.img_shape)
        boxes = delta2bbox(priors, deltas, coder.means, coder.stds, None,
                           add_ctr_clamp=coder.add_ctr_clamp,
                           ctr_clamp=coder.ctr_clamp)
        if coder.clip_border:
            height, width = self.img_shape
            limit = boxes.new_tensor([width, height] * (boxes.shape[-1] // 2))
            boxes = torch.min(boxes.clamp(min=0), limit)
        return boxes

    def proposals(self, feat: Tensor) -> Tuple[Tensor, Tensor]:
        """RPN: (N, P, 4) proposals by decreasing score and (N, P) validity
        (``P = min(max_per_img, nms_pre)``; invalid rows are zeros)."""
        head, cfg = self.detector.rpn_head, self.rpn_cfg
        cls_scores, bbox_preds = head((feat, ))
        cls_score, bbox_pred = cls_scores[0], bbox_preds[0]
        num = int(cls_score.shape[0])
        priors = head.prior_generator.grid_priors(
            [cls_score.shape[-2:]], dtype=cls_score.dtype,
            device=cls_score.device)[0]
        scores = cls_score.permute(0, 2, 3, 1).reshape(
            num, -1, head.cls_out_channels)
        scores = scores.sigmoid()[..., 0] if head.use_sigmoid_cls else \
            scores.softmax(-1)[..., 0]
        deltas = bbox_pred.permute(0, 2, 3, 1).reshape(num, -1, 4)
        anchors = int(scores.shape[1])  # static: never a traced size
        nms_pre = cfg.get('nms_pre', -1)
        k = nms_pre if 0 < nms_pre < anchors else anchors
        scores, index = scores.topk(k, dim=1)
        boxes = self._decode(head.bbox_coder, priors[index].reshape(-1, 4),
                             _gather_boxes(deltas, index).reshape(-1, 4))
        boxes = boxes.view(num, k, 4)
        min_size = cfg.get('min_bbox_size', -1)
        if min_size >= 0:
            w = boxes[..., 2] - boxes[..., 0]
            h = boxes[..., 3] - boxes[..., 1]
            scores = torch.where((w > min_size) & (h > min_size), scores,
                                 torch.full_like(scores, _MASKED))
        max_num = min(cfg.max_per_img, k)
        selected = ONNXNonMaxSuppression.apply(boxes, scores[:, None],
                                               max_num, self.rpn_iou,
                                               _THRESHOLD)
        _, index, valid = _kept_topk(selected, scores, max_num)
        rois = _gather_boxes(boxes, index) * valid[..., None]
        return rois, valid

    def detections(self, feat: Tensor, rois: Tensor,
                   valid: Tensor) -> Tuple[Tensor, Tensor]:
        """R-CNN: ``dets`` (N, max_per_img, 5) and ``labels``."""
        roi_head, cfg = self.detector.roi_head, self.rcnn_cfg
        head = roi_head.bbox_head
        num, slots = (int(v) for v in valid.shape)
        score_map = roi_head.ps_score_map((feat, ))[0]
        pooled = roi_head.bbox_roi_extractor.roi_layers[0].forward_batched(
            score_map, rois)
        cls_score, bbox_pred = head(pooled.flatten(0, 1))
        classes = head.num_classes
        scores = F.softmax(cls_score, dim=-1)[:, :-1].reshape(num, -1)
        if head.reg_class_agnostic:
            bbox_pred = bbox_pred.repeat(1, classes)
        boxes = self._decode(head.bbox_coder, rois.reshape(-1, 4),
                             bbox_pred).view(num, slots * classes, 4)
        ok = valid[..., None].expand(num, slots, classes).reshape(num, -1) & \
            (scores > cfg.get('score_thr', 0.0))
        scores = torch.where(ok, scores, torch.full_like(scores, _MASKED))
        # mmcv's batched_nms shift, from the largest coordinate of the
        # image's candidate boxes (all boxes are clipped to >= 0).
        labels = torch.arange(classes, device=boxes.device).repeat(slots)
        top = (boxes * ok[..., None]).flatten(1).amax(1)
        shift = labels.to(boxes)[None, :, None] * \
            (top + torch.tensor(1).to(boxes))[:, None, None]
        max_num = cfg.max_per_img
        k = min(max_num, slots * classes)
        selected = ONNXNonMaxSuppression.apply(boxes + shift, scores[:, None],
                                               k, self.rcnn_iou, _THRESHOLD)
        top_scores, index, keep = _kept_topk(selected, scores, k)
        dets = torch.cat([_gather_boxes(boxes, index), top_scores[..., None]],
                         -1) * keep[..., None]
        labels = torch.where(keep, index % classes,
                             torch.full_like(index, -1))
        if k < max_num:
            dets = F.pad(dets, (0, 0, 0, max_num - k))
            labels = F.pad(labels, (0, max_num - k), value=-1)
        return dets, labels

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
        det = self.detector
        feats = det.extract_feat(self.preprocess(inputs))
        rois, valid = self.proposals(feats[det.rpn_in_index])
        return self.detections(feats[det.rcnn_in_index], rois, valid)


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
                 threads: Optional[int] = None
                 ) -> Callable[..., List[np.ndarray]]:
    """A callable running an ONNX file on a CPU runtime.

    Args:
        path (str): The ``.onnx`` file.
        backend (str): ``'onnxruntime'`` or ``'openvino'``.
        threads (int, optional): CPU threads (runtime default if None).

    Returns:
        Callable: ``runner(*inputs)`` with float32 numpy arrays, returning
        the outputs as numpy arrays in graph order.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'ONNX file not found: {path}')
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
        config = {'INFERENCE_PRECISION_HINT': 'f32',
                  'PERFORMANCE_HINT': 'LATENCY'}
        if threads:
            config['INFERENCE_NUM_THREADS'] = threads
        compiled = ov.Core().compile_model(path, 'CPU', config)
        request = compiled.create_infer_request()

        def run_ov(*inputs):
            result = request.infer([np.ascontiguousarray(i)
                                    for i in inputs])
            return [np.asarray(result[o]) for o in compiled.outputs]
        return run_ov
    raise ValueError(f'unknown backend {backend!r}; expected one of '
                     f'{BACKENDS}')


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
