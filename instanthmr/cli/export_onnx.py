"""``python tools/export_onnx.py``: export a checkpoint (or a random-init network) to ONNX with a parity check."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from instanthmr.core.faults import (
    OutputPathError,
    check_output_path,
    interrupt_exit_code,
    stop_reason,
    stop_signals,
)
from instanthmr.training.export import (
    DEFAULT_OPSET,
    ExportError,
    export_onnx,
    format_report,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="training checkpoint (tools/train writes these)")
    src.add_argument("--random-init", action="store_true", help="random weights (tests and benchmarks)")
    p.add_argument("--config", default=None, help="registered model config for --random-init "
                   "(default instanthmr_repvit_m1_5)")
    p.add_argument("--wholebody", action="store_true", help="--random-init: add the joints_3d_wholebody head")
    p.add_argument("--cliff-form", choices=("pixel", "focal"), help="--random-init: CLIFF condition form")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="output .onnx path")
    p.add_argument("--fp16", action="store_true", help="fp16 weights and math, float32 inputs/outputs (GPU)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--no-parity", action="store_true", help="skip the ONNX Runtime vs torch check")
    p.add_argument("--plain-graph", action="store_true",
                   help="no export-time optimisation (the notebook network's folded query projection and ONNX "
                        "Runtime fused attention ops): standard ONNX ops only, for other runtimes")
    args = p.parse_args(argv)
    if args.checkpoint is not None and (args.config or args.wholebody or args.cliff_form):
        p.error("--config/--wholebody/--cliff-form only apply to --random-init (a checkpoint has its config)")
    try:  # before loading and exporting: an unwritable --out fails now, not after the work
        check_output_path(args.out, "--out")
    except OutputPathError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from instanthmr.training.model import (
        CheckpointError,
        build_model,
        list_configs,
        load_checkpoint,
    )
    from instanthmr.training.model.random_init import randomize_

    try:
        if args.checkpoint is not None:
            model = load_checkpoint(args.checkpoint)
        else:
            overrides = {"wholebody_head": True} if args.wholebody else {}
            if args.cliff_form:
                overrides["cliff_form"] = args.cliff_form
            name = args.config or "instanthmr_repvit_m1_5"
            if name not in list_configs():
                raise CheckpointError(f"unknown model config {name!r}; available: {', '.join(list_configs())}")
            model = randomize_(build_model(name, **overrides), seed=args.seed).eval()
            model.step = 0
        with stop_signals():
            report = export_onnx(model, args.out, fp16=args.fp16, opset=args.opset, parity=not args.no_parity,
                                 seed=args.seed, optimize=not args.plain_graph)
    except (CheckpointError, ExportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1 if isinstance(e, ExportError) else 2
    except OSError as e:  # the disk filled up or the folder went away during the export
        print(f"error: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"{stop_reason(e)}: nothing written to {args.out}", file=sys.stderr)
        return interrupt_exit_code(e)
    size_mb = args.out.stat().st_size / 1e6
    print(f"wrote {args.out} ({size_mb:.1f} MB, {model.config.name}, {'fp16' if args.fp16 else 'fp32'}, "
          f"outputs {', '.join(model.output_names)})")
    print(format_report(report))
    return 0 if report.get("ok") is not False else 1
