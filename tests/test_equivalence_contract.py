"""The one equivalence contract (shufflenet_det.deploy.verify.
compare_detections) on hand-made detections: each near-tie it allows is
explained on the numbers, and a moved box, a wrong label, a lost confident
detection or a low score without a tie fail."""
import pytest
import torch

from shufflenet_det.deploy.verify import (IOU_EPS, TIE_EPS, DecisionRules,
                                          compare_detections)

RULES = DecisionRules(iou_thr=0.5, max_per_img=3)
# Four same-label boxes: B overlaps A at IoU 0.4999 (100 / 200.04), just
# below the NMS threshold; C and D are apart from both.
A = [0., 0., 10., 10.]
B = [0., 0., 10., 20.004]
C = [50., 50., 60., 60.]
D = [100., 100., 110., 110.]
E = [200., 200., 210., 210.]


def dets(*items):
    boxes, scores, labels = zip(*items) if items else ((), (), ())
    return dict(boxes=torch.tensor(boxes).reshape(-1, 4),
                scores=torch.tensor(scores, dtype=torch.float64),
                labels=torch.tensor(labels, dtype=torch.long))


def pool(*items):
    d = dets(*items)
    return d['boxes'].double(), d['scores'], d['labels']


#: The reference's pre-NMS candidates (all of the boxes above, label 1).
POOL = pool((A, .9, 1), (B, .8, 1), (C, .7, 1), (D, .3, 1),
            (E, .3 - TIE_EPS / 2, 1))
#: The same with one more candidate, E as label 2 at 0.35.
POOL_E2 = pool((A, .9, 1), (B, .8, 1), (C, .7, 1), (D, .3, 1),
               (E, .3 - TIE_EPS / 2, 1), (E, .35, 2))


def check(reference, candidate, pools=(POOL, )):
    return compare_detections([reference], [candidate],
                              [dict(pools=list(pools))], RULES)


def test_without_worlds_only_matches_pass():
    ref = dets((A, .9, 1), (C, .7, 1))
    assert compare_detections([ref], [ref])['equal']
    near = dets((A, .90005, 1), ([0.005, 0, 10, 10], .7, 1))
    out = compare_detections([ref], [near])
    assert not out['equal'] and out['num_differences'] == 2
    assert compare_detections([ref], [ref], box_tol=0.0,
                              score_tol=0.0)['matched'] == 2


def test_iou_at_the_threshold_is_explained():
    # B survives NMS on one side (IoU 0.4999 < 0.5) and not on the other.
    out = check(dets((A, .9, 1), (B, .8, 1), (C, .7, 1)),
                dets((A, .9, 1), (C, .7, 1), (D, .3, 1)))
    assert out['equal'], out
    assert out['explained'] == {'iou': 1, 'cut': 1}, out
    assert out['margins']['iou'] < IOU_EPS


def test_score_tie_at_the_cut_is_explained():
    out = check(dets((A, .9, 1), (C, .7, 1), (D, .3, 1)),
                dets((A, .9, 1), (C, .7, 1), (E, .3 - TIE_EPS / 2, 1)))
    assert out['equal'] and out['explained'] == {'cut': 2}, out


def test_rpn_near_tie_is_explained_by_its_other_world():
    # In the other proposal set, D's proposal is out and E's (label 2) in.
    other = pool((A, .9, 1), (C, .7, 1), (E, .35, 2))
    out = check(dets((A, .9, 1), (C, .7, 1), (D, .3, 1)),
                dets((A, .9, 1), (E, .35, 2), (C, .7, 1)), (POOL, other))
    assert out['equal'] and out['explained'] == {'rpn': 2}, out


@pytest.mark.parametrize('change', ['moved box', 'wrong label',
                                    'lost confident', 'low score, no tie',
                                    'moved box at the cut'])
def test_wrong_detections_fail(change):
    ref = dets((A, .9, 1), (C, .7, 1), (D, .3, 1))
    cand = {
        'moved box': dets(([1., 0., 11., 10.], .9, 1), (C, .7, 1),
                          (D, .3, 1)),
        'wrong label': dets((A, .9, 2), (C, .7, 1), (D, .3, 1)),
        'lost confident': dets((C, .7, 1), (D, .3, 1)),
        # E (label 2) at 0.35 is a real candidate, but D at 0.3 is not tied
        # with it: "a low score" explains nothing.
        'low score, no tie': dets((A, .9, 1), (C, .7, 1), (E, .35, 2)),
        'moved box at the cut': dets((A, .9, 1), (C, .7, 1),
                                     ([100., 101., 110., 111.], .3, 1)),
    }[change]
    out = check(ref, cand, (POOL_E2, ))
    assert not out['equal'], (change, out)
    assert out['differences'][0][0] == 0


def test_upstream_differences_are_differences():
    ref = dets((A, .9, 1))
    out = compare_detections([ref], [ref], [dict(
        pools=[POOL], unexplained=[(0.5, [1, 2, 3, 4])])], RULES)
    assert not out['equal'] and out['differences'][0][1] == 'proposals'


def test_rules_of_a_config_and_bad_input():
    assert DecisionRules.of(dict(nms=dict(iou_threshold=0.7),
                                 max_per_img=1000)) == (0.7, 1000)
    with pytest.raises(ValueError, match='2 reference vs 1 candidate'):
        compare_detections([dets(), dets()], [dets()])
    with pytest.raises(ValueError, match='need the rules'):
        compare_detections([dets()], [dets()], [dict(pools=[POOL])])


@pytest.fixture(scope='module')
def tiny():
    """A random-weight ShuffleNet v2 0.5x detector and a batch of two
    128x160 images."""
    from tests.conftest import base_model_cfg
    from tests.utils_detector import PROPOSALS, calibrated_detector
    cfg = base_model_cfg()
    cfg.backbone.arch = '0.5x'
    cfg.test_cfg.rpn.max_per_img = PROPOSALS
    model, data = calibrated_detector(cfg, batch_size=2, img_size=(128, 160))
    return model, data


def test_reference_worlds_recompute_the_reference(tiny):
    from shufflenet_det.deploy.verify import proposals_of, reference_worlds
    model, data = tiny
    with torch.no_grad():
        expected = model.test_step(data)
    worlds = reference_worlds(model, data)
    rules = DecisionRules.of(model.test_cfg.rcnn)
    got = [w['result'] for w in worlds]
    out = compare_detections(expected, got, box_tol=0.0, score_tol=0.0)
    assert out['equal'] and out['matched'] == out['detections'] > 0, out
    # Every final detection is one of its own pool's candidates.
    assert compare_detections(expected, got, worlds, rules)['equal']
    # The same proposals add no world; moved ones are named.
    props = proposals_of(model, data)
    same = reference_worlds(model, data, props)
    assert [len(w['pools']) for w in same] == \
        [len(w['pools']) for w in worlds]
    assert not any(w['unexplained'] for w in same)
    props[1].bboxes[:3] += 3.0
    moved = reference_worlds(model, data, props)
    assert not moved[0]['unexplained'] and len(moved[1]['unexplained']) >= 3
    out = compare_detections(expected, got, moved, rules)
    assert not out['equal'] and out['differences'][0][:2] == (1, 'proposals')


def test_explained_proposals_add_their_world(tiny, monkeypatch):
    """The other path's proposals differ by one swap at the RPN's cut; with
    a tie margin wide enough to call it a near-tie, the reference's R-CNN
    candidates for those proposals become a world of their own."""
    from shufflenet_det.deploy import verify
    model, data = tiny
    cut = model.rpn_head.test_cfg.max_per_img
    monkeypatch.setitem(model.rpn_head.test_cfg, 'max_per_img', cut + 1)
    wide = verify.proposals_of(model, data)
    monkeypatch.setitem(model.rpn_head.test_cfg, 'max_per_img', cut)
    own = verify.proposals_of(model, data)
    assert all(len(w) == cut + 1 for w in wide)
    swapped = [own[0], wide[1][torch.tensor([*range(cut - 1), cut])]]
    # Scores apart: not a near-tie, the swapped proposals are named.
    assert len(verify.reference_worlds(model, data,
                                       swapped)[1]['unexplained']) == 2
    monkeypatch.setattr(verify, 'TIE_EPS', 1.0)
    worlds = verify.reference_worlds(model, data, swapped)
    assert len(worlds[1]['pools']) == len(worlds[0]['pools']) + 1
    assert worlds[1]['rpn_ties'][-1] == ('proposals', {'cut': 2})
