# ImageNet-1k: MobileNet v2 0.6 (paper Table 8 '0.6 MobileNet v2 (our
# impl.)': 141 MFLOPs, 33.3% top-1 error).
_base_ = './mobilenetv2-1x_8xb128_in1k.py'

# channel_rule as in the Light-Head config (MobileNetV2Det docstring).
model = dict(backbone=dict(widen_factor=0.6, channel_rule='table8'))
