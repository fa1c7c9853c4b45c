"""The one JSON schema of a run's results (``demo.py --save-json`` and :func:`~instanthmr.outputs.files.write_json`).

A document is ``{"meta": {...}, "frames": [frame, ...], "summary": {...}}``. A frame (:func:`frame_record`):
``frame_index``, ``file`` (photos of a folder only), ``time_s``, ``detector_ran``, ``reused_boxes``,
``timings`` (ms) and ``persons``. A person (:func:`person_record`): ``track_id``, ``source``, ``confidence``
(when tracked), ``box`` (px xyxy), ``score``, ``joints_2d`` (70x2 px), ``joints_3d_cam`` (70x3 m, camera
frame x right, y down, z forward), ``cam_trans`` (m), ``focal_length`` (px), ``mhr_params`` (204),
``shape_params`` (45); with the grounded-motion stage (:mod:`instanthmr.video.ground_stage`) also
``joints_3d_world`` (70x3 m, Y up, the floor at y = 0) and ``contacts`` (``{"left_heel": {"contact": true,
"confidence": 0.93}, ...}``), and per frame ``ground`` (``{"normal_cam": [nx, ny, nz], "camera_height_m": h,
"provisional": false}``: the floor's up normal in the camera frame and the camera's height above it).
After the per-track body fit (:mod:`instanthmr.video.body_fit`) also ``joints_observed`` (70 booleans: the
estimator gave the joint, or it comes from the fitted MHR body alone). Pixels are rounded to 0.01, metres to
0.1 mm.

Absent values are never invented: a joint the model does not have (``joints_valid`` False) is written as
``null`` coordinates (``[null, null]``), any other non-finite number as ``null``, and a field a model does
not predict (``mhr_params`` None) is left out.
"""

from __future__ import annotations

import math

import numpy as np

#: What the numbers of a record mean (the ``units`` of a document's ``meta``).
UNITS = {"box": "px xyxy", "joints_2d": "px", "joints_3d_cam": "m, camera frame x right y down z forward",
         "cam_trans": "m", "focal_length": "px", "timings": "ms",
         "joints_3d_world": "m, world frame Y up, floor at y = 0, +Z towards the camera",
         "ground": "normal_cam: unit up normal of the floor in the camera frame; camera_height_m: m above it",
         "track_id": "int, the same person keeps it across frames (never reused in a run)",
         "joints_observed": "bool per joint: given by the estimator (true) or by the fitted MHR body (false)"}
JOINT_ORDER = "MHR70 (instanthmr.core.skeleton.MHR70_NAMES)"


def _num(x, nd: int):
    """A rounded float, or ``None`` when it is not finite (JSON has no NaN)."""
    x = float(x)
    return round(x, nd) if math.isfinite(x) else None


def _arr(a, nd: int, valid=None) -> list:
    """Nested lists rounded to ``nd`` decimals; rows where ``valid`` is False and non-finite numbers become
    ``None``."""
    a = np.round(np.asarray(a, dtype=np.float64), nd)
    bad = ~np.isfinite(a)
    if valid is not None:
        bad |= ~np.asarray(valid, bool).reshape(a.shape[:1] + (1,) * (a.ndim - 1))
    if not bad.any():
        return a.tolist()
    out = a.astype(object)
    out[bad] = None
    return out.tolist()


def joints_mask(person) -> np.ndarray | None:
    """(J,) bool of the joints a person really has, or None when all are valid."""
    valid = getattr(person, "joints_valid", None)
    if valid is None:
        return None
    valid = np.asarray(valid, bool)
    return None if valid.all() else valid


def person_record(p) -> dict:
    """One person as JSON-ready numbers (see the module docstring)."""
    rec: dict = {}
    if getattr(p, "track_id", None) is not None:
        conf = getattr(p, "confidence", None)
        rec = {"track_id": int(p.track_id), "source": str(getattr(p, "source", "detector")),
               "confidence": _num(p.score if conf is None else conf, 4)}
    valid = joints_mask(p)
    rec.update({"box": _arr(p.box, 2), "score": _num(p.score, 4), "joints_2d": _arr(p.joints_2d, 2, valid),
                "joints_3d_cam": _arr(p.joints_3d_cam, 4, valid), "cam_trans": _arr(p.cam_trans, 4),
                "focal_length": _num(p.focal_length, 3)})
    for name in ("mhr_params", "shape_params"):
        value = getattr(p, name, None)
        if value is not None:
            rec[name] = _arr(value, 5)
    world = getattr(p, "joints_3d_world", None)
    if world is not None:
        rec["joints_3d_world"] = _arr(world, 4, valid)
    if getattr(p, "contacts", None) is not None:
        rec["contacts"] = p.contacts
    observed = getattr(p, "joints_observed", None)
    if observed is not None:
        rec["joints_observed"] = [bool(v) for v in np.asarray(observed, bool).reshape(-1)]
    return rec


def frame_record(frame_index: int, time_s: float, result, file: str = "") -> dict:
    """One frame: where it is in the source, what the detector did, the timings and every person.
    ``result`` is a per-frame result (``persons``, ``detector_ran``, ``reused``, ``detector_ms``,
    ``hmr_ms``, ``total_ms``); fields it lacks are left out."""
    rec: dict = {"frame_index": int(frame_index)}
    if file:
        rec["file"] = file
    rec["time_s"] = _num(time_s, 4)
    if hasattr(result, "detector_ran"):
        rec["detector_ran"] = bool(result.detector_ran)
        rec["reused_boxes"] = bool(getattr(result, "reused", False))
    if hasattr(result, "total_ms"):
        rec["timings"] = {k: round(float(getattr(result, k)), 3) for k in ("detector_ms", "hmr_ms", "total_ms")}
    if getattr(result, "ground", None) is not None:
        rec["ground"] = result.ground
    rec["persons"] = [person_record(p) for p in result.persons]
    return rec


def document_head(meta: dict) -> str:
    """The text of a document up to its first frame (frames follow, joined by ``,\\n``)."""
    import json

    return '{"meta": ' + json.dumps(_clean(meta), default=_jsonable) + ',\n"frames": [\n'


def document_tail(summary: dict | None) -> str:
    """The text after the last frame."""
    import json

    return '\n],\n"summary": ' + json.dumps(_clean(summary or {}), default=_jsonable) + "}\n"


def _clean(x):
    """``x`` with non-finite floats as ``None`` (JSON has no NaN)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)
