# Table 7, Xception at the 140 MFLOPs level: Light-Head R-CNN's Xception-like
# backbone (XceptionLike; block design and per-level widths are documented in
# its docstring). Only the backbone differs from the ShuffleNet v2 configs;
# the detector sizes its heads from backbone.out_channels / out_strides.
#
# No ImageNet weights are loaded: none are public for this network at any
# width (Light-Head R-CNN did not release its Xception-like classifier, and
# the block here is this project's reconstruction).
# Training from this config therefore stops at start-up (tools/train.py,
# or the backbone's init_weights) until it is given ImageNet weights:
#   python tools/train.py <this config> \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH
# PATH: the backbone's weights, e.g. the classifier checkpoint that
# configs/imagenet/xception-1x_8xb128_in1k.py trains (its backbone.* keys are
# found without a prefix). Without them the official recipe would train on
# frozen random layers (stem + stage2, every BN). To train from scratch
# instead, choose that recipe explicitly: the _base_ variant
# ../_base_/models/light-head-rcnn_shufflenetv2_from-scratch.py (nothing
# frozen, SyncBN, schedule_450k.py; example in from-scratch/). Such runs are
# not comparable with the paper's Table 7, whose backbones were all pretrained
# on ImageNet.
_base_ = [
    '../_base_/models/light-head-rcnn_shufflenetv2.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_150k.py', '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='XceptionLike',
        arch='1.0x',
        # (stage3 stride 16, stage4 stride 32), as for ShuffleNet v2.
        out_indices=(1, 2),
        # Official recipe, as in the base: stem + stage2 frozen, BN frozen
        # everywhere (statistics and affine parameters).
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        # No public weights: see above.
        init_cfg=dict(type='Pretrained', checkpoint=None)))
