#!/usr/bin/env python3
"""Get model files that can be had from the package registry alone (no model hub needed).

    python tools/fetch_models.py mediapipe            # -> models/mediapipe/*.tflite
    python tools/fetch_models.py mediapipe --dest DIR

``mediapipe``: MediaPipe's pretrained BlazePose detector, pose landmark (full) and hand landmark (full)
models, taken out of the ``mediapipe==0.10.21`` wheel on PyPI (downloaded with ``pip download --no-deps``,
never installed) and checked against their SHA-256. They power the offline person detector
(``--detector mediapipe``) and the offline teacher (``tools/annotate_mediapipe.py``). Running them needs the
``ai-edge-litert`` package. Re-running is harmless (files already present are kept; ``--force`` refetches).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from instanthmr.runtime.mediapipe import MODEL_FILES, MediaPipeModelError, fetch_mediapipe_models, mediapipe_models_dir


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["mediapipe"], help="which models to fetch")
    ap.add_argument("--dest", type=Path, default=None, help=f"target folder (default {mediapipe_models_dir()})")
    ap.add_argument("--force", action="store_true", help="download again even when the files are present")
    args = ap.parse_args(argv)
    try:
        dest = fetch_mediapipe_models(args.dest, force=args.force)
    except MediaPipeModelError as e:
        print(f"[fetch_models] error: {e}", file=sys.stderr)
        return 1
    names = ", ".join(Path(p).name for p, _ in MODEL_FILES.values())
    print(f"[fetch_models] MediaPipe models ready in {dest}: {names}")
    return 0
