# From-scratch variant of light-head-rcnn_shufflenetv2.py, for backbones
# without ImageNet weights that you choose to train on COCO alone.
#
# Results of this recipe are NOT comparable with Table 7 of the ShuffleNet V2
# paper, whose backbones were all pretrained on ImageNet.
#
# The official recipe freezes the stem, the first stage and every BN layer,
# which only makes sense on top of ImageNet weights: from random
# initialisation those layers would stay random. Here nothing is frozen and
# BN is trained, synchronised across GPUs (SyncBN: 2 images per GPU are too
# few for per-GPU batch statistics; mmengine reverts it to BN in a
# non-distributed run). Pair it with the longer schedule_450k.py, as
# training from scratch needs (He et al., "Rethinking ImageNet
# Pre-training", ICCV 2019). Leaf configs that swap the backbone with
# _delete_=True restate these four keys, as
# configs/light_head_rcnn/from-scratch/ does.
_base_ = './light-head-rcnn_shufflenetv2.py'

model = dict(
    backbone=dict(
        frozen_stages=-1,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        init_cfg=None))
