"""SIGKILL a seeded CPU training part-way, ``--resume``, compare with a run
that was never interrupted: same final weights, optimizer state and losses.

Covers the torch>=2.6 ``weights_only`` fix (``shufflenet_det.compat``; without
it ``--resume`` dies unpickling mmengine's HistoryBuffer), atomic checkpoints
(the kill may land in the middle of a save) and the RNG state restored by
ResumableCheckpointHook (without it the resumed run samples different RPN /
R-CNN training RoIs and ends with different weights).
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


def kill_after_checkpoint(cmd, work_dir, iteration, timeout=240):
    """Start ``cmd``; SIGKILL it once ``iter_<iteration>.pth`` is final."""
    proc = subprocess.Popen(cmd, env=train_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    target = work_dir / f'iter_{iteration}.pth'
    deadline = time.monotonic() + timeout
    while not target.exists():
        if proc.poll() is not None:
            raise AssertionError('training ended before the kill:\n' +
                                 proc.stderr.read()[-3000:])
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f'{target} not written in {timeout} s')
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    return proc.returncode


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path):
    straight, broken = tmp_path / 'straight', tmp_path / 'killed'

    proc = run(train_cmd(TINY, straight))
    assert proc.returncode == 0, tail(proc)

    assert kill_after_checkpoint(train_cmd(TINY, broken), broken,
                                 4) == -signal.SIGKILL
    assert not (broken / f'iter_{MAX_ITERS}.pth').exists(), \
        'the kill came too late to test anything'
    proc = run(train_cmd(TINY, broken, '--resume'))
    assert proc.returncode == 0, tail(proc)

    # The resumed run really resumed, from the last checkpoint the kill left
    # complete: iter_4, or iter_2 if the kill hit between writing iter_4.pth
    # and updating last_checkpoint, or iter_6 if it came late.
    ref_losses = logged_scalars(straight)[-1]
    killed_losses, resumed_losses = logged_scalars(broken)[-2:]
    first = min(resumed_losses)
    assert first - 1 in (2, 4, 6), sorted(resumed_losses)
    assert max(killed_losses) >= first - 1
    assert sorted(ref_losses) == list(range(1, MAX_ITERS + 1))
    assert sorted(resumed_losses) == list(range(first, MAX_ITERS + 1))

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
