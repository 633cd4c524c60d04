# Test-only: the deploy-check recipe (8 coco-mini train2017 images, shorter
# side 192, ShuffleNet V2 0.5x from scratch) trained 600 iterations instead
# of 150, for tests/test_precision_accuracy.py and
# tests/test_openvino_bf16.py. The 150-iteration weights score at most
# ~0.13 on val2017, so the issue-20 agreement check (fp32 detections above
# 0.3 as ground truth) has nothing to find; these score above 0.3 on
# val2017 too (315 boxes; 2026-12-02) and reach mAP ~0.56 on their 8
# training images. About 5 minutes on 2 CPU cores.
_base_ = ['./light-head-rcnn_shufflenetv2-0.5x_deploy-check_coco-mini.py']

train_cfg = dict(max_iters=600)
default_hooks = dict(checkpoint=dict(interval=600))
