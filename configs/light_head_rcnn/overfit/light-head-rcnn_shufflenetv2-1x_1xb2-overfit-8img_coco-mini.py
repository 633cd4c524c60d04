# Overfit check (issue 3): can Light-Head R-CNN + ShuffleNet V2 1x learn
# real COCO images? Train on 8 images of coco-mini train2017 and evaluate
# COCO bbox mAP on the same 8 images until it exceeds 0.5.
#   OMP_NUM_THREADS=1 python tools/overfit.py
# Differences from the Table 7 recipe, all for a 2-core CPU without
# ImageNet weights (none are reachable offline):
# - backbone trained from scratch: BN trainable and updating, nothing frozen;
# - shorter side 320 (longer <= 512), no flip (memorisation, not
#   generalisation, is the question);
# - 2000 -> 500 RPN proposals for training, 1000 -> 300 for testing;
# - RPN anchors crossing the image border are trained (allowed_border=-1,
#   mmdet's default): at 320 px most 256/512 px anchors cross it, and with
#   the official allowed_border=0 they would never learn;
# - lr 0.02 after 100 warm-up iterations, x0.1 at 1200, gradients clipped.
# The model (RPN, large separable conv, PSRoIAlign, R-CNN subnet, top-256
# OHEM) is unchanged.
_base_ = '../light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco.py'

data_root = '../shared/data/coco-mini/'
scale = (512, 320)
num_images = 8

model = dict(
    backbone=dict(
        init_cfg=None,
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True)),
    train_cfg=dict(
        rpn=dict(allowed_border=-1),
        rpn_proposal=dict(nms_pre=2000, max_per_img=500)),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=300)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        # 'instances': the ground truth CocoMetric evaluates against.
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'instances'))
]
# The same 8 images for training and evaluation: the first 8 of
# train2017 that keep at least one box >= 32 px (test_mode=False so that the
# evaluation split is filtered exactly like the training split).
subset = dict(
    type='CocoDataset',
    data_root=data_root,
    ann_file='annotations/instances_train2017.json',
    data_prefix=dict(img='train2017/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    indices=num_images)
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    batch_sampler=None,
    # mmengine sleeps 2 s at every pass over the data (IterBasedTrainLoop);
    # repeating the 8 images makes a pass 400 images long.
    dataset=dict(
        _delete_=True,
        type='RepeatDataset',
        times=50,
        dataset=dict(subset, pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(subset, test_mode=False, pipeline=test_pipeline))
test_dataloader = val_dataloader
# Without ann_file, CocoMetric builds its ground truth from the evaluated
# images only. With ann_file=instances_train2017.json it would score the 8
# images against all 294 images' boxes (perfect predictions: mAP 0.017).
# Areas are then box areas, which only matters for the S/M/L split.
val_evaluator = dict(ann_file=None)
test_evaluator = val_evaluator

train_cfg = dict(max_iters=1500, val_interval=100)
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0,
         end=100),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=1500,
         milestones=[1200], gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(lr=0.02), clip_grad=dict(max_norm=10, norm_type=2))

# Stop as soon as the 8-image mAP exceeds 0.5 (never for lack of progress).
custom_hooks = _base_.custom_hooks + [
    dict(type='EarlyStoppingHook', monitor='coco/bbox_mAP', rule='greater',
         stopping_threshold=0.5, patience=10**6)
]
default_hooks = dict(
    # log_metric_by_epoch=False: validation scalars are stored against the
    # iteration (the curve's x axis), not epoch 0.
    logger=dict(interval=10, log_metric_by_epoch=False),
    checkpoint=dict(interval=500, max_keep_ckpts=1, save_last=True))
# Each logged loss is the mean over the 10 iterations since the last log.
log_processor = dict(window_size=10)

# Fixed seed: reruns draw the same shuffles and initialisation.
randomness = dict(seed=0)
