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
# ShuffleNetV2's conv5 (backbone.layers.3) exists but feeds no output with
# out_indices=(1, 2), so DDP stops at iteration 2 with "Expected to have
# finished reduction in the prior iteration" unless told to look for unused
# parameters. Remove once the backbone stops building/training unused stages.
find_unused_parameters = True
