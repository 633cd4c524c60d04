"""SIGKILL a seeded CPU training part-way, ``--resume``, compare with a run
that was never interrupted: same final weights, optimizer state and losses.

The first run parks itself after iteration 4 (``pause_hook``) and is
killed there, so the kill point does not depend on the machine's speed; a
kill in the middle of a save is ``test_atomic_checkpoint``'s real SIGKILL.

Covers the torch>=2.6 ``weights_only`` fix (``shufflenet_det.compat``; without
it ``--resume`` dies unpickling mmengine's HistoryBuffer), atomic checkpoints
and the RNG state restored by ResumableCheckpointHook (without it the
resumed run samples different RPN / R-CNN training RoIs and ends with
different weights).
"""
import signal
import subprocess
import time

import pytest
import torch

from tests.conftest import COCO_MINI_SKIP
from tests.test_reliability.training_runs import (TINY, load_state,
                                                  logged_scalars, run, tail,
                                                  train_cmd, train_env)

pytestmark = COCO_MINI_SKIP
MAX_ITERS = 8  # the tiny config; checkpoints every 2 iterations
KILL_AT = 4  # iterations done when the first run is killed


def paused_config(work_dir, iteration):
    """The tiny config plus :class:`PauseAtIterationHook` at ``iteration``;
    returns (config path, marker path)."""
    marker = work_dir / 'paused'
    config = work_dir.parent / f'{work_dir.name}_pause.py'
    config.write_text(
        f'_base_ = [{str(TINY)!r}]\n'
        "custom_imports = dict(imports=['tests.test_reliability.pause_hook'],"
        ' allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='InvalidLossGuardHook'), "
        f"dict(type='PauseAtIterationHook', iteration={iteration}, "
        f'marker={str(marker)!r})]\n')
    return config, marker


def kill_when_paused(cmd, marker, timeout):
    """Start ``cmd``; SIGKILL it once it has parked (``marker`` written).

    The process waits for the kill, so the kill point does not depend on
    timing; ``timeout`` only bounds a hang."""
    proc = subprocess.Popen(cmd, env=train_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError('training ended before the kill:\n' +
                                 proc.stderr.read()[-3000:])
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f'{marker} not written in {timeout:.0f} s')
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    return proc.returncode


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path):
    straight, broken = tmp_path / 'straight', tmp_path / 'killed'
    broken.mkdir()

    start = time.monotonic()
    proc = run(train_cmd(TINY, straight))
    assert proc.returncode == 0, tail(proc)
    # The killed run does half the iterations of this one; 10x this run's
    # duration (start-up included) only bounds a hang, under any load.
    timeout = 10 * (time.monotonic() - start)

    config, marker = paused_config(broken, KILL_AT)
    assert kill_when_paused(train_cmd(config, broken), marker,
                            timeout) == -signal.SIGKILL
    assert not (broken / f'iter_{KILL_AT + 2}.pth').exists()
    proc = run(train_cmd(TINY, broken, '--resume'))
    assert proc.returncode == 0, tail(proc)

    # The resumed run really resumed, from the checkpoint of the iteration
    # where the killed run was parked.
    ref_losses = logged_scalars(straight)[-1]
    killed_losses, resumed_losses = logged_scalars(broken)[-2:]
    assert sorted(killed_losses) == list(range(1, KILL_AT + 1))
    assert sorted(ref_losses) == list(range(1, MAX_ITERS + 1))
    assert sorted(resumed_losses) == list(range(KILL_AT + 1, MAX_ITERS + 1))

    # Same loss terms, same values, every iteration of both parts.
    for it, row in [*killed_losses.items(), *resumed_losses.items()]:
        ref = ref_losses[it]
        losses = {k: v for k, v in row.items() if k.startswith('loss')}
        assert losses == {k: ref[k] for k in losses}, f'iteration {it}'
        assert row['lr'] == ref['lr'], f'lr at iteration {it}'

    a = load_state(straight / f'iter_{MAX_ITERS}.pth')
    b = load_state(broken / f'iter_{MAX_ITERS}.pth')
    assert a['meta']['iter'] == b['meta']['iter'] == MAX_ITERS
    assert a['state_dict'].keys() == b['state_dict'].keys()
    differing = [k for k in a['state_dict']
                 if not torch.equal(a['state_dict'][k], b['state_dict'][k])]
    assert differing == []
    # Momentum buffers too: the next iteration would match as well.
    for sa, sb in zip(a['optimizer']['state'].values(),
                      b['optimizer']['state'].values()):
        assert torch.equal(sa['momentum_buffer'], sb['momentum_buffer'])
    # And the weights do change between checkpoints (max_keep_ckpts=2).
    c = load_state(straight / f'iter_{MAX_ITERS - 2}.pth')
    assert any(not torch.equal(c['state_dict'][k], a['state_dict'][k])
               for k in a['state_dict'])
