"""Evaluate an InstantHMR checkpoint (.pt) or ONNX file vs teacher shards and vs real 3D ground truth.

Examples::

    python tools/eval.py runs/a/final.pt --shards labels/val --json runs/a/eval.json
    python tools/eval.py models/instanthmr.onnx --gt3d ../shared/data/gt3d     # ground truth only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from instanthmr.core.paths import shared_data_dir

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path, help="training checkpoint (.pt) or exported .onnx")
    p.add_argument("--shards", nargs="*", default=[], help="teacher shard folders to score against")
    p.add_argument("--gt3d", default="auto",
                   help="ground-truth folder with h36m/ and mpi_inf_3dhp/ ('auto': the shared data if present, "
                        "'none': skip)")
    p.add_argument("--max-instances", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--image-root", default=None, help="base folder for shards that store image paths")
    p.add_argument("--json", type=Path, default=None, help="write the full report here")
    args = p.parse_args(argv)

    from instanthmr.core.errors import first_line
    from instanthmr.runtime.session import ModelLoadError
    from instanthmr.training.data.shards import ShardFormatError
    from instanthmr.training.evaluate import evaluate_gt3d, evaluate_shards, format_table, load_predictor

    gt_root = None
    if args.gt3d == "auto":
        cand = shared_data_dir() / "gt3d"
        gt_root = cand if (cand / "h36m").is_dir() else None
    elif args.gt3d.lower() != "none":
        gt_root = Path(args.gt3d)
    if not args.shards and gt_root is None:
        print("error: nothing to evaluate on: give --shards and/or --gt3d", file=sys.stderr)
        return 2
    try:
        from instanthmr.training.model import CheckpointError
    except ImportError:  # an ONNX-only install has no torch
        CheckpointError = ModelLoadError  # noqa: N806
    try:
        predictor = load_predictor(args.model, args.device)
        report: dict = {"model": str(args.model), "predictor": predictor.name}
        if args.shards:
            report.update(evaluate_shards(predictor, args.shards, args.batch_size, args.max_instances,
                                          args.image_root))
        if gt_root is not None:
            report["gt3d"] = evaluate_gt3d(predictor, gt_root)
    except (ModelLoadError, CheckpointError, ShardFormatError, FileNotFoundError, ValueError) as e:
        print(f"error: {first_line(e, None)}", file=sys.stderr)
        return 2
    print(f"model: {report['predictor']}")
    print(format_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"report written to {args.json}")
    return 0
