"""Stop training at the first NaN/inf loss, before it is checkpointed."""
import math
from typing import Optional

import torch
from mmengine.dist import (all_gather_object, all_reduce, get_comm_device,
                           get_world_size)
from mmengine.hooks import Hook
from mmdet.registry import HOOKS


class InvalidLossError(FloatingPointError):
    """A loss term became NaN or infinite during training."""


@HOOKS.register_module()
class InvalidLossGuardHook(Hook):
    """Raise :class:`InvalidLossError` as soon as any loss term is not finite.

    Checked after every iteration, at ``ABOVE_NORMAL`` priority, i.e. before
    the logger, the LR scheduler and the checkpoint hook (``VERY_LOW``) of
    the same iteration run: the weights that produced the NaN, and the NaN
    update itself, are never saved, so the last checkpoint on disk is the
    last good one. The message names the iteration (1-based, as in the log
    ``Iter(train) [k/N]``), every non-finite term with its value, the rank(s)
    and that checkpoint. With several processes, a one-element all-reduce
    makes every rank stop at the same iteration (DDP has already averaged
    the bad gradients into every replica).

    mmdet's ``CheckInvalidLossHook`` checks only the total, only every 50
    iterations, with an ``assert``.

    Args:
        keys_to_check (str): Terms whose name contains this substring are
            checked (mmengine sums exactly these into the total). Default:
            ``'loss'``.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, keys_to_check: str = 'loss') -> None:
        self.keys_to_check = keys_to_check

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        bad = {}
        for name, value in (outputs or {}).items():
            if self.keys_to_check not in name:
                continue
            value = float(value.detach().float().mean()) if isinstance(
                value, torch.Tensor) else float(value)
            if not math.isfinite(value):
                bad[name] = value
        if get_world_size() > 1:
            flag = torch.tensor([float(bool(bad))], device=get_comm_device())
            all_reduce(flag)
            if flag.item() == 0:
                return
            per_rank = all_gather_object(bad)
        elif not bad:
            return
        else:
            per_rank = [bad]
        # Every rank builds the same message from the gathered terms.
        where = '; '.join(
            ('' if len(per_rank) == 1 else f'rank {r}: ') +
            ', '.join(f'{k}={v}' for k, v in terms.items())
            for r, terms in enumerate(per_rank) if terms)
        last = runner.message_hub.get_info('last_ckpt')
        raise InvalidLossError(
            f'Non-finite loss at iteration {runner.iter + 1}/'
            f'{runner.max_iters}: {where}. Training stopped before this '
            'iteration was checkpointed; last good checkpoint: '
            f'{last if last else "none saved yet"}. Resume from it with a '
            'lower learning rate or stronger gradient clipping, or check the '
            'annotations of the batch.')

