# ImageNet-1k: ShuffleNet V2 1x (paper Table 5/8: 146 MFLOPs, 30.6% top-1
# error). Recipe in the _base_ files: megvii's ShuffleNet v1/v2 protocol.
_base_ = [
    './_base_/models/shufflenetv2-1x_in1k.py',
    './_base_/datasets/imagenet_bs128_megvii.py',
    './_base_/schedules/imagenet_bs1024_linear-300k.py',
    './_base_/default_runtime.py'
]
