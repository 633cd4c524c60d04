"""shufflenet_det.analysis.macs: the one multiply-add counter."""
import torch
import torch.nn as nn

from shufflenet_det.analysis.complexity import count_complexity
from shufflenet_det.analysis.guidelines import count_macs
from shufflenet_det.analysis.macs import MacCounter


def test_mac_counter_counts_convs_and_linears_by_part():
    model = nn.Sequential()
    model.add_module('stem', nn.Conv2d(3, 8, 3, stride=2, padding=1))
    model.add_module('dw', nn.Conv2d(8, 8, 3, padding=1, groups=8))
    model.add_module('head', nn.Sequential(nn.Flatten(),
                                           nn.Linear(8 * 4 * 4, 10)))
    with MacCounter(model, ['stem', 'head']) as counter:
        model(torch.zeros(2, 3, 8, 8))
    assert counter.by_part['stem'] == 2 * 8 * 4 * 4 * 3 * 9
    assert counter.by_part['other'] == 2 * 8 * 4 * 4 * 9  # depthwise
    assert counter.by_part['head'] == 2 * 10 * 128
    assert counter.total == sum(counter.by_part.values())
    model(torch.zeros(1, 3, 8, 8))  # hooks removed on exit
    assert counter.by_part['head'] == 2 * 10 * 128


def test_every_count_is_the_same_counter():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1),
                          nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 10))
    x = torch.zeros(1, 3, 224, 224)
    with MacCounter(model) as counter:
        model(x)
    assert count_macs(model, x) == counter.total
    assert count_complexity(model)['macs'] == counter.total
    # conv: 112 x 112 outputs x 8 channels x 3 x 3 x 3; fc: 8 x 10.
    assert counter.total == 112 * 112 * 8 * 27 + 80
