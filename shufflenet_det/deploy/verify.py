"""Check a deployed model against its plain twin, part by part and on its
final detections."""
import copy
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor
from torchvision.ops import box_iou

from shufflenet_det.deploy import get_submodule


class PartRecorder:
    """Record the first call (inputs and output) of named submodules.

    A deployed model is checked part by part: each deployed part is fed the
    inputs its plain twin saw and its output is compared with the plain
    output (:func:`verify_parts`). Final detections are compared too
    (:func:`compare_detections`), but with random weights scores are
    nearly tied, and top-k / NMS may legitimately swap near-tied boxes on a
    rounding-level difference: the parts say where a difference comes
    from.

    Args:
        model (nn.Module): The model to watch.
        paths (Iterable[str]): Dotted submodule paths; missing ones are
            ignored.

    Attributes:
        calls (dict[str, tuple]): ``path -> (args, kwargs, output)``, the
            first call of each part, detached, on the CPU.

    Example:
        >>> with PartRecorder(model, ['backbone']) as rec:
        ...     model.test_step(data)
        >>> args, kwargs, output = rec.calls['backbone']
    """

    def __init__(self, model: nn.Module, paths: Iterable[str]) -> None:
        self.model = model
        self.paths = [p for p in paths if get_submodule(model, p) is not None]
        self.calls: Dict[str, tuple] = {}
        self._handles: List[object] = []

    def __enter__(self) -> 'PartRecorder':
        for path in self.paths:
            module = get_submodule(self.model, path)

            def hook(_module, args, kwargs, output, path=path):
                if path not in self.calls:
                    self.calls[path] = (_detach(args), _detach(kwargs),
                                        _detach(output))

            self._handles.append(
                module.register_forward_hook(hook, with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def verify_parts(model: nn.Module, calls: Dict[str, tuple],
                 device: torch.device) -> Dict[str, dict]:
    """Rerun each recorded part of ``model`` on its recorded inputs.

    Args:
        model (nn.Module): The deployed model (same structure as the
            recorded one).
        calls (dict): ``PartRecorder.calls`` of the eager model.
        device (torch.device): The model's device.

    Returns:
        dict: Per part, :func:`compare_outputs` of plain vs deployed.
    """
    result = {}
    with torch.no_grad():
        for path, (args, kwargs, output) in calls.items():
            part = get_submodule(model, path)
            got = part(*_to(args, device), **_to(kwargs, device))
            result[path] = compare_outputs(output, _detach(got))
    return result


def _to(obj, device: torch.device):
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, tuple) and hasattr(obj, '_fields'):
        return type(obj)(*(_to(o, device) for o in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


def _detach(output):
    """Detached contiguous CPU copies of the tensors in a nested structure;
    other objects are kept as they are."""
    if isinstance(output, Tensor):
        return output.detach().to('cpu', memory_format=torch.contiguous_format)
    if isinstance(output, tuple) and hasattr(output, '_fields'):
        return type(output)(*(_detach(o) for o in output))
    if isinstance(output, (list, tuple)):
        return type(output)(_detach(o) for o in output)
    if isinstance(output, dict):
        return {k: _detach(v) for k, v in output.items()}
    return output


def _flatten(output) -> List[Tensor]:
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, (list, tuple)):
        return [t for o in output for t in _flatten(o)]
    if isinstance(output, dict):
        return [t for k in sorted(output) for t in _flatten(output[k])]
    return []


def compare_outputs(reference, candidate) -> dict:
    """Largest difference between two (nested) tensor outputs.

    Args:
        reference: Tensor, or list/tuple/dict of them (the plain output).
        candidate: The same structure (the deployed output).

    Returns:
        dict: ``max_abs_diff``, ``ref_max_abs`` and ``rel_diff``
        (``max_abs_diff / ref_max_abs``), or ``error`` when the structures
        or shapes differ.
    """
    refs, cands = _flatten(reference), _flatten(candidate)
    shapes = [tuple(t.shape) for t in refs]
    if shapes != [tuple(t.shape) for t in cands]:
        return dict(error=f'shapes differ: plain {shapes} vs deployed '
                    f'{[tuple(t.shape) for t in cands]}')
    diff = max((float((a.float() - b.float()).abs().max())
                for a, b in zip(refs, cands) if a.numel()), default=0.0)
    scale = max((float(a.float().abs().max()) for a in refs if a.numel()),
                default=0.0)
    return dict(max_abs_diff=diff, ref_max_abs=scale,
                rel_diff=diff / scale if scale else diff)


# ------------------------------------------------------------ the contract
# One equivalence contract for every comparison of two inference paths
# (deployed vs plain, our components vs mmdet's, ONNX runtimes vs PyTorch):
# :func:`compare_detections`. Matched detections agree within a tolerance;
# a detection on one side only is allowed solely where a recomputation
# with the reference model shows that a near-tie decided it (a score tie at
# a top-k cut, an IoU at an NMS threshold, or what follows from either).

#: Tolerances of a match: box coordinates in pixels, scores absolute.
BOX_TOLERANCE = 0.01
SCORE_TOLERANCE = 1e-4
#: Scores closer than this may come out in either order. Measured
#: 2026-12-02 (Intel Xeon, AVX-512/AMX): ONNX Runtime and OpenVINO move RPN
#: and final scores by up to 4.2e-7 and 6.7e-7 from PyTorch's; two scores
#: swap only when their gap is below the sum of their errors (< 1.4e-6).
TIE_EPS = 2e-6
#: An IoU within this of an NMS threshold may be decided either way: boxes
#: move by < 0.00034 px between paths and the per-class NMS shift (up to
#: 80 x 321 px) rounds float32 coordinates to 0.002 px, which moves the
#: IoU of boxes of 4 px or more by < 1e-3.
IOU_EPS = 1e-3
#: Proposals past the RPN's ``max_per_img`` examined for near-ties.
RPN_EXTRA = 8


class DecisionRules(NamedTuple):
    """The post-processing decisions of one stage that rounding may flip.

    Attributes:
        iou_thr (float): The stage's NMS IoU threshold.
        max_per_img (int): Its top-k cut.
    """
    iou_thr: float
    max_per_img: int

    @classmethod
    def of(cls, stage_cfg) -> 'DecisionRules':
        """From ``test_cfg.rcnn`` or ``test_cfg.rpn`` (``nms.iou_threshold``,
        ``max_per_img``)."""
        return cls(float(stage_cfg['nms']['iou_threshold']),
                   int(stage_cfg['max_per_img']))


def _instances(result) -> tuple:
    """(bboxes (K, 4), scores (K,), labels (K,)) of a ``DetDataSample``, an
    ``InstanceData``, a ``tools/test.py --out`` record or a torchvision
    detection dict, on the CPU, float64."""
    if isinstance(result, dict) and 'pred_instances' in result:
        result = result['pred_instances']  # tools/test.py --out pickle
    if isinstance(result, dict):
        boxes = result['boxes' if 'boxes' in result else 'bboxes']
        scores, labels = result['scores'], result['labels']
    else:
        pred = getattr(result, 'pred_instances', result)
        boxes, scores, labels = pred.bboxes, pred.scores, pred.labels
    boxes, scores, labels = (torch.as_tensor(t) for t in (boxes, scores,
                                                          labels))
    return (boxes.detach().cpu().double().reshape(-1, 4),
            scores.detach().cpu().double().reshape(-1),
            labels.detach().cpu().reshape(-1))


def match_detections(reference: tuple, candidate: tuple, box_tol: float,
                     score_tol: float, out: dict) -> Tuple[List[int], List[int]]:
    """Pair the detections of one image greedily, in reference order.

    A pair needs the same label, boxes within ``box_tol`` (max over the
    coordinates) and scores within ``score_tol``; of the free candidates,
    the closest box is taken. ``out``'s ``matched``, ``max_box_diff`` and
    ``max_score_diff`` are updated.

    Args:
        reference (tuple): (boxes (R, 4), scores (R,), labels (R,)), as
            :func:`_instances` returns.
        candidate (tuple): (boxes (C, 4), scores (C,), labels (C,)).
        box_tol (float): Pixels.
        score_tol (float): Score tolerance.
        out (dict): Running totals, updated in place.

    Returns:
        tuple[list[int], list[int]]: Indices of the unmatched reference and
        candidate detections.
    """
    (rb, rs, rl), (cb, cs, cl) = reference, candidate
    box_diff = (rb[:, None] - cb[None]).abs().amax(-1) if len(rs) and \
        len(cs) else torch.zeros(len(rs), len(cs), dtype=torch.float64)
    score_diff = (rs[:, None] - cs[None]).abs()
    ok = (rl[:, None] == cl[None]) & (box_diff <= box_tol) & \
        (score_diff <= score_tol)
    taken = torch.zeros(len(cs), dtype=torch.bool)
    unmatched_ref = []
    for i in range(len(rs)):
        free = (ok[i] & ~taken).nonzero().view(-1)
        if free.numel() == 0:
            unmatched_ref.append(i)
            continue
        j = int(free[box_diff[i, free].argmin()])
        taken[j] = True
        out['matched'] += 1
        out['max_box_diff'] = max(out['max_box_diff'], float(box_diff[i, j]))
        out['max_score_diff'] = max(out['max_score_diff'],
                                    float(score_diff[i, j]))
    return unmatched_ref, (~taken).nonzero().view(-1).tolist()


def compare_detections(reference: list, candidate: list,
                       worlds: Optional[List[dict]] = None,
                       rules: Optional[DecisionRules] = None,
                       box_tol: float = BOX_TOLERANCE,
                       score_tol: float = SCORE_TOLERANCE) -> dict:
    """The equivalence contract: match two paths' detections, image by
    image, and explain every detection on one side only, or report it.

    A reference and a candidate detection match when the labels are equal,
    every box coordinate is within ``box_tol`` px and the score within
    ``score_tol`` (any order: exact ties may reorder). Without ``worlds``
    nothing else is allowed. With them (:func:`reference_worlds`: the
    reference model's own pre-NMS candidates, recomputed, for each proposal
    set that an RPN near-tie allows), a detection on one side only (X; the
    other side is Y) is explained only by one of these reasons, each
    checked on the numbers:

    - ``rpn``: its R-CNN candidate exists for one allowed proposal set and
      not for another (an RPN near-tie decided it);
    - ``iou``: Y holds a same-label box scored at least as high (-TIE_EPS)
      whose IoU with it is within IOU_EPS of ``rules.iou_thr`` (suppressed
      on one side, not on the other);
    - ``tie``: Y holds a same-label box within TIE_EPS in score with IoU
      above ``iou_thr - IOU_EPS`` (the NMS order of a score tie);
    - ``cascade``: as ``iou`` with any IoU above ``iou_thr - IOU_EPS``,
      where that box is itself an explained one-side detection of Y;
    - ``cut``: Y is full (``rules.max_per_img``) and it scores no higher
      than Y's lowest + TIE_EPS (displaced at the final top-k), as many
      times at most as Y holds other one-side detections or ties at its
      cut.

    A candidate detection that none of the reference's pre-NMS candidates
    reproduces (for any allowed proposal set) is always a difference: a
    moved box, a wrong label or score is never a near-tie.

    Args:
        reference (list): Per image, a ``DetDataSample`` (or
            ``InstanceData``, ``tools/test.py --out`` record, torchvision
            ``boxes``/``scores``/``labels`` dict) of the reference path.
        candidate (list): The same images, of the other path.
        worlds (list[dict], optional): Per image, :func:`reference_worlds`'s
            ``pools`` (and ``unexplained``, differences found upstream).
        rules (DecisionRules, optional): The R-CNN's NMS threshold and cut;
            needed with ``worlds``.
        box_tol (float): Pixels. Default: :data:`BOX_TOLERANCE`.
        score_tol (float): Default: :data:`SCORE_TOLERANCE`.

    Returns:
        dict: ``images``, ``detections`` (reference), ``matched``,
        ``max_box_diff`` / ``max_score_diff`` over matched pairs,
        ``explained`` (count per reason), ``margins`` (per reason, the
        largest distance to its boundary seen), ``differences`` (up to 10,
        ``(image, side, label, score, box)``), ``num_differences`` and
        ``equal`` (every difference explained).
    """
    if len(reference) != len(candidate) or \
            (worlds is not None and len(worlds) != len(reference)):
        raise ValueError(f'compare_detections: {len(reference)} reference '
                         f'vs {len(candidate)} candidate images'
                         + ('' if worlds is None else
                            f' and {len(worlds)} worlds'))
    if worlds is not None and rules is None and any(worlds):
        raise ValueError('compare_detections: worlds need the rules '
                         '(DecisionRules) they were decided by')
    out = dict(images=len(reference), detections=0, matched=0,
               max_box_diff=0.0, max_score_diff=0.0, explained={},
               margins={}, differences=[], num_differences=0)
    for index, (ref, cand) in enumerate(zip(reference, candidate)):
        sides = (_instances(ref), _instances(cand))
        out['detections'] += len(sides[0][1])
        only = match_detections(*sides, box_tol, score_tol, out)
        world = None if worlds is None else worlds[index]
        explained = ({}, {}) if world is None else _explain(
            sides, only, world, rules, box_tol, score_tol, out)
        for reason in [] if world is None else world.get('unexplained', []):
            _difference(out, (index, 'proposals', 0, *reason))
        for side, name in ((0, 'reference'), (1, 'candidate')):
            boxes, scores, labels = sides[side]
            for k in only[side]:
                if k not in explained[side]:
                    _difference(out, (index, name, int(labels[k]),
                                      float(scores[k]),
                                      [round(float(v), 2) for v in boxes[k]]))
    out['equal'] = out['num_differences'] == 0
    return out


def _difference(out: dict, what: tuple) -> None:
    out['num_differences'] += 1
    if len(out['differences']) < 10:
        out['differences'].append(what)


def _note(out: dict, reason: str, margin: float) -> None:
    out['explained'][reason] = out['explained'].get(reason, 0) + 1
    out['margins'][reason] = max(out['margins'].get(reason, 0.0), margin)


def _in_pool(box, score, label, pool, box_tol, score_tol) -> bool:
    b, s, lab = pool
    return bool(((lab == label) & ((b - box).abs().amax(-1) <= box_tol)
                 & ((s - score).abs() <= score_tol)).any())


def _explain(sides, only, world, rules, box_tol, score_tol, out):
    """Per side, ``{index: reason}`` of the one-side detections that a
    near-tie explains (see :func:`compare_detections`)."""
    pools = world['pools']
    explained, foreign = ({}, {}), set()
    for side in (0, 1):
        boxes, scores, labels = sides[side]
        for k in only[side]:
            found = [_in_pool(boxes[k], scores[k], labels[k], p, box_tol,
                              score_tol) for p in pools]
            if side == 1 and not any(found):
                foreign.add(k)  # the reference never computes it
            elif found[0] != (side == 1) and len(found) > 1 and \
                    any(f != found[0] for f in found[1:]):
                # Out (candidate side: in) for its own proposals, in (out)
                # for another allowed set.
                explained[side][k] = 'rpn'
                _note(out, 'rpn', 0.0)
    changed = True
    while changed:
        changed = False
        for side in (0, 1):
            for k in only[side]:
                if k in explained[side] or (side == 1 and k in foreign):
                    continue
                why = _near_tie(sides[side], sides[1 - side], k,
                                explained[1 - side], rules)
                if why is None:
                    why = _at_cut(sides, only, side, k, explained, rules)
                if why:
                    explained[side][k] = why[0]
                    _note(out, *why)
                    changed = True
    return explained


def _near_tie(x, y, k, y_explained, rules):
    """Why X's detection ``k`` may be suppressed on one side only: an NMS
    decision against a box of Y (``iou``, ``tie``, ``cascade``), or None."""
    (xb, xs, xl), (yb, ys, yl) = x, y
    if not len(ys):
        return None
    ious = box_iou(xb[k:k + 1], yb)[0]
    for e in (yl == xl[k]).nonzero().view(-1).tolist():
        iou, gap = float(ious[e]), float(ys[e] - xs[k])
        if gap >= -TIE_EPS and abs(iou - rules.iou_thr) <= IOU_EPS:
            return 'iou', abs(iou - rules.iou_thr)
        if abs(gap) <= TIE_EPS and iou > rules.iou_thr - IOU_EPS:
            return 'tie', abs(gap)
        if e in y_explained and gap >= -TIE_EPS and \
                iou > rules.iou_thr - IOU_EPS:
            return 'cascade', 0.0
    return None


def _at_cut(sides, only, side, k, explained, rules):
    """``cut`` when Y is full and X's detection ``k`` sits at or below Y's
    lowest score (+TIE_EPS), and Y holds more displacing detections (its
    one-side ones not themselves at the cut, or a near-tie at its cut) than
    X already has ``cut`` explanations; else None."""
    ys = sides[1 - side][1]
    score = float(sides[side][1][k])
    if len(ys) < rules.max_per_img or score > float(ys.min()) + TIE_EPS:
        return None
    lowest = float(ys.min())
    displacers = sum(1 for j in only[1 - side]
                     if explained[1 - side].get(j) != 'cut'
                     and float(ys[j]) > lowest + TIE_EPS)
    tie_at_cut = abs(score - lowest) <= TIE_EPS
    used = sum(1 for reason in explained[side].values() if reason == 'cut')
    if not tie_at_cut and used >= displacers:
        return None
    return 'cut', max(0.0, score - lowest)


# ------------------------------------------------------------- the worlds
def _pool(boxes: Tensor, scores: Tensor, labels: Tensor,
          floor: float) -> tuple:
    """Float64 CPU candidates scoring at least ``floor``; fewer candidates
    only make the contract stricter."""
    keep = scores >= floor
    return (boxes[keep].detach().cpu().double(),
            scores[keep].detach().cpu().double(), labels[keep].detach().cpu())


def rcnn_candidates(model: nn.Module, rcnn_x: tuple, proposals: list,
                    metas: List[dict], floors: List[float]) -> List[tuple]:
    """The R-CNN's pre-NMS candidates: every (box, score, label) of every
    proposal and class, decoded and rescaled as the head's
    ``predict_by_feat`` does before its NMS, recomputed through mmdet's
    raw-result path (``rcnn_test_cfg=None``).

    Args:
        model (nn.Module): A ``LightHeadRCNN``.
        rcnn_x (tuple[Tensor]): The R-CNN's feature map, (N, C, H, W).
        proposals (list[InstanceData]): Per image, ``bboxes`` (P, 4).
        metas (list[dict]): Per image, ``img_shape``, ``scale_factor``.
        floors (list[float]): Per image, the lowest score worth keeping.

    Returns:
        list[tuple]: Per image, (boxes (K, 4), scores (K,), labels (K,)).
    """
    head = model.roi_head
    raw = head.predict_bbox(head.ps_score_map(rcnn_x), metas, proposals,
                            rcnn_test_cfg=None, rescale=True)
    pools = []
    for result, floor in zip(raw, floors):
        scores = result.scores[:, :-1]  # softmax; background last
        num, classes = scores.shape
        boxes = result.bboxes.view(num, -1, 4).expand(num, classes, 4)
        labels = torch.arange(classes).repeat(num)
        pools.append(_pool(boxes.reshape(-1, 4), scores.reshape(-1),
                           labels, floor))
    return pools


def _as_detections(proposals) -> dict:
    """RPN proposals as class-0 detections, for :func:`compare_detections`."""
    return dict(bboxes=proposals.bboxes, scores=proposals.scores,
                labels=torch.zeros(len(proposals), dtype=torch.long))


def proposals_of(model: nn.Module, data: dict) -> list:
    """A detector's RPN proposals for a batch (``test_step``'s, before the
    R-CNN): per image, ``InstanceData`` with ``bboxes`` (P, 4) and
    ``scores`` (P,)."""
    with torch.no_grad():
        data = model.data_preprocessor(data, False)
        rpn_x, _ = model._split(model.extract_feat(data['inputs']))
        return model.rpn_head.predict(rpn_x, data['data_samples'],
                                      rescale=False)


def reference_worlds(model: nn.Module, data: dict,
                     candidate_proposals: Optional[list] = None
                     ) -> List[dict]:
    """What :func:`compare_detections` recomputes with the reference model.

    Per image, ``result`` (the reference's ``DetDataSample``, as
    ``test_step`` gives it) and ``pools``: the R-CNN's pre-NMS candidates
    (:func:`rcnn_candidates`), first for the reference's own proposals,
    then for each other proposal set that an RPN near-tie allows:

    - a score tie (<= TIE_EPS) at the RPN's ``max_per_img`` cut (one
      proposal in, one out);
    - ``candidate_proposals`` (the other path's own, where it exposes
      them: :func:`proposals_of`), when they differ from the reference's
      only by what :func:`compare_detections` explains at the RPN stage
      (its NMS threshold and cut, against the RPN's own pre-NMS
      candidates); where they differ otherwise, ``unexplained`` lists the
      proposals that do.

    Args:
        model (nn.Module): The reference ``LightHeadRCNN``, eval mode.
        data (dict): A batch as the dataloader gives it (``inputs``,
            ``data_samples``).
        candidate_proposals (list, optional): Per image, the other path's
            proposals (``bboxes``, ``scores``).

    Returns:
        list[dict]: Per image, ``result``, ``pools``, ``rpn_ties``
        (``(score in, score out)`` pairs) and ``unexplained``.
    """
    rpn = model.rpn_head
    with torch.no_grad():
        data = model.data_preprocessor(data, False)
        samples = data['data_samples']
        metas = [s.metainfo for s in samples]
        rpn_x, rcnn_x = model._split(model.extract_feat(data['inputs']))
        rpn_out = rpn(rpn_x)
        cfg = copy.deepcopy(rpn.test_cfg)
        cut = cfg.max_per_img
        cfg.max_per_img = cut + RPN_EXTRA
        wide = rpn.predict_by_feat(*rpn_out, batch_img_metas=metas, cfg=cfg,
                                   rescale=False)
        proposals = [p[:cut] for p in wide]
        results = model.add_pred_to_datasample(
            samples, model.roi_head.predict(rcnn_x, proposals, samples,
                                            rescale=True))
        floors = [float(r.pred_instances.scores.min()) - SCORE_TOLERANCE
                  if len(r.pred_instances) else 0.0 for r in results]
        pools = rcnn_candidates(model, rcnn_x, proposals, metas, floors)
        worlds = [dict(result=r, pools=[p], rpn_ties=[], unexplained=[])
                  for r, p in zip(results, pools)]
        for i, world in enumerate(worlds):
            one = (tuple(t[i:i + 1] for t in rcnn_x), [metas[i]], floors[i])
            for alt, tie in _rpn_cut_ties(wide[i], cut):
                world['pools'] += rcnn_candidates(model, one[0], [alt],
                                                  one[1], [one[2]])
                world['rpn_ties'].append(tie)
            if candidate_proposals is not None:
                _add_candidate_world(model, world, one, rpn_out, i, metas,
                                     proposals[i], candidate_proposals[i])
    return worlds


def _rpn_cut_ties(wide, cut: int):
    """(proposal set, (score in, score out)) for each swap that a score
    tie at the RPN's cut allows."""
    s = wide.scores
    if len(s) <= cut or float(s[cut - 1] - s[cut]) > TIE_EPS:
        return
    # At most RPN_EXTRA on each side (the closest to the cut): a sea of
    # ties (random weights) would otherwise make thousands of worlds.
    ins = [i for i in range(cut) if s[i] <= s[cut] + TIE_EPS][-RPN_EXTRA:]
    outs = [j for j in range(cut, len(s)) if s[j] >= s[cut - 1] - TIE_EPS]
    for p in ins:
        for q in outs:
            keep = torch.tensor([i for i in range(cut) if i != p] + [q])
            keep = keep[s[keep].argsort(descending=True, stable=True)]
            yield wide[keep], (float(s[p]), float(s[q]))


def _add_candidate_world(model, world, one, rpn_out, i, metas, own,
                         proposals):
    """Check the other path's proposals of image ``i`` against the
    reference's at the RPN stage; if they differ, explained, add the
    R-CNN's pool for them (else list the unexplained proposals)."""
    rpn = model.rpn_head
    own, other = [_as_detections(own)], [_as_detections(proposals)]
    if compare_detections(own, other)['equal']:
        return
    cfg = copy.deepcopy(rpn.test_cfg)
    # Every pre-NMS candidate: an IoU threshold no pair exceeds.
    cfg.nms = dict(type='nms', iou_threshold=1.0)
    cfg.max_per_img = 10**9
    every = rpn.predict_by_feat(*[[t[i:i + 1] for t in level]
                                  for level in rpn_out],
                                batch_img_metas=[metas[i]], cfg=cfg,
                                rescale=False)[0]
    pool = _pool(every.bboxes, every.scores,
                 torch.zeros(len(every), dtype=torch.long), -1.0)
    rules = DecisionRules.of(rpn.test_cfg)
    check = compare_detections(own, other, worlds=[dict(pools=[pool])],
                               rules=rules)
    if not check['equal']:
        world['unexplained'] += [d[3:] for d in check['differences']]
        return
    world['pools'] += rcnn_candidates(model, one[0], [proposals], one[1],
                                      [one[2]])
    world['rpn_ties'].append(('proposals', check['explained']))


def compare_with_recomputation(reference: list, candidate: list,
                               reference_model: nn.Module,
                               batches: Iterable[Tuple[List[int], dict]],
                               candidate_model: Optional[nn.Module] = None,
                               box_tol: float = BOX_TOLERANCE,
                               score_tol: float = SCORE_TOLERANCE) -> dict:
    """:func:`compare_detections`, recomputing :func:`reference_worlds` for
    the batches that hold an image whose detections differ.

    The recomputation must reproduce ``reference`` on those images
    (tolerances of a match), or the comparison says so: a world that is
    not the reference's explains nothing.

    Args:
        reference (list): Per image, the reference path's detections.
        candidate (list): Per image, the other path's.
        reference_model (nn.Module): The reference ``LightHeadRCNN``.
        batches (Iterable[tuple[list[int], dict]]): Image indices and the
            dataloader batch that produced them, in the reference's
            batching (padding depends on the batch).
        candidate_model (nn.Module, optional): The other path, where its
            proposals can be read (:func:`proposals_of`).
        box_tol (float): Pixels. Default: :data:`BOX_TOLERANCE`.
        score_tol (float): Default: :data:`SCORE_TOLERANCE`.

    Returns:
        dict: :func:`compare_detections`'s, plus ``recomputed`` (images).
    """
    tol = dict(box_tol=box_tol, score_tol=score_tol)
    differ = {i for i, (ref, cand) in enumerate(zip(reference, candidate))
              if not compare_detections([ref], [cand], **tol)['equal']}
    worlds = [None] * len(reference)
    for indices, data in batches if differ else ():
        if differ.isdisjoint(indices):
            continue
        proposals = None if candidate_model is None else \
            proposals_of(candidate_model, data)
        for i, world in zip(indices, reference_worlds(reference_model, data,
                                                      proposals)):
            if not compare_detections([reference[i]], [world['result']],
                                      **tol)['equal']:
                world = dict(pools=[], unexplained=[
                    ('the recomputed reference differs', i)])
            worlds[i] = world
    out = compare_detections(reference, candidate, worlds,
                             DecisionRules.of(reference_model.test_cfg.rcnn),
                             **tol)
    out['recomputed'] = sum(w is not None for w in worlds)
    return out


def detection_agreement(reference: list, candidate: list, score_thr: float = 0.3) -> dict:
    """COCO AP of ``candidate`` with ``reference``'s confident detections as ground truth.

    Measures how well a reduced-precision model reproduces its float32
    twin independently of annotations: the reference detections scoring
    above ``score_thr`` become the boxes to find (``pycocotools``'s
    ``COCOeval``, all classes, 100 detections per image).

    Args:
        reference (list): mmdet predictions (``DumpDetResults`` pickle
            entries, or DetDataSamples) of the reference model.
        candidate (list): Predictions of the candidate, same images.
        score_thr (float): Reference detections above it are ground truth.

    Returns:
        dict: ``ap50``, ``ap`` (IoU .5:.95), ``gt_boxes`` (ground truth
        count), ``images``.
    """
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    images, anns, dets = [], [], []
    for img_id, (ref, cand) in enumerate(zip(reference, candidate)):
        images.append(dict(id=img_id))
        for (x1, y1, x2, y2), score, label in zip(*(t.tolist() for t in _instances(ref))):
            if score > score_thr:
                anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=int(label),
                                 bbox=[x1, y1, x2 - x1, y2 - y1], iscrowd=0,
                                 area=(x2 - x1) * (y2 - y1)))
        for (x1, y1, x2, y2), score, label in zip(*(t.tolist() for t in _instances(cand))):
            dets.append(dict(image_id=img_id, category_id=int(label),
                             bbox=[x1, y1, x2 - x1, y2 - y1], score=score))
    labels = {a['category_id'] for a in anns} | {d['category_id'] for d in dets}
    gt = COCO()
    gt.dataset = dict(images=images, annotations=anns,
                      categories=[dict(id=c) for c in sorted(labels)])
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(dets) if dets else COCO(), 'bbox')
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(ap50=float(evaluator.stats[1]), ap=float(evaluator.stats[0]),
                gt_boxes=len(anns), images=len(images))

