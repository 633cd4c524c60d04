# A short CPU run on coco-mini (issue 3): train on its 294 train2017 images,
# test on its 122 val2017 images with tools/test.py. Far too little data and
# compute to say anything about Table 7; it shows the whole pipeline
# (loading, training, COCO evaluation) on real images and records the
# numbers as they come out.
#   OMP_NUM_THREADS=1 python tools/train.py <this config>
#   OMP_NUM_THREADS=1 python tools/test.py <this config> \
#       work_dirs/<this config name>/iter_1000.pth \
#       --metrics-out results/coco-mini_val2017_metrics.json
# Same CPU adaptations as the overfit check (configs/light_head_rcnn/
# overfit/): backbone from scratch with trainable BN (no ImageNet weights
# offline), shorter side 320 (longer <= 512), 500/300 RPN proposals,
# allowed_border=-1, lr 0.02 (x0.1 at 800), gradients clipped; flip kept.
_base_ = '../light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco.py'

data_root = '../shared/data/coco-mini/'
scale = (512, 320)

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
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root +
                     'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# Evaluation happens once, with tools/test.py, after training.
train_cfg = dict(max_iters=1000, val_interval=10**9)
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0,
         end=100),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=1000,
         milestones=[800], gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(lr=0.02), clip_grad=dict(max_norm=10, norm_type=2))
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=1000, max_keep_ckpts=1))

# Fixed seed: reruns draw the same shuffles and initialisation.
randomness = dict(seed=0)
