# Table 7, MobileNet v2 at the 500 MFLOPs level (width multiplier 1.4):
# Table 8 row "1.4 MobileNet v2 (our impl.)", 587 MFLOPs; torchvision's
# channel rule (the default) counts 582.2 M, the 'table8' rule 572.4 M.
# Channel rules and the choice per level: MobileNetV2Det's docstring.
#
# No ImageNet weights are loaded: torchvision and mmpretrain publish
# MobileNet v2 weights at width 1.0 only. Keras publishes 1.4 weights, in
# TensorFlow's layout, for which this project has no converter.
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
# (stem + groups 0-2) keep their random initialisation, and frozen BN
# layers do not normalise: for such a run consider frozen_stages=-1,
# norm_eval=False and norm_cfg=dict(type='SyncBN', requires_grad=True).
_base_ = './light-head-rcnn_mobilenetv2-1x_8xb2-150k_coco.py'

model = dict(backbone=dict(widen_factor=1.4, init_cfg=None))
