# Table 7, Xception at the 300 MFLOPs level. Like the 1x config: no public
# ImageNet weights exist for this backbone, so training starts from scratch
# unless you supply weights (see the 1x config).
_base_ = './light-head-rcnn_xception-1x_8xb2-150k_coco.py'

model = dict(backbone=dict(arch='1.5x'))
