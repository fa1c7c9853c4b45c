"""Self-check: ``python -m instanthmr.cli.doctor`` prints versions, ONNX Runtime providers, and which model files
are present or missing (with where to get each), and what each InstantHMR ONNX file holds (parameters, weight
dtype, query count, input size, which registered architecture it matches: see tools/model_info.py). Exits 0
when the runtime can work (imports succeed), even when weights are missing: that is reported, not fatal.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import platform
import sys

from instanthmr import __version__
from instanthmr.core.errors import first_line
from instanthmr.core.paths import MODELS_DIR, STARTER_MODEL, shared_data_dir

#: (file in models/, what it is, where it comes from); the starter ships inside the package (STARTER_MODEL)
MODEL_FILES = (
    ("instanthmr.onnx", "the released InstantHMR network",
     "fetched on first use from Hugging Face (momolesang/InstantHMR), or: python tools/fetch_models.py instanthmr"),
    ("instanthmr-starter.onnx", "small, weak starter network trained offline by this project's own tools",
     "shipped in the package; or rebuild it with the commands in models/README.md"),
    ("mediapipe/pose_detection.tflite", "MediaPipe BlazePose person detector (offline detector and teacher)",
     "python tools/fetch_models.py mediapipe (run by install.py)"),
    ("mediapipe/pose_landmark_full.tflite", "MediaPipe BlazePose landmarks (offline detector and teacher)",
     "python tools/fetch_models.py mediapipe (run by install.py)"),
    ("mediapipe/hand_landmark_full.tflite", "MediaPipe hand landmarks (offline teacher)",
     "python tools/fetch_models.py mediapipe (run by install.py)"),
    ("rf-detr-nano.pth", "RF-DETR nano person detector checkpoint (torch path)",
     "rfdetr downloads it on first use; offline, copy it here (see models/README.md)"),
    ("rf-detr-nano.onnx", "RF-DETR nano exported for ONNX Runtime (torch-free detector)",
     "python tools/export_detector.py --variant nano (needs the .pth)"),
)

PACKAGES = ("numpy", "opencv-python-headless", "onnxruntime", "onnxruntime-gpu", "rerun-sdk", "ai-edge-litert",
            "torch", "torchvision", "timm", "rfdetr", "onnx")


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def network_summary(path) -> str:
    """What an InstantHMR ONNX file holds (parameters, weight dtype, queries, input size, matching architecture;
    see tools/model_info.py), or why that cannot be said."""
    try:
        from instanthmr.training.model_info import describe_onnx

        return describe_onnx(path)
    except ImportError as e:  # the onnx package belongs to the training extra
        return f"not inspected ({e.name or 'onnx'} not installed: pip install onnx)"
    except Exception as e:  # a damaged file must not stop the report
        return f"not inspected ({first_line(e, 120)})"


def report() -> tuple[list[str], bool]:
    """Lines of the report and whether the runtime imports work."""
    lines = [f"InstantHMR {__version__} | Python {platform.python_version()} | {platform.system()} "
             f"{platform.machine()}"]
    ok = True
    for dist in PACKAGES:
        v = _version(dist)
        if v is not None:
            lines.append(f"  {dist:24s} {v}")
    if _version("onnxruntime") and _version("onnxruntime-gpu"):
        ok = False
        lines.append("  PROBLEM: onnxruntime and onnxruntime-gpu are both installed; uninstall both, then "
                     "re-run install.py")
    for mod in ("numpy", "cv2", "onnxruntime"):
        try:
            importlib.import_module(mod)
        except Exception as e:  # report any import failure, keep going
            ok = False
            lines.append(f"  PROBLEM: cannot import {mod}: {first_line(e, None)}")
    try:
        import onnxruntime as ort

        lines.append("ONNX Runtime providers: " + ", ".join(ort.get_available_providers()))
    except Exception:
        pass
    lines.append(f"Models folder: {MODELS_DIR}")
    for name, what, where in MODEL_FILES:
        path = STARTER_MODEL if name == STARTER_MODEL.name else MODELS_DIR / name
        if path.exists():
            lines.append(f"  [present] {name} ({path.stat().st_size / 1e6:.1f} MB): {what}")
            if name.startswith("instanthmr") and path.suffix == ".onnx":
                lines.append(f"            holds: {network_summary(path)}")
            if path.suffix == ".onnx":  # the --fp16 / --int8 copies demo.py and tools/bench.py look for
                copies = [f"{prec} {'present' if path.with_name(f'{path.stem}.{prec}.onnx').exists() else 'absent'}"
                          for prec in ("fp16", "int8")]
                lines.append(f"            copies: {', '.join(copies)} (python tools/quantize_onnx.py "
                             f"{path} [--mode fp16])")
                for prec in ("fp16", "int8") if name.startswith("instanthmr") else ():
                    copy = path.with_name(f"{path.stem}.{prec}.onnx")
                    if copy.exists():
                        lines.append(f"            {copy.name} holds: {network_summary(copy)}")
        else:
            lines.append(f"  [missing] {name}: {what}; {where}")
    data = shared_data_dir()
    lines.append(f"Shared test media: {data} ({'present' if data.exists() else 'absent; media tests will skip'})")
    return lines, ok


def main() -> int:
    lines, ok = report()
    print("\n".join(lines))
    print("doctor: OK" if ok else "doctor: problems found (see above)")
    return 0 if ok else 1


if __name__ == "__main__":  # python -m instanthmr.cli.doctor
    sys.exit(main())
