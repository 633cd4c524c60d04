# ImageNet-1k: MobileNet v2 1.4 (paper Table 8 '1.4 MobileNet v2 (our
# impl.)': 587 MFLOPs, 26.7% top-1 error).
_base_ = './mobilenetv2-1x_8xb128_in1k.py'

model = dict(backbone=dict(widen_factor=1.4))
