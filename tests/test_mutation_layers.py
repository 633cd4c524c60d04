"""Tests written for mutants that survived the fast tier (docs/mutation.md):
the ONNX NMS pieces of shufflenet_det/models/layers/onnx_nms.py."""
import io

import pytest
import torch

ort = pytest.importorskip('onnxruntime')

SCORE_THR = 0.25  # exact in float32, so a score can sit exactly on it


def nms_case():
    """(2, 12, 4) disjoint boxes, (2, 3, 12) scores and the rows an NMS
    above SCORE_THR must return: class 0 has no box above the threshold,
    class 1 exactly one, class 2 four of which one is exactly on it."""
    xy = torch.arange(12, dtype=torch.float32)[:, None] * 20
    boxes = torch.cat([xy, xy, xy + 10, xy + 10], 1)[None].repeat(2, 1, 1)
    scores = torch.full((2, 3, 12), 0.1)
    scores[:, 1, 5] = 0.9
    scores[:, 2, [2, 7, 9]] = torch.tensor([0.5, 0.8, 0.3])
    scores[:, 2, 4] = SCORE_THR  # not above: ignored
    rows = []
    for b in range(2):
        rows += [[b, 1, 5], [b, 2, 7], [b, 2, 2], [b, 2, 9]]
    return boxes, scores, rows


def test_onnx_nms_score_threshold_and_sparse_classes():
    """A class with no candidate must not stop the loop (later classes and
    images still count), a single candidate is kept, a score equal to the
    threshold is ignored, in eager and ONNX Runtime alike; with fewer than
    ``max_output`` candidates the graph's score threshold decides."""
    from shufflenet_det.models.layers.onnx_nms import ONNXNonMaxSuppression

    class NMS(torch.nn.Module):
        def forward(self, boxes, scores):
            return ONNXNonMaxSuppression.apply(boxes, scores, 5, 0.5,
                                               SCORE_THR)

    boxes, scores, rows = nms_case()
    assert NMS()(boxes, scores).tolist() == rows
    buf = io.BytesIO()
    torch.onnx.export(NMS(), (boxes, scores), buf, dynamo=False,
                      opset_version=17, input_names=['b', 's'])
    session = ort.InferenceSession(buf.getvalue(),
                                   providers=['CPUExecutionProvider'])
    got = session.run(None, dict(b=boxes.numpy(), s=scores.numpy()))[0]
    assert got.tolist() == rows


def test_onnx_nms_nothing_above_threshold_is_empty():
    from shufflenet_det.models.layers.onnx_nms import ONNXNonMaxSuppression
    boxes, scores, _ = nms_case()
    out = ONNXNonMaxSuppression.apply(boxes, scores, 5, 0.5, 0.95)
    assert out.shape == (0, 3) and out.dtype == torch.long


def priors_and_deltas(classes):
    """Priors crossing a 60 x 80 image and large deltas (centre shifts of
    several box sizes, so that ``ctr_clamp`` and clipping both act)."""
    gen = torch.Generator().manual_seed(3)
    xy = torch.rand(40, 2, generator=gen) * torch.tensor([80., 60.]) - 10
    priors = torch.cat([xy, xy + 5 + torch.rand(40, 2, generator=gen) * 30],
                       1)
    deltas = (torch.rand(40, 4 * classes, generator=gen) - 0.5) * 6
    return priors, deltas


@pytest.mark.parametrize('classes', [1, 3])
@pytest.mark.parametrize('coder_cfg', [
    dict(),
    dict(target_stds=(0.1, 0.1, 0.2, 0.2), clip_border=False),
    dict(add_ctr_clamp=True, ctr_clamp=8),
])
def test_decode_clipped_equals_coder_decode(coder_cfg, classes):
    """decode_clipped is the coder's own ``decode(max_shape=img_shape)``:
    clipping to [0, W] x [0, H] only when the coder clips, the centre clamp
    with the coder's own ``ctr_clamp``."""
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder

    from shufflenet_det.models.layers.onnx_nms import decode_clipped
    coder = DeltaXYWHBBoxCoder(**coder_cfg)
    priors, deltas = priors_and_deltas(classes)
    expected = coder.decode(priors.repeat_interleave(classes, 0),
                            deltas.reshape(-1, 4),
                            max_shape=(60, 80)).reshape(40, 4 * classes)
    got = decode_clipped(coder, priors, deltas, (60, 80))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    if coder_cfg.get('clip_border', True):  # the clipping acts here
        assert not torch.equal(decode_clipped(coder, priors, deltas, None),
                               got)
    if coder_cfg.get('add_ctr_clamp'):  # and so does the centre clamp
        free = DeltaXYWHBBoxCoder().decode(
            priors.repeat_interleave(classes, 0), deltas.reshape(-1, 4),
            max_shape=(60, 80)).reshape(40, 4 * classes)
        assert (free - got).abs().max() > 1


def random_boxes(n, seed):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * 200
    wh = 8 + torch.rand(n, 2, generator=gen) * 60
    return torch.cat([xy, xy + wh], 1), torch.rand(n, generator=gen)


@pytest.mark.parametrize('num,groups,max_num', [
    (1000, 1, 40),    # the first chunk (2 x max_num) already suffices
    (600, 7, 150),    # the chunk grows (4x) before max_num are kept
    (60, 3, 500),     # fewer boxes than max_num: everything is examined
])
def test_topk_batched_nms_equals_torchvision_batched_nms(num, groups,
                                                         max_num):
    """Against torchvision's batched NMS (the same group offset trick,
    without the early stop): independent of mmcv's compiled op, so it runs
    under mmcv-lite too. Random continuous boxes put no IoU within float
    rounding of 0.5."""
    import torchvision

    from shufflenet_det.models.layers.topk_nms import topk_batched_nms
    boxes, scores = random_boxes(num, seed=num)
    idxs = torch.randint(0, groups, (num, ),
                         generator=torch.Generator().manual_seed(groups))
    ref = torchvision.ops.batched_nms(boxes, scores, idxs, 0.5)[:max_num]
    dets, keep = topk_batched_nms(boxes, scores, idxs, 0.5, max_num)
    assert torch.equal(keep, ref)
    assert torch.equal(dets, torch.cat([boxes[ref], scores[ref, None]], 1))
    assert len(ref) == min(max_num, len(
        torchvision.ops.batched_nms(boxes, scores, idxs, 0.5)))


def test_group_offsets_shift_groups_apart():
    from shufflenet_det.models.layers.topk_nms import group_offsets
    boxes = torch.tensor([[0., 0., 10., 10.], [5., 5., 30., 20.]])
    offsets = group_offsets(boxes, torch.tensor([0, 2]))
    assert offsets.shape == (2, 1)
    assert offsets.view(-1).tolist() == [0., 62.]  # group x (max + 1)


@pytest.mark.parametrize('cfg,expected', [
    (None, None),
    (dict(type='nms', iou_threshold=0.7), 0.7),
    (dict(iou_threshold=0.6), 0.6),  # type defaults to 'nms'
    (dict(type='nms', iou_threshold=0.5, split_thr=10000), 0.5),
    (dict(type='nms', iou_threshold=0.5, max_num=-1, offset=0,
          class_agnostic=False), 0.5),
    (dict(type='nms'), None),
    (dict(type='soft_nms', iou_threshold=0.5), None),
    (dict(type='nms', iou_threshold=0.5, class_agnostic=True), None),
    (dict(type='nms', iou_threshold=0.5, offset=1), None),
    (dict(type='nms', iou_threshold=0.5, max_num=100), None),
    (dict(type='nms', iou_threshold=0.5, max_num=1), None),
    (dict(type='nms', iou_threshold=0.5, max_num=0), 0.5),  # mmcv: no cap
    (dict(type='nms', iou_threshold=0.5, min_score=0.1), None),
])
def test_plain_nms_threshold_every_key(cfg, expected):
    from shufflenet_det.models.layers.topk_nms import plain_nms_threshold
    original = None if cfg is None else dict(cfg)
    got = plain_nms_threshold(cfg)
    assert got == expected and (got is None or type(got) is float)
    assert cfg == original  # the caller's config is not consumed


def test_export_nms_threshold_accepts_and_names_the_culprit():
    from shufflenet_det.models.layers.onnx_nms import (ExportError,
                                                       export_nms_threshold)
    nms = dict(type='nms', iou_threshold=0.7)
    assert export_nms_threshold(dict(nms=nms, max_per_img=1), 'x') == 0.7
    soft = dict(type='soft_nms', iou_threshold=0.5)
    with pytest.raises(ExportError) as err:
        export_nms_threshold(dict(nms=soft, max_per_img=100), 'test_cfg.rcnn')
    assert str(err.value) == (
        f"test_cfg.rcnn.nms={soft!r}: only plain NMS (dict(type='nms', "
        "iou_threshold=t)) maps to ONNX NonMaxSuppression")
    for cfg in (dict(nms=nms, max_per_img=0), dict(nms=nms)):
        with pytest.raises(ExportError) as err:
            export_nms_threshold(cfg, 'test_cfg.rpn')
        assert str(err.value) == ('test_cfg.rpn.max_per_img must be > 0 for '
                                  'a static output shape')


def ps_case(batch=2, per_image=3, dtype=torch.float64):
    """(N, 2 * 3 * 3, 12, 16) map and (N, R, 4) RoIs (float32, as the
    proposals come), some crossing the map's border."""
    gen = torch.Generator().manual_seed(5)
    feat = torch.randn(batch, 18, 12, 16, generator=gen).to(dtype)
    xy = torch.rand(batch, per_image, 2, generator=gen) * 200 - 20
    wh = 10 + torch.rand(batch, per_image, 2, generator=gen) * 150
    return feat, torch.cat([xy, xy + wh], -1)


@pytest.mark.parametrize('mode,aligned', [('avg', True), ('max', False),
                                          ('max', True)])
def test_ps_roi_align_batched_equals_per_roi(mode, aligned):
    """The export path (static shapes) pools what the training/inference
    path pools, for every mode and alignment, also from a float64 map with
    float32 RoIs."""
    from shufflenet_det.models.layers.ps_roi_align import (GridPSRoIAlign,
                                                           ps_roi_align_grid)
    feat, rois = ps_case()
    layer = GridPSRoIAlign((3, 3), 1 / 16, 2, mode=mode, aligned=aligned)
    flat = torch.cat([torch.arange(2.).repeat_interleave(3)[:, None],
                      rois.reshape(-1, 4)], 1)
    expected = ps_roi_align_grid(feat, flat, (3, 3), 1 / 16, 2, mode,
                                 aligned)
    got = layer.forward_batched(feat, rois)
    assert got.shape == (2, 3, 2, 3, 3) and got.dtype == torch.float64
    torch.testing.assert_close(got.reshape(6, 2, 3, 3), expected)
    torch.testing.assert_close(layer(feat, flat), expected)


def test_ps_roi_align_defaults_are_torchvision_semantics():
    from shufflenet_det.models.layers.ps_roi_align import (
        GridPSRoIAlign, ps_roi_align_grid, ps_roi_align_grid_batched)
    feat, rois = ps_case(dtype=torch.float32)
    explicit = ps_roi_align_grid_batched(feat, rois, (3, 3), 1 / 16, 2,
                                         'avg', True)
    torch.testing.assert_close(
        ps_roi_align_grid_batched(feat, rois, (3, 3), 1 / 16, 2), explicit)
    flat = torch.cat([torch.zeros(3, 1), rois[0]], 1)
    torch.testing.assert_close(
        ps_roi_align_grid(feat, flat, (3, 3), 1 / 16, 2),
        ps_roi_align_grid(feat, flat, (3, 3), 1 / 16, 2, 'avg', True))
    layer = GridPSRoIAlign(3, 1 / 16)
    assert (layer.sampling_ratio, layer.mode, layer.aligned) == (2, 'avg',
                                                                 True)
    assert GridPSRoIAlign(3, 1 / 16, 1).sampling_ratio == 1  # 1 is valid
    with pytest.raises(ValueError) as err:
        GridPSRoIAlign(3, 1 / 16, 2.0)
    assert str(err.value) == ('GridPSRoIAlign: sampling_ratio must be a '
                              'positive int, but received 2.0')


@pytest.mark.parametrize('layer_type', ['GridPSRoIAlign', 'PSRoIAlign',
                                        'PSRoIPool'])
def test_ps_roi_extractor_float64_map_and_empty_rois(layer_type):
    """RoIs are cast to the map's dtype for every layer (torchvision's ops
    require equal dtypes); no RoI gives an empty (0, C, k, k) result."""
    from shufflenet_det.models.roi_extractors import PSRoIExtractor
    extra = {} if layer_type == 'PSRoIPool' else dict(sampling_ratio=2)
    ext = PSRoIExtractor(roi_layer=dict(type=layer_type, output_size=3,
                                        **extra),
                         out_channels=2, featmap_strides=[16])
    feat, rois = ps_case()
    flat = torch.cat([torch.tensor([[0.], [1.]]), rois[:, 0]], 1)
    out = ext((feat, ), flat)
    assert out.shape == (2, 2, 3, 3) and out.dtype == torch.float64
    empty = ext((feat, ), flat[:0])
    assert empty.shape == (0, 2, 3, 3) and empty.dtype == torch.float64


def test_ps_roi_extractor_errors_name_the_culprit():
    from shufflenet_det.models.layers.onnx_nms import ExportError
    from shufflenet_det.models.roi_extractors import PSRoIExtractor
    with pytest.raises(ValueError) as err:
        PSRoIExtractor(roi_layer=dict(output_size=3), featmap_strides=[16])
    assert str(err.value) == (
        "PSRoIExtractor: roi_layer.type must be one of ['GridPSRoIAlign', "
        "'PSRoIAlign', 'PSRoIPool'], but received None")
    with pytest.raises(ValueError) as err:
        PSRoIExtractor(featmap_strides=[16, 32])
    assert str(err.value) == (
        'PSRoIExtractor: featmap_strides must hold exactly one stride '
        '(LightHeadRCNN fills it from backbone.out_strides), but received '
        '[16, 32]')
    ext = PSRoIExtractor(roi_layer=dict(type='PSRoIPool', output_size=3),
                         featmap_strides=[16])
    with pytest.raises(ExportError) as err:
        ext.check_export()
    assert str(err.value) == (
        'roi_head.bbox_roi_extractor.roi_layer is PSRoIPool: torchvision '
        "ps_roi_align/pool have no ONNX operator; use "
        "dict(type='GridPSRoIAlign', ...) (GridSample)")


def test_ps_roi_extractor_defaults_and_init_cfg():
    """``output_size`` defaults to 7 when the layer config omits it, and
    ``init_cfg`` reaches mmengine's ``BaseModule``."""
    from shufflenet_det.models.roi_extractors import PSRoIExtractor
    ext = PSRoIExtractor(roi_layer=dict(type='GridPSRoIAlign'),
                         featmap_strides=[16])
    assert ext.output_size == (7, 7) == ext.roi_layers[0].output_size
    init = dict(type='Normal', layer='Conv2d', std=0.01)
    assert PSRoIExtractor(featmap_strides=[16], init_cfg=init).init_cfg == \
        init


@pytest.mark.parametrize('aligned', [True, False])
def test_ps_roi_align_inverted_rois_both_axes(aligned):
    """A RoI with x2 < x1 and one with y2 < y1: torchvision's convention
    keeps the negative size, the official one clamps it to 0, on each
    axis."""
    from shufflenet_det.models.layers.ps_roi_align import ps_roi_align_grid
    from tests.test_models.test_layers_ps_roi_align import reference
    gen = torch.Generator().manual_seed(2)
    feat = torch.randn(1, 2 * 3 * 3, 8, 10, generator=gen,
                       dtype=torch.float64)
    rois = torch.tensor([[0., 40., 90., 150., 30.],    # y2 < y1
                         [0., 140., 20., 60., 100.]],  # x2 < x1
                        dtype=torch.float64)
    for mode in ('avg', 'max'):
        torch.testing.assert_close(
            ps_roi_align_grid(feat, rois, (3, 3), 1 / 16, 2, mode, aligned),
            reference(feat, rois, (3, 3), 1 / 16, 2, mode, aligned))


def test_ps_roi_align_samples_exactly_on_the_border_limits():
    """torchvision reads a sample at exactly -1 or exactly ``size`` (it
    clamps it to the border); only beyond that it reads 0."""
    from torchvision.ops import ps_roi_align

    from shufflenet_det.models.layers.ps_roi_align import ps_roi_align_grid
    feat = torch.arange(1., 1 + 6 * 8, dtype=torch.float64).view(1, 1, 6, 8)
    # Zero-size RoIs: the one sample sits at x1 - 0.5, y1 - 0.5.
    rois = torch.tensor([[0., 8.5, 2.5, 8.5, 2.5],     # x = 8 = width
                         [0., -0.5, 6.5, -0.5, 6.5],   # x = -1, y = 6
                         [0., 8.6, 2.5, 8.6, 2.5]],    # x = 8.1: outside
                        dtype=torch.float64)
    got = ps_roi_align_grid(feat, rois, (1, 1), 1.0, 1, 'avg', True)
    expected = ps_roi_align(feat, rois, (1, 1), 1.0, 1)
    assert expected.view(-1).tolist() == [24., 41., 0.]
    torch.testing.assert_close(got, expected)
