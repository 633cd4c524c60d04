# ImageNet-1k: MobileNet v2 1.0 (paper Table 8 '1.0 MobileNet v2 (our impl.)':
# 301 MFLOPs, 28.3% top-1 error). The paper retrained MobileNet v2 itself
# under its Sec. 4 protocol (that of ShuffleNet v1), not with the
# MobileNetV2 paper's RMSProp recipe, hence the shared megvii recipe.
_base_ = [
    './_base_/models/shufflenetv2-1x_in1k.py',
    './_base_/datasets/imagenet_bs128_megvii.py',
    './_base_/schedules/imagenet_bs1024_linear-300k.py',
    './_base_/default_runtime.py'
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdet.MobileNetV2Det',
        _scope_='mmdet',
        widen_factor=1.0,
        # The final 1x1 conv (stride 32), the classifier's last feature.
        out_indices=(7, ),
        init_cfg=None))
