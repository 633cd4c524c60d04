# ImageNet-1k: Xception-like 2x (paper Table 8: 525 MFLOPs, 27.6% top-1
# error).
_base_ = './xception-1x_8xb128_in1k.py'

model = dict(backbone=dict(arch='2.0x'))
