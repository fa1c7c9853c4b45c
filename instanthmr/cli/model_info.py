"""What a network is: parameter counts and FLOPs of registered configs, or what an ONNX file holds.

    python tools/model_info.py                              # the default config
    python tools/model_info.py instanthmr_repvit_m0_9 instanthmr_repvit_m1_5 --wholebody
    python tools/model_info.py --all --markdown
    python tools/model_info.py models/instanthmr.onnx       # parameters, weight dtype, queries, input size, match

How each figure is counted: instanthmr/training/model_info.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from instanthmr.training.model_info import describe_onnx, inspect_onnx, match_architecture, model_stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Parameter count and FLOPs of InstantHMR configs, or what an ONNX "
                                            "file holds")
    p.add_argument("configs", nargs="*", default=None,
                   help="registered configs (default instanthmr_repvit_m1_5) or .onnx files")
    p.add_argument("--all", action="store_true", help="every registered config")
    p.add_argument("--wholebody", action="store_true", help="include the joints_3d_wholebody head")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--json", action="store_true", help="ONNX files: print the inspection as JSON")
    args = p.parse_args(argv)
    given = args.configs or []
    files = [n for n in given if n.endswith(".onnx") or Path(n).is_file()]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        print(f"error: ONNX file(s) not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    names = [n for n in given if n not in files]
    if args.all or names or not files:  # configs need torch; ONNX files alone do not
        from instanthmr.training.model import DEFAULT_CONFIG, list_configs

        names = list_configs() if args.all else (names or [DEFAULT_CONFIG])
        unknown = [n for n in names if n not in list_configs()]
        if unknown:
            print(f"error: unknown config(s) {unknown}; available: {', '.join(list_configs())} "
                  "(or give .onnx files)", file=sys.stderr)
            return 2
    for f in files:
        try:
            if args.json:
                info = inspect_onnx(f)
                try:
                    info["match"] = match_architecture(info)
                except ImportError:
                    info["match"] = None
                info.pop("shapes")
                print(json.dumps(info))
            else:
                print(f"{f}: {describe_onnx(f)}")
        except Exception as e:  # a broken or foreign file: say so in one line
            from instanthmr.core.errors import first_line

            print(f"error: {f}: cannot inspect ({first_line(e, 160)})", file=sys.stderr)
            return 1
    rows = [model_stats(n, args.wholebody) for n in names]
    if args.markdown and rows:
        print("| config | arch | backbone | queries | params (train) | params (fused) | backbone params "
              "| decoder+heads params | GFLOPs/person | backbone GFLOPs |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['config']} | {r['arch']} | {r['backbone']} | {r['queries']} | {r['params'] / 1e6:.2f} M "
                  f"| {r['params_fused'] / 1e6:.2f} M | {r['params_backbone'] / 1e6:.2f} M "
                  f"| {r['params_decoder_heads'] / 1e6:.2f} M | {r['gflops']:.3f} | {r['gflops_backbone']:.3f} |")
    else:
        for r in rows:
            print(f"{r['config']} ({r['arch']}, {r['backbone']}, {r['queries']} queries"
                  f"{', wholebody head' if r['wholebody'] else ''}): "
                  f"{r['params'] / 1e6:.2f} M parameters ({r['params_fused'] / 1e6:.2f} M fused: backbone "
                  f"{r['params_backbone'] / 1e6:.2f} M + decoder/heads {r['params_decoder_heads'] / 1e6:.2f} M), "
                  f"{r['gflops']:.3f} GFLOPs per person (backbone {r['gflops_backbone']:.3f})")
    return 0
