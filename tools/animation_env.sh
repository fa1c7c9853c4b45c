#!/usr/bin/env bash
# Set up the tools that check the animation exports (tests/test_blender.py, tests/test_gltf.py; docs/animation.md):
#   - Blender as a Python module (`bpy` from the package registry) in its own venv: bpy pins one Python version
#     (bpy 5.0 = Python 3.11) and numpy<2, which cannot live beside the product's environment;
#   - the Khronos glTF validator (`gltf-validator` from the npm registry) in <env>/node (needs node + npm).
# InstantHMR itself needs neither: the exports are written with numpy only.
#
# usage: tools/animation_env.sh [ENV_DIR]        (default: <repo>/.venv-bpy)
#   PYTHON=/path/to/python3.11 tools/animation_env.sh     to choose the interpreter
# The tests find them there, or at $INSTANTHMR_BPY_PYTHON (a Python that imports bpy) and
# $INSTANTHMR_GLTF_VALIDATOR (a folder holding node_modules/gltf-validator).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="${1:-$REPO/.venv-bpy}"
BPY_VERSION="${BPY_VERSION:-5.0.1}"
BPY_PYTHON_MINOR="${BPY_PYTHON_MINOR:-3.11}"
VALIDATOR_VERSION="${VALIDATOR_VERSION:-2.0.0-dev.3.10}"

source "$REPO/tools/find_python.sh"

PY="$(find_python "$BPY_PYTHON_MINOR")"
if [[ -z "$PY" ]]; then
    echo "error: bpy $BPY_VERSION needs Python $BPY_PYTHON_MINOR; none found (set PYTHON=/path/to/python$BPY_PYTHON_MINOR)" >&2
    exit 2
fi
echo "[animation_env] interpreter: $PY ($("$PY" -V 2>&1)); environment: $ENV_DIR"
[[ -x "$ENV_DIR/bin/python" ]] || "$PY" -m venv "$ENV_DIR"
PIP=("$ENV_DIR/bin/python" -m pip install --no-input -q)
"${PIP[@]}" --upgrade pip >/dev/null
echo "$ pip install bpy==$BPY_VERSION 'numpy<2'   (a ~350 MB wheel)"
"${PIP[@]}" "bpy==$BPY_VERSION" "numpy<2"
"$ENV_DIR/bin/python" -c "import bpy; print('[animation_env] ok: Blender', bpy.app.version_string)"

if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
    echo "$ npm install --prefix $ENV_DIR/node gltf-validator@$VALIDATOR_VERSION"
    npm install --silent --no-audit --no-fund --prefix "$ENV_DIR/node" "gltf-validator@$VALIDATOR_VERSION"
    NODE_PATH="$ENV_DIR/node/node_modules" node -e \
        "const v = require('gltf-validator'); console.log('[animation_env] ok: gltf-validator', v.version())"
else
    echo "[animation_env] node/npm not found: the glTF validator checks will be skipped (install Node.js, rerun)" >&2
fi
echo "[animation_env] done"
