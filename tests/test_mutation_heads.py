"""Tests written for mutants that survived the fast tier (docs/mutation.md):
the heads' post-processing and export, the RoI head."""
import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData


def test_roi_head_export_predict_clips_to_the_image():
    """``export_predict`` clips every detection to ``img_shape``: RoIs that
    run past the image give boxes inside it."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from tests.conftest import base_model_cfg
    register_all_modules()
    cfg = base_model_cfg()
    cfg.backbone.arch = '0.5x'
    model = MODELS.build(cfg).eval()
    head = model.roi_head
    torch.manual_seed(0)
    feat = torch.randn(1, head.lsc.in_channels, 4, 5)
    rois = torch.tensor([[[-30., -20., 100., 90.], [60., 50., 190., 170.],
                          [10., 10., 150., 120.]]])
    with torch.no_grad():
        dets, labels = head.export_predict(feat, rois,
                                           torch.ones(1, 3, dtype=torch.bool),
                                           (128, 160))
    real = labels[0] >= 0
    assert real.sum() > 0
    boxes = dets[0, real, :4]
    assert boxes.min() >= 0
    assert (boxes[:, 0::2] <= 160).all() and (boxes[:, 1::2] <= 128).all()
    # without clipping the first and second RoIs' boxes would leave it
    assert (boxes[:, 0] == 0).any() and (boxes[:, 2] == 160).any()


def test_roi_head_builds_for_test_only_and_passes_init_cfg():
    """Without ``train_cfg`` (a test-only model) OHEM is off; ``init_cfg``
    reaches mmengine's ``BaseModule``; a second feature map is refused,
    naming the count."""
    import copy

    import pytest
    from mmdet.registry import MODELS

    from tests.conftest import base_model_cfg
    from tests.test_models.test_roi_heads_light_head import C_IN, feats
    cfg = copy.deepcopy(base_model_cfg().roi_head)
    cfg.lsc.in_channels = C_IN
    cfg.bbox_roi_extractor.featmap_strides = [32]
    init = dict(type='Normal', layer='Linear', std=0.01)
    head = MODELS.build(dict(cfg, train_cfg=None, init_cfg=init))
    assert head.ohem_topk is None and head.init_cfg == init
    with pytest.raises(ValueError) as err:
        head.ps_score_map(feats() * 2)
    assert str(err.value) == ('LightHeadRoIHead expects exactly one feature '
                              'map, but received 2')


def test_roi_head_predict_rescale_default_and_passed_on():
    """``predict`` keeps boxes in network-input pixels by default and
    divides them by ``scale_factor`` with ``rescale=True``."""
    from tests.conftest import make_data_samples
    from tests.test_models.test_roi_heads_light_head import (IMG, build_head,
                                                             feats, proposals)
    head = build_head().eval()
    x = feats()
    samples = make_data_samples(IMG)
    for s in samples:
        s.set_metainfo(dict(scale_factor=(2., 4.)))
    with torch.no_grad():
        plain = head.predict(x, proposals(), samples)[0]
        scaled = head.predict(x, proposals(), samples, rescale=True)[0]
    assert len(plain) > 0
    torch.testing.assert_close(
        scaled.bboxes, plain.bboxes / torch.tensor([2., 4., 2., 4.]))


def test_ohem_config_checks_bounds_and_messages():
    """``ohem_topk=1`` is valid; 0 and ``reg_decoded_bbox`` are refused with
    messages that name the key and the value."""
    import copy

    import pytest
    from mmdet.registry import MODELS

    from tests.conftest import base_model_cfg
    from tests.test_models.test_roi_heads_light_head import C_IN, build_head
    assert build_head(ohem_topk=1).ohem_topk == 1
    with pytest.raises(ValueError) as err:
        build_head(ohem_topk=0)
    assert str(err.value) == ('LightHeadRoIHead: train_cfg.ohem_topk must be '
                              'a positive int or None, but received 0')
    model = base_model_cfg()
    cfg = copy.deepcopy(model.roi_head)
    cfg.lsc.in_channels = C_IN
    cfg.bbox_roi_extractor.featmap_strides = [32]
    cfg.bbox_head.reg_decoded_bbox = True
    cfg.train_cfg = dict(copy.deepcopy(model.train_cfg.rcnn), ohem_topk=4)
    with pytest.raises(ValueError) as err:
        MODELS.build(cfg)
    assert str(err.value) == (
        'LightHeadRoIHead: train_cfg.ohem_topk ranks encoded deltas and '
        'does not support bbox_head.reg_decoded_bbox=True')


# ------------------------------------------------------------------ heads
# Independent references for the heads' post-processing and export paths:
# softmax / top-k / the coder's decode / torchvision's batched_nms, which
# needs no compiled mmcv (the stock-mmdet comparisons of
# test_heads_topk_nms.py are full_mmcv only). Box deltas have a realistic
# size (std ~0.2 after the coder's stds), so decoding and clipping matter.

RPN_IMG = (96, 128)


@pytest.fixture
def nms_calls(monkeypatch):
    """Count the heads' calls of ``topk_batched_nms``: the fallback to
    mmdet's post-processing gives the same boxes here, so only the call
    tells that the fast path was taken."""
    import shufflenet_det.models.bbox_heads.light_head_bbox_head as bbox
    import shufflenet_det.models.dense_heads.light_head_rpn_head as rpn
    calls = []
    for mod in (rpn, bbox):
        orig = mod.topk_batched_nms

        def spy(*args, orig=orig, name=mod.__name__):
            calls.append(name.rsplit('.', 1)[-1])
            return orig(*args)
        monkeypatch.setattr(mod, 'topk_batched_nms', spy)
    return calls


def _scaled_(layer, std, gen):
    """Weights of ``layer`` random, its outputs ~``std`` in size."""
    with torch.no_grad():
        fan_in = layer.weight[0].numel()
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen)
                           * std / fan_in ** 0.5)
        layer.bias.copy_(0.1 * std * torch.randn(layer.bias.shape,
                                                 generator=gen))


def rpn_head(strides=(16, ), sigmoid=False, **test_cfg):
    """A small LightHeadRPNHead (softmax classifier, Legacy coder as in the
    base config) with spread scores and deltas of std ~0.2."""
    from shufflenet_det.models.dense_heads import LightHeadRPNHead
    cfg = dict(nms_pre=60, max_per_img=25, min_bbox_size=4,
               nms=dict(type='nms', iou_threshold=0.6))
    cfg.update(test_cfg)
    head = LightHeadRPNHead(
        8, feat_channels=8,  # in_channels positional: passed on
        anchor_generator=dict(type='LegacyAnchorGenerator',
                              center_offset=0.5, scales=[2, 4, 8],
                              ratios=[0.5, 1.0, 2.0], strides=list(strides)),
        bbox_coder=dict(type='LegacyDeltaXYWHBBoxCoder',
                        target_means=[0.] * 4, target_stds=[1.] * 4),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=sigmoid),
        test_cfg=ConfigDict(cfg)).eval()
    gen = torch.Generator().manual_seed(5)
    _scaled_(head.rpn_conv, 1.0, gen)
    _scaled_(head.rpn_cls, 3.0, gen)
    _scaled_(head.rpn_reg, 0.3, gen)
    return head


def ref_rpn_post(bboxes, scores, level_ids, cfg, scale_factor=None):
    """RPNHead._bbox_post_process with torchvision's batched_nms."""
    from torchvision.ops import batched_nms
    if scale_factor is not None:
        bboxes = bboxes / torch.tensor(scale_factor * 2)
    if cfg.get('min_bbox_size', -1) >= 0:
        wh = bboxes[:, 2:] - bboxes[:, :2]
        big = (wh > cfg.min_bbox_size).all(1)
        bboxes, scores, level_ids = bboxes[big], scores[big], level_ids[big]
    keep = batched_nms(bboxes, scores, level_ids,
                       cfg.nms.iou_threshold)[:cfg.max_per_img]
    return bboxes[keep], scores[keep]


def ref_rpn_image(head, cls_score, bbox_pred, meta, cfg, rescale):
    """(bboxes, scores) of one image from one level's (A*2, H, W) scores
    and (A*4, H, W) deltas, computed from scratch."""
    priors = head.prior_generator.grid_priors(
        [cls_score.shape[-2:]], device='cpu')[0]
    scores = cls_score.permute(1, 2, 0).reshape(-1, 2).softmax(-1)[:, 0]
    deltas = bbox_pred.permute(1, 2, 0).reshape(-1, 4)
    scores, order = scores.sort(descending=True)
    order = order[:cfg.nms_pre]
    scores = scores[:cfg.nms_pre]
    boxes = head.bbox_coder.decode(priors[order], deltas[order],
                                   max_shape=meta['img_shape'])
    return ref_rpn_post(boxes, scores, torch.zeros_like(order), cfg,
                        meta['scale_factor'] if rescale else None)


def rpn_inputs(head, num=2, seed=7):
    gen = torch.Generator().manual_seed(seed)
    feat = torch.randn(num, 8, RPN_IMG[0] // 16, RPN_IMG[1] // 16,
                       generator=gen)
    metas = [dict(img_shape=RPN_IMG, scale_factor=(2.0, 1.5))
             for _ in range(num)]
    return feat, metas


@pytest.mark.parametrize('rescale', [False, True])
def test_rpn_predict_by_feat_equals_reference(rescale, monkeypatch,
                                              nms_calls):
    """``predict_by_feat`` (on two threads and on one; the head's
    ``test_cfg`` and another ``cfg``) gives, per image, the proposals of an
    independent top-k / decode / min_bbox_size / torchvision NMS pipeline,
    through ``topk_batched_nms``; they are detached, labelled 0 and carry
    no ``level_ids``."""
    head = rpn_head()
    feat, metas = rpn_inputs(head)
    cls_scores, bbox_preds = head((feat, ))
    assert cls_scores[0].requires_grad  # the head must detach them
    other = ConfigDict(head.test_cfg, max_per_img=15, min_bbox_size=10)
    kwargs = dict(rescale=True) if rescale else {}  # default: False
    # one thread last: it must not touch the pool of two
    for threads, cfg in ((2, None), (2, other), (1, None)):
        monkeypatch.setattr(torch, 'get_num_threads', lambda t=threads: t)
        got = head.predict_by_feat(cls_scores, bbox_preds,
                                   batch_img_metas=metas, cfg=cfg, **kwargs)
        assert len(got) == 2
        for i, res in enumerate(got):
            boxes, scores = ref_rpn_image(head, cls_scores[0][i].detach(),
                                          bbox_preds[0][i].detach(), metas[i],
                                          cfg or head.test_cfg, rescale)
            assert 5 < len(boxes) <= 25 and len(res) == len(boxes)
            assert not res.bboxes.requires_grad
            torch.testing.assert_close(res.bboxes, boxes)
            torch.testing.assert_close(res.scores, scores)
            assert res.labels.dtype == torch.long
            assert (res.labels == 0).all() and 'level_ids' not in res
    assert head._pool is not None and head._pool_workers == 2
    assert nms_calls == ['light_head_rpn_head'] * 6


def test_rpn_predict_by_feat_float64():
    """Anchors follow the scores' dtype: a float64 head gives float64
    proposals equal to the reference."""
    head = rpn_head().double()
    feat, metas = rpn_inputs(head, num=1)
    with torch.no_grad():
        cls_scores, bbox_preds = head((feat.double(), ))
        res = head.predict_by_feat(cls_scores, bbox_preds,
                                   batch_img_metas=metas)[0]
    boxes, scores = ref_rpn_image(head, cls_scores[0][0], bbox_preds[0][0],
                                  metas[0], head.test_cfg, False)
    assert res.bboxes.dtype == torch.float64 and len(res) > 5
    torch.testing.assert_close(res.bboxes, boxes.double())
    torch.testing.assert_close(res.scores, scores)


def test_rpn_bbox_post_process_levels_rescale_and_empty(nms_calls):
    """``_bbox_post_process`` on three levels: rescale, ``min_bbox_size``
    (a box exactly at the size is dropped), NMS per level, ``max_per_img``;
    no box left gives an empty result; with_nms=False falls back to
    RPNHead."""
    from tests.test_models.test_layers_topk_nms import random_boxes
    head = rpn_head()
    gen = torch.Generator().manual_seed(11)
    bboxes = random_boxes(300, 200.)
    bboxes[0] = torch.tensor([10., 10., 18., 30.])  # w == 8 == min size
    bboxes[1] = torch.tensor([50., 50., 90., 54.])  # h == 4 == min size
    bboxes[2] = torch.tensor([120., 30., 120., 80.])  # w == 0
    scores = torch.rand(300, generator=gen)
    scores[:3] = torch.tensor([2.0, 1.9, 1.8])  # the edge boxes first
    level_ids = torch.randint(0, 3, (300, ), generator=gen)
    cfg = ConfigDict(max_per_img=40, min_bbox_size=4,
                     nms=dict(type='nms', iou_threshold=0.5))
    meta = dict(img_shape=(200, 200), scale_factor=(2.0, 0.5))
    for rescale in (False, True):
        res = InstanceData(bboxes=bboxes.clone(), scores=scores.clone(),
                           level_ids=level_ids.clone())
        got = head._bbox_post_process(res, cfg, rescale=rescale,
                                      img_meta=meta)
        sf = meta['scale_factor'] if rescale else None
        ref_b, ref_s = ref_rpn_post(bboxes, scores, level_ids, cfg, sf)
        assert len(got) == 40
        torch.testing.assert_close(got.bboxes, ref_b)
        torch.testing.assert_close(got.scores, ref_s)
        assert (got.labels == 0).all() and 'level_ids' not in got
        # min_bbox_size=4 keeps box 0 unscaled (8 > 4) and drops it when
        # its width is halved (4 is not > 4)
        assert (float(got.scores[0]) == 2.0) == (not rescale)
        if not rescale:  # h == 4 is not > 4
            assert not (got.bboxes == bboxes[1]).all(1).any()
    assert nms_calls == ['light_head_rpn_head'] * 2
    # max_per_img=1 is still the fast path: the best box
    res = InstanceData(bboxes=bboxes.clone(), scores=scores.clone(),
                       level_ids=level_ids.clone())
    got = head._bbox_post_process(res, ConfigDict(cfg, max_per_img=1),
                                  img_meta=meta)
    assert nms_calls == ['light_head_rpn_head'] * 3
    assert len(got) == 1 and float(got.scores[0]) == 2.0
    # min_bbox_size=0 drops the zero-width box; without the key (default
    # -1) nothing is dropped
    for size, kept in ((0, False), (None, True)):
        c = ConfigDict(max_per_img=300, nms=dict(type='nms',
                                                 iou_threshold=0.99))
        if size is not None:
            c.min_bbox_size = size
        res = InstanceData(bboxes=bboxes.clone(), scores=scores.clone(),
                           level_ids=torch.arange(300))
        got = head._bbox_post_process(res, c, img_meta=meta)
        assert ((got.bboxes == bboxes[2]).all(1).any()) == kept
        assert len(got) == 300 - (not kept)
    # every box too small: empty, with labels
    res = InstanceData(bboxes=bboxes.clone(), scores=scores.clone(),
                       level_ids=level_ids.clone())
    got = head._bbox_post_process(res, ConfigDict(cfg, min_bbox_size=500),
                                  img_meta=meta)
    assert len(got) == 0 and got.bboxes.shape == (0, 4)
    # with_nms=False is handed to RPNHead, which refuses it
    res = InstanceData(bboxes=bboxes.clone(), scores=scores.clone(),
                       level_ids=level_ids.clone())
    with pytest.raises(AssertionError, match='with_nms'):
        head._bbox_post_process(res, cfg, with_nms=False, img_meta=meta)


def ref_export_proposals(head, feat):
    """Per image: the top ``nms_pre`` anchors, decoded and clipped, small
    boxes dropped, torchvision NMS, the best ``min(max_per_img, nms_pre)``
    padded with zeros."""
    from torchvision.ops import nms
    cfg = head.test_cfg
    cls_scores, bbox_preds = head((feat, ))
    out_boxes, out_valid = [], []
    nms_pre = cfg.get('nms_pre', -1)
    for i in range(feat.shape[0]):
        priors = head.prior_generator.grid_priors(
            [cls_scores[0].shape[-2:]], device='cpu')[0]
        scores = cls_scores[0][i].permute(1, 2, 0)
        scores = scores.reshape(-1).sigmoid() if head.use_sigmoid_cls else \
            scores.reshape(-1, 2).softmax(-1)[:, 0]
        deltas = bbox_preds[0][i].permute(1, 2, 0).reshape(-1, 4)
        nms_pre = cfg.get('nms_pre', -1)
        k = nms_pre if 0 < nms_pre < len(scores) else len(scores)
        slots = min(cfg.max_per_img, k)
        scores, order = scores.topk(k)
        boxes = head.bbox_coder.decode(priors[order], deltas[order],
                                       max_shape=RPN_IMG)
        wh = boxes[:, 2:] - boxes[:, :2]
        big = (wh > cfg.get('min_bbox_size', -1)).all(1)
        boxes, scores = boxes[big], scores[big]
        keep = nms(boxes, scores, cfg.nms.iou_threshold)[:slots]
        padded = torch.zeros(slots, 4, dtype=boxes.dtype)
        padded[:len(keep)] = boxes[keep]
        valid = torch.zeros(slots, dtype=torch.bool)
        valid[:len(keep)] = True
        out_boxes.append(padded)
        out_valid.append(valid)
    return torch.stack(out_boxes), torch.stack(out_valid)


@pytest.mark.parametrize('test_cfg', [
    dict(),  # nms_pre 60 < 108 anchors, 25 of 60 slots
    # 432 anchors: nms_pre above, 0 or absent all of them; 500 slots
    dict(nms_pre=2000, max_per_img=500, min_bbox_size=12),
    dict(nms_pre=0, max_per_img=500, min_bbox_size=12),
    dict(nms_pre=432, max_per_img=500),
    dict(nms_pre=1, max_per_img=300),  # one slot
    dict(nms_pre=None, max_per_img=500, min_bbox_size=None),  # no keys
    dict(dtype=torch.float64),
    dict(sigmoid=True),  # one sigmoid score per anchor
])
def test_rpn_export_proposals_equals_reference(test_cfg):
    """``export_proposals`` (eager) equals the reference pipeline, image
    by image, including the padding rows and the validity mask."""
    test_cfg = dict(test_cfg)
    dtype = test_cfg.pop('dtype', torch.float32)
    head = rpn_head(**test_cfg).to(dtype)
    for key in ('nms_pre', 'min_bbox_size'):
        if test_cfg.get(key, 0) is None:
            del head.test_cfg[key]
    feat, _ = rpn_inputs(head)
    feat = feat.to(dtype)
    with torch.no_grad():
        boxes, valid = head.export_proposals(feat, RPN_IMG)
        ref_boxes, ref_valid = ref_export_proposals(head, feat)
    assert boxes.shape == ref_boxes.shape and valid.dtype == torch.bool
    assert boxes.dtype == dtype
    assert torch.equal(valid, ref_valid)
    assert int(valid.sum(1).min()) > (0 if test_cfg.get('nms_pre') == 1
                                      else 5)
    torch.testing.assert_close(boxes, ref_boxes)


def test_rpn_check_export_messages():
    """``check_export`` names the culprit: several levels, or the
    ``test_cfg.rpn`` key; a valid config returns its IoU threshold."""
    from shufflenet_det.models.layers.onnx_nms import ExportError
    assert rpn_head().check_export() == 0.6
    with pytest.raises(ExportError) as err:
        rpn_head(strides=(8, 16)).check_export()
    assert str(err.value) == 'rpn_head: one feature level expected, got 2'
    with pytest.raises(ExportError, match=r'^test_cfg\.rpn\.nms='):
        rpn_head(nms=dict(type='soft_nms', iou_threshold=0.5)).check_export()


def test_rpn_thread_pool_is_per_head_and_not_copied():
    """The pool is made on first use, reused for the same number of
    workers, replaced for another; copies and pickles carry no pool but
    keep every other attribute."""
    head = rpn_head()
    assert head._pool is None and head._pool_workers == 0
    pool = head._executor(2)
    assert pool._max_workers == 2 and head._pool_workers == 2
    assert pool._thread_name_prefix == 'rpn'
    assert head._executor(2) is pool
    pool3 = head._executor(3)
    assert pool3 is not pool and pool3._max_workers == 3
    assert pool._shutdown and head._pool_workers == 3
    for clone in (copy.deepcopy(head), pickle.loads(pickle.dumps(head))):
        assert clone._pool is None and clone._pool_workers == 0
        assert clone.test_cfg == head.test_cfg
        assert torch.equal(clone.rpn_reg.weight, head.rpn_reg.weight)
    assert head._pool is pool3 and head._pool_workers == 3
    pool3.shutdown()


@pytest.mark.parametrize('module', ['rpn', 'rcnn'])
def test_heads_predict_by_feat_profiler_range(module):
    """Both heads' ``predict_by_feat`` open a profiler range named after
    the class (the benchmark's breakdown reads it)."""
    from torch.profiler import ProfilerActivity, profile
    if module == 'rpn':
        head = rpn_head()
        feat, metas = rpn_inputs(head, num=1)
        args = head((feat, )) + (None, metas)
        name = 'LightHeadRPNHead.predict_by_feat'
    else:
        head, rois, cls_score, bbox_pred, meta = bbox_inputs()
        args = ((rois, ), (cls_score, ), (bbox_pred, ), [meta],
                ConfigDict(score_thr=0.05, max_per_img=30,
                           nms=dict(type='nms', iou_threshold=0.5)))
        name = 'LightHeadBBoxHead.predict_by_feat'
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        res = head.predict_by_feat(*args)
    assert len(res) == 1 and len(res[0]) > 0
    assert name in {e.key for e in prof.key_averages()}


# ------------------------------------------------------------ bbox head
CLASSES = 4


def bbox_head(agnostic=False, use_sigmoid=False):
    from shufflenet_det.models.bbox_heads import LightHeadBBoxHead
    head = LightHeadBBoxHead(
        num_shared_convs=0, num_shared_fcs=1, in_channels=3,
        roi_feat_size=2, with_avg_pool=False, fc_out_channels=16,
        num_classes=CLASSES, reg_class_agnostic=agnostic,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=use_sigmoid,
                      loss_weight=1.0)).eval()
    gen = torch.Generator().manual_seed(2)
    _scaled_(head.shared_fcs[0], 1.0, gen)
    _scaled_(head.fc_cls, 3.0, gen)
    _scaled_(head.fc_reg, 1.5, gen)  # deltas / stds: boxes move ~0.2
    return head


def bbox_inputs(agnostic=False, num_rois=60, seed=3):
    from tests.test_models.test_layers_topk_nms import random_boxes
    head = bbox_head(agnostic)
    gen = torch.Generator().manual_seed(seed)
    rois = torch.cat([torch.zeros(num_rois, 1), random_boxes(num_rois, 150.)],
                     1)
    pooled = torch.randn(num_rois, 3, 2, 2, generator=gen)
    with torch.no_grad():
        cls_score, bbox_pred = head(pooled)
    meta = dict(img_shape=(120, 140), scale_factor=(2.0, 0.5))
    return head, rois, cls_score, bbox_pred, meta


def ref_detections(head, rois, cls_score, bbox_pred, img_shape, cfg,
                   scale_factor=None, valid=None):
    """Softmax, per-class decode (clipped), score_thr, torchvision's
    batched_nms over classes, the best max_per_img: (boxes, scores,
    labels)."""
    from torchvision.ops import batched_nms
    num_rois = rois.shape[0]
    scores = F.softmax(cls_score, -1)[:, :-1]
    if head.reg_class_agnostic:
        bbox_pred = bbox_pred.repeat(1, CLASSES)
    boxes = head.bbox_coder.decode(
        rois.repeat_interleave(CLASSES, 0), bbox_pred.reshape(-1, 4),
        max_shape=img_shape)
    if scale_factor is not None:
        boxes = boxes / torch.tensor(scale_factor * 2)
    labels = torch.arange(CLASSES).repeat(num_rois)
    ok = scores.reshape(-1) > cfg.score_thr
    if valid is not None:
        ok &= valid.repeat_interleave(CLASSES)
    boxes, scores, labels = boxes[ok], scores.reshape(-1)[ok], labels[ok]
    keep = batched_nms(boxes, scores, labels,
                       cfg.nms.iou_threshold)[:cfg.max_per_img]
    return boxes[keep], scores[keep], labels[keep]


@pytest.mark.parametrize('agnostic,score_thr,rescale', [
    (False, 0.0, False), (False, 0.08, True), (True, 0.08, False),
    (True, 0.0, True)])
def test_bbox_head_predict_equals_reference(agnostic, score_thr, rescale,
                                            nms_calls):
    """``_predict_by_feat_single`` gives the boxes, scores and labels of
    the independent pipeline (class-specific and agnostic regression, with
    and without a score threshold and rescaling), through
    ``topk_batched_nms``."""
    head, rois, cls_score, bbox_pred, meta = bbox_inputs(agnostic)
    cfg = ConfigDict(score_thr=score_thr, max_per_img=50,
                     nms=dict(type='nms', iou_threshold=0.5))
    kwargs = dict(rescale=True) if rescale else {}  # default: False
    got = head._predict_by_feat_single(rois, cls_score, bbox_pred, meta,
                                       rcnn_test_cfg=cfg, **kwargs)
    assert nms_calls == ['light_head_bbox_head']
    boxes, scores, labels = ref_detections(
        head, rois[:, 1:], cls_score, bbox_pred, meta['img_shape'], cfg,
        meta['scale_factor'] if rescale else None)
    assert len(got) == len(boxes) == 50
    assert len(set(labels.tolist())) == CLASSES
    torch.testing.assert_close(got.bboxes, boxes)
    torch.testing.assert_close(got.scores, scores)
    assert torch.equal(got.labels, labels)
    assert got.labels.dtype == torch.long


def test_bbox_head_predict_few_and_no_candidates():
    """Fewer candidates above ``score_thr`` than ``max_per_img``: all of
    them after NMS; none: an empty result; ``rcnn_test_cfg=None``: mmdet's
    path, one box per RoI and class."""
    head, rois, cls_score, bbox_pred, meta = bbox_inputs()
    cfg = ConfigDict(score_thr=0.6, max_per_img=100,
                     nms=dict(type='nms', iou_threshold=0.5))
    got = head._predict_by_feat_single(rois, cls_score, bbox_pred, meta,
                                       False, cfg)
    boxes, scores, labels = ref_detections(
        head, rois[:, 1:], cls_score, bbox_pred, meta['img_shape'], cfg)
    assert 0 < len(got) == len(boxes) < 100
    torch.testing.assert_close(got.bboxes, boxes)
    torch.testing.assert_close(got.scores, scores)
    assert torch.equal(got.labels, labels)
    got = head._predict_by_feat_single(rois, cls_score, bbox_pred, meta,
                                       False, ConfigDict(cfg, score_thr=1.0))
    assert len(got) == 0 and got.bboxes.shape == (0, 4)
    got = head._predict_by_feat_single(rois, cls_score, bbox_pred, meta,
                                       False, None)
    assert got.bboxes.shape == (60, CLASSES * 4)
    # max_per_img=-1: mmdet's path, handed rescale and the config
    cfg = ConfigDict(cfg, score_thr=0.3, max_per_img=-1)
    got = head._predict_by_feat_single(rois, cls_score, bbox_pred, meta,
                                       True, cfg)
    boxes, scores, labels = ref_detections(
        head, rois[:, 1:], cls_score, bbox_pred, meta['img_shape'],
        ConfigDict(cfg, max_per_img=10000), meta['scale_factor'])
    assert 5 < len(got) == len(boxes)
    torch.testing.assert_close(got.bboxes, boxes)
    torch.testing.assert_close(got.scores, scores)


def export_inputs(agnostic, seed=4):
    head, rois, _, _, _ = bbox_inputs(agnostic, num_rois=12, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    pooled = torch.randn(2, 6, 3, 2, 2, generator=gen)
    rois = rois[:, 1:].reshape(2, 6, 4)
    valid = torch.tensor([[1, 1, 0, 1, 1, 1], [1, 0, 1, 1, 0, 1]],
                         dtype=torch.bool)
    return head, pooled, rois, valid


@pytest.mark.parametrize('agnostic,score_thr,max_per_img', [
    (False, 0.1, 8), (True, 0.0, 8), (False, 0.0, 30), (True, 0.2, 30),
    (False, None, 30)])  # no score_thr key: 0
def test_bbox_head_export_detections_equals_reference(agnostic, score_thr,
                                                      max_per_img):
    """``export_detections`` (eager) equals the reference per image: the
    same boxes, scores and labels first, then padding rows of zeros with
    label -1 (``max_per_img`` 30 > 6 slots x 4 classes pads)."""
    head, pooled, rois, valid = export_inputs(agnostic)
    img_shape = (100, 120)
    cfg = ConfigDict(score_thr=score_thr, max_per_img=max_per_img,
                     nms=dict(type='nms', iou_threshold=0.4))
    if score_thr is None:
        del cfg.score_thr
    with torch.no_grad():
        dets, labels = head.export_detections(pooled, rois, valid, cfg,
                                              img_shape)
        assert dets.shape == (2, max_per_img, 5)
        assert labels.shape == (2, max_per_img)
        assert labels.dtype == torch.long
        for i in range(2):
            cls_score, bbox_pred = head(pooled[i])
            boxes, scores, lab = ref_detections(
                head, rois[i], cls_score, bbox_pred, img_shape,
                ConfigDict(cfg, score_thr=score_thr or 0.0), valid=valid[i])
            n = len(boxes)
            assert 3 < n <= max_per_img
            torch.testing.assert_close(dets[i, :n, :4], boxes)
            torch.testing.assert_close(dets[i, :n, 4], scores)
            assert torch.equal(labels[i, :n], lab)
            assert (dets[i, n:] == 0).all() and (labels[i, n:] == -1).all()


def test_bbox_head_export_shift_separates_classes():
    """Every class predicting the same box is kept (the class shift of
    the NMS, ``(max coordinate + 1) * label``), even when that box is tiny
    and the IoU threshold low."""
    head, pooled, rois, valid = export_inputs(False)
    with torch.no_grad():
        head.fc_reg.weight.zero_()
        head.fc_reg.bias.zero_()  # every class's box is its RoI
    rois = torch.tensor([[0., 0., 2., 2.]]).expand(2, 6, 4).contiguous()
    cfg = ConfigDict(score_thr=0.0, max_per_img=8,
                     nms=dict(type='nms', iou_threshold=0.1))
    with torch.no_grad():
        dets, labels = head.export_detections(pooled, rois, valid, cfg,
                                              (20, 20))
    for i in range(2):
        # one RoI box per class: 4 detections, one per label
        real = labels[i] >= 0
        assert sorted(labels[i, real].tolist()) == list(range(CLASSES))
        assert torch.equal(dets[i, real, :4],
                           rois[0, :1].expand(CLASSES, 4))


def test_bbox_head_check_export_messages():
    """A sigmoid classifier is refused by name; the NMS config error names
    ``test_cfg.rcnn``; a valid config returns its IoU threshold."""
    from shufflenet_det.models.layers.onnx_nms import ExportError
    cfg = ConfigDict(score_thr=0.0, max_per_img=8,
                     nms=dict(type='nms', iou_threshold=0.4))
    assert bbox_head().check_export(cfg) == 0.4
    with pytest.raises(ExportError) as err:
        bbox_head(use_sigmoid=True).check_export(cfg)
    assert str(err.value) == ('roi_head.bbox_head: only a softmax '
                              'classifier (num_classes + 1) is supported')
    with pytest.raises(ExportError, match=r'^test_cfg\.rcnn\.max_per_img'):
        bbox_head().check_export(ConfigDict(cfg, max_per_img=0))
    head = bbox_head()
    head.loss_cls = torch.nn.Identity()  # a loss without ``use_sigmoid``
    assert head.check_export(cfg) == 0.4


def test_bbox_head_fast_path_edges(nms_calls):
    """``max_per_img=1`` and a single RoI still take the fast path and
    give the reference's detections."""
    head, rois, cls_score, bbox_pred, meta = bbox_inputs()
    cfg = ConfigDict(score_thr=0.0, max_per_img=1,
                     nms=dict(type='nms', iou_threshold=0.5))
    for n, c in ((60, cfg), (1, ConfigDict(cfg, max_per_img=10))):
        got = head._predict_by_feat_single(rois[:n], cls_score[:n],
                                           bbox_pred[:n], meta, False, c)
        boxes, scores, labels = ref_detections(
            head, rois[:n, 1:], cls_score[:n], bbox_pred[:n],
            meta['img_shape'], c)
        assert len(got) == len(boxes) == min(c.max_per_img, n * CLASSES)
        torch.testing.assert_close(got.bboxes, boxes)
        torch.testing.assert_close(got.scores, scores)
        assert torch.equal(got.labels, labels)
    assert nms_calls == ['light_head_bbox_head'] * 2
