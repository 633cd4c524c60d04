"""The guideline micro-benchmarks (paper Tables 1-4) and their report."""
import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

from shufflenet_det import paper
from shufflenet_det.analysis import guidelines as G
from shufflenet_det.analysis import guidelines_bench as B
from shufflenet_det.analysis.guidelines_report import (report_markdown,
                                                       table_markdown,
                                                       write_report)

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO.parent / 'shared/paper/shufflenet-v2.txt'


def _paper_table_lines(text, number):
    """The data lines printed just above the caption 'Table <number>:'."""
    lines = text.splitlines()
    caption = next(i for i, line in enumerate(lines)
                   if line.startswith(f'Table {number}:'))
    return [line for line in lines[max(0, caption - 10):caption]
            if line.strip()]


def _numbers(line):
    return [float(x) for x in re.findall(r'(?<![\w.])\d+(?:\.\d+)?', line)]


@pytest.mark.skipif(not PAPER.is_file(), reason=f'paper text not at {PAPER}')
@pytest.mark.parametrize('number', [1, 2, 3, 4])
def test_paper_numbers_are_the_papers(number):
    """Every width and speed of PAPER_TABLES, as printed in the paper."""
    spec = paper.PAPER_TABLES[number]
    lines = _paper_table_lines(PAPER.read_text(), number)
    for r, label in enumerate(spec.rows):
        start = label.replace(', ', '\t') + '\t'
        line = next(ln for ln in lines if ln.startswith(start))
        printed = _numbers(line[len(start):])
        if number == 1:
            expected = [*spec.widths['gpu'][r], *spec.speed['gpu'][r],
                        *spec.widths['arm'][r], *spec.speed['arm'][r]]
        elif number == 2:
            expected = ([spec.widths['gpu'][r], *spec.speed['gpu'][r],
                         spec.widths['arm'][r], *spec.speed['arm'][r]])
        else:
            expected = list(spec.speed['gpu'][r]) + list(spec.speed['arm'][r])
        assert printed == expected, (number, label, line)
    if number in (3, 4):
        header = next(ln for ln in lines if 'c = ' in ln or 'c=' in ln)
        widths = [int(x) for x in re.findall(r'c\s*=\s*(\d+)', header)]
        assert widths == list(spec.widths['gpu']) + list(spec.widths['arm'])


@pytest.mark.parametrize('number', [1, 2, 3, 4])
@pytest.mark.parametrize('platform', ['gpu', 'arm'])
def test_rows_of_a_column_have_the_same_flops(number, platform):
    """Fixed FLOPs across a column, within the rounding of channel counts."""
    spec = paper.PAPER_TABLES[number]
    for col in range(len(spec.column_labels(platform))):
        macs = []
        for row in range(len(spec.rows)):
            model, in_ch, _ = G.build_variant(number, row, col, platform)
            macs.append(G.count_macs(model, torch.zeros(1, in_ch, 4, 4)))
        # Table 1's 1:12 ARM row is the paper's own 5% off (972 vs 1024).
        tolerance = 0.0 if number == 4 else 0.06
        for m in macs:
            assert abs(m / macs[0] - 1) <= tolerance, (number, platform, col,
                                                       macs)


def test_widths_follow_the_paper():
    _, c1, w = G.build_variant(1, 3, 2, 'gpu')
    assert (c1, w['c1'], w['c2']) == (144, 144, 1728)  # (36, 432) x 4
    _, c, w = G.build_variant(2, 3, 0, 'arm')
    assert (c, w['paper_c'], w['g']) == (184, 180, 8)  # 180 % 8 != 0
    _, c, w = G.build_variant(2, 2, 1, 'gpu')
    assert (c, w['paper_c']) == (512, 512)
    assert G.g2_width(180, 8, 64) == 184 and G.g2_width(360, 8, 128) == 360
    _, c, w = G.build_variant(3, 4, 0, 'arm')
    assert (c, w['fragments'], w['parallel']) == (32, 4, True)
    assert G.fragment_width(128, 2) == 91
    model, c, w = G.build_variant(4, 0, 2, 'gpu')
    assert (c, w['mid']) == (128, 32) and len(model) == paper.NUM_BLOCKS
    with pytest.raises(ValueError, match='platform'):
        G.build_variant(1, 0, 0, 'tpu')
    with pytest.raises(ValueError, match='table'):
        G.build_variant(5, 0, 0, 'gpu')


def test_fragment_block_series_and_parallel():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 5, 5)
    series, parallel = G.FragmentBlock(6, 2), G.FragmentBlock(6, 2, True)
    parallel.load_state_dict(series.state_dict())
    a, b = series.convs
    assert torch.allclose(series(x), b(a(x)), atol=1e-6)
    assert torch.allclose(parallel(x), a(x) + b(x), atol=1e-6)


@pytest.mark.parametrize('relu', [True, False])
@pytest.mark.parametrize('shortcut', [True, False])
def test_bottleneck_drops_relu_and_shortcut(relu, shortcut):
    torch.manual_seed(0)
    unit = G.Bottleneck(8, relu, shortcut)
    x = torch.randn(2, 8, 5, 5)
    plain = unit.conv3(unit.conv2(unit.conv1(x)))
    if relu:
        out = unit.conv3(unit.act(unit.conv2(unit.act(unit.conv1(x)))))
        expected = torch.relu(out + x if shortcut else out)
    else:
        expected = plain + x if shortcut else plain
    assert torch.allclose(unit(x), expected, atol=1e-6)
    if relu:
        assert unit(x).min() >= 0


def test_ranking_agreement():
    printed = [10.0, 8.0, 8.0, 5.0]
    ok = B.ranking_agreement([9.0, 7.5, 7.9, 1.0], printed)
    # (1, 2) is a tie in the printed speeds: not compared.
    assert ok['agrees'] and (ok['concordant'], ok['pairs']) == (5, 5)
    bad = B.ranking_agreement([7.0, 9.0, 6.0, 1.0], printed)
    assert not bad['agrees'] and bad['reversed'] == [(0, 1)]
    assert (bad['fastest_ours'], bad['fastest_paper']) == (1, 0)
    with pytest.raises(ValueError, match='3 measured vs 4'):
        B.ranking_agreement([1, 2, 3], printed)


def test_cuda_settings_and_backend_reachable_on_cpu():
    assert B.RunSettings(device='cuda:0').platform == 'gpu'
    assert B.RunSettings(device='cpu').platform == 'arm'
    old = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
           torch.backends.cuda.matmul.allow_tf32)
    try:
        state = B.configure_backend(torch.device('cuda'))
        assert state['cudnn_benchmark'] and torch.backends.cudnn.benchmark
        assert not torch.backends.cudnn.allow_tf32
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = old


@pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU is present')
def test_cuda_without_gpu_is_refused():
    with pytest.raises(RuntimeError, match='torch.cuda.is_available'):
        B.run_guidelines([1], B.RunSettings(device='cuda'))
    with pytest.raises(ValueError, match=r'\[7\]'):
        B.run_guidelines([7], B.RunSettings())


QUICK = dict(input_size=6, rounds=2, warmup=1, min_sample_s=0.0,
             columns=(0,))


def test_measure_table_uses_the_given_sync_and_paper_column():
    syncs = []
    result = B.measure_table(2, B.RunSettings(**QUICK),
                             sync=lambda: syncs.append(1))
    assert syncs and result['platform'] == 'arm'
    assert result['unit'] == 'images/s' and result['columns'] == ['x1']
    assert [r['paper']['x1'] for r in result['rows']] == [40.0, 35.0, 32.9,
                                                          27.8]
    assert all(r['ours']['x1'] > 0 for r in result['rows'])
    assert result['rows'][3]['widths']['x1']['c'] == 184
    assert set(result['ranking']) == {'x1'}
    with pytest.raises(ValueError, match='out of range'):
        B.measure_table(1, B.RunSettings(**dict(QUICK, columns=(3,))))


def _fake_result(ours, best=None):
    """A Table 1 result with chosen speeds, for the report's logic."""
    spec = paper.PAPER_TABLES[1]
    printed = [row[0] for row in spec.speed['arm']]
    best = best or ours
    rows = [dict(label=label, widths={'x1': dict(c1=1, c2=1)},
                 macs={'x1': 1000}, ours={'x1': v},
                 paper={'x1': spec.speed['arm'][r][0]})
            for r, (label, v) in enumerate(zip(spec.rows, ours))]
    return dict(table=1, guideline='G1', title=spec.title, claim=spec.claim,
                row_header=spec.row_header, fastest=spec.fastest,
                platform='arm', unit='images/s', columns=['x1'], rows=rows,
                ranking={'x1': dict(
                    B.ranking_agreement(ours, printed),
                    by_fastest_sample=B.ranking_agreement(best, printed))},
                load_avg=dict(before=[1.0, 1.0, 1.0], after=None))


def test_markdown_says_whether_the_ranking_matches():
    good = table_markdown(_fake_result([40.0, 30.0, 20.0, 10.0]))
    assert '| 1:1 | (1,1) | 40.0 / 76.2 (1.00 / 1.00) |' in good
    assert '| 1:12 | (1,1) | 10.0 / 57.6 (0.25 / 0.76) |' in good
    assert '| x1 | 1:1 | 1:1 | yes | yes (6/6 pairs) |' in good
    assert "the ranking matches the paper's in 1 of 1 columns" in good
    bad = table_markdown(_fake_result([30.0, 40.0, 20.0, 10.0],
                                      best=[50.0, 40.0, 20.0, 10.0]))
    assert '| x1 | 1:2 | 1:1 | no | no, 5/6 pairs (ours: 1:2 > 1:1) |' in bad
    assert "the ranking matches the paper's in 1 of 1 columns" in bad
    worse = table_markdown(_fake_result([30.0, 40.0, 20.0, 10.0]))
    assert "the ranking matches the paper's in 0 of 1 columns" in worse
    g4 = _fake_result([1.0, 2.0, 3.0, 4.0])
    for r, label in enumerate(paper.PAPER_TABLES[4].rows):
        g4['rows'][r]['label'] = label
    g4['ranking']['x1']['reversed'] = [(3, 0)]
    assert '(ours: "yes, yes" > "no, no")' in table_markdown(g4)


def test_write_report(tmp_path):
    report = dict(meta=dict(date='d', command='c', device='cpu',
                            load_avg_start=[0.5, 0.5, 0.5],
                            load_avg_end=[0.6, 0.6, 0.6]),
                  tables=[_fake_result([40.0, 30.0, 20.0, 10.0])])
    paths = write_report(str(tmp_path), report)
    assert set(paths) == {'json', 'markdown', 'table1'}
    assert Path(paths['table1']).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    saved = json.loads(Path(paths['json']).read_text())
    assert saved['assumptions'] == list(G.ASSUMPTIONS)
    text = Path(paths['markdown']).read_text()
    assert text == report_markdown(saved)
    assert 'Batch size 1 on both platforms' in text


def _tool():
    spec = importlib.util.spec_from_file_location(
        'guidelines_tool', REPO / 'tools/guidelines.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_quick_run(tmp_path, capsys):
    _tool().main(['--quick', '--device', 'cpu', '--tables', '1', '4',
                  '--out', str(tmp_path)])
    report = json.loads((tmp_path / 'guidelines.json').read_text())
    assert [t['table'] for t in report['tables']] == [1, 4]
    meta = report['meta']
    assert meta['command'].startswith('python tools/guidelines.py --quick')
    assert meta['device'] == 'cpu' and meta['input_size'] == '8x8'
    assert len(meta['load_avg_start']) == 3 and meta['threads'] == 1
    assert (tmp_path / 'table1.png').is_file()
    assert (tmp_path / 'table4.png').is_file()
    text = (tmp_path / 'guidelines.md').read_text()
    assert '76.2' in text and '56.7' in text  # the paper's ARM x1 column
    assert "ranking matches the paper's" in text
    assert 'Table 1 x1:' in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU is present')
def test_tool_refuses_cuda_without_gpu(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _tool().main(['--device', 'cuda', '--out', str(tmp_path)])
    assert exc.value.code == 2
    assert 'torch.cuda.is_available() is False' in capsys.readouterr().err


@pytest.mark.parametrize('argv, message', [
    (['--device', 'mps'], "--device must be cpu or cuda[:N], got 'mps'"),
    (['--device', 'gpu0'], "--device 'gpu0': "),
    # got: batch size, input size (default INPUT_SIZE = 56), rounds
    (['--rounds', '0'], '--batch-size, --input-size and --rounds must be '
     '>= 1, got 1, 56, 0'),
    (['--batch-size', '-2'], 'must be >= 1, got -2, 56, 11'),
    (['--input-size', '0'], 'must be >= 1, got 1, 0, 11'),
    (['--tables', '5'], "argument --tables: invalid choice: 5"),
])
def test_tool_bad_arguments_name_the_culprit(argv, message, tmp_path,
                                             capsys):
    """Each bad argument stops the tool with argparse's exit status 2 and
    a message naming the argument and the value given."""
    with pytest.raises(SystemExit) as exc:
        _tool().main(argv + ['--out', str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not any(tmp_path.iterdir())  # nothing measured or written
