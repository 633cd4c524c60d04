# Test-only: the deploy-check config evaluated on the 8 train2017 images it
# was trained on, where its weights are confident (on val2017 its best
# scores are ~0.1 and its mAP rounds to 0). tests/test_precision.py compares
# the bf16 deploy step with fp32 here: mAP and agreement.
_base_ = ['./light-head-rcnn_shufflenetv2-0.5x_deploy-check_coco-mini.py']

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale={{_base_.scale}}, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor', 'instances'))  # CocoMetric's ground truth
]
test_dataloader = dict(dataset=dict(
    ann_file='annotations/instances_train2017.json',
    data_prefix=dict(img='train2017/'), indices=8, test_mode=False,
    filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=test_pipeline))
# ann_file=None: the ground truth of these 8 images only (an annotation
# file would dilute the metric with the other images' boxes).
test_evaluator = dict(ann_file=None)
