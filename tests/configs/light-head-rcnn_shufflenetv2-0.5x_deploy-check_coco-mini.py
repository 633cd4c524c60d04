# Test-only: weights that detect things, made in seconds, for the check
# that the deployed detector's detections equal the plain detector's
# (tests/test_e2e_deploy.py). ShuffleNet V2 0.5x from scratch (no ImageNet
# weights offline), overfitted on 8 coco-mini train2017 images at a shorter
# side of 192, then evaluated on all 122 val2017 images. Everything that
# inference runs (pre-processing, RPN, NMS, PSRoIAlign, R-CNN, rescaling)
# is the Table 7 config's.
_base_ = ['../../configs/light_head_rcnn/'
          'light-head-rcnn_shufflenetv2-0.5x_8xb2-150k_coco.py']

data_root = '{{ fileDirname }}/../../../shared/data/coco-mini/'
scale = (320, 192)

model = dict(
    backbone=dict(init_cfg=None, frozen_stages=-1, norm_eval=False,
                  norm_cfg=dict(type='BN', requires_grad=True)),
    train_cfg=dict(rpn=dict(allowed_border=-1),
                   rpn_proposal=dict(nms_pre=1000, max_per_img=300)))

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
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    batch_sampler=None,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, indices=8,
                 filter_cfg=dict(filter_empty_gt=True, min_size=32),
                 pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_evaluator = dict(ann_file=data_root +
                      'annotations/instances_val2017.json')
val_dataloader = None
val_evaluator = None
val_cfg = None

train_cfg = dict(type='IterBasedTrainLoop', max_iters=150, val_interval=10**9)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False,
                        begin=0, end=20)]
optim_wrapper = dict(optimizer=dict(lr=0.02),
                     clip_grad=dict(max_norm=10, norm_type=2))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=150),
    visualization=dict(type='DetVisualizationHook', draw=False))
randomness = dict(seed=0)
