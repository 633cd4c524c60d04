# ImageNet-1k: ShuffleNet V2 2x (paper Table 5/8: 591 MFLOPs, 25.1% top-1
# error).
_base_ = './shufflenetv2-1x_8xb128_in1k.py'

model = dict(
    backbone=dict(arch='2.0x'),
    # megvii's 2.0x classifier applies Dropout(0.2) before the FC
    # (ShuffleNet-Series ShuffleNetV2/network.py).
    head=dict(type='DropoutLinearClsHead', dropout_ratio=0.2))
