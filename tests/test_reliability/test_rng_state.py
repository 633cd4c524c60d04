"""RNG snapshots: exact round trip, checkpoint-safe, validation-neutral."""
import random
from types import SimpleNamespace

import numpy as np
import torch
from mmengine.logging import MMLogger

from shufflenet_det.engine import (ResumableCheckpointHook, get_rng_state,
                                   set_rng_state)


def draws():
    return (random.random(), np.random.rand(3).tolist(),
            torch.rand(3).tolist(), torch.randperm(50).tolist())


def test_round_trip_restores_python_numpy_and_torch():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    draws()
    state = get_rng_state()
    expected = draws()
    draws()
    set_rng_state(state)
    assert draws() == expected


def test_snapshot_holds_only_weights_only_safe_leaves():
    """No numpy arrays or custom classes: loads with weights_only=True
    whatever torch's allow-list holds."""
    def leaves(obj):
        if isinstance(obj, (list, tuple)):
            for x in obj:
                yield from leaves(x)
        elif isinstance(obj, dict):
            for x in obj.values():
                yield from leaves(x)
        else:
            yield obj

    kinds = {type(x) for x in leaves(get_rng_state())}
    assert kinds <= {int, float, str, type(None), torch.Tensor}, kinds


def test_validation_leaves_the_training_rng_untouched():
    hook = ResumableCheckpointHook(interval=1)
    runner = SimpleNamespace(logger=MMLogger.get_current_instance())
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    state = get_rng_state()
    expected = draws()  # what training would draw next without validation
    set_rng_state(state)
    hook.before_val_epoch(runner)
    draws()  # consumed by the validation loop
    hook.after_val_epoch(runner, {})
    assert draws() == expected
