#!/usr/bin/env bash
# Create the separate Python environment that runs Meta's official MHR package (`mhr` + `pymomentum-cpu`).
#
# Why a separate environment: pymomentum-cpu exists only for Python 3.12/3.13 and pins torch >=2.8,<2.9,
# which cannot live beside the product's torch. It is needed ONLY by tools/convert_mhr.py (asset
# conversion, run once); InstantHMR itself then runs MHR from the converted .npz with plain torch/numpy.
#
# usage: tools/mhr_env.sh [ENV_DIR]        (default: <repo>/.venv-mhr)
#   PYTHON=/path/to/python3.12 tools/mhr_env.sh     to choose the interpreter
# Afterwards:  tools/mhr_env.sh --run tools/convert_mhr.py --assets DIR --lod 3 --out models/mhr_lod3.npz
#   (--run sets LD_PRELOAD to pymomentum's bundled libstdc++; without it pymomentum segfaults,
#    facebookresearch/momentum#939).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ "${1:-}" == "--run" ]]; then
    shift
    ENV_DIR="${MHR_ENV:-$REPO/.venv-mhr}"
    PY="$ENV_DIR/bin/python"
    [[ -x "$PY" ]] || { echo "error: MHR environment not found at $ENV_DIR (create it with tools/mhr_env.sh)" >&2; exit 2; }
    LIB="$("$PY" - <<'EOF'
import glob, importlib.util, os
spec = importlib.util.find_spec("pymomentum")
d = os.path.join(os.path.dirname(list(spec.submodule_search_locations)[0]), "pymomentum_cpu.libs")
libs = sorted(glob.glob(os.path.join(d, "libstdc++-pymomentum*.so*")))
print(libs[0] if libs else "")
EOF
)"
    export LD_PRELOAD="${LIB}${LD_PRELOAD:+:$LD_PRELOAD}"
    # instanthmr is not installed in this environment (its pins would clash); tools/*.py import it from the repo.
    # PYTHONSAFEPATH: keep the script's folder off sys.path, or tools/mhr.py shadows the official `mhr` package.
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONSAFEPATH=1
    cd "$REPO"
    exec "$PY" "$@"
fi

ENV_DIR="${1:-$REPO/.venv-mhr}"
MHR_VERSION="${MHR_VERSION:-1.0.1}"

source "$REPO/tools/find_python.sh"

PY="$(find_python 3.12 3.13)"
if [[ -z "$PY" ]]; then
    echo "error: Python 3.12 or 3.13 is needed for pymomentum-cpu; none found (set PYTHON=/path/to/python3.12)" >&2
    exit 2
fi
echo "[mhr_env] interpreter: $PY ($("$PY" -V 2>&1)); environment: $ENV_DIR"

"$PY" -m venv "$ENV_DIR"
PIP=("$ENV_DIR/bin/python" -m pip install --no-input)
"${PIP[@]}" --upgrade pip wheel >/dev/null

# torch 2.8: prefer the small CPU-only build; fall back to the registry's default build.
if ! "${PIP[@]}" "torch>=2.8,<2.9" --timeout 20 --retries 1 --index-url https://download.pytorch.org/whl/cpu; then
    echo "[mhr_env] CPU torch index unreachable; installing torch 2.8 from the default registry (large)"
    "${PIP[@]}" "torch>=2.8,<2.9"
fi
"${PIP[@]}" pymomentum-cpu "mhr==$MHR_VERSION" numpy scipy

# Smoke test under the libstdc++ preload.
MHR_ENV="$ENV_DIR" "$REPO/tools/mhr_env.sh" --run -c "import pymomentum.geometry, mhr.mhr, torch; print('[mhr_env] ok: torch', torch.__version__)"
echo "[mhr_env] done"
