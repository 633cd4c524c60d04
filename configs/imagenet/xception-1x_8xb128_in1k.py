# ImageNet-1k: Light-Head R-CNN's Xception-like backbone at the 140M level
# (paper Table 8 'Xception 1x (our impl.)': 145 MFLOPs, 34.1% top-1 error).
# No public training code exists; the paper's Sec. 4 protocol (the one of
# ShuffleNet v1, shared by all its ImageNet networks) is used.
_base_ = [
    './_base_/models/shufflenetv2-1x_in1k.py',
    './_base_/datasets/imagenet_bs128_megvii.py',
    './_base_/schedules/imagenet_bs1024_linear-300k.py',
    './_base_/default_runtime.py'
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdet.XceptionLike',
        _scope_='mmdet',
        arch='1.0x',
        # stage4 (stride 32), the last stage.
        out_indices=(2, ),
        init_cfg=None))
