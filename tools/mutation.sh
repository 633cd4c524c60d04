#!/usr/bin/env bash
# Mutation testing of the critical modules with mutmut 3.x (docs/mutation.md).
# Slow (tens of minutes to hours on 2 cores): not part of CI nor of
# `python -m pytest tests`.
#
#   pip install 'mutmut>=3,<4'
#   bash tools/mutation.sh                   every area below
#   bash tools/mutation.sh nms psroi         some areas, in this order
#   bash tools/mutation.sh --retest          rerun the survivors (new tests)
#   bash tools/mutation.sh --summary         kill rate per module of the last runs
#
# Areas: nms (topk_nms, onnx_nms), psroi (ps_roi_align, ps_roi_extractor),
# shuffle (channel_shuffle), units (shufflenet_v1, shufflenet_v2), heads
# (light_head_rpn_head, light_head_bbox_head), ohem (light_head_roi_head),
# preprocessor (one_pass_det_data_preprocessor), deploy (deploy/__init__,
# deploy/precision).
#
# Configuration: [mutmut] in setup.cfg (files mutated, the fast-tier test
# files, pytest flags). mutmut copies the package and tests/ into mutants/
# (git-ignored) and runs each mutant against only those selected tests that
# called the mutated function during its first, unmutated run. Results are
# cached in mutants/: after adding tests, `--retest` reruns the mutants that
# survived (`mutmut run NAME` one of them); `mutmut show NAME` prints its
# diff, `mutmut results` every mutant that was not killed.
#
# Environment:
#   MUTMUT_CHILDREN   parallel mutant runs (default 1; the default machine
#                     has 2 shared cores)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# Only mutants/ may provide shufflenet_det: a PYTHONPATH pointing at a clone
# would let the tests import the unmutated package and every mutant survive.
unset PYTHONPATH
# One intra-op thread: parallelism comes from MUTMUT_CHILDREN, and mutmut
# forks its workers from a process that has run torch (OpenMP pools do not
# survive fork reliably).
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

declare -A GLOBS=(
  [nms]='shufflenet_det.models.layers.topk_nms.* shufflenet_det.models.layers.onnx_nms.*'
  [psroi]='shufflenet_det.models.layers.ps_roi_align.* shufflenet_det.models.roi_extractors.ps_roi_extractor.*'
  [shuffle]='shufflenet_det.models.layers.channel_shuffle.*'
  [units]='shufflenet_det.models.backbones.shufflenet_v1.* shufflenet_det.models.backbones.shufflenet_v2.*'
  [heads]='shufflenet_det.models.dense_heads.light_head_rpn_head.* shufflenet_det.models.bbox_heads.light_head_bbox_head.*'
  [ohem]='shufflenet_det.models.roi_heads.light_head_roi_head.*'
  [preprocessor]='shufflenet_det.models.data_preprocessors.one_pass_det_data_preprocessor.*'
  [deploy]='shufflenet_det.deploy.x* shufflenet_det.deploy.precision.*'
)
ORDER=(nms psroi shuffle heads ohem preprocessor deploy units)

summary() {
  python - <<'EOF'
import json
from collections import Counter
from pathlib import Path

caught = {'killed', 'timeout', 'segfault'}
codes = {1: 'killed', 3: 'killed', 0: 'survived', 5: 'no tests', 33: 'no tests',
         36: 'timeout', 24: 'timeout', -24: 'timeout', 152: 'timeout',
         255: 'timeout', -9: 'segfault', -11: 'segfault', None: 'not checked'}
print(f'{"module":<62} {"mutants":>7} {"checked":>7} {"caught":>6} {"rate":>6}')
for meta in sorted(Path('mutants').rglob('*.py.meta')):
    exits = json.loads(meta.read_text())['exit_code_by_key'].values()
    status = Counter(codes.get(c, 'suspicious') for c in exits)
    checked = sum(status.values()) - status['not checked']
    n_caught = sum(status[s] for s in caught)
    rate = f'{100 * n_caught / checked:.1f}%' if checked else '-'
    name = str(meta.relative_to('mutants'))[:-len('.meta')]
    print(f'{name:<62} {len(exits):>7} {checked:>7} {n_caught:>6} {rate:>6}',
          dict(status))
EOF
}

if [[ "${1:-}" == --summary ]]; then
  summary
  exit 0
fi
python -c 'import mutmut' 2>/dev/null || {
  echo "mutmut is not installed: pip install 'mutmut>=3,<4'" >&2; exit 2; }
if [[ "${1:-}" == --retest ]]; then
  mapfile -t survivors < <(mutmut results | awk -F': ' '$2 == "survived" {print $1}')
  if [[ ${#survivors[@]} -eq 0 ]]; then
    echo 'no surviving mutant to retest'
  else
    mutmut run --max-children "${MUTMUT_CHILDREN:-1}" "${survivors[@]// /}"
  fi
  summary
  exit 0
fi

areas=("$@")
[[ ${#areas[@]} -eq 0 ]] && areas=("${ORDER[@]}")
for area in "${areas[@]}"; do
  if [[ -z "${GLOBS[$area]+x}" ]]; then
    echo "unknown area '$area'; choose from: ${ORDER[*]}" >&2
    exit 2
  fi
done
for area in "${areas[@]}"; do
  echo "== mutation testing: $area"
  # shellcheck disable=SC2086  # the globs are expanded by mutmut, not bash
  set -f
  mutmut run --max-children "${MUTMUT_CHILDREN:-1}" ${GLOBS[$area]}
  set +f
done
summary
