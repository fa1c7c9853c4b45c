"""Where things live: the repository, its models folder, and the shared test media.

The shared media (real photos, videos, 3D ground truth, motion capture) and MHR assets are never part of
the repository; they are found at ``../shared/data`` and ``../shared/mhr`` beside the checkout, or wherever
``INSTANTHMR_DATA`` / ``INSTANTHMR_MHR`` point.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = Path(os.environ.get("INSTANTHMR_MODELS", REPO_ROOT / "models"))
DEFAULT_MODEL = MODELS_DIR / "instanthmr.onnx"


def shared_data_dir() -> Path:
    """Folder of the shared real media (``$INSTANTHMR_DATA`` or ``../shared/data``); may not exist."""
    return Path(os.environ.get("INSTANTHMR_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_mhr_dir() -> Path:
    """Folder of the MHR body-model assets (``$INSTANTHMR_MHR`` or ``../shared/mhr``); may not exist."""
    return Path(os.environ.get("INSTANTHMR_MHR", REPO_ROOT.parent / "shared" / "mhr"))
