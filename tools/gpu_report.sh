#!/usr/bin/env bash
# Every GPU column of this project in one command, on a machine with one CUDA GPU:
#   1. Table 7 speed report, fp32: all twenty configs + the torchvision peer, batch 4, 800x1200
#   2. the same with --fp16 (CUDA autocast)
#   3. the paper's guideline Tables 1-4 (GPU widths, cuDNN benchmark mode)
# and OUT_DIR/gpu_report.md: machine, date, each step's command, exit status and wall time.
#
#   bash tools/gpu_report.sh OUT_DIR                        # the GPU report
#   bash tools/gpu_report.sh OUT_DIR --device cpu --quick   # CPU dry run: every step at tiny sizes
#
# It checks for CUDA first and exits with status 3 and a message when there is none. A failing
# step or a config the benchmark could not measure makes the exit status 1 (the other steps still
# run). PYTHON overrides the interpreter (default: python).
set -uo pipefail

usage() {
    echo "usage: bash tools/gpu_report.sh OUT_DIR [--device cuda|cuda:N|cpu] [--quick]" >&2
    exit 2
}

ARGS="$*"
OUT=""
DEVICE=cuda
QUICK=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device) [[ $# -ge 2 ]] || usage; DEVICE="$2"; shift 2 ;;
        --device=*) DEVICE="${1#--device=}"; shift ;;
        --quick) QUICK=1; shift ;;
        -h|--help) usage ;;
        -*) echo "gpu_report.sh: unknown option '$1'" >&2; usage ;;
        *) [[ -z "$OUT" ]] || { echo "gpu_report.sh: one OUT_DIR, got '$OUT' and '$1'" >&2; usage; }
           OUT="$1"; shift ;;
    esac
done
[[ -n "$OUT" ]] || usage
case "$DEVICE" in
    cpu|cuda|cuda:[0-9]*) ;;
    *) echo "gpu_report.sh: --device must be cuda, cuda:N or cpu, got '$DEVICE'" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
PYTHON="${PYTHON:-python}"

if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
    echo "gpu_report.sh: '$PYTHON' cannot import torch; run 'bash tools/install.sh' first" >&2
    exit 3
fi
if [[ "$DEVICE" == cuda* ]]; then
    if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        echo "gpu_report.sh: no CUDA GPU on this machine (torch.cuda.is_available() is False)." >&2
        echo "  This report needs one CUDA GPU. CPU dry run of every step:" >&2
        echo "  bash tools/gpu_report.sh $OUT --device cpu --quick" >&2
        exit 3
    fi
fi

mkdir -p "$OUT" || exit 2
OUT="$(cd "$OUT" && pwd)"
SUMMARY="$OUT/gpu_report.md"
STATUS=0

if [[ $QUICK -eq 1 ]]; then
    # One config, one image of 64x96, one timed step: checks that every step runs, measures nothing.
    TABLE7=(configs/light_head_rcnn/light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco.py
            --batch-size 1 --img-size 64 96 --warmup 0 --iters 1 --min-iters 1
            --interleave 1 --no-progress)
    GUIDELINES=(--quick)
else
    # Paper settings (batch 4, 800x1200 are the benchmark's defaults); --max-seconds bounds a
    # config's timed loop so that the whole report stays within minutes.
    TABLE7=(--all --max-seconds 10 --no-progress)
    GUIDELINES=(--rounds 7 --min-sample-s 0.1)
fi
# The fp16 pass skips the per-part profile, which the fp32 pass already has.
FP16_EXTRA=(--fp16 --no-breakdown)

{
    echo "# GPU report (\`tools/gpu_report.sh\`)"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
    echo "| command | \`bash tools/gpu_report.sh $ARGS\` |"
    echo "| host | $(hostname) |"
    echo "| device | $DEVICE$([[ $QUICK -eq 1 ]] && echo ' (--quick dry run: numbers meaningless)') |"
    echo "| torch | $("$PYTHON" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())') |"
    if [[ "$DEVICE" == cuda* ]] && command -v nvidia-smi >/dev/null; then
        echo "| GPU | $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1) |"
    fi
    echo "| git | $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)') |"
    echo
    echo "| step | command | exit | wall s |"
    echo "|---|---|---:|---:|"
} > "$SUMMARY"

# run_step NAME CMD...: run, log to OUT/NAME.log, add a row to the summary.
run_step() {
    local name="$1"; shift
    local start end rc
    echo "== $name: $*"
    start=$(date +%s)
    "$@" 2>&1 | tee "$OUT/$name.log"
    rc=${PIPESTATUS[0]}
    end=$(date +%s)
    local cmd="$*"
    echo "| $name | \`${cmd//|/\\|}\` | $rc | $((end - start)) |" >> "$SUMMARY"
    if [[ $rc -ne 0 ]]; then
        echo "gpu_report.sh: step '$name' failed with exit status $rc (log: $OUT/$name.log)" >&2
        STATUS=1
    fi
}

# check_benchmark DIR: the benchmark records a config it could not measure and goes on; fail here.
check_benchmark() {
    "$PYTHON" - "$1/benchmark.json" <<'EOF'
import json, sys
path = sys.argv[1]
try:
    report = json.load(open(path))
except (OSError, ValueError) as exc:
    sys.exit(f'gpu_report.sh: no readable {path}: {exc}')
failed = [r['name'] for r in report.get('results', []) if 'error' in r]
if report.get('peer_error'):
    failed.append(f"peer ({report['peer_error']})")
done = len(report.get('results', [])) - len(failed)
print(f'{path}: {done} config(s) measured, {len(failed)} failed'
      + (f": {', '.join(failed)}" if failed else ''))
sys.exit(1 if failed or not done else 0)
EOF
}

T0=$(date +%s)
run_step table7-fp32 "$PYTHON" tools/benchmark.py "${TABLE7[@]}" --device "$DEVICE" --out "$OUT/table7-fp32"
check_benchmark "$OUT/table7-fp32" >> "$OUT/table7-fp32.log" 2>&1 || STATUS=1
tail -1 "$OUT/table7-fp32.log"
if [[ "$DEVICE" == cuda* ]]; then
    run_step table7-fp16 "$PYTHON" tools/benchmark.py "${TABLE7[@]}" "${FP16_EXTRA[@]}" \
        --device "$DEVICE" --out "$OUT/table7-fp16"
    check_benchmark "$OUT/table7-fp16" >> "$OUT/table7-fp16.log" 2>&1 || STATUS=1
    tail -1 "$OUT/table7-fp16.log"
else
    # --fp16 is CUDA autocast; on CPU only check that the flag still exists.
    run_step table7-fp16-flag bash -c "$PYTHON tools/benchmark.py --help | grep -q -- --fp16"
fi
run_step guidelines "$PYTHON" tools/guidelines.py "${GUIDELINES[@]}" --device "$DEVICE" --out "$OUT/guidelines"

{
    echo
    echo "Total: $(( $(date +%s) - T0 )) s. Reports: [table7-fp32/table7.md](table7-fp32/table7.md)," \
         "$([[ "$DEVICE" == cuda* ]] && echo '[table7-fp16/table7.md](table7-fp16/table7.md), ')" \
         "[guidelines/guidelines.md](guidelines/guidelines.md)."
    [[ $STATUS -eq 0 ]] && echo "Every step succeeded." || echo "**Some steps failed: see the exit column and the logs.**"
} >> "$SUMMARY"
echo "gpu_report.sh: $SUMMARY (exit $STATUS)"
exit $STATUS
