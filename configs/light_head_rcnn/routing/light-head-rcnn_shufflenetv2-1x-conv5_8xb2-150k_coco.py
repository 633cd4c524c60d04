# ShuffleNet v2 1x with the other routing: the light head (large separable
# conv + PSRoIAlign) reads conv5 (the final 1x1 conv, 1024 channels, stride
# 32) instead of stage4 (464 channels, stride 32); the RPN still reads
# stage3 (stride 16).
#
# Neither the ShuffleNet V2 paper nor the Light-Head R-CNN paper says which
# backbone outputs feed the RPN and the light head of the small models (the
# official Light-Head code has ResNet-101 only: RPN on conv4, head on a
# dilated conv5). The Table 7 configs use stage3 / stage4; this is the
# other reading, one line away. LightHeadRCNN takes the RPN from output 0
# and the head from output 1 of out_indices and sizes both from the built
# backbone. For MobileNet v2 the same change is out_indices=(4, 7).
_base_ = '../light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco.py'
model = dict(backbone=dict(out_indices=(1, 3)))
