#!/usr/bin/env python3
"""MediaPipe's ``.tflite`` landmark models as ONNX (fp32), with our own converter (no TensorFlow).

    python tools/convert_mediapipe.py hand_landmark_full                  # -> models/mediapipe/hand_landmark_full.onnx
    python tools/convert_mediapipe.py pose_landmark_full --drop Identity_2 --check
    python tools/convert_mediapipe.py path/to/model.tflite --out /tmp/model.onnx

A name is looked up in the MediaPipe models folder (``models/mediapipe``, ``$INSTANTHMR_MEDIAPIPE``). The
ONNX file keeps the tflite's input (NHWC float32) and output names and shapes
(:mod:`instanthmr.training.mediapipe_onnx`). ``--drop`` leaves outputs nobody reads out with their work
(the pose model's segmentation mask ``Identity_2``). ``--check`` prints, per output, the largest difference
from LiteRT on one random input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from instanthmr.runtime.mediapipe.files import MediaPipeModelError, mediapipe_models_dir
from instanthmr.training.mediapipe_onnx import convert_tflite, litert_parity


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a .tflite file, or a MediaPipe model name (hand_landmark_full, pose_landmark_full, "
                                 "pose_detection)")
    p.add_argument("--out", default=None, help="output .onnx (default: beside the .tflite)")
    p.add_argument("--drop", nargs="*", default=[], help="output names to leave out (e.g. Identity_2)")
    p.add_argument("--check", action="store_true", help="print the largest |ONNX - LiteRT| per output")
    args = p.parse_args(argv)
    src = Path(args.model)
    if src.suffix != ".tflite":
        src = mediapipe_models_dir() / f"{args.model}.tflite"
    out = Path(args.out) if args.out else src.with_suffix(".onnx")
    try:
        import onnx

        model = convert_tflite(src, tuple(args.drop))
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(out))
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {len(model.graph.node)} nodes)")
        if args.check:
            for name, diff in litert_parity(src, out).items():
                print(f"  {name:<12} max |ONNX - LiteRT| {diff:.3g}")
    except MediaPipeModelError as e:
        print(f"[convert_mediapipe] error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
