#!/usr/bin/env bash
# Idempotent install of the pinned stack into the active Python environment.
#
# Versions live in requirements.txt only. mmcv 2.1.0 ships as an sdist whose
# setup.py asks for -std=c++17, which torch 2.14 headers reject (they need
# C++20), so it is built from a patched temporary copy. The built wheel is kept
# in a cache outside the clone, keyed by mmcv, torch and Python versions, so a
# fresh clone or a new virtual environment reuses it in seconds.
#
# Environment:
#   SHUFFLENET_DET_CACHE  wheel cache root (default: ~/.cache/shufflenet_det)
#   MAX_JOBS              parallel compile jobs for the mmcv build (default: nproc)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQ="$ROOT/requirements.txt"
PY="${PYTHON:-python}"
PIP=("$PY" -m pip install --disable-pip-version-check)

pin() { sed -n "s/^$1==\([^ ]*\).*/\1/p" "$REQ"; }
MMCV_VERSION="$(pin mmcv)"
TORCH_VERSION="$(pin torch)"
TV_VERSION="$(pin torchvision)"
for v in MMCV_VERSION TORCH_VERSION TV_VERSION; do
  [[ -n "${!v}" ]] || { echo "install.sh: no pin for ${v%_VERSION} in $REQ" >&2; exit 1; }
done

step() { echo "[install $(date +%T)] $*"; }
t0=$SECONDS

step "torch==$TORCH_VERSION torchvision==$TV_VERSION"
"${PIP[@]}" -q "torch==$TORCH_VERSION" "torchvision==$TV_VERSION" "setuptools<81" wheel ninja

mmcv_ok() {
  "$PY" - "$MMCV_VERSION" <<'PY' 2>/dev/null
import sys
import mmcv, mmcv.ops  # noqa: E401  (mmcv.ops imports the compiled mmcv._ext)
sys.exit(mmcv.__version__ != sys.argv[1])
PY
}

if mmcv_ok; then
  step "mmcv $MMCV_VERSION with ops already importable: skipping build"
else
  PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
  TORCH_REAL="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
  CACHE="${SHUFFLENET_DET_CACHE:-$HOME/.cache/shufflenet_det}/wheels/mmcv-$MMCV_VERSION-torch$TORCH_REAL-$PYTAG"
  mkdir -p "$CACHE"
  if ! ls "$CACHE"/mmcv-*.whl >/dev/null 2>&1; then
    step "building mmcv $MMCV_VERSION with ops (about 18 min on 2 cores; cached in $CACHE)"
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
    "$PY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
      "mmcv==$MMCV_VERSION" -d "$TMP"
    tar -xzf "$TMP"/mmcv-"$MMCV_VERSION".tar.gz -C "$TMP"
    SRC="$TMP/mmcv-$MMCV_VERSION"
    grep -q -- '-std=c++17' "$SRC/setup.py" || { echo "install.sh: expected -std=c++17 in mmcv setup.py" >&2; exit 1; }
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "$PY" -m pip wheel --disable-pip-version-check -q --no-build-isolation --no-deps \
      -w "$TMP/dist" "$SRC"
    # Rename into place last so an interrupted build never leaves a partial wheel in the cache.
    for w in "$TMP"/dist/mmcv-*.whl; do cp "$w" "$CACHE/.$(basename "$w").part" && mv "$CACHE/.$(basename "$w").part" "$CACHE/$(basename "$w")"; done
  else
    step "reusing cached mmcv wheel from $CACHE"
  fi
  "${PIP[@]}" -q "$CACHE"/mmcv-*.whl
  mmcv_ok || { echo "install.sh: mmcv.ops still does not import after installing $CACHE" >&2; exit 1; }
fi

step "pinned Python packages from requirements.txt"
"${PIP[@]}" -q -r "$REQ"
step "shufflenet_det (editable)"
"${PIP[@]}" -q --no-deps -e "$ROOT"
step "done in $((SECONDS - t0)) s"
