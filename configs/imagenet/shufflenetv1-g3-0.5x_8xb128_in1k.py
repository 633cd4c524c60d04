# ImageNet-1k: ShuffleNet v1 0.5x, g=3 (paper Table 8: 38 MFLOPs, 43.2%
# top-1 error).
_base_ = './shufflenetv1-g3-1x_8xb128_in1k.py'

model = dict(backbone=dict(arch='0.5x'))
