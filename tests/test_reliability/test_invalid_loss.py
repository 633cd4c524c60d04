"""A NaN/inf loss stops training, naming the iteration and the loss term,
and the last checkpoint on disk stays the last good one."""
import math
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub

from shufflenet_det.engine import InvalidLossError, InvalidLossGuardHook
from tests.conftest import COCO_MINI_SKIP
from tests.test_reliability.training_runs import (TEST_CONFIGS, load_state,
                                                  run, tail, train_cmd)

NAN_AT_5 = (TEST_CONFIGS /
            'light-head-rcnn_shufflenetv2-0.5x_tiny_coco-mini_nan-at-5.py')


def fake_runner(iteration, last_ckpt=None):
    hub = MessageHub.get_instance('test_invalid_loss')
    hub.update_info('last_ckpt', last_ckpt)
    return SimpleNamespace(iter=iteration - 1, max_iters=100,
                           message_hub=hub)


def outputs(**terms):
    return {k: torch.tensor(v) for k, v in terms.items()}


def test_finite_losses_pass():
    hook = InvalidLossGuardHook()
    hook.after_train_iter(fake_runner(3), 2, None,
                          outputs(loss=1.5, loss_cls=1.0, loss_bbox=0.5,
                                  acc=float('nan')))  # not a loss term


@pytest.mark.parametrize('term,value', [('loss_bbox', float('nan')),
                                        ('loss_rpn_cls', float('inf')),
                                        ('loss_cls', -float('inf'))])
def test_non_finite_term_is_named_with_iteration(term, value):
    terms = dict(loss_cls=1.0, loss_bbox=0.5, loss_rpn_cls=0.3)
    terms[term] = value
    terms['loss'] = sum(terms.values())
    with pytest.raises(InvalidLossError) as err:
        InvalidLossGuardHook().after_train_iter(
            fake_runner(7, '/w/iter_6.pth'), 6, None, outputs(**terms))
    msg = str(err.value)
    assert 'iteration 7/100' in msg
    assert f'{term}={value}' in msg
    assert 'last good checkpoint: /w/iter_6.pth' in msg
    healthy = [k for k in terms if k != term and k != 'loss']
    assert not any(f'{k}=' in msg for k in healthy)
    assert isinstance(err.value, FloatingPointError)


def test_runs_before_the_checkpoint_hook():
    from mmengine.hooks import CheckpointHook, LoggerHook, ParamSchedulerHook
    from mmengine.runner import get_priority as prio
    guard = prio(InvalidLossGuardHook.priority)
    assert guard < prio(CheckpointHook.priority)
    assert guard < prio(LoggerHook.priority)
    assert guard < prio(ParamSchedulerHook.priority)


@pytest.mark.slow
@COCO_MINI_SKIP
def test_nan_in_training_stops_and_keeps_last_good_checkpoint(tmp_path):
    """The box regressor is poisoned with NaN before iteration 5; the tiny
    config checkpoints every 2 iterations (8 in all)."""
    proc = run(train_cmd(NAN_AT_5, tmp_path))
    assert proc.returncode != 0, 'training went on with a NaN loss'
    err = proc.stderr
    assert 'InvalidLossError: Non-finite loss at iteration 5/8' in err, \
        tail(proc)
    assert 'loss_bbox=nan' in err
    assert 'loss_cls=' not in err.split('InvalidLossError')[-1]
    assert 'last good checkpoint: ' in err and 'iter_4.pth' in err
    assert (tmp_path / 'last_checkpoint').read_text().endswith('iter_4.pth')
    assert not list(tmp_path.glob('iter_[5-9].pth'))
    state = load_state(tmp_path / 'iter_4.pth')['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())
    fc_reg = state['roi_head.bbox_head.fc_reg.weight']
    assert math.isfinite(float(fc_reg.sum()))
