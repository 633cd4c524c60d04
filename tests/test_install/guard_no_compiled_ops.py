"""Run by tests/test_install/test_no_compiled_ops.py in a fresh interpreter.

Installs, before mmcv is imported, an ``mmcv._ext`` whose every function
raises, independent of whichever real or stand-in extension the environment
has; then builds the twenty Table 7 configs, runs inference with each, and a
training step (loss + backward) with one config per backbone family.
Prints one ``ok <config> <what>`` line per check.
"""
import sys
import types
from pathlib import Path


class CompiledOpCalled(RuntimeError):
    pass


def _raising_ext():
    ext = types.ModuleType('mmcv._ext')

    def __getattr__(name):
        if name.startswith('__'):
            raise AttributeError(name)

        def op(*args, **kwargs):
            raise CompiledOpCalled(f'the Light-Head path called compiled mmcv op `{name}`')
        return op

    ext.__getattr__ = __getattr__
    return ext


sys.modules['mmcv._ext'] = _raising_ext()

import torch  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

register_all_modules(init_default_scope=True)
import shufflenet_det  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[2]
H, W = 160, 224


def batch():
    gen = torch.Generator().manual_seed(0)
    sample = DetDataSample(metainfo=dict(img_id=0, img_shape=(H, W), ori_shape=(H, W),
                                         pad_shape=(H, W), scale_factor=(1., 1.)))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[10., 20., 90., 120.], [100., 30., 200., 150.]]),
        labels=torch.tensor([3, 17]))
    img = torch.randint(0, 256, (3, H, W), generator=gen, dtype=torch.uint8)
    return {'inputs': [img], 'data_samples': [sample]}


def build(config):
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.init_cfg = None  # no ImageNet weights here
    return MODELS.build(cfg.model)


def main(configs, train_configs):
    for config in configs:
        model = build(config).eval()
        with torch.no_grad():
            out = model.test_step(batch())
        assert len(out) == 1 and 'pred_instances' in out[0]
        print('ok', config.name, 'inference', flush=True)
    for config in train_configs:
        model = build(config).train()
        data = model.data_preprocessor(batch(), training=True)
        losses = model.loss(data['inputs'], data['data_samples'])
        total, _ = model.parse_losses(losses)
        total.backward()
        assert torch.isfinite(total)
        print('ok', config.name, 'training step', flush=True)


if __name__ == '__main__':
    names = sys.argv[1:]
    split = names.index('--train')
    main([Path(n) for n in names[:split]], [Path(n) for n in names[split + 1:]])
