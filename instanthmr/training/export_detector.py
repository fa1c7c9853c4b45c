"""RF-DETR to ONNX, once, so a deployed pipeline runs the detector without torch (``tools/export_detector.py``).

The graph has input ``input`` (1, 3, R, R) and outputs ``dets`` (1, Q, 4, normalised cxcywh) and ``labels``
(1, Q, C logits); :class:`instanthmr.runtime.detector.OnnxDetector` runs it. The variant, resolution and person
class id are stored in the ONNX metadata.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from instanthmr.core.paths import MODELS_DIR
from instanthmr.runtime.detector import COCO_PERSON_ID, RFDETRDetector
from instanthmr.runtime.session import stamp_metadata


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
