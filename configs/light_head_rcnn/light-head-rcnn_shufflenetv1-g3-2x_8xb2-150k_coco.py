# Table 7, ShuffleNet v1 (g=3) at the 500 MFLOPs level.
#
# No ImageNet weights are loaded: mmpretrain publishes g=3 weights at 1.0x
# only; megvii-model/ShuffleNet-Series publishes g=3 weights at every width,
# but only through OneDrive/BaiduYun and in megvii's own key layout, which
# ShuffleNetV1.convert_pretrained does not map.
# Training from this config therefore stops at start-up (tools/train.py,
# or the backbone's init_weights) until it is given ImageNet weights:
#   python tools/train.py <this config> \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH
# PATH: the backbone's weights, e.g. the classifier checkpoint that
# configs/imagenet/shufflenetv1-g3-2x_8xb128_in1k.py trains (its backbone.*
# keys are found without a prefix). Without them the official recipe would
# train on frozen random layers (stem + stage2, every BN). To train from
# scratch instead, choose that recipe explicitly: the _base_ variant
# ../_base_/models/light-head-rcnn_shufflenetv2_from-scratch.py (nothing
# frozen, SyncBN, schedule_450k.py; example in from-scratch/). Such runs are
# not comparable with the paper's Table 7, whose backbones were all pretrained
# on ImageNet.
_base_ = './light-head-rcnn_shufflenetv1-g3-1x_8xb2-150k_coco.py'

model = dict(
    backbone=dict(
        arch='2.0x',
        init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=None)))
