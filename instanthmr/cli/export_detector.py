#!/usr/bin/env python3
"""Export an RF-DETR person detector to ONNX once, so a deployed pipeline runs it without torch.

    python tools/export_detector.py --variant nano --out models/rf-detr-nano.onnx
    python tools/export_detector.py --variant medium --weights ~/.roboflow/models/rf-detr-medium.pth
    python tools/export_detector.py --variant nano --random-init --out /tmp/rfdetr-nano-random.onnx
    python tools/export_detector.py --variant nano --resolution 320 --out models/rf-detr-nano-320.onnx

``--resolution R`` exports a square R x R input instead of the variant's native one (a multiple of the
backbone's patch size x windows, 32 for every variant): the CPU cost falls with the pixel count, at some
recall on small people (docs/performance.md measures both).

The graph has input ``input`` (1, 3, R, R) and outputs ``dets`` (1, Q, 4, normalised cxcywh) and ``labels``
(1, Q, C logits); :class:`instanthmr.runtime.detector.OnnxDetector` runs it (``demo.py --detector PATH.onnx``).
The variant, resolution and person class id are stored in the ONNX metadata.
"""

from __future__ import annotations

import argparse
import sys

from instanthmr.runtime.detector import RFDETR_VARIANTS
from instanthmr.runtime.session import ModelLoadError
from instanthmr.training.export_detector import export_detector


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="nano", choices=list(RFDETR_VARIANTS), help="RF-DETR size (default: nano)")
    p.add_argument("--out", default=None, help="output .onnx (default: models/rf-detr-<variant>.onnx)")
    p.add_argument("--weights", default=None,
                   help="RF-DETR checkpoint .pth (default: models/ or the rfdetr cache, downloaded when missing)")
    p.add_argument("--random-init", action="store_true",
                   help="export random weights (no checkpoint needed; boxes are meaningless)")
    p.add_argument("--resolution", type=int, default=None,
                   help="square input size (default: the variant's, nano 384); a multiple of 32, e.g. 320 or 256")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    args = p.parse_args(argv)
    try:
        out = export_detector(args.variant, args.out, args.weights, pretrained=not args.random_init,
                              opset=args.opset, resolution=args.resolution)
    except (ModelLoadError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    note = " (RANDOM WEIGHTS: for plumbing and speed only)" if args.random_init else ""
    print(f"wrote {out}{note}")
    return 0
