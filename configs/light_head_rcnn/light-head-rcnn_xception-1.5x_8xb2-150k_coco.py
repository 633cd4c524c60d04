# Table 7, Xception at the 300 MFLOPs level. Like the 1x config: no public
# ImageNet weights exist for this backbone, so training stops at start-up
# until you pass them with --cfg-options
# model.backbone.init_cfg.checkpoint=PATH (see the 1x config);
# configs/imagenet/xception-1.5x_8xb128_in1k.py trains them.
_base_ = './light-head-rcnn_xception-1x_8xb2-150k_coco.py'

model = dict(backbone=dict(arch='1.5x'))
