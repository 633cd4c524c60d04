# Table 7, ShuffleNet v1 (g=3) at the 500 MFLOPs level.
#
# No ImageNet weights are loaded: mmpretrain publishes g=3 weights at 1.0x
# only; megvii-model/ShuffleNet-Series publishes g=3 weights at every width,
# but only through OneDrive/BaiduYun and in megvii's own key layout, which
# ShuffleNetV1.convert_pretrained does not map.
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
_base_ = './light-head-rcnn_shufflenetv1-g3-1x_8xb2-150k_coco.py'

model = dict(backbone=dict(arch='2.0x', init_cfg=None))
