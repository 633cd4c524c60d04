"""The early-stopping NMS returns exactly mmcv's boxes."""
import pytest
import torch
import torchvision

from shufflenet_det.models.layers.topk_nms import (plain_nms_threshold,
                                                   topk_batched_nms)


def random_boxes(n, size=200.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * size
    wh = 8 + torch.rand(n, 2, generator=gen) * size / 3
    return torch.cat([xy, xy + wh], 1)


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
@pytest.mark.full_mmcv
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


@pytest.mark.full_mmcv
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
