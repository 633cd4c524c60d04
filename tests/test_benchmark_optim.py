"""Inference rewrites keep outputs: BN folding, channels_last, top-k NMS."""
import copy

import pytest
import torch
import torch.nn as nn
import torchvision

from shufflenet_det.utils.inference import (PartRecorder, count_batchnorm,
                                            fold_batchnorm,
                                            optimize_for_inference,
                                            parse_optimizations, verify_parts)
from shufflenet_det.utils.nms import plain_nms_threshold, topk_batched_nms

from .conftest import base_model_cfg


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


def random_boxes(n, size=200.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * size
    wh = 8 + torch.rand(n, 2, generator=gen) * size / 3
    return torch.cat([xy, xy + wh], 1)


# ----------------------------------------------------------- BN folding
def test_fold_sequential_conv_bn():
    model = randomize_(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1),
                                     nn.BatchNorm2d(8), nn.ReLU(),
                                     nn.Conv2d(8, 4, 1, bias=False),
                                     nn.BatchNorm2d(4))).eval()
    x = torch.randn(2, 3, 16, 16)
    expected = model(x)
    assert fold_batchnorm(model) == 2
    assert count_batchnorm(model) == 0
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


def test_fold_skips_training_mode_and_preactivation():
    from mmcv.cnn import ConvModule
    train_bn = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    assert fold_batchnorm(train_bn) == 0  # training mode: batch statistics
    pre_act = ConvModule(4, 4, 1, norm_cfg=dict(type='BN'),
                         order=('norm', 'conv', 'act')).eval()
    assert fold_batchnorm(pre_act) == 0  # the BN sees the input
    assert count_batchnorm(pre_act) == 1


@pytest.mark.parametrize('extra_dw', [False, True])
def test_shufflenet_v2_fold_and_channels_last(extra_dw):
    from shufflenet_det.models.backbones import ShuffleNetV2
    model = randomize_(ShuffleNetV2('0.5x', extra_dw=extra_dw,
                                    out_indices=(0, 1, 2, 3))).eval()
    bn_before = count_batchnorm(model)
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        expected = model(x)
        info = optimize_for_inference(model, 'fold,cl')
        got = model(x)
    assert info['folded_bn'] == bn_before > 0
    assert info['unfolded_bn'] == 0 and info['channels_last']
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4 * e.abs().max())


@pytest.mark.parametrize('channels_last', [False, True])
def test_fused_shuffle_is_bit_identical(channels_last):
    from shufflenet_det.models.backbones import ShuffleNetV2
    model = randomize_(ShuffleNetV2('0.5x', extra_dw=True,
                                    out_indices=(0, 1, 2))).eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)
        info = optimize_for_inference(model, 'shuffle')
        got = model(x)
    assert info['fused_shuffle'] == 16
    for e, g in zip(expected, got):
        assert torch.equal(e, g)
        assert g.is_contiguous(memory_format=torch.channels_last) == \
            channels_last


def test_optimize_rejects_bad_input():
    with pytest.raises(ValueError, match='unknown optimisation'):
        parse_optimizations('fold,warp')
    with pytest.raises(ValueError, match='eval'):
        optimize_for_inference(nn.Conv2d(1, 1, 1), 'fold')
    assert parse_optimizations('none') == ()
    assert parse_optimizations('cl,fold') == ('fold', 'cl')


# ------------------------------------------------------------------ NMS
def reference_batched_nms(boxes, scores, groups, iou, max_num):
    from mmcv.ops import batched_nms
    dets, keep = batched_nms(boxes, scores, groups,
                             dict(type='nms', iou_threshold=iou,
                                  split_thr=0))  # per-group, exact IoU
    return dets[:max_num], keep[:max_num]


@pytest.mark.parametrize('num,groups,max_num', [
    (3000, 1, 100),     # RPN-like: one level
    (5000, 80, 100),    # R-CNN-like: per class
    (300, 5, 250),      # fewer kept than max_num: the chunk must grow
])
def test_topk_batched_nms_equals_full_nms(num, groups, max_num):
    boxes = random_boxes(num)
    scores = torch.rand(num, generator=torch.Generator().manual_seed(1))
    idxs = torch.randint(0, groups, (num, ),
                         generator=torch.Generator().manual_seed(2))
    dets, keep = topk_batched_nms(boxes, scores, idxs, 0.5, max_num)
    ref_dets, ref_keep = reference_batched_nms(boxes, scores, idxs, 0.5,
                                               max_num)
    assert torch.equal(keep, ref_keep)
    torch.testing.assert_close(dets, ref_dets, rtol=0, atol=0)


def test_topk_batched_nms_reproduces_mmcv_rounding():
    # Pairs of boxes whose IoU is 0.5 in exact arithmetic: mmcv shifts each
    # class by class x (max coordinate + 1), which rounds coordinates and
    # so decides these ties its own way. The top-k NMS must decide alike.
    gen = torch.Generator().manual_seed(6)
    n = 2000
    xy = torch.rand(n, 2, generator=gen) * 900
    side = 30.0 + torch.rand(n, generator=gen) * 60
    base = torch.stack([xy[:, 0], xy[:, 1], xy[:, 0] + side,
                        xy[:, 1] + side], 1)
    shift = torch.stack([side / 3, 0 * side, side / 3, 0 * side], 1)
    boxes = torch.cat([base, base + shift])
    idxs = torch.randint(0, 80, (n, ), generator=gen).repeat(2)
    scores = torch.rand(2 * n, generator=gen)
    from mmcv.ops import batched_nms
    exact = []  # per-class NMS on unshifted boxes: differs from mmcv here
    for c in idxs.unique():
        i = (idxs == c).nonzero().view(-1)
        exact.append(i[torchvision.ops.nms(boxes[i], scores[i], 0.5)])
    for split_thr in (0, 10 ** 9):  # mmcv's per-class and one-shot paths
        ref_dets, ref_keep = batched_nms(
            boxes, scores, idxs,
            dict(type='nms', iou_threshold=0.5, split_thr=split_thr))
        assert len(ref_keep) != len(torch.cat(exact))
        for max_num in (100, 1000, len(ref_keep)):
            dets, keep = topk_batched_nms(boxes, scores, idxs, 0.5, max_num)
            assert torch.equal(keep, ref_keep[:max_num])
            assert torch.equal(dets, ref_dets[:max_num])


def test_plain_nms_threshold():
    assert plain_nms_threshold(dict(type='nms', iou_threshold=0.7)) == 0.7
    assert plain_nms_threshold(dict(type='soft_nms', iou_threshold=0.7)) \
        is None
    assert plain_nms_threshold(
        dict(type='nms', iou_threshold=0.7, class_agnostic=True)) is None


@pytest.mark.parametrize('score_thr,rescale', [(0.0, False), (0.05, True)])
def test_topk_bbox_post_processing_equals_mmdet(score_thr, rescale):
    from mmdet.models.roi_heads.bbox_heads import BBoxHead
    from mmengine.config import ConfigDict

    from shufflenet_det.utils.nms import topk_bbox_predict_by_feat_single
    head = BBoxHead(with_avg_pool=False, roi_feat_size=7, in_channels=10,
                    num_classes=80, bbox_coder=dict(
                        type='DeltaXYWHBBoxCoder',
                        target_means=[0.] * 4,
                        target_stds=[0.1, 0.1, 0.2, 0.2])).eval()
    gen = torch.Generator().manual_seed(3)
    rois = torch.cat([torch.zeros(1000, 1), random_boxes(1000, 600.)], 1)
    cls_score = 2 * torch.randn(1000, 81, generator=gen)
    bbox_pred = 0.5 * torch.randn(1000, 320, generator=gen)
    meta = dict(img_shape=(600, 800), scale_factor=(1.25, 1.25))
    cfg = ConfigDict(score_thr=score_thr,
                     nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
    expected = head._predict_by_feat_single(rois, cls_score, bbox_pred, meta,
                                            rescale, cfg)
    got = topk_bbox_predict_by_feat_single(head, rois, cls_score, bbox_pred,
                                           meta, rescale, cfg)
    assert len(got) == len(expected) == 100
    torch.testing.assert_close(got.scores, expected.scores, rtol=0, atol=0)
    assert torch.equal(got.labels, expected.labels)
    torch.testing.assert_close(got.bboxes, expected.bboxes, rtol=0, atol=0)


# ------------------------------------------------------- whole detector
@pytest.fixture(scope='module')
def detector():
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import shufflenet_det  # noqa: F401
    from shufflenet_det.benchmark.detector import detector_step, make_batch
    cfg = base_model_cfg()
    cfg.backbone.arch = '0.5x'
    torch.manual_seed(0)
    model = randomize_(MODELS.build(cfg)).eval()
    # Calibrate the classifiers so that scores are spread (no near-ties
    # that NMS could order either way) and keep box deltas modest.
    logits = {}
    hooks = [model.rpn_head.rpn_cls.register_forward_hook(
        lambda m, i, o: logits.__setitem__('rpn', o)),
        model.roi_head.bbox_head.fc_cls.register_forward_hook(
        lambda m, i, o: logits.__setitem__('rcnn', o))]
    data = make_batch(2, (192, 256), seed=1)
    detector_step(model, data, torch.device('cpu'))()
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for layer, key in ((model.rpn_head.rpn_cls, 'rpn'),
                           (model.roi_head.bbox_head.fc_cls, 'rcnn')):
            scale = 2.0 / float(logits[key].std())
            layer.weight.mul_(scale)
            layer.bias.mul_(scale)
        # Zero box deltas: proposals are the anchors and detections the
        # proposals, so boxes stay well-formed (random deltas collapse them
        # onto the image border, where near-duplicates tie).
        for layer in (model.rpn_head.rpn_reg, model.roi_head.bbox_head.fc_reg):
            layer.weight.zero_()
            layer.bias.zero_()
    return model, data


def test_optimized_detector_equals_eager(detector):
    from shufflenet_det.benchmark.detector import detector_step
    model, data = detector
    device = torch.device('cpu')
    eager = copy.deepcopy(model)
    with PartRecorder(eager, ['backbone', 'rpn_head', 'roi_head.lsc',
                              'roi_head.bbox_head']) as rec:
        expected = detector_step(eager, copy.deepcopy(data), device)()
    fast = copy.deepcopy(model)
    info = optimize_for_inference(fast, 'default')
    assert info['topk_nms'] == ['rpn_head', 'roi_head.bbox_head']
    assert info['unfolded_bn'] == 0 and info['folded_bn'] > 0
    for part, diff in verify_parts(fast, rec.calls, device).items():
        assert 'error' not in diff, (part, diff)
        assert diff['rel_diff'] < 1e-4, (part, diff)
    got = detector_step(fast, copy.deepcopy(data), device)()
    for e, g in zip(expected, got):
        assert_same_detections(e.pred_instances, g.pred_instances)


def assert_same_detections(expected, got, score_tol=1e-3, box_tol=0.5):
    """The same detections up to rounding, in any order.

    Rounding (folded weights, NHWC kernels) may swap the ranks of two
    near-tied boxes, so detections are matched as a set: same label, box
    within ``box_tol`` px, score within ``score_tol`` relative. Only a
    detection tied (within ``score_tol``) with the last kept score may be
    replaced by another one, as the top-k cut may then fall either way.
    """
    assert len(expected) == len(got) > 0
    unmatched = torch.ones(len(got), dtype=torch.bool)
    cut = float(expected.scores.min())
    for box, score, label in zip(expected.bboxes, expected.scores,
                                 expected.labels):
        close = unmatched & (got.labels == label) & \
            ((got.bboxes - box).abs().max(1).values <= box_tol) & \
            ((got.scores - score).abs() <= score_tol * score)
        if close.any():
            unmatched[close.nonzero()[0, 0]] = False
        else:
            assert float(score) <= cut * (1 + score_tol), (
                f'detection {box.tolist()} label {int(label)} score '
                f'{float(score):.5f} is missing from the optimised output')


def test_topk_nms_alone_is_exact(detector):
    from shufflenet_det.benchmark.detector import detector_step
    model, data = detector
    device = torch.device('cpu')
    expected = detector_step(model, copy.deepcopy(data), device)()
    fast = copy.deepcopy(model)
    optimize_for_inference(fast, 'nms')
    got = detector_step(fast, copy.deepcopy(data), device)()
    for e, g in zip(expected, got):
        # Bit-identical detections; only boxes with exactly equal scores may
        # come in another order (mmcv's sort is not stable).
        assert torch.equal(e.pred_instances.scores, g.pred_instances.scores)
        assert_same_detections(e.pred_instances, g.pred_instances,
                               score_tol=0.0, box_tol=0.0)



# ------------------------------------------------------------ PSRoIAlign
@pytest.mark.parametrize('output_size,sampling_ratio', [((7, 7), 2),
                                                        ((3, 2), 3)])
def test_grid_psroi_align_matches_torchvision(output_size, sampling_ratio):
    from torchvision.ops import ps_roi_align

    from shufflenet_det.utils.psroi import GridPSRoIAlign
    gen = torch.Generator().manual_seed(7)
    bins = output_size[0] * output_size[1]
    feat = torch.randn(3, 4 * bins, 13, 19, generator=gen)
    # Image 1 has no RoI; RoIs run past every border; order is shuffled.
    index = torch.tensor([0, 2] * 60, dtype=torch.float32)[:, None]
    xy = torch.rand(120, 2, generator=gen) * 700 - 100
    wh = torch.rand(120, 2, generator=gen) * 300
    rois = torch.cat([index, xy, xy + wh], 1)
    rois = rois[torch.randperm(120, generator=gen)]
    layer = GridPSRoIAlign(output_size, 1 / 32., sampling_ratio)
    got = layer(feat, rois)
    expected = ps_roi_align(feat, rois, output_size, 1 / 32., sampling_ratio)
    assert got.shape == expected.shape == (120, 4, *output_size)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert layer(feat, rois[:0]).shape == (0, 4, *output_size)
    # Adaptive sampling is torchvision's own business.
    adaptive = GridPSRoIAlign(output_size, 1 / 32., 0)
    assert torch.equal(adaptive(feat, rois),
                       ps_roi_align(feat, rois, output_size, 1 / 32., 0))


# -------------------------------------------------------- pre-processing
@pytest.mark.parametrize('bgr_to_rgb,pad_value', [(True, 0), (False, 3.5)])
def test_fast_preprocess_is_bit_identical(bgr_to_rgb, pad_value):
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    from mmdet.structures import DetDataSample

    from shufflenet_det.utils.preprocess import fast_det_preprocess
    pre = DetDataPreprocessor(mean=[123.675, 116.28, 103.53],
                              std=[58.395, 57.12, 57.375],
                              bgr_to_rgb=bgr_to_rgb, pad_size_divisor=32,
                              pad_value=pad_value)
    gen = torch.Generator().manual_seed(8)
    sizes = [(50, 70), (64, 33)]  # different sizes: padding to 64 x 96

    def batch():
        return dict(
            inputs=[torch.randint(0, 256, (3, h, w), generator=gen,
                                  dtype=torch.uint8) for h, w in sizes],
            data_samples=[DetDataSample(metainfo=dict(img_shape=s))
                          for s in sizes])

    data = batch()
    expected = pre(copy.deepcopy(data), False)
    got = fast_det_preprocess(pre, copy.deepcopy(data), False)
    assert got['inputs'].shape == expected['inputs'].shape == (2, 3, 64, 96)
    assert torch.equal(got['inputs'], expected['inputs'])
    for e, g in zip(expected['data_samples'], got['data_samples']):
        assert e.batch_input_shape == g.batch_input_shape == (64, 96)
        assert e.pad_shape == g.pad_shape
    # Training goes to mmdet.
    train = fast_det_preprocess(pre, copy.deepcopy(data), True)
    assert torch.equal(train['inputs'], expected['inputs'])
