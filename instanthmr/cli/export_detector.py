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
import shutil
import sys
import tempfile
from pathlib import Path

from instanthmr.core.paths import MODELS_DIR
from instanthmr.runtime.detector import COCO_PERSON_ID, RFDETR_VARIANTS, RFDETRDetector
from instanthmr.runtime.session import ModelLoadError, stamp_metadata


def export_detector(variant: str = "nano", out_path: str | Path | None = None, weights: str | Path | None = None,
                    pretrained: bool = True, opset: int = 17, detector: RFDETRDetector | None = None,
                    resolution: int | None = None) -> Path:
    """Export RF-DETR ``variant`` to ``out_path`` (default ``models/rf-detr-<variant>.onnx``) and return it.

    ``pretrained=False`` exports random weights (plumbing and speed only). ``detector`` exports an already
    built :class:`RFDETRDetector` (its variant wins over ``variant``). Raises
    :class:`~instanthmr.runtime.session.ModelLoadError` when the weights are missing. ``resolution`` (default: the
    variant's) exports a square input of that size; it must be a multiple of :func:`detector_block_size`.
    """
    import warnings

    import onnx

    det = detector or RFDETRDetector(variant, weights=weights, device="cpu", pretrained=pretrained)
    variant = det.variant
    res = int(resolution or det.resolution)
    block = detector_block_size(det)
    if res <= 0 or res % block:
        raise ValueError(f"--resolution must be a positive multiple of {block} for RF-DETR {variant}, got {res}")
    tag = "" if res == det.resolution else f"-{res}"
    name = f"rf-detr-{variant}{tag}{'' if det.weights else '-random'}.onnx"
    out = Path(out_path) if out_path else MODELS_DIR / name
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rfdetr_export_") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        produced = Path(det.model.export(output_dir=tmp, verbose=False, opset_version=opset, shape=(res, res)))
        model = onnx.load(str(produced))
        meta = {"variant": variant, "resolution": str(res), "native_resolution": str(det.resolution),
                "person_class_id": str(COCO_PERSON_ID), "producer": "instanthmr",
                "weights": str(det.weights) if det.weights else "random-init"}
        stamp_metadata(model, meta)
        tmp_out = Path(tmp) / "with_meta.onnx"
        onnx.save(model, str(tmp_out))
        shutil.move(str(tmp_out), out)
    return out


def detector_block_size(det: RFDETRDetector) -> int:
    """The number both input sides must divide by: patch size x attention windows (32 for every variant)."""
    cfg = det.model.model_config
    return int(cfg.patch_size) * int(cfg.num_windows)


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
