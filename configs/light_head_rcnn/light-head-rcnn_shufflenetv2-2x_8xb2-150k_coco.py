# Table 7, ShuffleNet v2 at the 500 MFLOPs level.
_base_ = [
    '../_base_/models/light-head-rcnn_shufflenetv2.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_150k.py', '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(
        arch='2.0x',
        init_cfg=dict(
            checkpoint='torchvision://shufflenet_v2_x2_0.imagenet1k_v1')))
