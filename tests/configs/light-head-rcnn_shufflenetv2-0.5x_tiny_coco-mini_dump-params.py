# Test-only: the tiny config plus a hook saving each rank's parameters at the
# end of training (tests/test_reliability/test_distributed.py).
_base_ = ['./light-head-rcnn_shufflenetv2-0.5x_tiny_coco-mini.py']

custom_imports = dict(
    imports=['shufflenet_det', 'tests.test_reliability.helpers'],
    allow_failed_imports=False)
custom_hooks = [
    dict(type='InvalidLossGuardHook'),
    dict(type='DumpParamsHook')
]
