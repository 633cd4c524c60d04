"""LightHeadRoIHead: losses with/without GT, official top-k OHEM, predict."""
import copy

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.structures import InstanceData

from tests.conftest import base_model_cfg, make_data_samples

IMG = (128, 160)
C_IN = 32  # channels of the stride-32 feature fed to the head


def build_head(**train_overrides):
    model = base_model_cfg()
    head = copy.deepcopy(model.roi_head)
    head.lsc.in_channels = C_IN
    head.bbox_roi_extractor.featmap_strides = [32]
    head.train_cfg = copy.deepcopy(model.train_cfg.rcnn)
    head.train_cfg.update(train_overrides)
    head.test_cfg = model.test_cfg.rcnn
    roi_head = MODELS.build(head)
    roi_head.init_weights()
    return roi_head


def proposals(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([120., 90.])
    wh = 8 + torch.rand(n, 2, generator=g) * 40
    boxes = torch.cat([xy, (xy + wh).clamp(max=torch.tensor([159., 127.]))],
                      dim=1)
    return [InstanceData(bboxes=boxes, scores=torch.rand(n, generator=g))]


def feats():
    return (torch.rand(1, C_IN, IMG[0] // 32, IMG[1] // 32), )


def test_subnet_is_490_fc2048_cls81_reg320():
    head = build_head()
    fc = head.bbox_head.shared_fcs
    assert len(fc) == 1 and fc[0].in_features == 490 \
        and fc[0].out_features == 2048
    assert head.bbox_head.fc_cls.out_features == 81
    assert head.bbox_head.fc_reg.out_features == 4 * 80
    assert head.lsc.in_channels == C_IN and head.lsc.mid_channels == 64
    cls_score, bbox_pred = head.forward(feats(), proposals(),
                                        make_data_samples(IMG))
    assert cls_score.shape == (40, 81) and bbox_pred.shape == (40, 320)


def test_loss_with_gt_is_finite_and_nonzero():
    head = build_head()
    losses = head.loss(feats(), proposals(), make_data_samples(IMG))
    assert set(losses) >= {'loss_cls', 'loss_bbox', 'acc'}
    for key in ('loss_cls', 'loss_bbox'):
        assert torch.isfinite(losses[key]) and losses[key] > 0, key
    (losses['loss_cls'] + losses['loss_bbox']).backward()
    assert head.lsc.col[0].weight.grad.abs().sum() > 0


def test_loss_without_gt_has_zero_box_loss():
    head = build_head()
    samples = make_data_samples(IMG, boxes=(), labels=())
    losses = head.loss(feats(), proposals(), samples)
    assert losses['loss_cls'] > 0
    assert losses['loss_bbox'] == 0


def test_ohem_backprops_only_the_topk_of_the_batch(monkeypatch):
    head = build_head(ohem_topk=5)
    seen = {}
    original = head.bbox_head.loss

    def spy(cls_score, *args, **kwargs):
        seen['n'] = cls_score.shape[0]
        return original(cls_score, *args, **kwargs)

    monkeypatch.setattr(head.bbox_head, 'loss', spy)
    head.loss(feats(), proposals(), make_data_samples(IMG))
    assert seen['n'] == 5
    # Without OHEM every sampled RoI (40 proposals + 2 GT) is used.
    head.ohem_topk = None
    head.loss(feats(), proposals(), make_data_samples(IMG))
    assert seen['n'] == 42


def _two_image_batch():
    """Image 0: 30 proposals jittered around its two GT boxes (positives,
    with a box loss on top of the classification loss: the hardest RoIs);
    image 1: 55 random proposals and no GT (negatives only)."""
    g = torch.Generator().manual_seed(5)
    gt = torch.tensor([[10., 20., 60., 90.], [70., 30., 150., 120.]])
    jitter = gt.repeat(15, 1) + 3 * torch.randn(30, 4, generator=g)
    first = InstanceData(bboxes=jitter, scores=torch.rand(30, generator=g))
    samples = make_data_samples(IMG) + make_data_samples(IMG, boxes=(),
                                                         labels=())
    samples[1].set_metainfo(dict(img_id=1))
    return [first, proposals(55, seed=1)[0]], samples


def test_ohem_keeps_topk_per_image_ranked_over_the_batch(monkeypatch):
    """Two images with different RoI counts: ``ohem_topk`` x 2 RoIs enter
    the loss, the hardest of the whole batch (all from image 0 here: the
    budget is per image, the ranking batch-wide, as the official
    ``sum_ohem_loss`` over a GPU's images); the re-forward of the kept RoIs
    gives the loss and gradients of a direct computation on them (the full
    forward with autograd, rows gathered), ranked by an independent
    cross-entropy + smooth L1."""
    import torch.nn.functional as F
    from mmdet.structures.bbox import bbox2roi
    k = 8
    head = build_head(ohem_topk=k)
    seen = {}
    original = head.bbox_loss

    def spy(x, sampling_results):
        seen.update(x=x, sampling_results=sampling_results)
        seen['out'] = original(x, sampling_results)
        return seen['out']

    head_loss = head.bbox_head.loss

    def loss_spy(cls_score, bbox_pred, rois, *args, **kwargs):
        seen['loss_rois'] = rois.detach()
        return head_loss(cls_score, bbox_pred, rois, *args, **kwargs)

    monkeypatch.setattr(head, 'bbox_loss', spy)
    props, samples = _two_image_batch()
    feat = (torch.rand(2, C_IN, IMG[0] // 32, IMG[1] // 32), )
    monkeypatch.setattr(head.bbox_head, 'loss', loss_spy)
    losses = head.loss(feat, props, samples)
    results = seen['sampling_results']
    assert [len(r.priors) for r in results] == [32, 55]  # + 2 GT in image 0
    # Direct computation: every RoI through the head with autograd.
    rois = bbox2roi([r.priors for r in results])
    all_targets = head.bbox_head.get_targets(results, head.train_cfg)
    labels, targets = all_targets[0], all_targets[2]
    full = head._bbox_forward(seen['x'], rois)
    per_roi = F.cross_entropy(full['cls_score'], labels, reduction='none')
    pos = (labels < 80).nonzero().view(-1)
    assert len(pos) > 2 * k  # enough positives to fill the batch budget
    deltas = full['bbox_pred'].view(len(rois), 80, 4)[pos, labels[pos]]
    per_roi = per_roi.detach().clone()
    per_roi[pos] += F.smooth_l1_loss(deltas, targets[pos], beta=1.0,
                                     reduction='none').sum(-1).detach()
    keep = per_roi.topk(2 * k).indices
    in_loss = seen['loss_rois']
    assert len(in_loss) == 2 * k  # ohem_topk per image
    assert sorted(in_loss.tolist()) == sorted(rois[keep].tolist())
    assert (in_loss[:, 0] == 0).all()  # image 1 (easy) contributes none
    monkeypatch.setattr(head.bbox_head, 'loss', head_loss)
    direct = head.bbox_head.loss(full['cls_score'][keep],
                                 full['bbox_pred'][keep], rois[keep],
                                 *[t[keep] for t in all_targets])
    for key in ('loss_cls', 'loss_bbox'):
        torch.testing.assert_close(losses[key], direct[key])
    params = [p for p in head.parameters() if p.requires_grad]
    got = torch.autograd.grad(losses['loss_cls'] + losses['loss_bbox'],
                              params, retain_graph=True, allow_unused=True)
    want = torch.autograd.grad(direct['loss_cls'] + direct['loss_bbox'],
                               params, allow_unused=True)
    for a, b in zip(got, want):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_hardest_rois_ranks_by_cls_plus_box_loss():
    head = build_head()
    num_classes = head.bbox_head.num_classes
    cls_score = torch.zeros(4, num_classes + 1)
    cls_score[:, num_classes] = 10.  # confident background everywhere
    labels = torch.tensor([num_classes, 2, num_classes, 5])
    bbox_pred = torch.zeros(4, 4 * num_classes)
    targets = torch.zeros(4, 4)
    targets[3] = 3.  # RoI 3: wrong class and a large box error
    weights = torch.zeros(4, 4)
    weights[[1, 3]] = 1.
    keep = head.hardest_rois(cls_score, bbox_pred, labels, torch.ones(4),
                             targets, weights, k=2)
    assert keep.tolist() == [3, 1]
    assert len(head.hardest_rois(cls_score, bbox_pred, labels, torch.ones(4),
                                 targets, weights, k=10)) == 4


def test_hardest_rois_ranks_by_the_unweighted_loss_like_sum_ohem_loss():
    """Official rule: top-k of cls + box loss, the x2 on the box loss applied
    only after the selection (loss_opr_without_box_weight.sum_ohem_loss,
    then ``loss_box *= 2`` in network_desp.py)."""
    head = build_head()
    assert head.bbox_head.loss_bbox.loss_weight == 2.0  # the official x2
    num_classes = head.bbox_head.num_classes
    labels = torch.tensor([num_classes, 2])  # RoI 0 background, 1 class 2
    cls_score = torch.zeros(2, num_classes + 1)
    cls_score[1, 2] = 3.
    bbox_pred = torch.zeros(2, 4 * num_classes)
    targets = torch.zeros(2, 4)
    targets[1] = 1.  # smooth L1 (beta 1) of 0.5 per delta: 2.0 in all
    weights = torch.zeros(2, 4)
    weights[1] = 1.
    # RoI 0: cls log(81) = 4.39 and no box loss; RoI 1: cls 1.61 + box 2.0
    # = 3.61 unweighted (so RoI 0 is harder), but 1.61 + 2 x 2.0 = 5.61
    # with the box loss weight applied (RoI 1 would be harder).
    cls = torch.nn.functional.cross_entropy(cls_score, labels,
                                            reduction='none')
    box = torch.nn.functional.smooth_l1_loss(
        bbox_pred.view(2, -1, 4)[1, 2], targets[1], reduction='sum')
    assert cls[0] > cls[1] + box and cls[0] < cls[1] + 2 * box
    keep = head.hardest_rois(cls_score, bbox_pred, labels, torch.ones(2),
                             targets, weights, k=1)
    assert keep.tolist() == [0]


@pytest.mark.parametrize('loss', ['loss_cls', 'loss_bbox'])
def test_ohem_with_zero_loss_weight_names_the_key(loss):
    model = base_model_cfg()
    head = copy.deepcopy(model.roi_head)
    head.lsc.in_channels = C_IN
    head.bbox_roi_extractor.featmap_strides = [32]
    head.train_cfg = copy.deepcopy(model.train_cfg.rcnn)
    head.test_cfg = model.test_cfg.rcnn
    head.bbox_head[loss].loss_weight = 0.
    with pytest.raises(ValueError, match=f'bbox_head.{loss}.loss_weight'):
        MODELS.build(head)


def test_predict_keeps_at_most_100_per_image():
    head = build_head().eval()
    with torch.no_grad():
        results = head.predict(feats(), proposals(n=200),
                               make_data_samples(IMG), rescale=False)
    assert len(results) == 1
    res = results[0]
    assert res.bboxes.shape[1] == 4 and len(res.bboxes) <= 100
    assert len(res.scores) == len(res.labels) == len(res.bboxes)


@pytest.mark.parametrize('path, value, match', [
    (('lsc', 'out_channels'), 392, 'lsc.out_channels'),
    (('bbox_head', 'in_channels'), 8, 'in_channels'),
    (('bbox_head', 'roi_feat_size'), 5, 'roi_feat_size'),
    (('train_cfg', 'ohem_topk'), 0, 'ohem_topk'),
])
def test_inconsistent_widths_name_the_key(path, value, match):
    model = base_model_cfg()
    head = copy.deepcopy(model.roi_head)
    head.lsc.in_channels = C_IN
    head.bbox_roi_extractor.featmap_strides = [32]
    head.train_cfg = copy.deepcopy(model.train_cfg.rcnn)
    head.test_cfg = model.test_cfg.rcnn
    head[path[0]][path[1]] = value
    with pytest.raises(ValueError, match=match):
        MODELS.build(head)


def test_more_than_one_feature_map_is_rejected():
    head = build_head()
    with pytest.raises(ValueError, match='exactly one feature map'):
        head.forward(feats() * 2, proposals(), make_data_samples(IMG))
