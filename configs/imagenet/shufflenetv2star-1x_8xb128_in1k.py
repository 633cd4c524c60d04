# ImageNet-1k: ShuffleNet V2* 1x, V2 1x with an extra 3x3 depthwise conv
# before the first 1x1 conv of every unit (paper Sec. 4, object detection).
# The paper gives no ImageNet row or recipe for V2*; it pretrained it like
# every Table 7 backbone, so the V2 recipe is used unchanged.
_base_ = './shufflenetv2-1x_8xb128_in1k.py'

model = dict(backbone=dict(arch='1.0x', extra_dw=True))
