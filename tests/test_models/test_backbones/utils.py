"""Helpers shared by the backbone tests."""
from torch.nn.modules.batchnorm import _BatchNorm


def check_norm_state(modules, train_state: bool) -> bool:
    """True if every ``_BatchNorm`` in ``modules`` has ``training == train_state``."""
    return all(m.training == train_state for m in modules
               if isinstance(m, _BatchNorm))


def bn_running_stats(module):
    """Copies of the running statistics of every ``_BatchNorm`` in ``module``."""
    return [(m.running_mean.clone(), m.running_var.clone())
            for m in module.modules() if isinstance(m, _BatchNorm)]
