# COCO detection as in ShuffleNet V2's Table 7 / Light-Head R-CNN.
#
# The paper trains on COCO train+val minus the 5k "minival" images and tests
# on minival2014. Those 5k images are exactly COCO val2017 (and train2017 is
# train2014 + val2014 minus minival), so train on train2017, test on val2017.
#
# Input "800 x 1200": shorter side 800, longer side at most 1200, horizontal
# flip with p=0.5 for training (official code; it caps the longer side at
# 1333, the paper reports 800x1200).
#
# Paths: every dataset dict carries its own data_root with ann_file and
# data_prefix relative to it, so one key points a split elsewhere:
#   --cfg-options train_dataloader.dataset.data_root=/path/to/coco/
# The evaluators read an annotation file by path; override it alongside:
#   val_dataloader.dataset.data_root=D/ test_dataloader.dataset.data_root=D/
#   val_evaluator.ann_file=D/annotations/instances_val2017.json
#   test_evaluator.ann_file=D/annotations/instances_val2017.json
# CocoDataset that validates the annotation file and reports skipped boxes;
# RobustLoadImageFromFile names the file and image id of a broken image
# (docs/reliability.md).
dataset_type = 'ValidatedCocoDataset'
data_root = 'data/coco/'
backend_args = None

train_pipeline = [
    dict(type='RobustLoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1200, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='RobustLoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1200, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='RobustCocoMetric',  # mAP 0 (not no result) if nothing is predicted
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
