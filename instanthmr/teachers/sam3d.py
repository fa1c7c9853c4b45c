"""SAM 3D Body (Meta) as a teacher: load it, run it on our boxes, convert its outputs to shard instances.

Conventions of SAM 3D Body outputs (measured on the four real output dicts in ``$INSTANTHMR_MHR/samples``,
see ``docs/annotation.md``):

* ``pred_keypoints_3d`` (K >= 70, 3): metres, camera axes (x right, **y down**, z forward), **body-centred**:
  the origin is the MHR body-model root (``pred_joint_coords[0] == 0``), which sits near the floor between
  the feet, about 0.9 m below the hips; it is *not* the pelvis and not the camera.
* camera-space keypoints are ``pred_keypoints_3d + pred_cam_t``; projecting them with the teacher's
  ``focal_length`` and the image centre as principal point reproduces ``pred_keypoints_2d`` (full-image
  pixels) to 1e-4 px.
* MHR itself is **Y-up centimetres**; SAM 3D Body's outputs are MHR's with y and z negated and divided by
  100 (:func:`instanthmr.body.mhr.mhr_to_product`).
* The first 70 keypoints are MHR70 (:data:`instanthmr.core.skeleton.MHR70_NAMES`); later releases emit more.

The ``sam_3d_body`` package and its checkpoint are installed by the user; without them
:class:`SAM3DBodyTeacher` raises :class:`TeacherUnavailableError` with one line naming what to install.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

TEACHER_NAME = "sam3d_body"
NUM_MHR70 = 70
INSTALL_HINT = ("install Meta's SAM 3D Body: `git clone https://github.com/facebookresearch/sam-3d-body && "
                "pip install -e sam-3d-body` (see its INSTALL.md), then download a checkpoint, e.g. "
                "`huggingface-cli download facebook/sam-3d-body-dinov3 --local-dir checkpoints/sam-3d-body-dinov3`")

REQUIRED_KEYS = ("pred_keypoints_3d", "pred_keypoints_2d", "pred_cam_t")
OPTIONAL_KEYS = ("mhr_model_params", "shape_params", "focal_length", "bbox")


class TeacherUnavailableError(RuntimeError):
    """The teacher's package or checkpoint is missing; the message says what to install."""


class TeacherOutputError(ValueError):
    """A teacher output dict lacks a key, has a wrong shape, or is not finite."""


# --------------------------------------------------------------------------------------------------
# Pure conversion (numpy only; tested on the real sample dicts)
# --------------------------------------------------------------------------------------------------


def fit_pinhole(points_cam, points_2d) -> tuple[float, np.ndarray, float]:
    """Least-squares focal ``f`` and principal point ``(px, py)`` with ``uv = f * xy / z + pp``.

    Returns ``(f, pp, max_residual_px)``. Used to recover the focal length of teacher outputs that were
    saved without it (the shared sample dicts) and to check a teacher's camera convention.
    """
    p = np.asarray(points_cam, np.float64).reshape(-1, 3)
    uv = np.asarray(points_2d, np.float64).reshape(-1, 2)
    n = len(p)
    a = np.zeros((2 * n, 3))
    a[:n, 0], a[:n, 1] = p[:, 0] / p[:, 2], 1.0
    a[n:, 0], a[n:, 2] = p[:, 1] / p[:, 2], 1.0
    b = np.concatenate([uv[:, 0], uv[:, 1]])
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    resid = float(np.abs(a @ sol - b).max())
    return float(sol[0]), sol[1:3].copy(), resid


def _get(out: dict, key: str, shape_tail: tuple[int, ...], min_rows: int | None = None) -> np.ndarray:
    if key not in out or out[key] is None:
        raise TeacherOutputError(f"SAM 3D Body output lacks {key!r} (has {sorted(out)})")
    a = np.asarray(out[key], dtype=np.float64)
    if min_rows is not None:
        if a.ndim != 2 or a.shape[1:] != shape_tail or a.shape[0] < min_rows:
            raise TeacherOutputError(f"{key!r} must be (K>={min_rows}, {shape_tail[0]}), got {a.shape}")
    elif a.shape != shape_tail:
        raise TeacherOutputError(f"{key!r} must have shape {shape_tail}, got {a.shape}")
    return a


def sam3d_output_to_instance(out: dict, image_wh, box=None, focal: float | None = None,
                             principal_point=None, source: str = "", image_path: str = "") -> dict:
    """One SAM 3D Body person dict -> one shard instance (see ``instanthmr.training.data.shards``).

    ``image_wh`` is the full image ``(W, H)``. The focal length is taken from ``out["focal_length"]``,
    else ``focal``, else fitted from the dict's own 3D/2D keypoints (:func:`fit_pinhole`); the principal
    point defaults to the image centre. ``box`` defaults to ``out["bbox"]``. Non-finite keypoints are
    stored as invalid; a missing key or a wrong shape raises :class:`TeacherOutputError`.
    """
    k3 = _get(out, "pred_keypoints_3d", (3,), NUM_MHR70)[:NUM_MHR70]
    k2 = _get(out, "pred_keypoints_2d", (2,), NUM_MHR70)[:NUM_MHR70]
    cam_t = _get(out, "pred_cam_t", (3,))
    w, h = float(image_wh[0]), float(image_wh[1])
    if not (w > 0 and h > 0):
        raise TeacherOutputError(f"image size must be positive, got {image_wh}")
    pp = np.array([w / 2.0, h / 2.0]) if principal_point is None else np.asarray(principal_point, float)
    if out.get("focal_length") is not None:
        f = float(np.asarray(out["focal_length"], np.float64).reshape(-1)[0])
    elif focal is not None:
        f = float(focal)
    else:
        ok = np.isfinite(k3).all(1) & np.isfinite(k2).all(1)
        f, _, _ = fit_pinhole(k3[ok] + cam_t, k2[ok])
    if not np.isfinite(f) or f <= 0:
        raise TeacherOutputError(f"focal length must be a positive number, got {f}")
    if box is None:
        if out.get("bbox") is None:
            raise TeacherOutputError("no box given and the output has no 'bbox'")
        box = out["bbox"]
    box = np.asarray(box, np.float64).reshape(-1)[:4]
    if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
        raise TeacherOutputError(f"box must be [x1, y1, x2, y2] with x2 > x1, y2 > y1, got {box}")

    inst = {
        "source": source, "image_path": image_path, "box": box, "image_size": (int(w), int(h)),
        "intrinsics": np.array([[f, 0, pp[0]], [0, f, pp[1]], [0, 0, 1]]),
        "joints_3d": k3, "joints_3d_valid": np.isfinite(k3).all(1),
        "joints_2d": k2, "joints_2d_valid": np.isfinite(k2).all(1),
        "cam_trans": cam_t, "cam_trans_valid": bool(np.isfinite(cam_t).all() and cam_t[2] > 0),
    }
    for key, field, n in (("mhr_model_params", "mhr_params", 204), ("shape_params", "shape_params", 45)):
        if out.get(key) is not None:
            v = _get(out, key, (n,))
            inst[field], inst[field + "_valid"] = v, bool(np.isfinite(v).all())
    return inst


# --------------------------------------------------------------------------------------------------
# The teacher itself (needs torch + sam_3d_body + a checkpoint)
# --------------------------------------------------------------------------------------------------


def _import_sam3d():
    try:
        import sam_3d_body  # noqa: F401
    except ImportError as e:
        raise TeacherUnavailableError(f"SAM 3D Body teacher unavailable ({e}); {INSTALL_HINT}") from None
    return sam_3d_body


def resolve_checkpoint(checkpoint: str | Path) -> tuple[Path, Path | None]:
    """``(checkpoint file, MHR asset path or None)`` from a checkpoint file or a downloaded model folder."""
    p = Path(checkpoint).expanduser()
    if p.is_dir():
        cands = [p / n for n in ("model.ckpt", "last.ckpt")] + sorted(p.glob("*.ckpt"))
        found = next((c for c in cands if c.is_file()), None)
        if found is None:
            raise TeacherUnavailableError(f"no *.ckpt in SAM 3D Body folder {p}; {INSTALL_HINT}")
        p = found
    if not p.is_file():
        raise TeacherUnavailableError(f"SAM 3D Body checkpoint not found: {p}; {INSTALL_HINT}")
    mhr = next((c for c in (p.parent / "assets" / "mhr_model.pt", p.parent.parent / "assets" / "mhr_model.pt")
                if c.is_file()), None)
    return p, mhr


class SAM3DBodyTeacher:
    """Runs SAM 3D Body on given boxes with given intrinsics; returns its raw per-person dicts.

    The boxes come from our own detector and the intrinsics are the ones the runtime assumes
    (``geometry.default_focal`` unless known), so the labels match what the fast network sees.
    """

    name = TEACHER_NAME

    def __init__(self, checkpoint: str | Path, mhr_path: str | Path | None = None, device: str | None = None):
        s3 = _import_sam3d()
        ckpt, found_mhr = resolve_checkpoint(checkpoint)
        mhr = Path(mhr_path) if mhr_path else found_mhr
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        load = getattr(s3, "load_sam_3d_body", None)
        if load is None:
            raise TeacherUnavailableError("installed sam_3d_body has no load_sam_3d_body(); "
                                          f"update it. {INSTALL_HINT}")
        kwargs = {"device": self.device, "mhr_path": str(mhr) if mhr else ""}
        accepted = inspect.signature(load).parameters
        model, cfg = load(str(ckpt), **{k: v for k, v in kwargs.items() if k in accepted})
        self.estimator = s3.SAM3DBodyEstimator(sam_3d_body_model=model, model_cfg=cfg)
        self.version = f"{getattr(s3, '__version__', '?')}:{ckpt.parent.name}/{ckpt.name}"

    def __call__(self, image_rgb: np.ndarray, boxes: np.ndarray, focal: float,
                 principal_point=None) -> list[dict]:
        import torch

        h, w = image_rgb.shape[:2]
        px, py = (w / 2.0, h / 2.0) if principal_point is None else principal_point
        k = torch.tensor([[[focal, 0.0, px], [0.0, focal, py], [0.0, 0.0, 1.0]]], dtype=torch.float32)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return []
        outs = self.estimator.process_one_image(image_rgb, bboxes=boxes, cam_int=k)
        for o in outs:  # the estimator does not always echo the focal it used
            o.setdefault("focal_length", focal)
        return list(outs)
