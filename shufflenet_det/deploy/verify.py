"""Check a deployed model against its plain twin, part by part and on its
final detections."""
from typing import Dict, Iterable, List, Tuple

import torch
import torch.nn as nn
from torch import Tensor

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


#: Tolerances of :func:`compare_detections` (issue: detections of the
#: deployed model equal the plain model's): box coordinates in pixels,
#: scores absolute.
BOX_TOLERANCE = 0.01
SCORE_TOLERANCE = 1e-4


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
                       box_tol: float = BOX_TOLERANCE,
                       score_tol: float = SCORE_TOLERANCE) -> dict:
    """Match the final detections of two models, image by image.

    Detection ``a`` of the reference matches an unmatched ``b`` of the
    candidate when the labels are equal, every box coordinate is within
    ``box_tol`` and the score within ``score_tol``; order does not matter
    (exactly tied scores may come in any order). A detection left
    unmatched whose score is within ``score_tol`` of its image's lowest
    kept score is a *boundary swap*: a near-tie at the ``max_per_img`` cut
    that rounding may decide either way; any other unmatched detection is
    a real difference.

    Args:
        reference (list): ``DetDataSample`` (or ``InstanceData``, or a
            torchvision ``boxes``/``scores``/``labels`` dict) per image, of
            the plain model.
        candidate (list): The same images, of the deployed model.
        box_tol (float): Pixels. Default: :data:`BOX_TOLERANCE`.
        score_tol (float): Default: :data:`SCORE_TOLERANCE`.

    Returns:
        dict: ``images``, ``detections`` (reference), ``matched``,
        ``max_box_diff`` / ``max_score_diff`` over matched pairs,
        ``boundary_swaps``, ``differences`` (up to 10 unmatched
        detections ``(image, 'reference'|'candidate', label, score)``),
        ``num_differences`` and ``equal`` (no difference but boundary
        swaps).
    """
    if len(reference) != len(candidate):
        raise ValueError(f'compare_detections: {len(reference)} reference '
                         f'vs {len(candidate)} candidate images')
    out = dict(images=len(reference), detections=0, matched=0,
               max_box_diff=0.0, max_score_diff=0.0, boundary_swaps=0,
               differences=[], num_differences=0)
    for index, (ref, cand) in enumerate(zip(reference, candidate)):
        (_, rs, rl), (_, cs, cl) = sides = _instances(ref), _instances(cand)
        out['detections'] += len(rs)
        unmatched_ref, unmatched_cand = match_detections(*sides, box_tol, score_tol, out)
        cut = min((float(t.min()) for t in (rs, cs) if len(t)),
                  default=0.0)
        for side, scores, labels, idx in (
                ('reference', rs, rl, unmatched_ref),
                ('candidate', cs, cl, unmatched_cand)):
            for k in idx:
                if abs(float(scores[k]) - cut) <= score_tol:
                    out['boundary_swaps'] += 1
                    continue
                out['num_differences'] += 1
                if len(out['differences']) < 10:
                    out['differences'].append(
                        (index, side, int(labels[k]), float(scores[k])))
    out['equal'] = out['num_differences'] == 0
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
