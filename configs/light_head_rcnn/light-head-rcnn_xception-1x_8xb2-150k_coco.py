# Table 7, Xception at the 140 MFLOPs level: Light-Head R-CNN's Xception-like
# backbone (XceptionLike; block design and per-level widths are documented in
# its docstring). Only the backbone differs from the ShuffleNet v2 configs;
# the detector sizes its heads from backbone.out_channels / out_strides.
#
# No ImageNet weights are loaded: none are public for this network at any
# width (Light-Head R-CNN did not release its Xception-like classifier, and
# the block here is this project's reconstruction).
# Training from this config therefore starts from scratch unless you supply
# weights, in a child config (_delete_ because init_cfg is None here):
#   model = dict(backbone=dict(init_cfg=dict(
#       _delete_=True, type='Pretrained', checkpoint='...')))
# or on the command line of tools/train.py:
#   --cfg-options model.backbone.init_cfg._delete_=true
#   model.backbone.init_cfg.type=Pretrained
#   model.backbone.init_cfg.checkpoint=...
# The paper pretrained every backbone on ImageNet, so results from scratch
# are not comparable to its Table 7. From scratch, the frozen layers
# (stem + stage2) keep their random initialisation, and frozen BN
# layers do not normalise: for such a run consider frozen_stages=-1,
# norm_eval=False and norm_cfg=dict(type='SyncBN', requires_grad=True).
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
        init_cfg=None))
