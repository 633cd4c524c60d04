# Table 7, ShuffleNet v2 at the 300 MFLOPs level.
_base_ = [
    '../_base_/models/light-head-rcnn_shufflenetv2.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_150k.py', '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(
        arch='1.5x',
        init_cfg=dict(
            checkpoint='torchvision://shufflenet_v2_x1_5.imagenet1k_v1')))
