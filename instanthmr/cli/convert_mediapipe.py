#!/usr/bin/env python3
"""MediaPipe's ``.tflite`` landmark models as ONNX (fp32, and static int8), with our own converter (no TensorFlow).

    python tools/convert_mediapipe.py hand_landmark_full                  # -> models/mediapipe/hand_landmark_full.onnx
    python tools/convert_mediapipe.py pose_landmark_full --drop Identity_2 --check
    python tools/convert_mediapipe.py path/to/model.tflite --out /tmp/model.onnx
    python tools/convert_mediapipe.py hand_landmark_full --int8 --calib CLIP.mp4 PHOTOS/ --check-on OTHER.mp4

A name is looked up in the MediaPipe models folder (``models/mediapipe``, ``$INSTANTHMR_MEDIAPIPE``). The
ONNX file keeps the tflite's input (NHWC float32) and output names and shapes
(:mod:`instanthmr.training.mediapipe_onnx`). ``--drop`` leaves outputs nobody reads out with their work
(the pose model's segmentation mask ``Identity_2``). ``--check`` prints, per output, the largest difference
from LiteRT on one random input.

``--int8`` also writes a static int8 copy (``--int8-out``, default ``<name>.int8.onnx`` beside the fp32 file):
the model's real inputs are recorded by running the offline MediaPipe path (as the demo runs it) over the
``--calib`` videos / photos / photo folders, ``--calib-count`` of them spread evenly calibrate the activation
ranges (MinMax), and the layers in ``INT8_KEEP_FP32`` stay fp32. ``--check-on`` measures the int8 file
against LiteRT on the crops of OTHER sources (2D landmarks in crop pixels, world landmarks in mm, presence
and handedness agreement) and times both on one thread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from instanthmr.cli.common import describe_load, load_average
from instanthmr.core.faults import OutputPathError, check_output_path

from instanthmr.runtime.mediapipe.files import MediaPipeModelError, mediapipe_models_dir
from instanthmr.training import mediapipe_onnx as mo


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a .tflite file, or a MediaPipe model name (hand_landmark_full, pose_landmark_full, "
                                 "pose_detection)")
    p.add_argument("--out", default=None, help="fp32 output .onnx (default: beside the .tflite)")
    p.add_argument("--drop", nargs="*", default=[], help="output names to leave out (e.g. Identity_2)")
    p.add_argument("--check", action="store_true", help="print the largest |ONNX - LiteRT| per output")
    p.add_argument("--int8", action="store_true", help="also write a static int8 copy (needs --calib)")
    p.add_argument("--int8-out", default=None, help="int8 output .onnx (default: <fp32 out>.int8.onnx)")
    p.add_argument("--calib", nargs="*", default=[], help="videos, photos or photo folders to calibrate on")
    p.add_argument("--calib-count", type=int, default=300, help="calibration crops, spread evenly (default 300)")
    p.add_argument("--check-on", nargs="*", default=[], help="held-out videos / photos to measure the int8 drift on")
    args = p.parse_args(argv)
    if args.int8 and not args.calib:
        p.error("--int8 needs --calib SOURCE [SOURCE ...] (videos, photos or photo folders)")
    src = Path(args.model)
    if src.suffix != ".tflite":
        src = mediapipe_models_dir() / f"{args.model}.tflite"
    out = Path(args.out) if args.out else src.with_suffix(".onnx")
    drop = tuple(args.drop)
    try:
        check_output_path(out, "--out")  # before the work: an unwritable output fails now
        model = mo.convert_tflite(src, drop)
        mo.save_model(model, out)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {len(model.graph.node)} nodes)")
        if args.check:
            for name, diff in mo.litert_parity(src, out).items():
                print(f"  {name:<12} max |ONNX - LiteRT| {diff:.3g}")
        if not args.int8:
            return 0
        name = src.stem
        if name in mo.NO_INT8:
            raise MediaPipeModelError(f"{src}: no int8 copy of {name}: {mo.NO_INT8[name]}")
        if name not in mo.INT8_KEEP_FP32:
            raise MediaPipeModelError(f"{src}: no int8 recipe for {name} (known: {', '.join(mo.INT8_KEEP_FP32)})")
        q_out = check_output_path(args.int8_out or out.with_name(f"{out.stem}.int8.onnx"), "--int8-out")
        calib = mo.record_sources(args.calib, name, args.calib_count)
        keep = mo.fp32_nodes(model, **mo.INT8_KEEP_FP32[name])
        mo.quantize_static_int8(out, q_out, calib, exclude=keep)
        print(f"wrote {q_out} ({q_out.stat().st_size / 1e6:.2f} MB; {len(calib)} calibration crops; fp32: "
              f"{', '.join(keep)})")
        if args.check_on:
            held = mo.record_sources(args.check_on, name)
            ref = mo.run_litert(src, held)
            got = mo.run_onnx(q_out, held)
            drift = mo.landmark_drift(name, {k: v for k, v in ref.items() if k in got}, got)
            print(f"  drift vs LiteRT on {len(held)} held-out crops: "
                  + json.dumps({k: round(v, 3) for k, v in drift.items()}))
            before = load_average()
            times = mo.time_one_thread(src, {"fp32 onnx": out, "int8 onnx": q_out}, held[len(held) // 2][None],
                                       drop_outputs=drop)
            for k, rows in times.items():
                print(f"  1 thread {k:<10} " + "  ".join(f"{w:.2f} ms (cpu {c:.2f})" for w, c in rows))
            print(f"  timing: {describe_load(before, load_average())}")
    except (MediaPipeModelError, OutputPathError) as e:
        print(f"[convert_mediapipe] error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
