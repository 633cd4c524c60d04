"""The official Light-Head R-CNN training rules are the Table 7 defaults
(issue 18): LSC at 3x lr, no weight decay on biases, py-faster-rcnn anchors
and RPN assignment, 2-way softmax objectness, warm-up before the 150k; each
with a one-line switch back that the config comments give."""
import math

import pytest
import torch
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.structures import InstanceData

from tests.conftest import COCO_MINI, COCO_MINI_SKIP, CONFIGS, REPO

REFERENCE = CONFIGS / ('light_head_rcnn/'
                       'light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco.py')
TINY = REPO / 'tests/configs/light-head-rcnn_shufflenetv2-0.5x_tiny_coco-mini.py'
LR, WD = 0.01, 1e-4
# py-faster-rcnn generate_anchors(base_size=16, ratios=[0.5, 1, 2],
# scales=[2, 4, 8, 16, 32]), the official anchors, scale 8 (128 px) of each
# ratio: computed by hand from its _ratio_enum / _scale_enum.
OFFICIAL_SCALE8 = {0.5: [-84., -40., 99., 55.],
                   1.0: [-56., -56., 71., 71.],
                   2.0: [-36., -80., 51., 95.]}

register_all_modules()


def load(switch: str = '') -> Config:
    cfg = Config.fromfile(str(REFERENCE))
    if switch:  # a switch-back line as the config comments give it
        scope = {}
        exec(switch, {}, scope)
        cfg.merge_from_dict(scope)
    cfg.model.backbone.init_cfg = None  # offline
    return cfg


def param_groups(cfg: Config) -> dict:
    """``name -> (lr, weight_decay)`` of the optimiser the config builds."""
    model = MODELS.build(cfg.model)
    optim = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    by_id = {id(p): (g['lr'], g['weight_decay'])
             for g in optim.param_groups for p in g['params']}
    return {n: by_id[id(p)] for n, p in model.named_parameters()
            if p.requires_grad}


def test_lsc_learns_3x_faster_and_biases_have_no_decay():
    groups = param_groups(load())
    lsc = [n for n in groups if n.startswith('roi_head.lsc.')]
    assert len(lsc) == 8, lsc
    for name, (lr, wd) in groups.items():
        bias = name.endswith('.bias')
        want_lr = 3 * LR if name in lsc else LR
        assert math.isclose(lr, want_lr), (name, lr)
        assert wd == (0. if bias else WD), (name, wd)
    # The heads' biases, named: RPN, LSC, R-CNN FC and classifiers.
    for name in ('rpn_head.rpn_conv.bias', 'rpn_head.rpn_cls.bias',
                 'roi_head.lsc.row.0.bias', 'roi_head.bbox_head.fc_cls.bias',
                 'roi_head.bbox_head.fc_reg.bias',
                 'roi_head.bbox_head.shared_fcs.0.bias'):
        assert groups[name][1] == 0., name
    assert groups['roi_head.lsc.col.1.weight'] == (pytest.approx(3 * LR), WD)
    assert groups['roi_head.bbox_head.fc_cls.weight'] == (LR, WD)


def _switch_line(fragment: str) -> str:
    """The switch-back line of the schedule that contains ``fragment``."""
    text = (CONFIGS / '_base_/schedules/schedule_150k.py').read_text()
    lines = [line.strip()[2:].split('  # noqa')[0]
             for line in text.splitlines()
             if line.strip().startswith('# optim_wrapper =')]
    (line, ) = [line for line in lines if fragment in line]
    return line


def test_optimiser_switches_back_in_one_line():
    plain_lsc = param_groups(load(_switch_line('_delete_=True)))')))
    for name, (lr, wd) in plain_lsc.items():
        assert lr == LR and wd == (0. if name.endswith('.bias') else WD)
    decay = param_groups(load(_switch_line('bias_decay_mult=1.')))
    for name, (lr, wd) in decay.items():
        assert wd == WD, name
        assert math.isclose(lr, 3 * LR if 'lsc' in name else LR), name


def test_first_rpn_anchor_is_centred_at_7_5():
    cfg = load()
    head = MODELS.build(cfg.model).rpn_head
    anchors = head.prior_generator.grid_priors([(2, 3)], device='cpu')[0]
    per_cell = head.prior_generator.num_base_priors[0]
    assert per_cell == 15
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    assert torch.equal(centres[:per_cell],
                       torch.full((per_cell, 2), 7.5))
    assert torch.equal(centres[per_cell], torch.tensor([23.5, 7.5]))
    assert torch.equal(centres[3 * per_cell], torch.tensor([7.5, 23.5]))
    # Scales x ratios, ratio-major as py-faster-rcnn; scale 8 is index 2.
    for i, ratio in enumerate((0.5, 1.0, 2.0)):
        ours = anchors[i * 5 + 2].tolist()
        official = OFFICIAL_SCALE8[ratio]
        if ratio == 1.0:  # square anchors: exactly the official ones
            assert ours == official
        else:  # mmdet's legacy generator scales before rounding (README)
            assert max(abs(a - b) for a, b in zip(ours, official)) == 3, \
                (ratio, ours, official)
    # The official shapes, one switch away.
    cfg.model.rpn_head.anchor_generator.type = 'PyFasterRCNNAnchorGenerator'
    official = MODELS.build(cfg.model).rpn_head.prior_generator
    assert torch.equal(official.base_anchors[0], torch.from_numpy(
        generate_anchors(16, [0.5, 1, 2], [2, 4, 8, 16, 32])).float())


def generate_anchors(base_size, ratios, scales):
    """py-faster-rcnn's ``generate_anchors`` (lib/rpn/generate_anchors.py,
    used by the official Light-Head code), written again from its
    ``_ratio_enum`` / ``_scale_enum`` / ``_mkanchors``, in numpy."""
    import numpy as np

    def whctrs(a):
        w, h = a[2] - a[0] + 1, a[3] - a[1] + 1
        return w, h, a[0] + 0.5 * (w - 1), a[1] + 0.5 * (h - 1)

    def mkanchors(ws, hs, x, y):
        ws, hs = ws[:, None], hs[:, None]
        return np.hstack((x - 0.5 * (ws - 1), y - 0.5 * (hs - 1),
                          x + 0.5 * (ws - 1), y + 0.5 * (hs - 1)))

    w, h, x, y = whctrs(np.array([0, 0, base_size - 1, base_size - 1.]))
    ws = np.round(np.sqrt(w * h / np.array(ratios, dtype=float)))
    hs = np.round(ws * np.array(ratios))
    out = []
    for a in mkanchors(ws, hs, x, y):
        w, h, x, y = whctrs(a)
        out.append(mkanchors(w * np.array(scales, dtype=float),
                             h * np.array(scales, dtype=float), x, y))
    return np.vstack(out)


@pytest.mark.parametrize('base_size', [16, 32])
def test_anchor_generator_is_generate_anchors(base_size):
    """PyFasterRCNNAnchorGenerator at every ratio and scale (the configs'
    and others) against the numpy rewrite of py-faster-rcnn's."""
    from mmdet.registry import TASK_UTILS
    ratios, scales = [0.5, 1.0, 2.0, 0.7, 3.0], [1, 2, 4, 8, 16, 32]
    gen = TASK_UTILS.build(dict(type='PyFasterRCNNAnchorGenerator',
                                strides=[base_size], ratios=ratios,
                                scales=scales, center_offset=0.5))
    expected = torch.from_numpy(generate_anchors(base_size, ratios, scales))
    assert torch.equal(gen.base_anchors[0].double(), expected)
    # mmdet's legacy generator differs on the non-square ones only.
    legacy = TASK_UTILS.build(dict(type='LegacyAnchorGenerator',
                                   strides=[base_size], ratios=[0.5, 1., 2.],
                                   scales=[8, 32], center_offset=0.5))
    ours = TASK_UTILS.build(dict(type='PyFasterRCNNAnchorGenerator',
                                 strides=[base_size], ratios=[0.5, 1., 2.],
                                 scales=[8, 32], center_offset=0.5))
    gap = (legacy.base_anchors[0] - ours.base_anchors[0]).abs().amax(1)
    assert gap[2:4].tolist() == [0, 0] and gap[[0, 1, 4, 5]].min() > 0


def test_rpn_coder_counts_widths_as_the_anchors_do():
    """Legacy anchors and the legacy coder both count widths x2 - x1 + 1,
    as the official bbox_transform does: the RPN regression targets are the
    official ones. Decoding is mmdet's (centre (x1 + x2) / 2): the official
    bbox_transform_inv puts the centre 0.5 px further (x1 + w / 2)."""
    cfg = load()
    head = MODELS.build(cfg.model).rpn_head
    assert type(head.bbox_coder).__name__ == 'LegacyDeltaXYWHBBoxCoder'
    anchor = torch.tensor([[-56., -56., 71., 71.]])  # official, 128 px
    gt = torch.tensor([[10., 20., 110., 70.]])
    deltas = head.bbox_coder.encode(anchor, gt)
    # Official bbox_transform, by hand: widths 128 and 101, heights 128
    # and 51, centres x1 + w / 2.
    official = torch.tensor([[(10 + 101 / 2 - (-56 + 64)) / 128,
                              (20 + 51 / 2 - (-56 + 64)) / 128,
                              math.log(101 / 128), math.log(51 / 128)]])
    assert torch.allclose(deltas, official, atol=1e-6)
    zero = head.bbox_coder.decode(anchor, torch.zeros(1, 4))
    assert torch.equal(zero, torch.tensor([[-56.5, -56.5, 71.5, 71.5]]))


def test_rpn_is_a_2_way_softmax():
    head = MODELS.build(load().model).rpn_head
    assert not head.use_sigmoid_cls and head.cls_out_channels == 2
    assert head.rpn_cls.out_channels == 15 * 2
    sigmoid = load('model = dict(rpn_head=dict(loss_cls=dict('
                   'use_sigmoid=True)))')
    head = MODELS.build(sigmoid.model).rpn_head
    assert head.use_sigmoid_cls and head.rpn_cls.out_channels == 15


def test_rpn_assigner_has_no_iou_floor():
    cfg = load()
    assert cfg.model.train_cfg.rpn.assigner.min_pos_iou == 0.
    assigner = TASK_UTILS.build(cfg.model.train_cfg.rpn.assigner)
    # A gt whose best anchor overlaps it with IoU 0.1 only: that anchor is
    # positive (py-faster-rcnn), where min_pos_iou=0.3 would leave the gt
    # without any positive anchor.
    gt = InstanceData(bboxes=torch.tensor([[0., 0., 10., 10.]]),
                      labels=torch.tensor([0]))
    priors = InstanceData(priors=torch.tensor([[0., 0., 10., 100.],
                                               [50., 50., 90., 90.]]))
    result = assigner.assign(priors, gt)
    assert result.gt_inds.tolist() == [1, 0]
    floor = TASK_UTILS.build(dict(cfg.model.train_cfg.rpn.assigner,
                                  min_pos_iou=0.3))
    assert floor.assign(priors, gt).gt_inds.tolist() == [0, 0]


def test_warm_up_runs_before_the_150k():
    cfg = load()
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.begin, warmup.end) == ('LinearLR', 0, 500)
    assert math.isclose(warmup.start_factor, 1 / 3)
    assert cfg.train_cfg.max_iters == 150500 == steps.end
    assert steps.milestones == [95500, 125500]
    inside = Config.fromfile(str(
        CONFIGS / '_base_/schedules/schedule_150k_warmup-inside.py'))
    assert inside.train_cfg.max_iters == 150000
    assert inside.param_scheduler[1].milestones == [95000, 125000]


@COCO_MINI_SKIP
def test_short_coco_mini_training_lowers_the_loss(tmp_path):
    """The new defaults train: 24 iterations on 2 coco-mini images."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(str(TINY))
    cfg.work_dir = str(tmp_path)
    cfg.train_dataloader.dataset.update(data_root=f'{COCO_MINI}/', indices=2)
    cfg.train_cfg.max_iters = 24
    cfg.param_scheduler = []
    cfg.optim_wrapper.optimizer.lr = 0.02
    cfg.default_hooks.checkpoint.interval = 1000
    # The defaults under test, as the Table 7 config has them.
    table7 = load()
    assert cfg.optim_wrapper.paramwise_cfg == table7.optim_wrapper.paramwise_cfg
    for key in ('anchor_generator', 'bbox_coder', 'loss_cls'):
        assert cfg.model.rpn_head[key] == table7.model.rpn_head[key], key
    assert cfg.model.train_cfg.rpn.assigner == \
        table7.model.train_cfg.rpn.assigner
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 24 and all(map(math.isfinite, losses))
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.95 * first, losses  # 0.88 x on 2026-12-02
    # The softmax objectness learns from the legacy anchors' targets.
    rpn = runner.message_hub.get_scalar('train/loss_rpn_cls').data[0]
    assert sum(rpn[-4:]) / 4 < 0.9 * sum(rpn[:4]) / 4, rpn
