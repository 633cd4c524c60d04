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
