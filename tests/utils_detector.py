"""A small Light-Head detector with non-trivial weights, for tests that
compare two inference paths."""
import torch
import torch.nn as nn


def randomize_(model: nn.Module, gain: float = 1.0) -> nn.Module:
    """Non-trivial weights and BN statistics (so that folding matters)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen)
                               * gain * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape,
                                                   generator=gen))
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
    return model


def calibrated_detector(model_cfg, batch_size=2, img_size=(192, 256)):
    """Build ``model_cfg`` with random weights whose scores are spread.

    The classifiers are scaled so that scores have no near-ties that NMS
    could order either way, and box deltas are zero so that proposals are
    the anchors and detections the proposals (random deltas collapse boxes
    onto the image border, where near-duplicates tie).

    Returns:
        tuple: (model in eval mode, batch from ``make_batch``).
    """
    from mmdet.registry import MODELS

    from shufflenet_det.apis import detector_step, make_batch
    torch.manual_seed(0)
    model = randomize_(MODELS.build(model_cfg)).eval()
    logits = {}
    hooks = [model.rpn_head.rpn_cls.register_forward_hook(
        lambda m, i, o: logits.__setitem__('rpn', o)),
        model.roi_head.bbox_head.fc_cls.register_forward_hook(
        lambda m, i, o: logits.__setitem__('rcnn', o))]
    data = make_batch(batch_size, img_size, seed=1)
    detector_step(model, data, torch.device('cpu'))()
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for layer, key in ((model.rpn_head.rpn_cls, 'rpn'),
                           (model.roi_head.bbox_head.fc_cls, 'rcnn')):
            scale = 2.0 / float(logits[key].std())
            layer.weight.mul_(scale)
            layer.bias.mul_(scale)
        for layer in (model.rpn_head.rpn_reg, model.roi_head.bbox_head.fc_reg):
            layer.weight.zero_()
            layer.bias.zero_()
    return model, data
