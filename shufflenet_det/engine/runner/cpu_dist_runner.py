"""An mmengine Runner that also runs distributed on CPU-only machines."""
import datetime
import logging

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmdet.registry import RUNNERS


@RUNNERS.register_module()
class CPUDistRunner(Runner):
    """:class:`mmengine.runner.Runner`, plus distributed training without CUDA.

    mmengine 0.10.7 assumes a GPU per process once a launcher is set:
    ``init_dist`` calls ``torch.cuda.set_device(LOCAL_RANK)`` (which raises
    on a machine without a driver) and ``wrap_model`` passes
    ``device_ids=[LOCAL_RANK]`` to DDP, which DDP rejects for a CPU module.
    When CUDA is unavailable and the launcher is ``pytorch`` (torchrun),
    this runner initialises the process group itself with the ``gloo``
    backend (a configured ``nccl`` is replaced, with a warning) and wraps the
    model in ``MMDistributedDataParallel`` with ``device_ids=None``. With
    CUDA, or without a launcher, it is exactly mmengine's Runner.

    Selected in a config with ``runner_type = 'CPUDistRunner'``; mmdet's
    ``tools/train.py``/``test.py`` honour that key too.
    """

    def _cpu_distributed(self) -> bool:
        return self.distributed and not torch.cuda.is_available()

    def setup_env(self, env_cfg: dict) -> None:
        if self._cpu_distributed() and self.launcher == 'pytorch' \
                and not is_distributed():
            dist_cfg = dict(env_cfg.get('dist_cfg') or {})
            backend = dist_cfg.pop('backend', 'nccl')
            if backend != 'gloo':
                print_log(f'CUDA is not available: using the gloo backend '
                          f'instead of {backend!r}.', logger='current',
                          level=logging.WARNING)
            timeout = dist_cfg.pop('timeout', None)
            if timeout is not None:
                dist_cfg['timeout'] = datetime.timedelta(seconds=timeout)
            torch_dist.init_process_group(backend='gloo', **dist_cfg)
        # mmengine skips its own init_dist once a process group exists.
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg, model):
        if self._cpu_distributed() and not is_model_wrapper(model):
            if model_wrapper_cfg is None:
                model_wrapper_cfg = dict(
                    type='MMDistributedDataParallel',
                    broadcast_buffers=False,
                    find_unused_parameters=self.cfg.get(
                        'find_unused_parameters', False))
            # DDP needs device_ids=None for a CPU module.
            model_wrapper_cfg = dict(model_wrapper_cfg, device_ids=None)
        return super().wrap_model(model_wrapper_cfg, model)
