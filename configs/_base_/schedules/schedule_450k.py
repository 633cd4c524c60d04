# schedule_150k.py three times longer (450k iterations after the same 500
# warm-up iterations, lr steps at 3x the official 95k / 125k, shifted by the
# warm-up as there), for training without ImageNet pretraining
# (models/light-head-rcnn_shufflenetv2_from-scratch.py).
_base_ = './schedule_150k.py'

train_cfg = dict(max_iters=450000 + 500)

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1.0 / 3,
        by_epoch=False,
        begin=0,
        end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=450000 + 500,
        by_epoch=False,
        milestones=[285000 + 500, 375000 + 500],
        gamma=0.1)
]
