"""Test-only hooks, imported by the configs in tests/configs/ (not shipped)."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmdet.registry import HOOKS


def _module(runner):
    model = runner.model
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class DumpParamsHook(Hook):
    """Save this rank's parameters to ``work_dir/params_rank{r}.pth``."""

    def after_train(self, runner) -> None:
        state = {k: v.detach().cpu().clone()
                 for k, v in _module(runner).named_parameters()}
        torch.save(state, osp.join(runner.work_dir,
                                   f'params_rank{get_rank()}.pth'))


@HOOKS.register_module()
class PoisonParamHook(Hook):
    """Fill one parameter with ``value`` before (1-based) ``iteration``."""

    def __init__(self, iteration: int, param: str,
                 value: float = float('nan')) -> None:
        self.iteration, self.param, self.value = iteration, param, value

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter + 1 == self.iteration:
            with torch.no_grad():
                dict(_module(runner).named_parameters())[self.param].fill_(
                    self.value)
