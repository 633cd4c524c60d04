"""A hook that parks a training process at a known point, so that a test
can SIGKILL it there without racing the training (test_resume.py)."""
import os
import time
from pathlib import Path

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class PauseAtIterationHook(Hook):
    """Before iteration ``iteration + 1`` (so after ``iter_<iteration>.pth``
    and ``last_checkpoint`` are final), write ``marker`` (the pid) and sleep
    until killed. Consumes no random numbers: until then the run is the
    run without the hook.

    Args:
        iteration (int): Iterations done when the process parks.
        marker (str): File written once parked.
    """

    def __init__(self, iteration: int, marker: str) -> None:
        self.iteration = iteration
        self.marker = marker

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if runner.iter == self.iteration:
            Path(self.marker).write_text(str(os.getpid()))
            while True:
                time.sleep(3600)
