#!/usr/bin/env bash
# Set up the offline MediaPipe teacher/detector (tools/annotate_mediapipe.py, --detector mediapipe).
#
# No separate environment is needed: the models run on the `ai-edge-litert` TFLite interpreter, which works
# with numpy 2 beside everything else. The MediaPipe 0.10.21 wheel (numpy<2) is only *downloaded* to take
# its three pretrained .tflite files out (tools/fetch_models.py); it is never installed.
#
# usage: tools/teacher_env.sh                 (uses <repo>/.venv/bin/python when present, else python3)
#        PYTHON=/path/to/python tools/teacher_env.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON="python3"; fi
fi

echo "$ $PYTHON -m pip install -q 'ai-edge-litert==2.3.0'"
"$PYTHON" -m pip install -q 'ai-edge-litert==2.3.0'
echo "$ $PYTHON tools/fetch_models.py mediapipe"
"$PYTHON" "$REPO/tools/fetch_models.py" mediapipe
