# Table 7, ShuffleNet v2* at the 300 MFLOPs level: an extra 3x3 depthwise
# conv before the first pointwise conv of every unit. No ImageNet weights of
# v2* are public, so the v2 weights are loaded and the extra convs start from
# their initialisation (the loader lists them as missing); the paper
# pretrained v2* itself.
_base_ = './light-head-rcnn_shufflenetv2-1.5x_8xb2-150k_coco.py'

model = dict(backbone=dict(extra_dw=True))
