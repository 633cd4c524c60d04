# ImageNet-1k: ShuffleNet v1 1x, g=3 (paper Table 8: 140 MFLOPs, 32.6% top-1
# error). The ShuffleNet V2 paper trains it with the same protocol as V2
# (megvii's ShuffleNetV1/train.py differs from V2's only in the model).
_base_ = [
    './_base_/models/shufflenetv2-1x_in1k.py',
    './_base_/datasets/imagenet_bs128_megvii.py',
    './_base_/schedules/imagenet_bs1024_linear-300k.py',
    './_base_/default_runtime.py'
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdet.ShuffleNetV1',
        _scope_='mmdet',
        arch='1.0x',
        # stage4 (stride 32), the last stage.
        out_indices=(2, ),
        init_cfg=None))
