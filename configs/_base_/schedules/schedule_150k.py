# Official Light-Head R-CNN schedule (zengarden/light_head_rcnn config.py):
# 8 GPUs x 2 images, lr 0.01, momentum 0.9, weight decay 1e-4; 30 "epochs"
# of 5,000 iterations = 150k iterations; lr x0.1 at 95k and x0.01 at 125k;
# 500 warm-up iterations starting from lr / 3.
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=150000, val_interval=10000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

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

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001))

# lr 0.01 is for a total batch of 16 images (8 GPUs x 2). With another total
# batch B, scale linearly, lr = 0.01 * B / 16: pass --auto-scale-lr to
# tools/train.py (ours or mmdet's) or set auto_scale_lr.enable=True, and
# mmengine rescales from base_batch_size to world size x batch_size.
auto_scale_lr = dict(enable=False, base_batch_size=16)
