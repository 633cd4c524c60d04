"""A small Light-Head detector with non-trivial weights, for tests that
compare two inference paths."""
import torch
import torch.nn as nn


def randomize_(model: nn.Module, gain: float = 1.0) -> nn.Module:
    """Non-trivial weights and BN statistics (so that folding matters)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen)
                               * gain * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape,
                                                   generator=gen))
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
    return model


#: Standard deviation of the decoded box deltas (dx, dy, dw, dh after the
#: coder's ``target_stds``) that :func:`calibrated_detector` gives both
#: regressors: boxes move by a fifth of their size, as a trained
#: detector's refinements do, so decoding (stds, dw vs dh) is exercised.
DELTA_STD = 0.2


def _coder_stds(layer_outputs: int, coder) -> torch.Tensor:
    """(C, ) the coder's std of each regression output channel (channels
    come in (dx, dy, dw, dh) groups)."""
    stds = torch.tensor([float(v) for v in coder.stds])
    return stds.repeat(layer_outputs // 4)


def calibrated_detector(model_cfg, batch_size=2, img_size=(192, 256),
                        delta_std=DELTA_STD):
    """Build ``model_cfg`` with random weights whose scores are spread and
    whose box deltas have a realistic size.

    The classifiers are scaled so that scores have no near-ties that NMS
    could order either way. Each regression output channel is scaled and
    centred so that, after the coder's ``target_stds``, the deltas on the
    calibration batch are ~N(0, ``delta_std``): proposals are not the
    anchors nor detections the proposals, and a decoder that ignores the
    stds or swaps dw and dh gives other boxes. Inputs whose NMS decisions
    all stay away from the thresholds come from :func:`robust_batch`.

    Args:
        model_cfg (dict): A Light-Head R-CNN model config.
        batch_size (int): Images of the calibration batch.
        img_size (tuple[int, int]): (H, W) of the calibration batch.
        delta_std (float): Std of the decoded deltas; 0 makes every box its
            anchor / proposal.

    Returns:
        tuple: (model in eval mode, batch from ``make_batch``).
    """
    from mmdet.registry import MODELS

    from shufflenet_det.apis import detector_step, make_batch
    torch.manual_seed(0)
    model = randomize_(MODELS.build(model_cfg)).eval()
    rpn, bbox = model.rpn_head, model.roi_head.bbox_head
    layers = dict(rpn=rpn.rpn_cls, rcnn=bbox.fc_cls, rpn_reg=rpn.rpn_reg,
                  rcnn_reg=bbox.fc_reg)
    outputs = {}
    hooks = [layer.register_forward_hook(
        lambda m, i, o, key=key: outputs.__setitem__(key, o))
        for key, layer in layers.items()]
    data = make_batch(batch_size, img_size, seed=1)
    detector_step(model, data, torch.device('cpu'))()
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for key in ('rpn', 'rcnn'):
            scale = 2.0 / float(outputs[key].std())
            layers[key].weight.mul_(scale)
            layers[key].bias.mul_(scale)
        for key, coder in (('rpn_reg', rpn.bbox_coder),
                           ('rcnn_reg', bbox.bbox_coder)):
            layer, out = layers[key], outputs[key]
            # (N, C, H, W) conv or (R, C) linear outputs -> (samples, C)
            out = out.movedim(1, -1).reshape(-1, out.shape[1])
            target = delta_std / _coder_stds(out.shape[1], coder)
            scale = target / out.std(0)
            # centred: new output = scale * (W x - mean(W x))
            shift = out.mean(0) - layer.bias
            layer.weight.mul_(scale.view(-1, *[1] * (layer.weight.dim() - 1)))
            layer.bias.copy_(-scale * shift)
    return model, data


# ------------------------------------------------- NMS decision margins
#: Boxes of two compared inference paths differ by less than this (px):
#: ONNX Runtime / OpenVINO vs PyTorch differ by up to 0.00034 px (issue 19,
#: trained weights); on the random weights here the eager export wrapper
#: by 0.00022 px and ONNX Runtime by 0.00026 px (2026-12-02, this machine,
#: the robust batches of test_deploy_onnx.py); so three times the largest.
BOX_DELTA = 1e-3
#: Scores closer than this may come out in either order between two paths
#: (runtimes differ by < 7e-7 per score, issue 19).
TIE_EPS = 2e-6
#: ``test_cfg.rpn.max_per_img`` of the equivalence tests (see
#: :func:`robust_batch`).
PROPOSALS = 200


class NMSRecorder:
    """Record every ``topk_batched_nms`` call of the RPN and bbox heads:
    ``(head, boxes, scores, groups, iou_threshold, max_num)``."""

    def __enter__(self) -> 'NMSRecorder':
        import shufflenet_det.models.bbox_heads.light_head_bbox_head as bbox
        import shufflenet_det.models.dense_heads.light_head_rpn_head as rpn
        self.calls, self._mods = [], (('rpn', rpn), ('rcnn', bbox))
        self._orig = rpn.topk_batched_nms

        def recorder(head):
            def record(boxes, scores, groups, iou_threshold, max_num):
                self.calls.append((head, boxes.detach().clone(),
                                   scores.detach().clone(), groups.clone(),
                                   float(iou_threshold), int(max_num)))
                return self._orig(boxes, scores, groups, iou_threshold,
                                  max_num)
            return record
        for head, mod in self._mods:
            mod.topk_batched_nms = recorder(head)
        return self

    def __exit__(self, *exc) -> None:
        for _, mod in self._mods:
            mod.topk_batched_nms = self._orig


def _iou_slack(box, others, delta: float):
    """IoU of (4, ) ``box`` with (K, 4) ``others`` (float64 numpy) and a
    bound on how much it moves when every coordinate moves by ``delta``.

    Intersection sides move by <= 2 delta, so the intersection I by
    <= 2 delta (w_I + h_I) and each area by <= 2 delta (w + h); with
    U = A1 + A2 - I, |d(I / U)| <= (|dI| + IoU |dU|) / U (first order,
    doubled for safety).
    """
    import numpy as np
    w_i = (np.minimum(box[2], others[:, 2]) -
           np.maximum(box[0], others[:, 0])).clip(min=0)
    h_i = (np.minimum(box[3], others[:, 3]) -
           np.maximum(box[1], others[:, 1])).clip(min=0)
    inter = w_i * h_i
    wh_a = box[2:] - box[:2]
    wh_b = others[:, 2:] - others[:, :2]
    union = wh_a.prod() + wh_b.prod(1) - inter
    # Two zero-area boxes (clipped outside the image): IoU 0/0, which no
    # NMS suppresses (torchvision: NaN > t is false; ONNX: IoU 0).
    degenerate = union <= 0
    union = np.where(degenerate, 1.0, union)
    iou = np.where(degenerate, 0.0, inter / union)
    d_inter = 2 * delta * (w_i + h_i)
    d_union = 2 * delta * (wh_a.sum() + wh_b.sum(1)) + d_inter
    slack = np.where(degenerate, 0.0,
                     2 * (d_inter + iou * d_union) / union)
    return iou, slack


def fragile_nms_decisions(boxes, scores, groups, iou_threshold: float,
                          max_num: int, box_delta: float = BOX_DELTA,
                          tie_eps: float = TIE_EPS) -> list:
    """The decisions of ``topk_batched_nms`` that a rounding-level change
    of the inputs could flip.

    Greedy NMS is replayed in float64 up to the ``max_num``-th kept box and
    the next box that would be kept. A decision is fragile when:

    - ``iou``: a box's largest IoU with a kept, higher-scored box of its
      group lies within the IoU's slack of the threshold: the slack is the
      first-order bound (:func:`_iou_slack`) for every coordinate moving by
      ``box_delta`` plus the float32 rounding of the per-group shift that
      the NMS applies (one ulp of the largest shifted coordinate);
    - ``tie``: a kept, higher-scored box that it overlaps (IoU above the
      threshold minus the slack) scores within ``tie_eps`` of it;
    - ``cut``: the ``max_num``-th kept box and the next keepable one score
      within ``tie_eps``.

    Args:
        boxes (Tensor): (N, 4) candidates as given to the NMS.
        scores (Tensor): (N, ).
        groups (Tensor): (N, ) group (level or class) ids.
        iou_threshold (float): NMS IoU threshold.
        max_num (int): Boxes kept.
        box_delta (float): Coordinate change to be robust against (px).
        tie_eps (float): Score change to be robust against.

    Returns:
        list[tuple]: ``(kind, candidate index, margin, slack)`` per
        fragile decision; empty when every decision is robust.
    """
    import numpy as np
    b = boxes.double().numpy()
    s = scores.double().numpy()
    g = groups.numpy()
    shift = float(b.max() + 1) * float(g.max())
    delta = box_delta + float(np.spacing(np.float32(shift + b.max())))
    order = np.argsort(-s, kind='stable')
    kept = np.empty(max_num, dtype=np.int64)
    count, fragile = 0, []
    for j in order:
        same = kept[:count][g[kept[:count]] == g[j]]
        iou, slack = _iou_slack(b[j], b[same], delta)
        worst = int(iou.argmax()) if len(same) else -1
        top = iou[worst] if len(same) else 0.0
        if len(same) and abs(top - iou_threshold) <= slack[worst]:
            fragile.append(('iou', int(j), abs(top - iou_threshold),
                            float(slack[worst])))
        overlap = iou > iou_threshold - slack
        if overlap.any() and (s[same[overlap]] - s[j]).min() <= tie_eps:
            fragile.append(('tie', int(j),
                            float((s[same[overlap]] - s[j]).min()), tie_eps))
        if top > iou_threshold:
            continue
        if count == max_num:
            gap = s[kept[-1]] - s[j]
            if gap <= tie_eps:
                fragile.append(('cut', int(j), float(gap), tie_eps))
            break
        kept[count] = j
        count += 1
    return fragile


def nms_report(model, data) -> dict:
    """Run ``model`` on ``data`` (a ``make_batch`` dict) and list, per NMS
    call (RPN, R-CNN, per image), its fragile decisions
    (:func:`fragile_nms_decisions`); also the smallest distance of any
    R-CNN class score to a positive ``score_thr``.

    Returns:
        dict: ``calls`` (number of NMS calls), ``fragile`` (list of
        ``(head, image, kind, index, margin, slack)``), ``score_thr_gap``.
    """
    import copy

    from shufflenet_det.apis import detector_step
    bbox = model.roi_head.bbox_head
    logits = []
    hook = bbox.fc_cls.register_forward_hook(
        lambda m, i, o: logits.append(o.detach()))
    try:
        with NMSRecorder() as rec:
            detector_step(model, copy.deepcopy(data), torch.device('cpu'))()
    finally:
        hook.remove()
    fragile, seen = [], {}
    for head, *args in rec.calls:
        image = seen[head] = seen.get(head, -1) + 1
        fragile += [(head, image) + f for f in fragile_nms_decisions(*args)]
    score_thr = float(model.test_cfg.rcnn.get('score_thr', 0.0))
    gap = float('inf')
    if score_thr > 0:
        scores = torch.cat(logits).softmax(-1)[:, :-1]
        gap = float((scores - score_thr).abs().min())
    return dict(calls=len(rec.calls), fragile=fragile, score_thr_gap=gap)


def robust_batch(model, batch_size: int, img_size, seeds=range(1, 40)):
    """The first ``make_batch(batch_size, img_size, seed)`` whose NMS
    decisions are all robust (:func:`nms_report`: no fragile decision, and
    no score within ``TIE_EPS`` of a positive ``score_thr``).

    Inputs are re-drawn (next seed) rather than tolerances widened, so the
    comparison that follows can demand 0.01 px / 1e-4 agreement of every
    detection: no detection can legitimately be on one side only.

    Use it with ``test_cfg.rpn.max_per_img`` = :data:`PROPOSALS`: with
    1000 proposals the RPN's NMS makes ~2500 decisions per image, of which
    3-8 always lie within the slack (measured on 5 seeds, 2026-12-02), so no
    seed would do; with 200, about one batch in two qualifies. The paths
    compared run the same code for any number of proposals.

    Returns:
        tuple: (batch dict, seed, report of that batch).

    Raises:
        AssertionError: No seed in ``seeds`` gives robust decisions.
    """
    from shufflenet_det.apis import make_batch
    for seed in seeds:
        data = make_batch(batch_size, img_size, seed=seed)
        report = nms_report(model, data)
        if not report['fragile'] and report['score_thr_gap'] > TIE_EPS:
            return data, seed, report
    raise AssertionError(f'no seed in {seeds} gives robust NMS decisions '
                         f'at {img_size}; last: {report}')
