"""Print parameter counts and FLOPs of InstantHMR network configs (per person, one 224x224 crop).

    python tools/model_info.py                              # the default config
    python tools/model_info.py instanthmr_repvit_m0_9 instanthmr_repvit_m1_5 --wholebody
    python tools/model_info.py --all --markdown

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmul/conv/attention; one
multiply-add = 2 FLOPs) on the fused (reparameterised) model that is exported.
"""

from __future__ import annotations

import argparse
import sys


def model_stats(name: str, wholebody: bool = False) -> dict:
    """``{"config", "backbone", "params", "params_fused", "params_backbone", "params_decoder_heads", "gflops",
    "gflops_backbone"}`` of one registered config (fused figures are what the ONNX file holds)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from instanthmr.training.model import build_model, count_parameters

    model = build_model(name, wholebody_head=wholebody).eval()
    params = count_parameters(model)
    model.fuse()
    image, cliff = torch.zeros(1, 3, model.config.input_size, model.config.input_size), torch.zeros(1, 3)
    cliff[:, 2] = 0.5

    def flops(fn) -> int:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            fn()
        return counter.get_total_flops()

    total = flops(lambda: model(image, cliff))
    backbone = flops(lambda: model.backbone(image))
    p_backbone = count_parameters(model.backbone)
    return {"config": name, "backbone": model.config.backbone, "wholebody": wholebody, "params": params,
            "params_fused": count_parameters(model), "params_backbone": p_backbone,
            "params_decoder_heads": count_parameters(model) - p_backbone,
            "gflops": total / 1e9, "gflops_backbone": backbone / 1e9}


def main(argv: list[str] | None = None) -> int:
    from instanthmr.training.model import DEFAULT_CONFIG, list_configs

    p = argparse.ArgumentParser(description="Parameter count and FLOPs of InstantHMR configs")
    p.add_argument("configs", nargs="*", default=None, help=f"registered configs (default {DEFAULT_CONFIG})")
    p.add_argument("--all", action="store_true", help="every registered config")
    p.add_argument("--wholebody", action="store_true", help="include the joints_3d_wholebody head")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = p.parse_args(argv)
    names = list_configs() if args.all else (args.configs or [DEFAULT_CONFIG])
    unknown = [n for n in names if n not in list_configs()]
    if unknown:
        print(f"error: unknown config(s) {unknown}; available: {', '.join(list_configs())}", file=sys.stderr)
        return 2
    rows = [model_stats(n, args.wholebody) for n in names]
    if args.markdown:
        print("| config | backbone | params (train) | params (fused) | backbone params | decoder+heads params "
              "| GFLOPs/person | backbone GFLOPs |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['config']} | {r['backbone']} | {r['params'] / 1e6:.2f} M | {r['params_fused'] / 1e6:.2f} M "
                  f"| {r['params_backbone'] / 1e6:.2f} M | {r['params_decoder_heads'] / 1e6:.2f} M "
                  f"| {r['gflops']:.3f} | {r['gflops_backbone']:.3f} |")
    else:
        for r in rows:
            print(f"{r['config']} ({r['backbone']}{', wholebody head' if r['wholebody'] else ''}): "
                  f"{r['params'] / 1e6:.2f} M parameters ({r['params_fused'] / 1e6:.2f} M fused: backbone "
                  f"{r['params_backbone'] / 1e6:.2f} M + decoder/heads {r['params_decoder_heads'] / 1e6:.2f} M), "
                  f"{r['gflops']:.3f} GFLOPs per person (backbone {r['gflops_backbone']:.3f})")
    return 0
