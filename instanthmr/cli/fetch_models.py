#!/usr/bin/env python3
"""Get model files: the released InstantHMR network from the Hugging Face Hub, or MediaPipe's from PyPI.

    python tools/fetch_models.py instanthmr                 # the released instanthmr.onnx -> the Hub cache
    python tools/fetch_models.py instanthmr --dest models   # ... and a copy at models/instanthmr.onnx
    python tools/fetch_models.py instanthmr.pth             # the released training checkpoint (~461 MB)
    python tools/fetch_models.py hf:OWNER/REPO/FILE@REV     # any Hub file, a revision pinned
    python tools/fetch_models.py mediapipe                  # -> models/mediapipe/*.tflite

``instanthmr`` / ``instanthmr.pth``: ``instanthmr.onnx`` (~77 MB, fp16 weights, float32 inputs/outputs) and
``instanthmr.pth`` (~461 MB, ``{'epoch', 'model_state_dict', 'optimizer_state_dict', 'val_pa_mpjpe'}``) from
the Hub repository ``momolesang/InstantHMR``, through ``huggingface_hub`` (its cache: ``HF_HOME`` /
``HF_HUB_CACHE``; partial downloads resume; ``HF_TOKEN``, ``HF_ENDPOINT`` work as usual). The demo finds
the cached network by itself on its first run, so this command only fetches ahead of time (or with
``--dest``, places a real copy). The weights come under the SAM License; the code is Apache-2.0.
Offline or unreachable: one line that says why, exit 1.

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

from instanthmr.core.paths import RELEASED_WEIGHTS_LICENSE

CHOICES = ("instanthmr", "instanthmr.pth", "mediapipe")


def _fetch_hub(what: str, dest: Path | None, force: bool) -> int:
    from instanthmr.runtime import hub

    try:
        file = {"instanthmr": hub.RELEASED_ONNX, "instanthmr.pth": hub.RELEASED_CHECKPOINT}.get(what) \
            or hub.parse_hub_spec(what)
    except ValueError as e:
        print(f"[fetch_models] error: {e}", file=sys.stderr)
        return 2

    def downloading(f):
        print(f"[fetch_models] downloading {f} into {dest or hub.hub_cache_dir()} ...", flush=True)

    try:
        got = hub.fetch(file, local_dir=dest, force=force, on_download=downloading)
    except hub.HubError as e:
        extra = f"; {hub.unavailable_hint()}" if file == hub.RELEASED_ONNX else ""
        print(f"[fetch_models] error: {e}{extra}", file=sys.stderr)
        return 1
    if got.note:
        print(f"[fetch_models] note: {got.note}")
    licence = f" (weights under the {RELEASED_WEIGHTS_LICENSE})" if file.is_released else ""
    print(f"[fetch_models] {file} ready: {got.path}{licence}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("what", metavar="WHAT",
                    help=f"which models to fetch: {', '.join(CHOICES)}, or hf:OWNER/REPO[/FILE][@REVISION]")
    ap.add_argument("--dest", type=Path, default=None,
                    help="target folder (default: the Hub cache for Hub files, models/mediapipe for mediapipe)")
    ap.add_argument("--force", action="store_true", help="download again even when the files are present")
    args = ap.parse_args(argv)
    if args.what not in CHOICES and not args.what.startswith("hf:"):
        ap.error(f"unknown WHAT {args.what!r}: expected one of {', '.join(CHOICES)} or hf:OWNER/REPO[/FILE][@REV]")
    if args.what != "mediapipe":
        return _fetch_hub(args.what, args.dest, args.force)
    from instanthmr.runtime.mediapipe import MODEL_FILES, MediaPipeModelError, fetch_mediapipe_models

    try:
        dest = fetch_mediapipe_models(args.dest, force=args.force)
    except MediaPipeModelError as e:
        print(f"[fetch_models] error: {e}", file=sys.stderr)
        return 1
    names = ", ".join(Path(p).name for p, _ in MODEL_FILES.values())
    print(f"[fetch_models] MediaPipe models ready in {dest}: {names}")
    return 0
