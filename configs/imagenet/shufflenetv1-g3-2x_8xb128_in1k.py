# ImageNet-1k: ShuffleNet v1 2x, g=3 (paper Table 8: 524 MFLOPs, 26.3%
# top-1 error).
_base_ = './shufflenetv1-g3-1x_8xb128_in1k.py'

model = dict(backbone=dict(arch='2.0x'))
