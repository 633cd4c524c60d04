#!/usr/bin/env bash
# Installs the pinned stack into the active Python environment; idempotent.
#
#   bash tools/install.sh                      mmcv-lite + our mmcv._ext stand-in: no compiler
#   bash tools/install.sh --full-mmcv          mmcv built from source with its compiled ops
#   bash tools/install.sh --pinned-torch       replace the machine's torch with the pin
#   bash tools/install.sh --download DIR [--python-version X.Y] [--with-torch]
#                                              fill a wheelhouse for an offline machine
#   bash tools/install.sh --wheelhouse DIR     install from DIR only (no package index)
#
# Versions live in requirements.txt only. The default installs mmcv-lite (mmcv's
# Python code, no compiled ops) and tools/mmcv_ext_standin, which answers
# `import mmcv._ext` with nms/roi_align through torchvision and a clear error
# for every other op: the Light-Head path calls no compiled mmcv op.
# --full-mmcv builds mmcv's sdist patched to -std=c++20 (torch >= 2.14 headers
# need it; ~22 min on 2 cores) and caches the wheel outside the clone, keyed by
# mmcv, torch and Python versions.
#
# A torch >= TORCH_MIN that is already installed (a CUDA build, an NGC
# container) is kept unless --pinned-torch is given.
#
# Environment:
#   PYTHON                interpreter to install into (default: python)
#   SHUFFLENET_DET_CACHE  wheel cache root for --full-mmcv (default: ~/.cache/shufflenet_det)
#   MAX_JOBS              parallel compile jobs for the mmcv build (default: nproc)
set -euo pipefail

TORCH_MIN=2.1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQ="$ROOT/requirements.txt"
STANDIN="$ROOT/tools/mmcv_ext_standin"
PY="${PYTHON:-python}"
PIP=("$PY" -m pip install --disable-pip-version-check)

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "install.sh: $*" >&2; exit 1; }
step() { echo "[install $(date +%T)] $*"; }

MODE=default PINNED_TORCH=0 WITH_TORCH=0 DIR="" PYVER=""
while (($#)); do
  case "$1" in
    --full-mmcv) MODE=full ;;
    --pinned-torch) PINNED_TORCH=1 ;;
    --with-torch) WITH_TORCH=1 ;;
    --download) MODE=download; DIR="${2:?--download needs a directory}"; shift ;;
    --wheelhouse) MODE=wheelhouse; DIR="${2:?--wheelhouse needs a directory}"; shift ;;
    --python-version) PYVER="${2:?--python-version needs X.Y}"; shift ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown argument '$1'" >&2; usage 2 ;;
  esac
  shift
done
[[ -z "$PYVER" || "$MODE" == download ]] || die "--python-version only goes with --download"

pin() { sed -n "s/^$1==\([^ ]*\).*/\1/p" "$REQ"; }
MMCV_VERSION="$(pin mmcv-lite)"
TORCH_VERSION="$(pin torch)"
TV_VERSION="$(pin torchvision)"
for v in MMCV_VERSION TORCH_VERSION TV_VERSION; do
  [[ -n "${!v}" ]] || die "no pin for ${v%_VERSION} in $REQ"
done
# Everything but torch, torchvision and mmcv(-lite), which are chosen here.
REST="$(mktemp)"
trap 'rm -f "$REST"' EXIT
grep -vE '^(torch|torchvision|mmcv-lite)==' "$REQ" > "$REST"

t0=$SECONDS

fill_wheelhouse() {
  mkdir -p "$DIR"
  local pyver="${PYVER:-$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}"
  # Only wheels (no sdists: an offline machine may have no compiler), for
  # manylinux x86_64 and the given Python.
  local plat=(--only-binary=:all: --python-version "$pyver" --implementation cp
              --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
              --platform manylinux_2_28_x86_64 --platform linux_x86_64)
  local torch=()
  ((WITH_TORCH)) && torch=("torch==$TORCH_VERSION" "torchvision==$TV_VERSION")
  step "downloading wheels for Python $pyver into $DIR"
  "$PY" -m pip download --disable-pip-version-check -q -d "$DIR" "${plat[@]}" \
    -r "$REST" "mmcv-lite==$MMCV_VERSION" "setuptools<81" wheel "${torch[@]}"
  step "building the mmcv._ext stand-in wheel"
  "$PY" -m pip wheel --disable-pip-version-check -q --no-deps -w "$DIR" "$STANDIN"
  step "wheelhouse ready: $(ls "$DIR" | wc -l) files, $(du -sh "$DIR" | cut -f1) in $((SECONDS - t0)) s"
  ((WITH_TORCH)) || echo "  (no torch: the target keeps its own; add --with-torch to include torch==$TORCH_VERSION)"
}

if [[ "$MODE" == download ]]; then fill_wheelhouse; exit 0; fi
if [[ "$MODE" == wheelhouse ]]; then
  [[ -d "$DIR" ]] || die "wheelhouse '$DIR' is not a directory"
  export PIP_NO_INDEX=1 PIP_FIND_LINKS="$(cd "$DIR" && pwd)"
  step "installing from $PIP_FIND_LINKS only (no package index)"
fi

torch_state() {  # prints: <torch version or none> <torchvision version or none> <ok|old>
  "$PY" - "$TORCH_MIN" <<'PY' 2>/dev/null || echo "none none old"
import sys
def ver(m):
    try:
        return __import__(m).__version__
    except Exception:
        return 'none'
t, tv = ver('torch'), ver('torchvision')
num = lambda v: tuple(int(x) for x in v.split('+')[0].split('.')[:2])
print(t, tv, 'ok' if t != 'none' and num(t) >= num(sys.argv[1]) else 'old')
PY
}

read -r HAVE_TORCH HAVE_TV TORCH_OK <<<"$(torch_state)"
if ((PINNED_TORCH)) || [[ "$TORCH_OK" != ok ]]; then
  step "torch==$TORCH_VERSION torchvision==$TV_VERSION (found torch: $HAVE_TORCH)"
  "${PIP[@]}" -q "torch==$TORCH_VERSION" "torchvision==$TV_VERSION"
elif [[ "$HAVE_TV" == none ]]; then
  die "keeping the installed torch $HAVE_TORCH, but torchvision is missing: install the torchvision built for it, or rerun with --pinned-torch"
else
  step "keeping the installed torch $HAVE_TORCH / torchvision $HAVE_TV (>= $TORCH_MIN; --pinned-torch installs $TORCH_VERSION)"
fi

mmcv_state() {  # prints: compiled | lite | none
  "$PY" - <<'PY' 2>/dev/null || echo none
import importlib.util
spec = importlib.util.find_spec('mmcv')
if spec is None:
    print('none')
else:
    import os
    d = os.path.dirname(spec.origin)
    print('compiled' if any(f.startswith('_ext.') and f.endswith(('.so', '.pyd')) for f in os.listdir(d)) else 'lite')
PY
}

build_full_mmcv() {
  local pytag torch_real cache tmp src
  pytag="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
  torch_real="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
  cache="${SHUFFLENET_DET_CACHE:-$HOME/.cache/shufflenet_det}/wheels/mmcv-$MMCV_VERSION-torch$torch_real-$pytag"
  mkdir -p "$cache"
  if ! ls "$cache"/mmcv-*.whl >/dev/null 2>&1; then
    step "building mmcv $MMCV_VERSION with ops (about 22 min on 2 cores; cached in $cache)"
    "${PIP[@]}" -q "setuptools<81" wheel ninja
    tmp="$(mktemp -d)"
    "$PY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
      "mmcv==$MMCV_VERSION" -d "$tmp"
    tar -xzf "$tmp"/mmcv-"$MMCV_VERSION".tar.gz -C "$tmp"
    src="$tmp/mmcv-$MMCV_VERSION"
    grep -q -- '-std=c++17' "$src/setup.py" || die "expected -std=c++17 in mmcv setup.py"
    sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "$PY" -m pip wheel --disable-pip-version-check -q --no-build-isolation --no-deps \
      -w "$tmp/dist" "$src"
    # Rename into place last so an interrupted build never leaves a partial wheel in the cache.
    for w in "$tmp"/dist/mmcv-*.whl; do
      cp "$w" "$cache/.$(basename "$w").part" && mv "$cache/.$(basename "$w").part" "$cache/$(basename "$w")"
    done
    rm -rf "$tmp"
  else
    step "reusing cached mmcv wheel from $cache"
  fi
  "$PY" -m pip uninstall -y -q mmcv-lite 2>/dev/null || true
  "${PIP[@]}" -q --no-deps "$cache"/mmcv-*.whl
}

MMCV_NOW="$(mmcv_state)"
if [[ "$MODE" == full ]]; then
  if [[ "$MMCV_NOW" == compiled ]]; then step "mmcv with compiled ops already installed"; else build_full_mmcv; fi
elif [[ "$MMCV_NOW" == compiled ]]; then
  step "mmcv with compiled ops already installed: keeping it (the stand-in stays inactive)"
else
  step "mmcv-lite==$MMCV_VERSION (no compiled ops) + the mmcv._ext stand-in"
  "$PY" -m pip uninstall -y -q mmcv 2>/dev/null || true
  "${PIP[@]}" -q "mmcv-lite==$MMCV_VERSION"
fi
# Inactive when compiled ops exist: Python's own finder sees mmcv/_ext*.so first.
"${PIP[@]}" -q "$STANDIN"

step "pinned Python packages from requirements.txt"
"${PIP[@]}" -q -r "$REST"
step "shufflenet_det (editable)"
"${PIP[@]}" -q --no-deps -e "$ROOT"
"$PY" -c "import mmcv.ops, mmdet.models, shufflenet_det" || die "the stack does not import"
"$PY" - <<'PY'
import mmcv._ext, torch, mmcv, mmdet
import shufflenet_det_mmcv_ext as s
ops = 'stand-in (mmcv-lite, no compiled ops)' if s.is_stand_in(mmcv._ext) else 'compiled'
print(f'[install] torch {torch.__version__}, mmcv {mmcv.__version__} ops: {ops}, mmdet {mmdet.__version__}')
PY
step "done in $((SECONDS - t0)) s"
