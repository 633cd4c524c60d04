from .invalid_loss_guard_hook import InvalidLossError, InvalidLossGuardHook
from .resumable_checkpoint_hook import ResumableCheckpointHook

__all__ = ['InvalidLossError', 'InvalidLossGuardHook',
           'ResumableCheckpointHook']
