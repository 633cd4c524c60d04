# Runtime of the ImageNet-1k configs: mmpretrain's registries by default;
# the backbones are this project's mmdet-registered classes, named
# 'mmdet.<Type>' with _scope_='mmdet' in the model configs (see
# shufflenet_det/classification/__init__.py for why).
default_scope = 'mmpretrain'

# shufflenet_det: the backbones (mmdet registry) and the checkpoint
# compatibility with torch>=2.6; shufflenet_det.classification: the
# classifier-side pieces registered in mmpretrain (DropoutLinearClsHead).
custom_imports = dict(
    imports=['shufflenet_det', 'shufflenet_det.classification'],
    allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # The detection configs' hook: atomic writes, save-then-prune and the
    # RNG state for an exact --resume.
    checkpoint=dict(
        type='mmdet.ResumableCheckpointHook', by_epoch=False, interval=10000,
        max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False))

# The detection configs' runner: tools/dist_train.sh also runs without
# CUDA (gloo); with CUDA it is mmengine's Runner.
runner_type = 'mmdet.CPUDistRunner'

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_processor = dict(window_size=100, by_epoch=False)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
