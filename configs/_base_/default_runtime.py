default_scope = 'mmdet'

# Registers ShuffleNetV2, LightHeadRCNN, LightHeadRoIHead, PSRoIExtractor,
# LargeSeparableConv, ... and makes --resume work under torch>=2.6, for our
# tools and for mmdet's own tools/train.py and tools/test.py alike.
custom_imports = dict(imports=['shufflenet_det'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Iteration-based, like every schedule of this project. mmengine's
    # CheckpointHook plus atomic writes, save-then-prune and the RNG state
    # for a bit-exact --resume (docs/reliability.md).
    checkpoint=dict(
        type='ResumableCheckpointHook', by_epoch=False, interval=10000,
        max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))

# Stop at the first NaN/inf loss term, before it is checkpointed.
custom_hooks = [dict(type='InvalidLossGuardHook')]

# mmengine's Runner, plus tools/dist_train.sh on machines without CUDA
# (gloo backend); identical to Runner when CUDA is present.
# Scoped name: mmdet's tools/train.py builds it from mmengine's root RUNNERS
# registry, which only finds mmdet-registered runners through the prefix.
runner_type = 'mmdet.CPUDistRunner'

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)

log_level = 'INFO'
load_from = None
resume = False
