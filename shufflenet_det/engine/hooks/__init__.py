from .deploy_hook import DeployHook
from .invalid_loss_guard_hook import InvalidLossError, InvalidLossGuardHook
from .resumable_checkpoint_hook import ResumableCheckpointHook

__all__ = ['DeployHook', 'InvalidLossError', 'InvalidLossGuardHook',
           'ResumableCheckpointHook']
