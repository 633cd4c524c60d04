"""Unknown backbone width/arch and mismatched checkpoints, as a user hits
them: building the detector from its config and initialising its weights.
(The backbone's own unit tests cover the same errors on the bare module.)"""
import pytest
import torch
from mmdet.registry import MODELS

from shufflenet_det.models.backbones import ShuffleNetV2
from tests.conftest import base_model_cfg


@pytest.mark.parametrize('arch', ['3.0x', '1x', 3])
def test_unknown_width_is_named(arch):
    cfg = base_model_cfg()
    cfg.backbone.arch = arch
    with pytest.raises(ValueError, match=rf'unknown arch {arch!r}'):
        MODELS.build(cfg)


def test_custom_arch_missing_keys_is_named():
    cfg = base_model_cfg()
    cfg.backbone.arch = dict(channels=(24, 48, 96, 192, 1024))
    with pytest.raises(ValueError, match='custom arch lacks'):
        MODELS.build(cfg)


def detector_with_checkpoint(path):
    cfg = base_model_cfg()
    cfg.backbone.arch = '0.5x'
    cfg.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(path))
    return MODELS.build(cfg)


def test_checkpoint_of_another_width_names_file_and_tensor(tmp_path):
    path = tmp_path / 'shufflenetv2_1x.pth'
    torch.save(ShuffleNetV2(arch='1.0x', out_indices=(1, 2)).state_dict(),
               path)
    model = detector_with_checkpoint(path)
    with pytest.raises(ValueError) as err:
        model.init_weights()
    msg = str(err.value)
    assert str(path) in msg and 'do not fit ShuffleNetV2' in msg
    assert 'layers.0.0.branch1' in msg and 'checkpoint (' in msg


def test_checkpoint_with_unrelated_keys_is_rejected(tmp_path):
    path = tmp_path / 'resnet_like.pth'
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7),
                'fc.weight': torch.zeros(1000, 512)}, path)
    model = detector_with_checkpoint(path)
    with pytest.raises(ValueError, match=rf'{path}: none of its 2 keys'):
        model.init_weights()
