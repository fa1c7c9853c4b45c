"""MediaPipe's model files: which ones, their checksums, where they live and how they are fetched.

The ``mediapipe==0.10.21`` wheel on PyPI bundles real pretrained TFLite models but needs ``numpy<2``, so
instead of installing it, :func:`fetch_mediapipe_models` downloads the wheel with pip (nothing installed),
takes the three ``.tflite`` files out of it and checks their SHA-256 (:data:`MODEL_FILES`). They live in
:func:`mediapipe_models_dir` (``$INSTANTHMR_MEDIAPIPE`` or ``models/mediapipe``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from instanthmr.core.paths import MODELS_DIR
from instanthmr.runtime.session import ModelLoadError

MEDIAPIPE_VERSION = "0.10.21"  # the last release whose wheel bundles the legacy solution models
LITERT_REQUIREMENT = "ai-edge-litert>=2.0"

#: name -> (path inside the wheel, sha256 of the file)
MODEL_FILES: dict[str, tuple[str, str]] = {
    "pose_detection": ("mediapipe/modules/pose_detection/pose_detection.tflite",
                       "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"),
    "pose_landmark_full": ("mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
                           "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"),
    "hand_landmark_full": ("mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
                           "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3"),
}
#: Landmark models as static int8 ONNX, made from the files above by ``tools/convert_mediapipe.py`` and shipped
#: in the package (:data:`INT8_MODELS_DIR`, MediaPipe's Apache-2.0 licence and a README with the command beside
#: them): what the MediaPipe path runs by default (``precision="int8"``). The hand model only: its int8 copy
#: takes half LiteRT's time for 1.1 px median drift in its 224 px crop; the pose landmark model's world
#: landmarks move by 0.5-1.8 m in int8, so it stays MediaPipe's own file, as does the person detector
#: (docs/offline.md, "int8 landmark models"). name -> (file name, sha256 of the file).
INT8_MODEL_FILES: dict[str, tuple[str, str]] = {
    "hand_landmark_full": ("hand_landmark_full.int8.onnx",
                           "9366b07e998ddc058f718867dae18c0aa98932e33f07a0e8716924a277ead704"),
}
INT8_MODELS_DIR = Path(__file__).resolve().parents[1] / "models" / "mediapipe"
#: How the landmark models run: ``int8`` (the shipped int8 copies where there is one, on ONNX Runtime; the
#: others as ``float``) or ``float`` (MediaPipe's own files on LiteRT, bit for bit MediaPipe's models).
LANDMARK_PRECISIONS = ("int8", "float")
# Any platform's wheel carries the same model files: ask for one fixed wheel so the download works from
# every host (macOS, Windows, Python versions MediaPipe never built for).
_WHEEL_PLATFORM = ("manylinux_2_28_x86_64", "3.11")


class MediaPipeModelError(ModelLoadError):
    """A MediaPipe model file is missing or corrupt, or the TFLite interpreter is not installed (a
    :class:`~instanthmr.runtime.session.ModelLoadError`, as for every model file)."""


def mediapipe_models_dir() -> Path:
    """Where the extracted ``.tflite`` files live: ``$INSTANTHMR_MEDIAPIPE`` or ``models/mediapipe``."""
    return Path(os.environ.get("INSTANTHMR_MEDIAPIPE", MODELS_DIR / "mediapipe"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_path(name: str, models_dir: str | Path | None = None) -> Path:
    """Path of one model file, checked to exist; the error says how to get it."""
    if name not in MODEL_FILES:
        raise KeyError(f"unknown MediaPipe model {name!r}; known: {sorted(MODEL_FILES)}")
    path = Path(models_dir or mediapipe_models_dir()) / Path(MODEL_FILES[name][0]).name
    if not path.is_file():
        raise MediaPipeModelError(f"MediaPipe model not found: {path} (get it with: python tools/fetch_models.py "
                                  f"mediapipe, which extracts it from the mediapipe=={MEDIAPIPE_VERSION} wheel)")
    return path


def landmark_model_path(name: str, precision: str = "int8", models_dir: str | Path | None = None) -> Path:
    """The file that runs MediaPipe model ``name`` at ``precision`` (:data:`LANDMARK_PRECISIONS`): its shipped
    int8 ONNX copy (:data:`INT8_MODEL_FILES`) for ``int8`` where there is one, else MediaPipe's own ``.tflite``
    (:func:`model_path`). Checked to exist."""
    if precision not in LANDMARK_PRECISIONS:
        raise ValueError(f"MediaPipe precision must be one of {', '.join(LANDMARK_PRECISIONS)}, got {precision!r}")
    if precision == "float" or name not in INT8_MODEL_FILES:
        return model_path(name, models_dir)
    path = INT8_MODELS_DIR / INT8_MODEL_FILES[name][0]
    if not path.is_file():
        raise MediaPipeModelError(f"int8 MediaPipe model not found: {path} (it ships with the package: reinstall "
                                  "it, or run MediaPipe's own models with --mediapipe-precision float)")
    return path


def mediapipe_models_present(models_dir: str | Path | None = None) -> bool:
    d = Path(models_dir or mediapipe_models_dir())
    return all((d / Path(p).name).is_file() for p, _ in MODEL_FILES.values())


def extract_mediapipe_models(wheel: str | Path, dest: str | Path | None = None) -> list[Path]:
    """Copy the model files out of a downloaded ``mediapipe`` wheel into ``dest``, verifying checksums."""
    wheel, dest = Path(wheel), Path(dest or mediapipe_models_dir())
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    try:
        zf = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as e:
        raise MediaPipeModelError(f"{wheel}: not a readable wheel ({e})") from None
    with zf:
        for name, (member, digest) in MODEL_FILES.items():
            target = dest / Path(member).name
            tmp = target.with_name(target.name + ".tmp")
            try:
                with zf.open(member) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except KeyError:
                raise MediaPipeModelError(f"{wheel}: has no {member} (use mediapipe=={MEDIAPIPE_VERSION})") from None
            if _sha256(tmp) != digest:
                tmp.unlink(missing_ok=True)
                raise MediaPipeModelError(f"{wheel}: {member} does not match the expected checksum")
            os.replace(tmp, target)
            out.append(target)
    return out


def fetch_mediapipe_models(dest: str | Path | None = None, python: str | None = None,
                           force: bool = False) -> Path:
    """Get the pretrained models from the ``mediapipe==0.10.21`` wheel on PyPI (pip only, no hub).

    Downloads the wheel with ``pip download --no-deps`` (nothing is installed), extracts the three
    ``.tflite`` files into ``dest`` (default :func:`mediapipe_models_dir`) and checks their SHA-256.
    Returns ``dest``. Raises :class:`MediaPipeModelError` with pip's last line when the download fails.
    """
    dest = Path(dest or mediapipe_models_dir())
    if mediapipe_models_present(dest) and not force:
        return dest
    plat, pyver = _WHEEL_PLATFORM
    with tempfile.TemporaryDirectory(prefix="mediapipe-wheel-") as tmp:
        cmd = [python or sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--platform", plat, "--python-version", pyver, "-d", tmp, f"mediapipe=={MEDIAPIPE_VERSION}"]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise MediaPipeModelError(f"could not run pip to download mediapipe=={MEDIAPIPE_VERSION}: {e}") from None
        wheels = sorted(Path(tmp).glob("mediapipe-*.whl"))
        if res.returncode != 0 or not wheels:
            lines = [ln for ln in (res.stderr or res.stdout or "").strip().splitlines() if ln.strip()]
            why = lines[-1].strip() if lines else f"exit {res.returncode}"
            raise MediaPipeModelError(f"pip could not download mediapipe=={MEDIAPIPE_VERSION} "
                                      f"(needed for the offline models): {why}")
        extract_mediapipe_models(wheels[0], dest)
    return dest


def unavailable_reason(models_dir: str | Path | None = None, fetch: bool = True) -> str | None:
    """``None`` when the MediaPipe path can run here, else one line saying why not (the LiteRT interpreter is
    not installed, or the models are not fetched) and how to fix it. With ``fetch``, missing models are
    fetched first (the first use: the ``mediapipe`` wheel from PyPI, a note on stderr)."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return f"the TFLite interpreter is not installed (pip install '{LITERT_REQUIREMENT}')"
    where = Path(models_dir or mediapipe_models_dir())
    if not mediapipe_models_present(models_dir) and fetch:
        print(f"fetching the MediaPipe models into {where} (once; from the mediapipe=={MEDIAPIPE_VERSION} wheel "
              "on PyPI) ...", file=sys.stderr, flush=True)
        try:
            fetch_mediapipe_models(models_dir)
        except MediaPipeModelError as e:
            return f"the MediaPipe models are not in {where} and could not be fetched: {e}"
    if not mediapipe_models_present(models_dir):
        return (f"the MediaPipe models are not in {where} (get them with: python tools/fetch_models.py mediapipe, or "
                "instanthmr-fetch mediapipe where the package is installed)")
    return None
