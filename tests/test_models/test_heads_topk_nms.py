"""LightHeadRPNHead / LightHeadBBoxHead give mmdet's detections exactly."""
import copy

import pytest
import torch
from mmengine.config import ConfigDict

from tests.conftest import base_model_cfg
from tests.test_models.test_layers_topk_nms import random_boxes
from tests.utils_detector import (PROPOSALS, calibrated_detector,
                                  robust_batch)


def bbox_head_pair():
    from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead

    from shufflenet_det.models.bbox_heads import LightHeadBBoxHead
    kwargs = dict(num_shared_convs=0, num_shared_fcs=1, in_channels=10,
                  roi_feat_size=7, with_avg_pool=False, fc_out_channels=64,
                  num_classes=80, bbox_coder=dict(
                      type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                      target_stds=[0.1, 0.1, 0.2, 0.2]))
    return ConvFCBBoxHead(**kwargs).eval(), LightHeadBBoxHead(**kwargs).eval()


@pytest.mark.full_mmcv
@pytest.mark.parametrize('score_thr,rescale', [(0.0, False), (0.05, True)])
def test_bbox_head_post_processing_equals_mmdet(score_thr, rescale):
    stock, ours = bbox_head_pair()
    gen = torch.Generator().manual_seed(3)
    rois = torch.cat([torch.zeros(1000, 1), random_boxes(1000, 600.)], 1)
    cls_score = 2 * torch.randn(1000, 81, generator=gen)
    bbox_pred = 0.5 * torch.randn(1000, 320, generator=gen)
    meta = dict(img_shape=(600, 800), scale_factor=(1.25, 1.25))
    cfg = ConfigDict(score_thr=score_thr,
                     nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
    expected = stock._predict_by_feat_single(rois, cls_score, bbox_pred,
                                             meta, rescale, cfg)
    got = ours._predict_by_feat_single(rois, cls_score, bbox_pred, meta,
                                       rescale, cfg)
    assert len(got) == len(expected) == 100
    assert torch.equal(got.scores, expected.scores)
    assert torch.equal(got.labels, expected.labels)
    assert torch.equal(got.bboxes, expected.bboxes)


@pytest.mark.full_mmcv
def test_bbox_head_falls_back_for_soft_nms():
    stock, ours = bbox_head_pair()
    gen = torch.Generator().manual_seed(4)
    rois = torch.cat([torch.zeros(50, 1), random_boxes(50, 300.)], 1)
    args = (rois, torch.randn(50, 81, generator=gen),
            0.1 * torch.randn(50, 320, generator=gen),
            dict(img_shape=(300, 400), scale_factor=(1., 1.)), False,
            ConfigDict(score_thr=0.05, max_per_img=20,
                       nms=dict(type='soft_nms', iou_threshold=0.5)))
    expected = stock._predict_by_feat_single(*args)
    got = ours._predict_by_feat_single(*args)
    assert torch.equal(got.scores, expected.scores)


@pytest.fixture(scope='module')
def detector_pair():
    """The base Light-Head model (our heads) and its twin with mmdet's stock
    RPNHead / ConvFCBBoxHead, sharing weights; box deltas of realistic size
    and a batch whose NMS decisions are all away from the thresholds
    (``tests.utils_detector.robust_batch``)."""
    from mmdet.registry import MODELS
    cfg = base_model_cfg()
    cfg.backbone.arch = '0.5x'
    cfg.test_cfg.rpn.max_per_img = PROPOSALS
    stock_cfg = copy.deepcopy(cfg)
    stock_cfg.rpn_head.type = 'RPNHead'
    stock_cfg.roi_head.bbox_head.type = 'ConvFCBBoxHead'
    ours, _ = calibrated_detector(cfg)
    data, _, _ = robust_batch(ours, 2, (192, 256))
    torch.manual_seed(0)
    stock = MODELS.build(stock_cfg).eval()
    stock.load_state_dict(ours.state_dict())
    return ours, stock, data


@pytest.mark.full_mmcv
def test_detector_equals_stock_mmdet_heads(detector_pair):
    from shufflenet_det.apis import detector_step
    from shufflenet_det.deploy.verify import compare_detections
    ours, stock, data = detector_pair
    assert type(ours.rpn_head).__name__ == 'LightHeadRPNHead'
    assert type(stock.rpn_head).__name__ == 'RPNHead'
    device = torch.device('cpu')
    expected = detector_step(stock, copy.deepcopy(data), device)()
    got = detector_step(ours, copy.deepcopy(data), device)()
    for e, g in zip(expected, got):
        # Only boxes with exactly equal scores may come in another order
        # (mmcv's sort is not stable).
        assert torch.equal(e.pred_instances.scores, g.pred_instances.scores)
    check = compare_detections(expected, got, box_tol=0.0, score_tol=0.0)
    assert check['equal'] and not check['explained'], check
    assert check['matched'] == check['detections'] > 0


def test_rpn_threads_equal_one_thread(detector_pair, monkeypatch):
    """The RPN's per-image post-processing on its thread pool (forced: 2
    threads for the batch of 2, whatever the machine has) equals the
    sequential run (1 thread), and really ran on the pool."""
    import threading

    from shufflenet_det.apis import detector_step
    from shufflenet_det.deploy.verify import compare_detections
    ours, _, data = detector_pair
    device = torch.device('cpu')
    head = ours.rpn_head
    single = type(head)._predict_by_feat_single
    threads_seen = []

    def spy(*args, **kwargs):
        threads_seen.append(threading.current_thread().name)
        return single(head, *args, **kwargs)

    monkeypatch.setattr(head, '_predict_by_feat_single', spy)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # predict_by_feat then runs sequentially
        expected = detector_step(ours, copy.deepcopy(data), device)()
        assert threads_seen == ['MainThread'] * 2, threads_seen
        threads_seen.clear()
        torch.set_num_threads(2)  # one worker per image
        got = detector_step(ours, copy.deepcopy(data), device)()
    finally:
        torch.set_num_threads(threads)
    assert len(threads_seen) == 2, threads_seen
    assert all(name.startswith('rpn') for name in threads_seen), threads_seen
    # The thread count also changes the convolutions' summation order, so
    # the two runs agree to rounding: the same-runtime tolerances.
    check = compare_detections(expected, got, box_tol=0.01, score_tol=1e-4)
    assert check['equal'] and not check['explained'], check
    assert check['matched'] == check['detections'] == 200, check


def test_fragile_nms_decisions_are_found():
    """The check behind ``robust_batch`` flags an IoU at the threshold, a
    score tie between overlapping boxes and a tie at the ``max_num`` cut,
    and nothing when every decision has a margin."""
    from tests.utils_detector import fragile_nms_decisions

    def kinds(heights, scores, max_num=10, groups=None):
        boxes = torch.tensor([[0., 0., 10., h] for h in heights])
        groups = torch.zeros(len(heights), dtype=torch.long) \
            if groups is None else torch.tensor(groups)
        return [f[0] for f in fragile_nms_decisions(
            boxes, torch.tensor(scores), groups, 0.7, max_num)]

    assert kinds([10, 7], [0.9, 0.8]) == ['iou']  # IoU exactly 0.7
    assert kinds([10, 8], [0.9, 0.8]) == []  # IoU 0.8: suppressed, clearly
    assert kinds([10, 6], [0.9, 0.8]) == []  # IoU 0.6: kept, clearly
    assert kinds([10, 7], [0.9, 0.8], groups=[0, 1]) == []  # other class
    assert kinds([10, 8], [0.9, 0.8999995]) == ['tie']
    far = torch.tensor([[0., 0., 10., 10.], [50., 50., 60., 60.]])
    cut = fragile_nms_decisions(far, torch.tensor([0.9, 0.8999995]),
                                torch.zeros(2, dtype=torch.long), 0.7, 1)
    assert [f[0] for f in cut] == ['cut']
