"""tools/dist_train.sh: two torchrun processes on CPU (gloo) train together.

Without CPUDistRunner, mmengine's launcher calls torch.cuda.set_device and
the run dies before the first iteration on a machine without a GPU.
"""
import pytest
import torch

from tests.conftest import COCO_MINI_SKIP
from tests.test_reliability.training_runs import (TEST_CONFIGS,
                                                  dist_train_cmd,
                                                  logged_scalars, run, tail,
                                                  train_env)

pytestmark = [COCO_MINI_SKIP, pytest.mark.slow]
DUMP = (TEST_CONFIGS /
        'light-head-rcnn_shufflenetv2-0.5x_tiny_coco-mini_dump-params.py')
ITERS = 10


def test_two_process_cpu_run_keeps_ranks_identical_and_learns(tmp_path):
    # PORT=0: the rendezvous binds a port the OS picks (no free-port probe
    # that another process could take before torchrun binds it).
    env = dict(train_env(), PORT='0')
    proc = run(dist_train_cmd(
        DUMP, tmp_path, 2,
        options=[f'train_cfg.max_iters={ITERS}',
                 f'default_hooks.checkpoint.interval={ITERS}']),
        env=env, timeout=400)
    assert proc.returncode == 0, tail(proc)
    assert 'gloo' in proc.stdout + proc.stderr, tail(proc)

    ranks = [torch.load(tmp_path / f'params_rank{r}.pth') for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and ranks[0]
    differing = [k for k in ranks[0]
                 if not torch.equal(ranks[0][k], ranks[1][k])]
    assert differing == []

    losses = logged_scalars(tmp_path)[-1]
    assert sorted(losses) == list(range(1, ITERS + 1))
    first = sum(losses[i]['loss'] for i in (1, 2, 3)) / 3
    last = sum(losses[i]['loss'] for i in (ITERS - 2, ITERS - 1, ITERS)) / 3
    assert last < first, [losses[i]['loss'] for i in sorted(losses)]

