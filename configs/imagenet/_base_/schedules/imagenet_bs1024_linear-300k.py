# megvii-model/ShuffleNet-Series ShuffleNetV2/train.py (= ShuffleNetV1's),
# the ShuffleNet v1 protocol the ShuffleNet V2 paper (Sec. 4) says all its
# ImageNet networks share: batch 1024, SGD momentum 0.9, lr 0.5 decayed
# linearly to 0 over 300k iterations (about 240 epochs) with no warm-up,
# weight decay 4e-5 on conv/FC kernels only (megvii decays params whose name
# contains 'weight' and whose ndim > 1: BN and biases get none).
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=4e-5),
    # flat_decay_mult covers every 1-D parameter (BN gamma/beta, biases);
    # norm_decay_mult=0 alone would still decay the FC bias.
    paramwise_cfg=dict(flat_decay_mult=0.))

param_scheduler = dict(
    type='PolyLR', power=1., eta_min=0., by_epoch=False, begin=0,
    end=300000)

train_cfg = dict(type='IterBasedTrainLoop', max_iters=300000,
                 val_interval=10000)
val_cfg = dict()
test_cfg = dict()

# megvii's BN recalibration: after training, the BN statistics are
# recomputed as the plain average over 1250 batches of 1024 training images
# (BN momentum 1/k); PreciseBNHook does the same over num_samples images,
# once, after the last iteration (interval = max_iters). ABOVE_NORMAL so it
# runs before the last checkpoint is written.
custom_hooks = [
    dict(type='PreciseBNHook', num_samples=1280000, interval=300000,
         priority='ABOVE_NORMAL')
]

# tools/train.py --auto-scale-lr scales lr 0.5 linearly from 1024 images per
# iteration to the actual total batch.
auto_scale_lr = dict(base_batch_size=1024)
