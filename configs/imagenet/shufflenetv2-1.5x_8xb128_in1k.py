# ImageNet-1k: ShuffleNet V2 1.5x (paper Table 5/8: 299 MFLOPs, 27.4% top-1
# error).
_base_ = './shufflenetv2-1x_8xb128_in1k.py'

model = dict(backbone=dict(arch='1.5x'))
