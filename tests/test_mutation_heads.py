"""Tests written for mutants that survived the fast tier (docs/mutation.md):
the heads' post-processing and export, the RoI head."""
import torch


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
