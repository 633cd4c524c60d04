# ImageNet-1k, 128 images per GPU (8 GPUs = megvii's batch of 1024).
#
# Augmentation: megvii-model/ShuffleNet-Series ShuffleNetV2/train.py (the
# ShuffleNet v1 protocol that the ShuffleNet V2 paper, Sec. 4, says all its
# ImageNet networks share): RandomResizedCrop(224) with torchvision's
# defaults (scale 0.08-1, ratio 3/4-4/3, PIL bilinear), ColorJitter(0.4, 0.4,
# 0.4), horizontal flip; test: bilinear (OpenCV) short side 256, centre crop
# 224, the single centre crop of the paper's Table 8.
#
# Input normalisation deviates from megvii on purpose: megvii feeds raw BGR
# 0-255; here it is RGB with ImageNet mean/std, exactly the Light-Head
# configs' DetDataPreprocessor (configs/_base_/models/), so the detector sees
# the input statistics its backbone was pretrained on.
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'

data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow',
         interpolation='bilinear'),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='cv2',
         interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    # Iteration-based schedule: an endless, reshuffled stream.
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))

val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
