# Test-only: the tiny config with the box regressor's weights set to NaN
# before iteration 5, i.e. after the iteration-4 checkpoint
# (tests/test_reliability/test_invalid_loss.py).
_base_ = ['./light-head-rcnn_shufflenetv2-0.5x_tiny_coco-mini.py']

custom_imports = dict(
    imports=['shufflenet_det', 'tests.test_reliability.helpers'],
    allow_failed_imports=False)
custom_hooks = [
    dict(type='InvalidLossGuardHook'),
    dict(type='PoisonParamHook', iteration=5,
         param='roi_head.bbox_head.fc_reg.weight')
]
