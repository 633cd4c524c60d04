# ImageNet-1k: ShuffleNet V2 0.5x (paper Table 5/8: 41 MFLOPs, 39.7% top-1
# error).
_base_ = './shufflenetv2-1x_8xb128_in1k.py'

model = dict(backbone=dict(arch='0.5x'))
