"""shufflenet_det.compat: mmengine training checkpoints under torch>=2.6."""
import collections
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

import shufflenet_det  # noqa: F401  (registers the safe globals)
from shufflenet_det.compat import (checkpoint_safe_globals,
                                   history_buffer_getattr,
                                   register_checkpoint_safe_globals)


def _mmengine_like_checkpoint():
    hub = MessageHub.get_instance('test_compat_hub')
    for i in range(3):
        hub.update_scalar('train/loss', float(i) + 0.5)
    hub.update_info('iter', np.int64(7))
    return dict(
        meta=dict(iter=7, seed=np.int64(42), lr=np.float32(0.01),
                  dataset_meta=dict(classes=('a', 'b'))),
        state_dict=collections.OrderedDict(w=torch.ones(2)),
        message_hub=hub.state_dict(),
        array=np.arange(3, dtype=np.float64))


def test_default_torch_load_reads_mmengine_checkpoint(tmp_path):
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    ckpt = torch.load(path)  # weights_only=True is torch's default
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.data[0].tolist() == [0.5, 1.5, 2.5]
    assert ckpt['meta']['seed'] == 42
    np.testing.assert_array_equal(ckpt['array'], [0., 1., 2.])


@pytest.mark.skipif(not hasattr(torch.serialization, 'clear_safe_globals'),
                    reason='torch without a safe-globals allow-list')
def test_without_the_allow_list_it_fails(tmp_path):
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)
    finally:
        torch.serialization.add_safe_globals(saved)
        register_checkpoint_safe_globals()
    torch.load(path)


def test_allow_list_does_not_include_builtin_getattr():
    entries = checkpoint_safe_globals()
    objs = [e[0] if isinstance(e, tuple) else e for e in entries]
    assert HistoryBuffer in objs
    assert getattr not in objs and eval not in objs and exec not in objs


def test_getattr_stand_in_resolves_only_history_buffer_methods():
    assert history_buffer_getattr(HistoryBuffer, 'mean') is \
        HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError, match='refusing'):
        history_buffer_getattr(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError, match='refusing'):
        history_buffer_getattr(np, 'load')


def test_malicious_getattr_payload_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return getattr, (np.ndarray, 'tofile')

    path = tmp_path / 'evil.pth'
    torch.save({'x': Evil()}, path)
    with pytest.raises(pickle.UnpicklingError, match='refusing'):
        torch.load(path)
