"""Where things live: the models folder (:func:`models_dir`), the per-user cache (:func:`user_cache_dir`), and
the shared test media.

Model files are looked up and downloaded in one folder: ``$INSTANTHMR_MODELS`` when set, else the checkout's
``models/`` when the package runs from a checkout (an editable install), else ``models`` in the per-user
cache: an installed wheel never looks inside (or writes to) site-packages. Files from the Hugging Face Hub
stay in the Hub's own cache (:mod:`instanthmr.runtime.hub`).

The shared media (real photos, videos, 3D ground truth, motion capture) and MHR assets are never part of
the repository; they are found at ``../shared/data`` and ``../shared/mhr`` beside the checkout, or wherever
``INSTANTHMR_DATA`` / ``INSTANTHMR_MHR`` point.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout (in an installed wheel: site-packages)


def is_checkout(root: Path = REPO_ROOT) -> bool:
    """True when the package runs from a source checkout (``pyproject.toml`` and ``models/`` beside it)."""
    return (root / "pyproject.toml").is_file() and (root / "models").is_dir()


def user_cache_dir() -> Path:
    """The per-user cache of downloaded files: ``$INSTANTHMR_CACHE``, else ``$XDG_CACHE_HOME/instanthmr``, else
    ``~/.cache/instanthmr``; may not exist yet."""
    if os.environ.get("INSTANTHMR_CACHE"):
        return Path(os.environ["INSTANTHMR_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "instanthmr"


def models_dir() -> Path:
    """The one folder where model files are found and fetched into (see the module docstring):
    ``$INSTANTHMR_MODELS``, else the checkout's ``models/``, else ``<user cache>/models``."""
    if os.environ.get("INSTANTHMR_MODELS"):
        return Path(os.environ["INSTANTHMR_MODELS"]).expanduser()
    return REPO_ROOT / "models" if is_checkout() else user_cache_dir() / "models"


MODELS_DIR = models_dir()
#: The released network and its training checkpoint live in this Hugging Face Hub repository (weights under
#: the SAM License; runtime.hub downloads them).
RELEASED_REPO_ID = "momolesang/InstantHMR"
RELEASED_ONNX_NAME = "instanthmr.onnx"  # fp16 weights, float32 inputs/outputs, ~77 MB
RELEASED_CHECKPOINT_NAME = "instanthmr.pth"  # training checkpoint {'epoch', 'model_state_dict', ...}, ~461 MB
RELEASED_WEIGHTS_LICENSE = "SAM License (https://github.com/facebookresearch/sam-3d-body/blob/main/LICENSE)"
DEFAULT_MODEL = MODELS_DIR / RELEASED_ONNX_NAME  # a local copy of the released network wins over the Hub's
#: The small offline-trained network, in git and in the wheel (package data of instanthmr.runtime): the fallback when
#: neither the released network nor the MediaPipe path can run.
STARTER_MODEL = Path(__file__).resolve().parents[1] / "runtime" / "models" / "instanthmr-starter.onnx"
#: ``--model`` names of the two offline paths (nothing to download): the starter network above, and MediaPipe's
#: BlazePose (+ hand) landmarks as MHR70 2D + metric 3D (instanthmr.runtime.mediapipe.estimator), the default when
#: no InstantHMR network can be had (docs/offline.md).
STARTER_MODEL_NAME = "starter"
MEDIAPIPE_MODEL_NAME = "mediapipe"
SAMPLE_IMAGE_NAME = "sample"


def default_model() -> Path:
    """The network on this machine to run when none is given, without asking the Hub: the released
    ``models/instanthmr.onnx`` when present, else the starter model; the released path when neither exists
    (so the error names the file to download). ``instanthmr.runtime.hub.released_model`` adds the Hub copy."""
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
