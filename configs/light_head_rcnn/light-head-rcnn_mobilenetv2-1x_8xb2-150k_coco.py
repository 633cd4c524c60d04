# Table 7, MobileNet v2 at the 300 MFLOPs level (width multiplier 1.0, Table
# 8: 301 MFLOPs; the channel rule of each level and why are in
# MobileNetV2Det's docstring). Only the backbone differs from the ShuffleNet
# v2 configs; the detector sizes its heads from backbone.out_channels /
# out_strides.
#
# ImageNet weights: torchvision's mobilenet_v2 IMAGENET1K_V1 (71.88 top-1,
# RGB input with ImageNet mean/std like the base data_preprocessor), whose
# keys MobileNetV2Det.convert_pretrained maps onto ours (checked against
# torchvision's features by tests/test_models/test_backbones/
# test_mobilenet_v2.py). 'torchvision://mobilenet_v2.imagenet1k_v2' selects
# the newer recipe (72.15 top-1).
_base_ = [
    '../_base_/models/light-head-rcnn_shufflenetv2.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_150k.py', '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV2Det',
        widen_factor=1.0,
        # The last stride-16 group (96 x widen_factor channels) and the last
        # stride-32 group (320 x widen_factor); the final 1x1 conv (1280) is
        # left out, as ShuffleNet v2's conv5 is. This routing is our choice
        # (the papers do not give it, see the base model config); (4, 7)
        # feeds the light head the final 1x1 conv instead.
        out_indices=(4, 6),
        # Official recipe, as in the base: the stem and the first stage
        # frozen, BN frozen everywhere (statistics and affine parameters).
        # MobileNet v2 splits what the other four backbones call stem +
        # stage2 (everything up to stride 8) into its stem and groups 0-2
        # (strides 2, 4, 8), so freezing 3 groups freezes the same part of
        # the network as frozen_stages=1 does for them.
        frozen_stages=3,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='torchvision://mobilenet_v2.imagenet1k_v1')))
