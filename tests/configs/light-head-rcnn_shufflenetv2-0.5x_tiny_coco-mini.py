# Test-only: the 0.5x Light-Head R-CNN leaf config shrunk to run a few
# deterministic CPU iterations on a handful of coco-mini images in seconds.
# Used by tests/test_reliability (resume, invalid loss, distributed).
# Tests pass the data set location explicitly:
#   --cfg-options train_dataloader.dataset.data_root=.../coco-mini/
_base_ = ['../../configs/light_head_rcnn/'
          'light-head-rcnn_shufflenetv2-0.5x_8xb2-150k_coco.py']

data_root = '{{ fileDirname }}/../../../shared/data/coco-mini/'

model = dict(
    backbone=dict(init_cfg=None),  # offline: no ImageNet download
    roi_head=dict(bbox_head=dict(fc_out_channels=256)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=600, max_per_img=100),
        rcnn=dict(ohem_topk=64)),
    test_cfg=dict(
        rpn=dict(nms_pre=300, max_per_img=50),
        rcnn=dict(max_per_img=20)))

# No random flip: the data stream is a pure function of the sampler seed.
train_pipeline = [
    dict(type='RobustLoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(320, 200), keep_ratio=True),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        data_root=data_root,
        type='ValidatedCocoDataset',
        indices=4,
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline))

train_cfg = dict(type='IterBasedTrainLoop', max_iters=8, val_interval=1000)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = None
test_dataloader = None
test_evaluator = None

# Warm-up then a step, so that resuming must restore the scheduler too.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=8, milestones=[6],
         gamma=0.5)
]
optim_wrapper = dict(optimizer=dict(lr=0.01))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(
        type='ResumableCheckpointHook', by_epoch=False, interval=2,
        max_keep_ckpts=2),
    visualization=dict(type='DetVisualizationHook', draw=False))
custom_hooks = [dict(type='InvalidLossGuardHook')]
runner_type = 'CPUDistRunner'
log_processor = dict(type='LogProcessor', window_size=1, by_epoch=False)
randomness = dict(seed=2024)
env_cfg = dict(mp_cfg=dict(mp_start_method='fork', opencv_num_threads=1))
