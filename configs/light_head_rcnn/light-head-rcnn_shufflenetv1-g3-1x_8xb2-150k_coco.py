# Table 7, ShuffleNet v1 (g=3) at the 140 MFLOPs level. Only the backbone
# differs from the ShuffleNet v2 configs; the detector sizes its heads from
# backbone.out_channels / out_strides.
#
# ImageNet weights: mmpretrain's ShuffleNetV1 1.0x g=3 classifier (68.13
# top-1), whose backbone keys ShuffleNetV1.convert_pretrained maps onto ours
# (its layout is checked by tests/test_models/test_backbones/
# test_shufflenet_v1.py with a synthetic checkpoint; the download itself is
# not exercised by the tests). It was trained on RGB input with ImageNet
# mean/std, the same normalisation as the base data_preprocessor.
_base_ = [
    '../_base_/models/light-head-rcnn_shufflenetv2.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_150k.py', '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='ShuffleNetV1',
        arch='1.0x',
        # (stage3 stride 16, stage4 stride 32), as for ShuffleNet v2.
        out_indices=(1, 2),
        # Official recipe, as in the base: stem + stage2 frozen, BN frozen
        # everywhere (statistics and affine parameters).
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'shufflenet_v1/shufflenet_v1_batch1024_imagenet_20200804-'
            '5d6cec73.pth',
            # Keep the classifier's backbone; its fc head is not used.
            prefix='backbone.')))
