# ImageNet-1k classifier around a Table 7 backbone: the backbone, global
# average pooling and a 1000-way FC layer, the network the paper's Table 8
# measures (and whose multiply-adds tools/get_flops.py counts).
# SizedImageClassifier is mmpretrain's ImageClassifier with head.in_channels
# taken from the built backbone, so leaf configs only swap the backbone.
#
# The backbone is the detector's class from mmdet's registry, so a
# checkpoint of this model loads into the matching Light-Head config with
# init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.').
# 'mmdet.' resolves the class; _scope_='mmdet' also builds its children in
# mmdet's scope (mmpretrain has its own ShuffleNetV2/ShuffleNetV1/
# MobileNetV2 under the same names).
model = dict(
    type='SizedImageClassifier',
    backbone=dict(
        type='mmdet.ShuffleNetV2',
        _scope_='mmdet',
        arch='1.0x',
        # conv5 (stride 32, 1024 channels): the classifier's last feature.
        out_indices=(3, ),
        # No init_cfg: the backbone's own initialisation (Kaiming fan-out
        # convs, BN 1/0). megvii draws N(0, 0.01) for the first conv and
        # N(0, 1/fan_in) for the others; we keep one init for all five
        # backbones.
        init_cfg=None),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        # megvii: label smoothing 0.1, (1 - 0.1) * onehot + 0.1 / 1000.
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                  mode='original'),
        # FC init N(0, 0.01), as megvii (which has no FC bias; this head
        # has one, with no weight decay, see the schedule).
        topk=(1, 5)))
