"""shufflenet_det.measure: the timing loops and machine facts shared by the
benchmark and the guideline tables."""
import time

import pytest
import torch

from shufflenet_det import measure as M
from tests.conftest import REPO

CPU = torch.device('cpu')


def test_time_iterations_counts_and_budget():
    calls = []
    result = M.time_iterations(lambda: calls.append(1), CPU, warmup=2, iters=3,
                             progress=False)
    assert len(calls) == 5
    assert len(result['warmup_s']) == 2 and len(result['times_s']) == 3

    def slow():
        time.sleep(0.02)

    result = M.time_iterations(slow, CPU, warmup=0, iters=50, max_seconds=0.03,
                             min_iters=2, progress=False)
    assert len(result['times_s']) == 2  # budget spent after 2 x 20 ms
    with pytest.raises(ValueError, match='iters'):
        M.time_iterations(slow, CPU, iters=0)


def test_throughput_median_min_max():
    stats = M.throughput([1.0, 2.0, 4.0], batch_size=4)
    assert stats == dict(median=2.0, min=1.0, max=4.0, iters=3)
    with pytest.raises(ValueError):
        M.throughput([], 4)


def test_synchronize_calls_cuda_synchronize_only_for_cuda(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, 'synchronize', calls.append)
    M.synchronize(torch.device('cpu'))
    assert calls == []
    M.synchronize('cuda:1')
    M.synchronize(torch.device('cuda:1'))
    assert calls == ['cuda:1', torch.device('cuda:1')]


def test_time_interleaved_rounds_and_syncs():
    order, syncs = [], []
    fns = [lambda i=i: order.append(i) for i in range(3)]
    out = M.time_interleaved(fns, lambda: syncs.append(1), rounds=4,
                             warmup=2, min_sample_s=0.0)
    assert [len(t['samples_s']) for t in out] == [4, 4, 4]
    assert all(t['inner'] == 1 and t['median_s'] >= 0 for t in out)
    # 2 warm-up calls each, then round-robin: 0 1 2 0 1 2 ...
    assert order == [0, 0, 1, 1, 2, 2] + [0, 1, 2] * 4
    assert len(syncs) == 2 * (3 * 2 + 3 * 4)  # around every call / sample
    with pytest.raises(ValueError, match='rounds'):
        M.time_interleaved(fns, lambda: None, rounds=0)


def test_time_interleaved_batches_short_calls(monkeypatch):
    """``inner`` = ceil(min_sample_s / fastest warm-up call), checked on a
    fake clock (each call advances it by a set time): exact, whatever the
    machine's load."""
    import types
    now = [0.0]
    monkeypatch.setattr(M, 'time', types.SimpleNamespace(
        perf_counter=lambda: now[0]))
    durations = iter([0.005, 0.003, 0.004] + [0.003] * 100)

    def call():
        now[0] += next(durations)

    out = M.time_interleaved([call], lambda: None, rounds=2, warmup=3,
                             min_sample_s=0.02)
    # Fastest of the 3 warm-up calls: 3 ms, so ceil(20 / 3) = 7 calls.
    assert out[0]['inner'] == 7
    assert out[0]['samples_s'] == pytest.approx([0.003, 0.003])


def test_time_interleaved_real_clock_bounds():
    """On the real clock only what ``sleep`` guarantees is asserted: a call
    lasts >= 2 ms, so at most ceil(20 / 2) = 10 calls make a sample and
    the median is >= 2 ms; a slow (loaded) warm-up may give 1 call."""
    import time
    out = M.time_interleaved([lambda: time.sleep(0.002)], lambda: None,
                             rounds=2, warmup=1, min_sample_s=0.02)
    assert 1 <= out[0]['inner'] <= 10
    assert out[0]['median_s'] >= 0.002


def test_time_interleaved_without_warmup_calls_nothing_extra():
    """The benchmark's peer/ours interleave: no warm-up, no calibration,
    exactly one call per sample."""
    order = []
    out = M.time_interleaved([lambda: order.append('a'),
                              lambda: order.append('b')], lambda: None,
                             rounds=3, warmup=0, min_sample_s=0)
    assert order == ['a', 'b'] * 3
    assert [t['inner'] for t in out] == [1, 1]


def test_environment_names_machine_and_command():
    env = M.environment(CPU)
    assert env['device_type'] == 'cpu' and env['cuda'] is None
    assert env['torch_threads'] == torch.get_num_threads()
    assert env['versions']['torch'] == torch.__version__
    assert env['command'].startswith('python ')
    assert M.cuda_fp32(CPU) == {}


def test_gemm_rate_reports_rates():
    rate = M.gemm_rate(CPU, n=64, warmup=1, iters=3)
    assert rate['n'] == 64 and rate['dtype'] == 'float32'
    assert rate['macs_per_s_best'] >= rate['macs_per_s_median'] > 0
    # The reference is the faster of BLAS and oneDNN.
    assert rate['macs_per_s_best'] == max(rate['mm']['macs_per_s_best'],
                                          rate['conv1x1']['macs_per_s_best'])


def test_isa_caps_lowest_first_and_supported_here():
    from shufflenet_det.measure import ISA_CAPS, supported_isa_caps
    assert list(ISA_CAPS) == ['default', 'avx2', 'avx512']
    supported = supported_isa_caps()
    # Every x86-64 machine this project has seen has SSE4.1; a supported
    # cap implies the ones below it.
    assert supported == list(ISA_CAPS)[:len(supported)] and supported
    for env, _ in ISA_CAPS.values():
        assert set(env) == {'ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA',
                            'MKL_ENABLE_INSTRUCTIONS'}


@pytest.mark.slow
def test_kernel_fingerprints_follow_the_aten_cap():
    from shufflenet_det.measure import (kernel_fingerprints,
                                        kernel_fingerprints_under)
    native = kernel_fingerprints()
    assert native == kernel_fingerprints()  # deterministic
    capped = kernel_fingerprints_under({'ATEN_CPU_CAPABILITY': 'default'})
    assert capped['aten'] == 'DEFAULT' and set(capped) == set(native)


def test_isa_caps_tool_refuses_an_unknown_cap(capsys):
    import runpy
    tool = runpy.run_path(str(REPO / 'tools/isa_caps.py'))
    with pytest.raises(SystemExit, match="not supported by this CPU"):
        tool['main'](['--caps', 'avx1024', '--probe-only'])
