"""tools/benchmark.py and tools/table7.py: the runner, merging, rendering
(timing loops: test_measure.py; part timing: test_analysis_parts.py)."""
import json

import pytest
import torch

from shufflenet_det.benchmark.render import to_markdown
from shufflenet_det.benchmark.report import (merge, metrics_cells,
                                             write_report)

from shufflenet_det.table7 import MISSING

from .conftest import REPO

CPU = torch.device('cpu')


# --------------------------------------------------------------- configs
def test_resolve_configs(tmp_path):
    from shufflenet_det.cli import ToolInputError, resolve_configs
    (tmp_path / 'b.py').write_text('')
    (tmp_path / 'a.py').write_text('')
    found = resolve_configs([str(tmp_path / '*.py'), str(tmp_path / 'a.py')])
    assert [p.rsplit('/', 1)[-1] for p in found] == ['a.py', 'b.py']
    with pytest.raises(ToolInputError, match='nothing.py'):
        resolve_configs([str(tmp_path / 'nothing.py')])
    table7 = resolve_configs([], all_configs=True, root=str(REPO))
    assert len(table7) == 20 and all(
        p.endswith('.py') and 'light_head_rcnn' in p for p in table7)


def _tool(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        name.replace('.', '_'), REPO / 'tools' / name)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


@pytest.mark.parametrize('argv, message', [
    ([], 'name configs or pass --all'),
    (['--all', '--checkpoint', 'x.pth'], '--checkpoint needs exactly one'),
    (['a.py', '--deploy', 'fuse_conv_bn,warp'], "--deploy: unknown deploy "
     "step(s) ['warp']"),
    (['a.py', '--batch-size', '0'], '--batch-size must be >= 1'),
    (['a.py', '--also', 'fp8'], "argument --also: invalid choice: 'fp8'"),
])
def test_benchmark_cli_names_the_bad_argument(argv, message, capsys):
    tool = _tool('benchmark.py')
    with pytest.raises(SystemExit) as exit_:
        tool.parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f'error: {message}' in err, err


@pytest.mark.parametrize('argv, message', [
    (['a.py', '--deploy', 'default,fp16', '--device', 'cpu'],
     "'fp16' deploy step needs CUDA"),
    (['a.py', '--deploy', 'default,bf16', '--backend', 'onnxruntime'],
     'ONNX Runtime runs f32 only here'),
])
def test_benchmark_refuses_a_precision_the_target_lacks(argv, message):
    """Refused before anything is built, with the step and target named."""
    with pytest.raises(SystemExit) as exit_:
        _tool('benchmark.py').main(argv)
    assert message in str(exit_.value.code), exit_.value.code


def test_benchmark_cli_defaults():
    tool = _tool('benchmark.py')
    assert tool.parse_args(['a.py', '--deploy', 'none']).deploy == ()
    args = tool.parse_args(['a.py'])
    assert args.deploy == ('fuse_conv_bn', 'channels_last')
    assert args.also == []  # the other runs come with --all
    assert tool.parse_args(['--all']).also == ['bf16', 'plain']
    assert tool.parse_args(['--all', '--deploy', 'none']).also == []
    assert tool.parse_args(['--all', '--also']).also == []


def test_table7_cli_names_the_bad_argument(tmp_path, capsys):
    tool = _tool('table7.py')
    with pytest.raises(SystemExit) as exit_:
        tool.parse_args(['--out', str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert 'error: give --benchmark and/or --metrics' in err, err
    with pytest.raises(ValueError, match='cannot read .*nothing.json'):
        tool.main(['--benchmark', str(tmp_path / 'nothing.json')])


# ---------------------------------------------------------------- report
def _benchmark_json(images_per_s=2.5):
    result = dict(
        config='configs/light_head_rcnn/x.py', name='x',
        table7=dict(family='ShuffleNet v2', level='140M'),
        images_per_s=dict(median=images_per_s, min=2.0, max=3.0, iters=3),
        peer_ratio=5.0, macs_per_batch=int(30e9), gemm_fraction=0.4,
        equivalence_ok=True,
        breakdown=[dict(part='backbone', ms_per_batch=800.0, share=0.5,
                        macs_per_batch=int(9e9), macs_per_s=11e9,
                        gemm_fraction=0.3),
                   dict(part='other', ms_per_batch=800.0, share=0.5)])
    return dict(
        environment=dict(device='test CPU', torch_threads=2, date='today',
                         command='python tools/benchmark.py --all',
                         load_average=[0.1, 0.1, 0.1]),
        settings=dict(batch_size=4, img_size=[800, 1200], fp16=False,
                      deploy=['fuse_conv_bn']),
        gemm=dict(n=64, iters=3, macs_per_s_median=30e9,
                  macs_per_s_best=31e9),
        peer=dict(name='peer', images_per_s=dict(median=0.5, min=0.4,
                                                 max=0.6, iters=2),
                  macs_per_batch=int(80e9), gemm_fraction=0.2,
                  settings=dict(min_size=800, max_size=1200),
                  breakdown=[dict(part='all', ms_per_batch=8000.0,
                                  share=1.0)]),
        results=[result, dict(config='configs/light_head_rcnn/bad.py',
                              name='bad', error='KeyError: not registered')])


def test_merge_keeps_missing_missing():
    metrics = {('Xception', '40M'): dict(mmap=12.3, config='c.py')}
    merged = merge(_benchmark_json(), metrics, {})
    cell = merged['cells']['ShuffleNet v2']['140M']
    assert cell['ours']['images_per_s']['median'] == 2.5
    assert cell['ours']['mmap'] is None  # speed measured, mmAP not
    assert cell['paper'] == dict(mmap=29.0, gpu_images_per_s=146)
    other = merged['cells']['Xception']['40M']['ours']
    assert other['mmap'] == 12.3 and other['images_per_s'] is None
    for family, levels in merged['cells'].items():
        for level, c in levels.items():
            if (family, level) not in (('ShuffleNet v2', '140M'),
                                       ('Xception', '40M')):
                assert all(v is None for v in c['ours'].values()), (family,
                                                                     level)
    assert merged['unplaced'][0]['error'].startswith('KeyError')
    text = to_markdown(merged)
    assert '| ShuffleNet v2 | — (22.5) | — (29.0) |' in text
    assert '| Xception | 12.3 (21.9) |' in text
    assert f'| ShuffleNet v2 | {MISSING} (188) | 2.50 (146) |' in text
    assert '5.00x' in text and 'failed: KeyError' in text


def _run(deploy, images_per_s, peer_images_per_s, ratio, **settings):
    """A record of another run (plain, bf16, a runtime) for the report."""
    bench = _benchmark_json(images_per_s)
    bench['settings'].update(deploy=deploy, **settings)
    bench['peer']['images_per_s'] = dict(median=peer_images_per_s)
    bench['results'] = bench['results'][:1]
    bench['results'][0].update(peer_ratio=ratio,
                               interleaved=dict(ratio=dict(median=ratio)))
    return bench


def test_report_names_every_comparison():
    """The plain run (--deploy none) beside the main run: plain vs as
    shipped, deployed vs deployed, deployed vs as shipped, each named; the
    per-config table says whether parts and detections equal the plain
    model's."""
    bench = _benchmark_json()
    bench['results'][0]['detections'] = dict(equal=False)
    text = to_markdown(merge(bench, {}, {}, [_run([], 1.5, 0.8, 1.25)]))
    assert '### ShuffleNet v2 140M: every comparison' in text
    assert '| plain (as the config builds it) | as shipped | 1.50 | 0.80 | ' \
        '1.25x (interleaved: 1.25x) |' in text
    assert '| deployed | deployed alike | 2.50 | 0.50 | 5.00x |' in text
    assert '| deployed | as shipped | 2.50 | 0.80 | 3.12x |' in text
    assert '| 5.00 | yes / NO |' in text
    assert 'as shipped 0.800 images/s (plain run)' in text


def test_report_bf16_section_beside_fp32():
    run = _run(['fuse_conv_bn', 'channels_last', 'bf16'], 5.0, 1.0, 5.0)
    merged = merge(_benchmark_json(), {}, {}, [run])
    row = merged['bf16']['rows'][0]
    assert (row['main_ours'], row['ours']) == (2.5, 5.0)
    assert (row['main_peer'], row['peer']) == (0.5, 1.0)
    text = to_markdown(merged)
    assert '## bf16' in text
    assert '| ShuffleNet v2 140M | 2.50 | 5.00 | 2.00x | 0.500 | 1.000 | ' \
        '2.00x | 5.00x | 5.00x (interleaved: 5.00x) |' in text
    # A CPU without native bf16: the section says so.
    skipped = dict(run='bf16', skipped='CPU has no native bfloat16',
                   settings=dict(deploy=['bf16'], backend='torch'),
                   results=[])
    text = to_markdown(merge(_benchmark_json(), {}, {}, [skipped]))
    assert 'Not measured: CPU has no native bfloat16.' in text
    assert '## bf16' not in to_markdown(merge(_benchmark_json(), {}, {}))
    with pytest.raises(ValueError, match='neither plain'):
        merge(_benchmark_json(), {}, {}, [_run(['compile'], 1, 1, 1)])


def test_committed_results_still_render(tmp_path):
    """results/cpu/ (the main job's three records, plus the schema-2 runtime
    runs) renders as committed, byte for byte: plain comparison, bf16 and
    runtimes."""
    from shufflenet_det.benchmark.report import load_json
    cpu = REPO / 'results/cpu'
    paths = write_report(str(tmp_path), load_json(str(cpu / 'benchmark.json')),
                         {}, {}, [load_json(str(cpu / f'{b}/benchmark.json'))
                                  for b in ('plain', 'bf16', 'onnxruntime',
                                            'openvino')])
    text = open(paths['markdown']).read()
    # The committed report is exactly what the README's command renders,
    # but for the MFLOPs table (counted by tools/table7.py, not given here):
    # a change of the renderer shows here, and in results/cpu/ with it.
    def sections(markdown):
        return [s for s in markdown.split('\n## ')
                if not s.startswith('Complexity')]
    assert sections(text) == sections((cpu / 'table7.md').read_text())
    assert open(paths['breakdown']).read() == \
        (cpu / 'breakdown.md').read_text()
    assert '### ShuffleNet v2 140M: every comparison' in text
    assert '| onnxruntime | ShuffleNet v2 140M |' in text
    assert '| openvino | ShuffleNet v2 140M |' in text
    committed = (cpu / 'table7.md').read_text()
    # The two bf16 runs of the README's bf16 section, fp32 beside bf16.
    fp32, bf16 = (load_json(str(cpu / f'bf16-v2-1x/{p}/benchmark.json'))
                  for p in ('fp32', 'bf16'))
    paths = write_report(str(tmp_path / 'bf16'), fp32, {}, {}, [bf16])
    assert '| ShuffleNet v2 140M | 6.93 | 9.53 | 1.38x | 2.218 | 3.214 | ' \
        '1.45x | 3.13x (interleaved: 3.12x) | 2.97x (interleaved: 3.04x) |' \
        in open(paths['markdown']).read()
    assert '| ShuffleNet v2 140M | 6.92 | 10.02 | 1.45x |' in text
    rows = [line for line in text.splitlines()
            if line.startswith('| ShuffleNet v2 |') and '(' in line]
    assert len(rows) == 7  # mmAP, speed, ratio and four per-config rows
    for line in rows:
        assert line in committed, line


def test_report_shows_backend_runs_in_their_own_section():
    backend = _benchmark_json()
    backend['settings']['backend'] = 'onnxruntime'
    result = backend['results'][0]
    result.update(torch_deployed=dict(images_per_s=dict(median=2.0)),
                  interleaved=dict(ratio=dict(median=4.5)),
                  detections=dict(equal=True))
    backend['results'] = backend['results'][:1]
    merged = merge(_benchmark_json(), {}, {}, [backend])
    assert merged['backends'][0]['backend'] == 'onnxruntime'
    text = to_markdown(merged)
    assert '## Other runtimes' in text
    assert '| onnxruntime | ShuffleNet v2 140M | today, 0.1/— | 2.50 | ' \
        '2.00 | 0.500 | 5.00x | 4.50x | yes |' in text
    # Without backend runs, no such section.
    assert '## Other runtimes' not in to_markdown(merge(_benchmark_json(),
                                                        {}, {}))


def test_metrics_cells(tmp_path):
    def backbone_of(config):
        return dict(type='ShuffleNetV2', arch=config.split('_')[-1][:-3])

    good = tmp_path / 'm1.json'
    good.write_text(json.dumps(dict(config='c_1.0x.py', metrics={
        'coco/bbox_mAP': 0.291, 'coco/bbox_mAP_50': 0.5})))
    cells = metrics_cells([str(good)], backbone_of)
    assert cells[('ShuffleNet v2', '140M')]['mmap'] == pytest.approx(29.1)
    bad = tmp_path / 'm2.json'
    bad.write_text(json.dumps(dict(config='c_1.0x.py', metrics={})))
    with pytest.raises(ValueError, match='m2.json'):
        metrics_cells([str(bad)], backbone_of)
    with pytest.raises(ValueError, match='both'):
        metrics_cells([str(good), str(good)], backbone_of)
    broken = tmp_path / 'm3.json'
    broken.write_text('{')
    with pytest.raises(ValueError, match='m3.json'):
        metrics_cells([str(broken)], backbone_of)


def test_write_report_and_table7_tool(tmp_path):
    paths = write_report(str(tmp_path / 'a'), _benchmark_json(), {}, {})
    assert set(paths) == {'json', 'markdown', 'plot', 'breakdown'}
    assert (tmp_path / 'a/table7.png').stat().st_size > 1000
    stored = json.loads((tmp_path / 'a/table7.json').read_text())
    assert stored['cells']['MobileNet v2']['300M']['ours']['images_per_s'] \
        is None
    # No speed at all: no plot, every speed missing.
    paths = write_report(str(tmp_path / 'b'), None, {}, {})
    assert 'plot' not in paths

    import importlib.util
    spec = importlib.util.spec_from_file_location('table7_tool',
                                                  REPO / 'tools/table7.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    bench = tmp_path / 'bench.json'
    bench.write_text(json.dumps(_benchmark_json()))
    tool.main(['--benchmark', str(bench), '--no-complexity', '--out',
               str(tmp_path / 'c')])
    text = (tmp_path / 'c/table7.md').read_text()
    assert '2.50 (146)' in text
    breakdown_text = (tmp_path / 'c/breakdown.md').read_text()
    assert '## ShuffleNet v2 140M' in breakdown_text
    assert '| backbone | 800.0 | 50.0% | 9.00 | 11.0 | 30% |' in \
        breakdown_text


# ------------------------------------------------- one real measurement
@pytest.mark.slow
def test_one_run_treats_ours_and_the_peer_alike(tmp_path):
    """One small run through run_benchmark: ours and the peer go through the
    same steps, and the record shows that the peer got the same batch, image
    size and deploy steps as ours."""
    from shufflenet_det.benchmark.runner import (BenchmarkSettings,
                                                 run_benchmark)
    config = tmp_path / 'tiny.py'
    config.write_text(
        f"_base_ = ['{REPO}/configs/_base_/models/"
        "light-head-rcnn_shufflenetv2.py']\n"
        "model = dict(backbone=dict(arch='0.5x'))\n")
    settings = BenchmarkSettings(batch_size=2, img_size=(128, 160),
                                 warmup=0, iters=2, max_seconds=None,
                                 min_iters=1, interleave=1)
    record = run_benchmark([str(config)], settings, CPU,
                           str(tmp_path / 'benchmark.json'), progress=False,
                           log=lambda *_: None)
    assert json.loads((tmp_path / 'benchmark.json').read_text()) == \
        json.loads(json.dumps(record))
    result, peer = record['results'][0], record['peer']
    # Equal treatment, read from the record.
    assert result['input'] == peer['input'] == dict(
        batch_size=2, img_size=[128, 160], start='host uint8')
    assert record['settings']['inputs'] == 'host'
    assert result['deploy']['steps'] == peer['deploy']['steps'] == \
        record['settings']['deploy'] == ['fuse_conv_bn', 'channels_last']
    for item in (result, peer):
        assert len(item['times_s']) == 2 and item['macs_per_batch'] > 0
        assert item['gemm_fraction'] > 0 and item['breakdown']
        assert item['detections']['images'] == 2  # deployed vs plain
    assert result['table7'] == dict(family='ShuffleNet v2', level='40M')
    assert result['peer_ratio'] == pytest.approx(
        result['images_per_s']['median'] / peer['images_per_s']['median'])
    assert result['interleaved']['rounds'] == 1
    assert result['equivalence_ok'] is True
    assert result['deploy']['fused_bn'] > 0
    assert result['deploy']['unfused_bn'] == 0
    assert set(result['macs_by_part']) >= {'backbone', 'rpn_head',
                                           'roi_head.lsc',
                                           'roi_head.bbox_head'}
    assert result['top_ops'][0]['self_ms'] >= result['top_ops'][-1]['self_ms']
    parts = [row['part'] for row in result['breakdown']]
    assert parts[:2] == ['pre-processing', 'backbone']
    assert 'PSRoI pooling' in parts
    assert 'post-processing (rescale) and glue' in [
        row['part'] for row in peer['breakdown']]


@pytest.mark.slow
def test_main_job_bf16_run_treats_both_alike(tmp_path):
    """The main job's bf16 run: its 140M config and the peer both get the
    bf16 step (or both skip it, on a CPU without native bf16), at the same
    batch and size, and the report puts bf16 beside fp32."""
    from shufflenet_det.benchmark.runner import (BenchmarkSettings,
                                                 run_main_job)
    config = tmp_path / 'tiny.py'
    config.write_text(
        f"_base_ = ['{REPO}/configs/_base_/models/"
        "light-head-rcnn_shufflenetv2.py']\n"
        "model = dict(backbone=dict(arch='1.0x'))\n")
    settings = BenchmarkSettings(batch_size=1, img_size=(64, 96), warmup=0,
                                 iters=1, min_iters=1, max_seconds=None,
                                 verify=False, breakdown=False, interleave=1)
    main, bf16 = run_main_job([str(config)], settings, CPU, str(tmp_path),
                              ['bf16'], gemm=False, progress=False,
                              log=lambda *_: None)
    if bf16.get('skipped'):
        pytest.skip(f"no native bf16 here: {bf16['skipped']}")
    ours, peer = bf16['results'][0], bf16['peer']
    assert ours['table7'] == dict(family='ShuffleNet v2', level='140M')
    assert ours['input'] == peer['input'] == main['peer']['input']
    assert ours['deploy']['steps'] == peer['deploy']['steps'] == [
        'fuse_conv_bn', 'channels_last', 'bf16']
    assert ours['deploy']['bf16']['parts'] and peer['deploy']['bf16']['parts']
    text = to_markdown(merge(main, {}, {}, [bf16]))
    assert '## bf16' in text and '| ShuffleNet v2 140M |' in text


def test_main_job_skips_bf16_without_native_bf16(tmp_path, monkeypatch):
    """On a CPU without native bf16 the bf16 run is not run, its record says
    why, and the report's bf16 section says so."""
    from shufflenet_det.benchmark.runner import (BenchmarkSettings,
                                                 run_main_job)
    from shufflenet_det.deploy import precision
    monkeypatch.setattr(precision, 'native_low_precision',
                        lambda dtype, device: (False, 'no bf16 here'))
    records = run_main_job([], BenchmarkSettings(), CPU, str(tmp_path),
                           ['plain', 'bf16'], peer=False, gemm=False,
                           log=lambda *_: None)
    assert [r['run'] for r in records] == ['main', 'plain', 'bf16']
    assert records[1]['settings']['deploy'] == []  # --deploy none
    assert records[2]['skipped'] == 'no bf16 here'
    assert json.loads((tmp_path / 'bf16/benchmark.json').read_text())[
        'skipped'] == 'no bf16 here'
    text = to_markdown(merge(records[0], {}, {}, records[1:]))
    assert 'Not measured: no bf16 here.' in text


def test_interleave_alternates_peer_and_ours():
    from shufflenet_det.benchmark.runner import interleaved_ratio
    order = []
    result = interleaved_ratio(lambda: order.append('ours'),
                               lambda: order.append('peer'), CPU, rounds=3)
    assert order == ['peer', 'ours'] * 3
    assert len(result['times_s']) == len(result['peer_times_s']) == 3
    ratio = result['ratio']
    assert ratio['min'] <= ratio['median'] <= ratio['max']
