"""LightHeadRPNHead's fallbacks to mmdet's RPNHead post-processing.

``LightHeadRPNHead._bbox_post_process`` runs its own early-stopping NMS
only for a plain ``dict(type='nms', iou_threshold=t)`` with
``max_per_img > 0``; every other setting, and an image whose proposals are
all dropped by ``min_bbox_size``, is handed to ``RPNHead``. Each branch is
checked here twice: that it really takes mmdet's code (our NMS is made to
fail), and that the result is stock ``RPNHead``'s, with the same weights,
to the bit.
"""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict

import shufflenet_det  # noqa: F401  (registers the head)
from shufflenet_det.models.dense_heads import light_head_rpn_head
from tests.conftest import CONFIGS

CHANNELS = 16
# A 320x480 input at stride 16; images resized by (2.0, 1.5) from originals
# of 240x160 (w x h), so that rescaling shows.
FEAT = (20, 30)
METAS = [dict(img_shape=(320, 480), ori_shape=(160, 240),
              scale_factor=(2.0, 1.5), pad_shape=(320, 480))] * 2
PLAIN = dict(nms_pre=600, max_per_img=100, min_bbox_size=0,
             nms=dict(type='nms', iou_threshold=0.7))


def _heads():
    """Ours and stock RPNHead from the Light-Head config, same weights."""
    cfg = Config.fromfile(str(
        CONFIGS / 'light_head_rcnn/'
        'light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco.py'))
    head_cfg = cfg.model.rpn_head.to_dict()
    head_cfg.update(in_channels=CHANNELS, feat_channels=CHANNELS,
                    train_cfg=None, test_cfg=ConfigDict(PLAIN))
    head_cfg['anchor_generator'].update(strides=[16])
    torch.manual_seed(0)
    ours = MODELS.build(head_cfg)
    stock = MODELS.build(dict(head_cfg, type='RPNHead'))
    stock.load_state_dict(ours.state_dict())
    assert type(stock).__name__ == 'RPNHead'
    return ours.eval(), stock.eval()


def _outputs(head):
    """RPN scores and deltas of two images: random features, deltas of
    realistic size (the head's own random conv weights scaled down)."""
    gen = torch.Generator().manual_seed(1)
    feat = torch.randn(2, CHANNELS, *FEAT, generator=gen)
    with torch.no_grad():
        cls_scores, bbox_preds = head((feat, ))
    return cls_scores, [b * 0.3 for b in bbox_preds]


def _predict(head, cfg, rescale=True, with_nms=True):
    cls_scores, bbox_preds = _outputs(head)
    return head.predict_by_feat(cls_scores, bbox_preds,
                                batch_img_metas=METAS, cfg=ConfigDict(cfg),
                                rescale=rescale, with_nms=with_nms)


@pytest.fixture
def no_fast_path(monkeypatch):
    """Our early-stopping NMS raises: a passing call took mmdet's code."""
    def refuse(*args, **kwargs):
        raise AssertionError('the fast path ran instead of the fallback')
    monkeypatch.setattr(light_head_rpn_head, 'topk_batched_nms', refuse)


def _assert_same(ours, stock):
    assert len(ours) == len(stock) == 2
    for a, b in zip(ours, stock):
        assert set(a.keys()) == set(b.keys()) == {'bboxes', 'scores',
                                                  'labels'}
        for key in ('bboxes', 'scores', 'labels'):
            assert torch.equal(a.get(key), b.get(key)), key


FALLBACKS = {
    # test_cfg changes from PLAIN that our NMS does not express.
    'class-agnostic nms': dict(nms=dict(type='nms', iou_threshold=0.7,
                                        class_agnostic=True)),
    'nms offset 1': dict(nms=dict(type='nms', iou_threshold=0.7, offset=1)),
    'nms max_num': dict(nms=dict(type='nms', iou_threshold=0.7,
                                 max_num=40)),
    'max_per_img 0': dict(max_per_img=0),
    'max_per_img -1': dict(max_per_img=-1),
    'all below min_bbox_size': dict(min_bbox_size=10**4),
}


@pytest.mark.parametrize('change', FALLBACKS)
def test_fallback_equals_stock_rpn_head(change, no_fast_path):
    ours, stock = _heads()
    cfg = dict(PLAIN, **FALLBACKS[change])
    result = _predict(ours, cfg)
    _assert_same(result, _predict(stock, cfg))
    if change == 'all below min_bbox_size':
        assert all(len(r) == 0 and r.bboxes.shape == (0, 4) for r in result)
    elif change != 'max_per_img 0':
        assert all(len(r) > 0 for r in result)  # not trivially equal


@pytest.mark.full_mmcv
def test_soft_nms_falls_back(no_fast_path):
    """Soft-NMS (mmcv's compiled op: the --full-mmcv lane) rescores."""
    ours, stock = _heads()
    cfg = dict(PLAIN, nms=dict(type='soft_nms', iou_threshold=0.7,
                               min_score=0.05))
    _assert_same(_predict(ours, cfg), _predict(stock, cfg))


def test_without_nms_as_stock(no_fast_path):
    """``with_nms=False``. mmdet's ``RPNHead._predict_by_feat_single`` does
    not pass it on, so through ``predict_by_feat`` both heads apply NMS
    anyway (mmdet's behaviour, kept); called directly with it, the
    post-processing refuses it with RPNHead's own message, in our head too
    (the fallback), instead of returning un-suppressed proposals."""
    from mmengine.structures import InstanceData
    ours, stock = _heads()
    gen = torch.Generator().manual_seed(2)
    boxes = torch.rand(50, 4, generator=gen) * 100
    boxes[:, 2:] += boxes[:, :2] + 1
    for head in (ours, stock):
        results = InstanceData(bboxes=boxes.clone(),
                               scores=torch.rand(50, generator=gen),
                               level_ids=torch.zeros(50, dtype=torch.long))
        with pytest.raises(AssertionError, match='`with_nms` must be True'):
            head._bbox_post_process(results, ConfigDict(PLAIN),
                                    with_nms=False, img_meta=METAS[0])


def test_without_nms_through_predict_equals_stock():
    ours, stock = _heads()
    _assert_same(_predict(ours, PLAIN, with_nms=False),
                 _predict(stock, PLAIN, with_nms=False))


def test_plain_nms_takes_the_fast_path(no_fast_path):
    """The control: the config the Light-Head configs use does not fall
    back (else the tests above would prove nothing about the branches)."""
    ours, _ = _heads()
    with pytest.raises(AssertionError, match='the fast path ran'):
        _predict(ours, PLAIN)
