# ImageNet-1k: Xception-like 0.5x (paper Table 8: 40 MFLOPs, 44.9% top-1
# error).
_base_ = './xception-1x_8xb128_in1k.py'

model = dict(backbone=dict(arch='0.5x'))
