"""Run the equivalence tests under every instruction-set cap this CPU
supports, as if on a lesser x86 machine.

For each cap of ``shufflenet_det.measure.ISA_CAPS`` (lowest first, plus
``native``), first which kernel libraries the cap changes here (a hash of
one kernel of each: ``kernel_fingerprints``, each knob alone and all
together), then the slow equivalence tests in a pytest of their own under
the whole cap, but for OpenVINO's (:data:`UNDER_A_CAP`: it does not run
under a oneDNN cap). Their weights are the same under every cap (the fixture
trains under the lowest cap, see ``tests/conftest.py``); inference, the
part compared, runs under the cap, as on a lesser CPU.

    python tools/isa_caps.py                 # every supported cap + native
    python tools/isa_caps.py --caps default  # one cap (CI's lower-cap lane)
    python tools/isa_caps.py --probe-only    # which knobs change kernels

The summary (cap, knobs, result, minutes) is printed and written to
``--out`` as JSON.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

from shufflenet_det.measure import (ISA_CAPS, cpu_name, kernel_fingerprints,
                                    kernel_fingerprints_under,
                                    supported_isa_caps)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: The tests that compare two inference paths.
TESTS = ['tests/test_e2e_deploy.py', 'tests/test_deploy_onnx.py']
#: Left out under a cap (they run natively, in the README's test command):
#: OpenVINO's CPU plugin reads the CPU's features from CPUID but compiles
#: with the capped oneDNN, and does not run. Seen 2026-12-08 on an AMD EPYC
#: with AVX-512 BF16: ONEDNN_MAX_CPU_ISA=SSE41 fails to compile any model
#: ("bad combination"), AVX2 the bf16 one ("Supported primitive descriptors
#: list is empty" for a MaxPool).
UNDER_A_CAP = ['-k', 'not openvino']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--caps', nargs='*',
                        help='caps to run (default: every supported one and '
                        'native); one of ' + ', '.join([*ISA_CAPS, 'native']))
    parser.add_argument('--probe-only', action='store_true',
                        help='only show which knobs change the kernels')
    parser.add_argument('--out', default='work_dirs/isa_caps.json',
                        help='summary JSON (default: %(default)s)')
    parser.add_argument('pytest_args', nargs='*',
                        help=f'tests and pytest options (default: {TESTS})')
    return parser.parse_args(argv)


def probe(caps) -> dict:
    """Per cap and per knob alone: the kernels whose output changed."""
    native = kernel_fingerprints()
    changed = {}
    for cap in caps:
        env = ISA_CAPS[cap][0]
        for name, sub in [(k, {k: v}) for k, v in env.items()] + \
                [('all', env)]:
            got = kernel_fingerprints_under(sub)
            changed[f'{cap}:{name}'] = sorted(
                k for k in native if k != 'aten' and got[k] != native[k])
            print(f'[isa_caps] {cap:8s} {name:24s} aten={got["aten"]:8s} '
                  f'changes: {", ".join(changed[f"{cap}:{name}"]) or "-"}',
                  flush=True)
    return changed


def run_tests(cap: str, tests) -> dict:
    env = {} if cap == 'native' else ISA_CAPS[cap][0]
    left_out = [] if cap == 'native' else UNDER_A_CAP
    start = time.time()
    out = subprocess.run([sys.executable, '-m', 'pytest', '-q',
                          '-p', 'no:cacheprovider', *left_out, *tests],
                         env={**os.environ, **env}, cwd=REPO,
                         capture_output=True, text=True)
    minutes = (time.time() - start) / 60
    tail = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ''
    print(f'[isa_caps] {cap}: {tail} ({minutes:.1f} min)', flush=True)
    if out.returncode:
        print(out.stdout[-4000:] + out.stderr[-2000:], flush=True)
    return dict(cap=cap, env=env, left_out=' '.join(left_out),
                returncode=out.returncode, summary=tail,
                minutes=round(minutes, 1))


def main(argv=None) -> int:
    args = parse_args(argv)
    supported = supported_isa_caps()
    caps = args.caps or [*supported, 'native']
    unknown = [c for c in caps if c != 'native' and c not in supported]
    if unknown:
        sys.exit(f'isa_caps: error: {unknown} not supported by this CPU '
                 f'(supported: {supported} and native)')
    report = dict(cpu=cpu_name(), date=time.strftime('%Y-%m-%d %H:%M UTC',
                                                     time.gmtime()),
                  native=kernel_fingerprints())
    print(f'[isa_caps] {report["cpu"]}, native ATen {report["native"]["aten"]}'
          f', caps supported: {", ".join(supported)}', flush=True)
    report['changes'] = probe([c for c in caps if c != 'native'])
    if not args.probe_only:
        report['runs'] = [run_tests(cap, args.pytest_args or TESTS)
                          for cap in caps]
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=1)
    return int(any(r['returncode'] for r in report.get('runs', [])))


if __name__ == '__main__':
    sys.exit(main())
