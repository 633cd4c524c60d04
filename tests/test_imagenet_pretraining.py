"""ImageNet pretraining (configs/imagenet/) and the hand-over to Light-Head.

Three layers of checks:

1. Every ImageNet config builds, under mmpretrain's default scope as the
   Runner builds it, a classifier around *this project's* backbone (not
   mmpretrain's namesake) with a head sized by the backbone.
2. A checkpoint of each of the twenty classifiers loads into the matching
   Light-Head config through ``init_cfg`` with nothing reported missing or
   unused, and every backbone tensor arrives.
3. The smoke chain on CPU: a generated ImageNet-layout folder trains one
   width of each family for two iterations, evaluates top-1/top-5, writes a
   checkpoint, and that checkpoint starts a Light-Head training on coco-mini.
"""
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from tests.conftest import COCO_MINI, COCO_MINI_SKIP, CONFIGS, REPO
from tests.test_configs import inheritance_depth

IMAGENET = CONFIGS / 'imagenet'
IN1K = sorted(IMAGENET.glob('*_8xb128_in1k.py'))
DETECTION = CONFIGS / 'light_head_rcnn'
TINY_DET = (REPO / 'tests/configs'
            / 'light-head-rcnn_shufflenetv2-0.5x_tiny_coco-mini.py')
# One width per family for the smoke chain: the cheapest.
SMOKE = ('shufflenetv2-0.5x', 'shufflenetv2star-0.5x', 'shufflenetv1-g3-0.5x',
         'xception-0.5x', 'mobilenetv2-0.15x')
NUM_CLASSES = 6  # > 5, so that top-5 accuracy is defined


def token(path: Path) -> str:
    """'<family>-<width>' shared by the ImageNet and the Light-Head config."""
    return re.fullmatch(r'(.+)_8xb128_in1k\.py', path.name)[1]


def detection_config(tok: str) -> Path:
    return DETECTION / f'light-head-rcnn_{tok}_8xb2-150k_coco.py'


def build_classifier(cfg: Config):
    """Build ``cfg.model`` exactly as mmengine's Runner does."""
    from mmengine.registry import MODELS
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return MODELS.build(model_cfg)


class LogRecords(logging.Handler):
    """Collects the messages of one logger."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def load_report(messages, cls_name):
    """The backbone loader's one line (``loaded N tensors from ...``)."""
    lines = [m for m in messages if m.startswith(f'{cls_name}: loaded ')]
    assert len(lines) == 1, messages
    return lines[0]


@pytest.fixture(scope='module', autouse=True)
def _one_thread():
    """Tiny tensors: a second intra-op thread only spins, and on a shared
    2-core machine it made these tests ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------- the configs
def test_twenty_configs_one_per_table7_backbone():
    ours = {token(p) for p in IN1K}
    table7 = {re.fullmatch(r'light-head-rcnn_(.+)_8xb2-150k_coco\.py',
                           p.name)[1]
              for p in DETECTION.glob('light-head-rcnn_*_8xb2-150k_coco.py')}
    assert len(ours) == 20
    assert ours == table7


def test_recipe_follows_megvii():
    """The numbers of the paper's protocol (megvii train.py), in one place."""
    cfg = Config.fromfile(str(IMAGENET / 'shufflenetv2-1x_8xb128_in1k.py'))
    optim = cfg.optim_wrapper
    assert optim.optimizer == dict(type='SGD', lr=0.5, momentum=0.9,
                                   weight_decay=4e-5)
    assert optim.paramwise_cfg == dict(flat_decay_mult=0.)
    assert cfg.train_cfg.max_iters == 300000
    assert cfg.param_scheduler == dict(
        type='PolyLR', power=1., eta_min=0., by_epoch=False, begin=0,
        end=300000)
    assert cfg.train_dataloader.batch_size * 8 == \
        cfg.auto_scale_lr.base_batch_size == 1024
    assert cfg.model.head.loss == dict(type='LabelSmoothLoss',
                                       label_smooth_val=0.1, mode='original')
    (precise_bn, ) = cfg.custom_hooks
    assert precise_bn.type == 'PreciseBNHook'
    assert precise_bn.interval == cfg.train_cfg.max_iters
    assert precise_bn.num_samples == 1250 * 1024
    crop = [t for t in cfg.test_pipeline if t.type == 'CenterCrop'][0]
    assert crop.crop_size == 224
    # Same input normalisation as the detectors that load these weights.
    det = Config.fromfile(str(detection_config('shufflenetv2-1x')))
    det_pre = det.model.data_preprocessor
    assert cfg.data_preprocessor.mean == det_pre.mean
    assert cfg.data_preprocessor.std == det_pre.std
    assert cfg.data_preprocessor.to_rgb == det_pre.bgr_to_rgb


@pytest.mark.parametrize('path', IN1K, ids=[token(p) for p in IN1K])
def test_config_builds_our_backbone_under_mmpretrain_scope(path):
    from shufflenet_det.models.backbones import BaseDetBackbone
    cfg = Config.fromfile(str(path))
    assert inheritance_depth(path) <= 3
    assert cfg.default_scope == 'mmpretrain'
    assert 'shufflenet_det.classification' in cfg.custom_imports.imports
    model = build_classifier(cfg)
    # mmpretrain registers ShuffleNetV1/V2 and MobileNetV2 too: the scoped
    # name must reach this project's class.
    assert isinstance(model.backbone, BaseDetBackbone), type(model.backbone)
    assert model.head.fc.in_features == model.backbone.out_channels[-1]
    assert model.head.fc.out_features == 1000
    model.init_weights()
    model.train()
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
                        for _ in range(2)])
    from mmpretrain.structures import DataSample
    data['data_samples'] = [DataSample().set_gt_label(i) for i in (3, 999)]
    losses = model(**model.data_preprocessor(data, True), mode='loss')
    assert torch.isfinite(losses['loss']) and losses['loss'] > 0


@pytest.mark.slow
def test_configs_are_the_table7_backbones_get_flops_counts():
    """The README's MFLOPs column (tools/get_flops.py) is about these nets."""
    from shufflenet_det.table7 import TABLE7_BACKBONES
    families = dict(zip(
        ('xception', 'shufflenetv1-g3', 'mobilenetv2', 'shufflenetv2',
         'shufflenetv2star'), TABLE7_BACKBONES))
    cells = {}
    for path in IN1K:
        family = token(path).rsplit('-', 1)[0]
        backbone = Config.fromfile(str(path)).model.backbone.to_dict()
        assert backbone.pop('type') == 'mmdet.' + \
            next(iter(TABLE7_BACKBONES[families[family]].values()))['type']
        for key in ('_scope_', 'out_indices', 'init_cfg'):
            backbone.pop(key)
        cells.setdefault(families[family], []).append(backbone)
    for family, levels in TABLE7_BACKBONES.items():
        expected = [{k: v for k, v in cell.items() if k != 'type'}
                    for cell in levels.values()]
        def canon(cfgs):
            return sorted(repr(sorted(c.items())) for c in cfgs)
        assert canon(cells[family]) == canon(expected), family


def test_scope_trap_is_real():
    """Why the configs say ``mmdet.<Type>``: unprefixed, mmpretrain's wins."""
    from mmengine.registry import MODELS
    from shufflenet_det.models.backbones import BaseDetBackbone
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        theirs = MODELS.build(dict(type='ShuffleNetV2', widen_factor=0.5))
    assert not isinstance(theirs, BaseDetBackbone)


# ------------------------------------------------------ ImageNet -> detector
@pytest.mark.slow
@pytest.mark.parametrize('path', IN1K, ids=[token(p) for p in IN1K])
def test_checkpoint_loads_into_matching_light_head_config(path, tmp_path):
    from mmdet.registry import MODELS
    classifier = build_classifier(Config.fromfile(str(path)))
    classifier.init_weights()
    # Distinct running statistics, so that their transfer is checked too.
    for name, buf in classifier.named_buffers():
        if buf.is_floating_point():
            buf.uniform_(0.5, 1.5)
    ckpt = tmp_path / 'in1k.pth'
    torch.save(dict(state_dict=classifier.state_dict(), meta=dict()), ckpt)

    det = Config.fromfile(str(detection_config(token(path))))
    backbone_cfg = det.model.backbone
    # As README's --cfg-options model.backbone.init_cfg.checkpoint=CKPT: no
    # prefix given, the loader reads the classifier's 'backbone.' keys.
    backbone_cfg.init_cfg = dict(type='Pretrained', checkpoint=str(ckpt))
    backbone = MODELS.build(backbone_cfg)
    logger = MMLogger.get_instance(f'test_imagenet_{token(path)}')
    records = LogRecords()
    logger.addHandler(records)
    try:
        backbone.init_weights()
    finally:
        logger.removeHandler(records)
    report = load_report(records.messages, type(backbone).__name__)
    assert 'missing' not in report and 'unused' not in report, report

    source = classifier.backbone.state_dict()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, source[key]), key


def test_loader_still_reports_unknown_keys(tmp_path):
    """Only unbuilt stages are set aside; a foreign key is still named."""
    from mmdet.registry import MODELS
    full = MODELS.build(dict(type='ShuffleNetV2', arch='0.5x',
                             out_indices=(3, )))
    state = {f'backbone.{k}': v for k, v in full.state_dict().items()}
    state['backbone.extra.weight'] = torch.zeros(1)
    ckpt = tmp_path / 'in1k.pth'
    torch.save(dict(state_dict=state), ckpt)
    det = MODELS.build(dict(
        type='ShuffleNetV2', arch='0.5x', out_indices=(1, 2),
        init_cfg=dict(type='Pretrained', checkpoint=str(ckpt),
                      prefix='backbone.')))
    logger = MMLogger.get_instance('test_imagenet_unknown_keys')
    records = LogRecords()
    logger.addHandler(records)
    try:
        det.init_weights()
    finally:
        logger.removeHandler(records)
    report = load_report(records.messages, 'ShuffleNetV2')
    assert "unused from checkpoint: ['extra.weight']" in report, report
    assert "skipped 6 tensors of stages not built" in report, report  # conv5


# ---------------------------------------------------------- classifier parts
def test_dropout_head_drops_only_in_training():
    from shufflenet_det.classification import DropoutLinearClsHead
    head = DropoutLinearClsHead(num_classes=4, in_channels=64,
                                dropout_ratio=0.5)
    feats = (torch.ones(8, 64), )
    head.train()
    assert (head.pre_logits(feats) == 0).any()
    head.eval()
    assert torch.equal(head.pre_logits(feats), feats[0])
    with pytest.raises(ValueError, match='dropout_ratio'):
        DropoutLinearClsHead(num_classes=4, in_channels=64,
                             dropout_ratio=1.0)


def test_sized_classifier_rejects_a_contradicting_head():
    cfg = Config.fromfile(str(IMAGENET / 'shufflenetv2-2x_8xb128_in1k.py'))
    cfg.model.head.in_channels = 1024
    with pytest.raises(ValueError, match='in_channels=1024 but ShuffleNetV2 '
                       'returns 2048'):
        build_classifier(cfg)


# --------------------------------------------------------- the smoke chain
@pytest.fixture(scope='module')
def imagenet_folder(tmp_path_factory):
    """An ImageNet-layout folder: {train,val}/<wnid>/<image>.JPEG."""
    import cv2
    root = tmp_path_factory.mktemp('imagenet')
    rng = np.random.default_rng(0)
    for split, per_class in (('train', 2), ('val', 1)):
        for c in range(NUM_CLASSES):
            folder = root / split / f'n{c:08d}'
            folder.mkdir(parents=True)
            for i in range(per_class):
                # A class-dependent tint, so the labels are not pure noise.
                img = rng.integers(0, 80, (72, 80, 3), dtype=np.uint8)
                img[..., c % 3] += np.uint8(40 * (c // 3 + 1))
                cv2.imwrite(str(folder / f'{c}_{i}.JPEG'), img)
    return root


def shrink_classification(cfg: Config, root: Path, work_dir: Path) -> None:
    """Same config, a 6-class 64x64 folder, two iterations, CPU-sized."""
    def dataset(split, pipeline):
        return ConfigDict(type='CustomDataset', data_root=str(root),
                          data_prefix=split, pipeline=pipeline)

    train_pipeline = [
        t if t.type != 'RandomResizedCrop' else dict(t, scale=64)
        for t in cfg.train_pipeline]
    test_pipeline = [
        dict(t, scale=72) if t.type == 'ResizeEdge' else
        dict(t, crop_size=64) if t.type == 'CenterCrop' else t
        for t in cfg.test_pipeline]
    for key, split, pipeline in (
            ('train_dataloader', 'train', train_pipeline),
            ('val_dataloader', 'val', test_pipeline),
            ('test_dataloader', 'val', test_pipeline)):
        loader = cfg[key]
        loader.update(batch_size=4, num_workers=0, persistent_workers=False)
        loader.dataset = dataset(split, pipeline)
    cfg.model.head.num_classes = NUM_CLASSES
    cfg.data_preprocessor.num_classes = NUM_CLASSES
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    cfg.param_scheduler.end = 2
    cfg.custom_hooks[0].update(interval=2, num_samples=4)  # one batch
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.log_processor.window_size = 1
    cfg.env_cfg.cudnn_benchmark = False
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)


@pytest.fixture(scope='module')
def pretrained(imagenet_folder, tmp_path_factory):
    """family token -> (checkpoint, test metrics), trained on first use."""
    from mmdet.registry import RUNNERS
    runs = {}

    def run(tok):
        if tok not in runs:
            cfg = Config.fromfile(
                str(IMAGENET / f'{tok}_8xb128_in1k.py'))
            work_dir = tmp_path_factory.mktemp(f'in1k_{tok}')
            shrink_classification(cfg, imagenet_folder, work_dir)
            runner = RUNNERS.build(cfg)  # what tools/train.py does
            runner.train()  # validates after the last iteration
            metrics = {key[len('val/'):]: value.current() for key, value
                       in runner.message_hub.log_scalars.items()
                       if key.startswith('val/accuracy')}
            runs[tok] = (work_dir / 'iter_2.pth', metrics,
                         topk_by_hand(runner))
        return runs[tok]

    return run


def topk_by_hand(runner) -> dict:
    """Bounds on top-1 / top-5 accuracy (%) of the trained classifier on the
    val loader, from its class scores and the folder labels, without
    mmpretrain's Accuracy metric.

    Two iterations at the recipe's learning rate saturate the softmax (exact
    0.0 scores), so the classes ranked k-th and below can tie; which of them
    counts as "in the top k" is then the sorting's choice. A sample is a
    sure hit when the label's score and all its ties fit in the top k, a
    possible hit when fewer than k scores are strictly higher.

    Returns:
        dict: ``'accuracy/top{k}'`` -> (lower, upper) bound; equal when no
        tie straddles the k-th place.
    """
    model = runner.model
    model.eval()
    sure, possible, total = {1: 0, 5: 0}, {1: 0, 5: 0}, 0
    with torch.no_grad():
        for batch in runner.val_dataloader:
            for sample in model.val_step(batch):
                score = sample.pred_score
                mine = score[int(sample.gt_label)]
                above = int((score > mine).sum())
                ties = int((score == mine).sum())  # itself included
                for k in sure:
                    sure[k] += int(above + ties <= k)
                    possible[k] += int(above < k)
                total += 1
    assert total == NUM_CLASSES  # one val image per class
    return {f'accuracy/top{k}': (100.0 * sure[k] / total,
                                 100.0 * possible[k] / total) for k in sure}


@pytest.mark.slow
@pytest.mark.parametrize('tok', SMOKE)
def test_pretraining_smoke(tok, pretrained):
    ckpt, metrics, by_hand = pretrained(tok)
    assert set(metrics) == {'accuracy/top1', 'accuracy/top5'}, metrics
    # Two iterations teach nothing, so no accuracy bound holds; instead the
    # logged values must be those of the model's own scores, counted here
    # (a multiple of 100 / 6 within the bounds that ties leave).
    for key, (low, high) in by_hand.items():
        assert low - 1e-4 <= metrics[key] <= high + 1e-4, (key, metrics,
                                                            by_hand)
        assert metrics[key] / (100 / NUM_CLASSES) == pytest.approx(
            round(metrics[key] / (100 / NUM_CLASSES)), abs=1e-4)
    state = torch.load(ckpt, map_location='cpu',
                       weights_only=False)['state_dict']
    assert state['head.fc.weight'].shape[0] == NUM_CLASSES
    assert any(k.startswith('backbone.stem.') for k in state)


@pytest.mark.slow
@COCO_MINI_SKIP
@pytest.mark.parametrize('tok', SMOKE)
def test_light_head_training_starts_from_the_checkpoint(tok, pretrained,
                                                        tmp_path):
    from mmdet.registry import RUNNERS
    ckpt, _, _ = pretrained(tok)
    cfg = Config.fromfile(str(TINY_DET))
    backbone = Config.fromfile(str(detection_config(tok))).model.backbone
    backbone.init_cfg = dict(type='Pretrained', checkpoint=str(ckpt),
                             prefix='backbone.')
    cfg.model.backbone = backbone
    cfg.train_dataloader.dataset.data_root = f'{COCO_MINI}/'
    cfg.train_dataloader.dataset.indices = 1
    cfg.train_dataloader.batch_size = 1
    cfg.train_dataloader.dataset.pipeline = [
        dict(t, scale=(192, 128)) if t.type == 'Resize' else t
        for t in cfg.train_dataloader.dataset.pipeline]
    cfg.train_cfg.max_iters = 1
    cfg.param_scheduler = dict(type='ConstantLR', factor=1.0,
                               by_epoch=False)
    cfg.default_hooks.checkpoint.interval = 1000
    cfg.work_dir = str(tmp_path)
    # A fresh process (tools/train.py) starts in no scope; here the
    # classification runner's 'mmpretrain' scope is still the current one.
    DefaultScope.get_instance(f'test_light_head_{tok}',
                              scope_name=cfg.default_scope)
    runner = RUNNERS.build(cfg)
    records = LogRecords()
    runner.logger.addHandler(records)
    try:
        runner.train()
    finally:
        runner.logger.removeHandler(records)
    det_backbone = runner.model.backbone
    report = load_report(records.messages, type(det_backbone).__name__)
    assert str(ckpt) in report
    assert 'missing' not in report and 'unused' not in report, report
    assert runner.iter == 1
    # The stem is frozen in the Table 7 recipe: it still holds the
    # ImageNet weights after the detection step.
    source = torch.load(ckpt, map_location='cpu',
                        weights_only=False)['state_dict']
    for key, value in det_backbone.stem.state_dict().items():
        assert torch.equal(value, source[f'backbone.stem.{key}']), key
