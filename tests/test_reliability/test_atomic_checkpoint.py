"""A process dying while it writes a checkpoint must not cost the run.

A toy mmengine run saves a checkpoint every iteration; the death is injected
into the byte-level write of the third save (``open(..., 'wb').write``),
which is where both mmengine's LocalBackend and our atomic writer touch the
disk. In-process cases raise at that point (fast); one case really SIGKILLs
a subprocess there. Afterwards a fresh runner must ``resume`` from the work
dir and finish, and every file under a checkpoint name must load.
"""
import builtins
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import CheckpointHook
from mmengine.model import BaseModel
from mmengine.runner import Runner, find_latest_checkpoint
from torch.utils.data import Dataset

from shufflenet_det.engine import ResumableCheckpointHook, atomic_write_bytes
from tests.conftest import REPO


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


class ToyData(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i), 1.0]))


def toy_runner(work_dir, hook, max_iters=4, resume=False, name='toy'):
    # mmengine keys loggers/visualizers by experiment name: keep them apart.
    name = f'{name}-{os.path.basename(work_dir)}-{os.getpid()}'
    return Runner(
        model=ToyModel(), work_dir=str(work_dir), experiment_name=name,
        train_dataloader=dict(
            dataset=ToyData(), batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=hook, logger=None),
        resume=resume, randomness=dict(seed=0),
        # A Runner makes its scope the process default: keep it mmdet's so
        # later tests still find mmdet/shufflenet_det modules.
        default_scope='mmdet')


class SimulatedKill(BaseException):
    """Stands for SIGKILL; BaseException so no ``except Exception`` eats it."""


def die_writing(monkeypatch, name_part, nth=1):
    """Make the ``nth`` write of a file whose name contains ``name_part``
    stop half way and 'kill' the process."""
    real_open = builtins.open
    seen = [0]

    def fake_open(file, mode='r', *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if name_part in os.fspath(file) and 'w' in mode:
            seen[0] += 1
        if name_part in os.fspath(file) and 'w' in mode and seen[0] == nth:
            real_write = f.write

            def write(data):
                real_write(data[:len(data) // 2])
                f.flush()
                raise SimulatedKill(f'killed while writing {file}')

            f.write = write
        return f

    monkeypatch.setattr(builtins, 'open', fake_open)


SCENARIOS = {
    # the third save dies writing: (file name part, its nth write), and
    # max_keep_ckpts
    'checkpoint bytes, keep all': ('iter_3.pth', 1, -1),
    'checkpoint bytes, keep 1': ('iter_3.pth', 1, 1),
    'last_checkpoint pointer, keep 1': ('last_checkpoint', 3, 1),
}


def kill_third_save(tmp_path, monkeypatch, hook_cls, scenario):
    name_part, nth, keep = SCENARIOS[scenario]
    hook = hook_cls(interval=1, by_epoch=False, max_keep_ckpts=keep)
    runner = toy_runner(tmp_path, hook, name=f'kill-{hook_cls.__name__}')
    with monkeypatch.context() as m:
        die_writing(m, name_part, nth)
        with pytest.raises(SimulatedKill):
            runner.train()


def problems_after_kill(work_dir):
    """Everything a user resuming from ``work_dir`` would trip over."""
    problems = []
    for name in sorted(os.listdir(work_dir)):
        if name.startswith('iter_') and name.endswith('.pth'):
            try:
                torch.load(work_dir / name, map_location='cpu')
            except Exception as e:  # noqa: BLE001 (any failure counts)
                problems.append(f'{name} does not load: {type(e).__name__}')
    latest = find_latest_checkpoint(str(work_dir))
    if not latest or not os.path.isfile(latest):
        problems.append(f'last_checkpoint points at {latest!r}')
        return problems
    try:
        runner = toy_runner(work_dir, ResumableCheckpointHook(
            interval=1, by_epoch=False), resume=True, name='resume')
        runner.train()
        if runner.iter != 4:
            problems.append(f'resumed run stopped at {runner.iter}')
    except Exception as e:  # noqa: BLE001
        problems.append(f'resume failed: {type(e).__name__}: {e}')
    return problems


@pytest.mark.parametrize('scenario', list(SCENARIOS))
def test_kill_during_save_keeps_a_resumable_checkpoint(
        tmp_path, monkeypatch, scenario):
    kill_third_save(tmp_path, monkeypatch, ResumableCheckpointHook, scenario)
    assert find_latest_checkpoint(str(tmp_path)).endswith('iter_2.pth')
    assert problems_after_kill(tmp_path) == []


@pytest.mark.parametrize('scenario', list(SCENARIOS))
def test_same_kill_breaks_mmengine_checkpoint_hook(tmp_path, monkeypatch,
                                                   scenario):
    """The scenarios above are not vacuous: mmengine 0.10.7's hook fails."""
    kill_third_save(tmp_path, monkeypatch, CheckpointHook, scenario)
    assert problems_after_kill(tmp_path) != []


@pytest.mark.slow
def test_real_sigkill_while_writing(tmp_path):
    script = textwrap.dedent(f'''
        import builtins, os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.test_reliability.test_atomic_checkpoint import (
            ResumableCheckpointHook, toy_runner)
        real_open = builtins.open
        def fake_open(file, mode='r', *a, **k):
            f = real_open(file, mode, *a, **k)
            if 'iter_3.pth' in os.fspath(file) and 'w' in mode:
                w = f.write
                def write(data):
                    w(data[:len(data) // 2]); f.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
                f.write = write
            return f
        builtins.open = fake_open
        hook = ResumableCheckpointHook(interval=1, by_epoch=False,
                                       max_keep_ckpts=1)
        toy_runner({str(tmp_path)!r}, hook).train()
        ''')
    proc = subprocess.run([sys.executable, '-c', script], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    # The half-written temporary file is what the kill left behind.
    assert any(n.startswith('.iter_3.pth.tmp-') for n in os.listdir(tmp_path))
    assert problems_after_kill(tmp_path) == []


def test_atomic_write_keeps_old_content_on_failure(tmp_path, monkeypatch):
    path = tmp_path / 'f.bin'
    atomic_write_bytes(b'old', path)
    with monkeypatch.context() as m:
        die_writing(m, 'f.bin')
        with pytest.raises(SimulatedKill):
            atomic_write_bytes(b'new content', path)
    assert path.read_bytes() == b'old'
    atomic_write_bytes(b'new content', path)
    assert path.read_bytes() == b'new content'
    assert os.listdir(tmp_path) == ['f.bin']
