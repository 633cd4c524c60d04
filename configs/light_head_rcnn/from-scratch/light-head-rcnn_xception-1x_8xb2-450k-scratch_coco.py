# Xception-like 1x (the 140 MFLOPs level) trained from scratch on COCO: the
# explicit alternative to ../light-head-rcnn_xception-1x_8xb2-150k_coco.py,
# which stops at start-up until it is given ImageNet weights.
#
# NOT comparable with Table 7 of the ShuffleNet V2 paper (its backbones were
# pretrained on ImageNet). For another backbone, copy this file and swap the
# backbone dict, keeping the four recipe keys.
_base_ = [
    '../../_base_/models/light-head-rcnn_shufflenetv2_from-scratch.py',
    '../../_base_/datasets/coco_detection.py',
    '../../_base_/schedules/schedule_450k.py',
    '../../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='XceptionLike',
        arch='1.0x',
        out_indices=(1, 2),
        # The from-scratch recipe (see the _base_ model variant).
        frozen_stages=-1,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        init_cfg=None))
