# ImageNet-1k: MobileNet v2 0.15 (paper Table 8 '0.15 MobileNet v2 (our
# impl.)': 39 MFLOPs, 55.1% top-1 error).
_base_ = './mobilenetv2-1x_8xb128_in1k.py'

# channel_rule as in the Light-Head config (MobileNetV2Det docstring).
model = dict(backbone=dict(widen_factor=0.15, channel_rule='table8'))
