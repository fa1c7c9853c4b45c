"""Where things live: the repository, its models folder, and the shared test media.

The shared media (real photos, videos, 3D ground truth, motion capture) and MHR assets are never part of
the repository; they are found at ``../shared/data`` and ``../shared/mhr`` beside the checkout, or wherever
``INSTANTHMR_DATA`` / ``INSTANTHMR_MHR`` point.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = Path(os.environ.get("INSTANTHMR_MODELS", REPO_ROOT / "models"))
DEFAULT_MODEL = MODELS_DIR / "instanthmr.onnx"  # the released network (download; see models/README.md)
STARTER_MODEL = MODELS_DIR / "instanthmr-starter.onnx"  # small offline-trained network shipped in git
SAMPLE_IMAGE_NAME = "sample"


def default_model() -> Path:
    """The network to run when none is given: the released ``instanthmr.onnx`` when present, else the
    starter model; the released path when neither exists (so the error names the file to download)."""
    for path in (DEFAULT_MODEL, STARTER_MODEL):
        if path.is_file():
            return path
    return DEFAULT_MODEL


def sample_image() -> Path:
    """A real photo that ships inside an installed package: matplotlib's sample portrait of Grace Hopper
    (public domain, US Navy). Used by ``demo.py --image sample`` so the first run needs no file of one's own."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise FileNotFoundError(f"matplotlib's sample photo is missing ({path}); pass --image PATH")
    return path


def shared_data_dir() -> Path:
    """Folder of the shared real media (``$INSTANTHMR_DATA`` or ``../shared/data``); may not exist."""
    return Path(os.environ.get("INSTANTHMR_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_mhr_dir() -> Path:
    """Folder of the MHR body-model assets (``$INSTANTHMR_MHR`` or ``../shared/mhr``); may not exist."""
    return Path(os.environ.get("INSTANTHMR_MHR", REPO_ROOT.parent / "shared" / "mhr"))
