"""``python tools/quantize_onnx.py``: int8 (static/dynamic) or fp16 copies of an ONNX model, with the drift."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from instanthmr.core.faults import (
    OutputPathError,
    interrupt_exit_code,
    stop_reason,
    stop_signals,
)
from instanthmr.training import quantize as _q
from instanthmr.training.quantize import (
    MODES,
    CalibrationError,
    ModelLoadError,
    _resolution,
    calibration_images,
    detector_inputs,
    hmr_inputs,
    model_kind,
    output_drift,
    quantize,
)


def _print_drift(model: str, out: Path, mode: str | None) -> None:
    kind = model_kind(model)
    tag = "fp16" if mode == "fp16" else "int8"
    held = calibration_images(None, 12, holdout=True)
    res = _resolution(Path(model), kind)
    feeds = hmr_inputs(held, res, seed=1) if kind == "hmr" else detector_inputs(held, res)
    for name, d in output_drift(model, out, feeds).items():
        print(f"  {name:<22} max |{tag} - fp32| {d['max_abs']:.4g}  mean {d['mean_abs']:.4g}  "
              f"(fp32 std {d['ref_std']:.4g})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=_q.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="fp32 .onnx: the InstantHMR network or an RF-DETR export")
    p.add_argument("--out", default=None, help="output .onnx (default: <model>.int8.onnx / .fp16.onnx beside it)")
    p.add_argument("--mode", choices=MODES, default=None,
                   help="static (int8, calibrated QDQ; default for the HMR network: its Conv layers), static-linear "
                        "(static + dynamic int8 MatMuls: the notebook network's decoder), dynamic (int8 weights; "
                        "default for the detector) or fp16 (for GPUs)")
    p.add_argument("--calib-dir", default=None, help="folder of calibration photos (default: the shared media)")
    p.add_argument("--calib-count", type=int, default=32, help="calibration images (default: 32)")
    p.add_argument("--check", action="store_true", help="print the output drift vs fp32 on held-out frames")
    args = p.parse_args(argv)
    if args.calib_count < 1:
        p.error("--calib-count must be >= 1")
    out = None
    try:
        with stop_signals():
            out = quantize(args.model, args.out, args.mode, args.calib_dir, args.calib_count)
            print(f"wrote {out}")
            if args.check:
                _print_drift(args.model, out, args.mode)
    except (OutputPathError, CalibrationError) as e:  # bad arguments, found before any work
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ModelLoadError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        done = f"{out} was written; the drift check did not finish" if out else "nothing written"
        print(f"{stop_reason(e)}: {done}", file=sys.stderr)
        return interrupt_exit_code(e)
    return 0
