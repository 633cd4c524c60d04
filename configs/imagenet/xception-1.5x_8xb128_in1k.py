# ImageNet-1k: Xception-like 1.5x (paper Table 8: 305 MFLOPs, 29.4% top-1
# error).
_base_ = './xception-1x_8xb128_in1k.py'

model = dict(backbone=dict(arch='1.5x'))
