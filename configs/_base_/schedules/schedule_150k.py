# Official Light-Head R-CNN schedule (zengarden/light_head_rcnn,
# experiments/lizeming/light_head_rcnn.ori_res101.coco.ps_roialign/config.py
# and tools/train.py): 8 GPUs x 2 images, lr 0.01, momentum 0.9, weight
# decay 1e-4; 30 "epochs" of 5,000 iterations = 150k iterations, lr x0.1
# after epoch 19 and x0.01 after epoch 25 (MultiStageLR).
#
# Warm-up: tools/train.py runs its 500 warm-up iterations (lr rising
# linearly from lr / 3, warm_iter / warm_fractor) *before* epoch 0, so the
# whole run is 150,500 iterations with the steps at 95,500 and 125,500.
# Switch back to the warm-up inside the 150k (steps at 95k / 125k): inherit
# ../_base_/schedules/schedule_150k_warmup-inside.py instead of this file.
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=150000 + 500, val_interval=10000)
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
        end=150000 + 500,
        by_epoch=False,
        milestones=[95000 + 500, 125000 + 500],
        gamma=0.1)
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001),
    paramwise_cfg=dict(
        # Official tools/train.py: biases_regularizer = tf.no_regularizer in
        # the arg_scope of every conv / fc: no weight decay on biases.
        # Switch back (decay on every parameter):
        # optim_wrapper = dict(paramwise_cfg=dict(bias_decay_mult=1., custom_keys=dict(_delete_=True, **{'roi_head.lsc.': dict(lr_mult=3.)})))  # noqa: E501
        bias_decay_mult=0.,
        # Official tools/train.py, scope 'Gradient_Mult': every gradient of a
        # 'conv_new' variable (the large separable conv, built with
        # prefix='conv_new_1' in network_desp.py) is multiplied by 3 before
        # the momentum SGD step. The gradient already holds the L2 term, so
        # this is exactly a 3x learning rate for the LSC (roi_head.lsc).
        # mmengine's custom keys bypass bias_decay_mult, hence the LSC biases
        # restate it (the longest matching key wins).
        # Switch back (plain SGD on the LSC):
        # optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(_delete_=True)))  # noqa: E501
        custom_keys={
            'roi_head.lsc.': dict(lr_mult=3.),
            'roi_head.lsc.row.0.bias': dict(lr_mult=3., decay_mult=0.),
            'roi_head.lsc.row.1.bias': dict(lr_mult=3., decay_mult=0.),
            'roi_head.lsc.col.0.bias': dict(lr_mult=3., decay_mult=0.),
            'roi_head.lsc.col.1.bias': dict(lr_mult=3., decay_mult=0.),
        }))

# lr 0.01 is for a total batch of 16 images (8 GPUs x 2). With another total
# batch B, scale linearly, lr = 0.01 * B / 16: pass --auto-scale-lr to
# tools/train.py (ours or mmdet's) or set auto_scale_lr.enable=True, and
# mmengine rescales from base_batch_size to world size x batch_size.
auto_scale_lr = dict(enable=False, base_batch_size=16)
