# schedule_150k.py with the 500 warm-up iterations counted inside the 150k
# (steps at 95k / 125k), the mmdet convention and this project's schedule
# before issue 18. The official tools/train.py warms up before epoch 0
# (schedule_150k.py). Inherit this file instead of schedule_150k.py to
# switch.
_base_ = './schedule_150k.py'

train_cfg = dict(max_iters=150000)

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
        end=150000,
        by_epoch=False,
        milestones=[95000, 125000],
        gamma=0.1)
]
