"""Writing tracked results for other tools: JSON, CSV and NPZ (BVH: :mod:`instanthmr.outputs.bvh`).

Input everywhere is a sequence of *frames*; a frame has ``frame_index``, optionally ``time_s``, and
``persons``, each person an :class:`~instanthmr.runtime.hmr.HMRPrediction` (or anything with its
attributes: ``track_id``, ``joints_valid``, ...). Missing optional fields are skipped, never invented, and a
joint the model does not have (``joints_valid`` False) is written as absent: ``null`` in JSON, empty CSV
cells, NaN plus a ``joints_valid`` mask in NPZ. Every file is written to a temporary name and renamed into
place (:func:`~instanthmr.outputs.atomic.atomic_write`).

Coordinate frames written (also stated in each file's metadata):

* ``joints_2d``: full-image pixels, x right, y down.
* ``joints_3d`` (= ``joints_3d_local``): metres, body-centred, camera axes (x right, y down, z forward).
* ``joints_3d_cam``: metres, camera frame (x right, y down, z forward).
* ``joints_3d_world`` (with the grounded-motion stage): metres, world frame (Y up, the floor at y = 0, +Z
  towards the camera); with ``contacts`` per foot point and the frame's ``ground`` (the floor's up normal in
  the camera frame, the camera's height above it in metres).

The JSON schema is :mod:`instanthmr.outputs.records` (the same as ``demo.py --save-json``).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from instanthmr.core.skeleton import MHR70_NAMES
from instanthmr.outputs.atomic import ResultsWriteError, atomic_write
from instanthmr.outputs.records import JOINT_ORDER, UNITS, document_head, document_tail, frame_record
from instanthmr.video.ground import CONTACT_NAMES, FOOT_POINTS

__all__ = ["PERSON_FIELDS", "SCALAR_FIELDS", "JOINT_FIELDS", "CSV_COLUMNS", "GROUND_CSV_COLUMNS", "ResultsWriteError",
           "TrackSeries",
           "tracks_from_frames", "write_json", "csv_header", "csv_rows", "write_csv", "write_npz",
           "read_npz_tracks"]

#: Per-person array fields written to NPZ when present (name -> trailing shape).
PERSON_FIELDS: dict[str, tuple[int, ...]] = {
    "box": (4,),
    "joints_2d": (70, 2),
    "joints_3d_local": (70, 3),
    "joints_3d_cam": (70, 3),
    "cam_trans": (3,),
    "mhr_params": (204,),
    "shape_params": (45,),
}
SCALAR_FIELDS = ("score", "focal_length")
#: Fields with one row per joint: rows of joints a person does not have are NaN.
JOINT_FIELDS = ("joints_2d", "joints_3d_local", "joints_3d_cam")

CSV_COLUMNS = ("frame_index", "time_s", "track_id", "joint_index", "joint_name", "x_px", "y_px",
               "x_m", "y_m", "z_m", "cam_x_m", "cam_y_m", "cam_z_m", "observed")
#: Columns added after :data:`CSV_COLUMNS` when the grounded-motion stage runs: world-frame joints (m, Y up),
#: the foot points' contact (1/0, empty for other joints) and its confidence, and the frame's floor (the up
#: normal in the camera frame, the camera height in m, 1 while provisional); empty before the floor is known.
GROUND_CSV_COLUMNS = ("world_x_m", "world_y_m", "world_z_m", "contact", "contact_confidence",
                      "ground_nx", "ground_ny", "ground_nz", "camera_height_m", "ground_provisional")
_CONTACT_OF_JOINT = {MHR70_NAMES.index(j): n for n, j in FOOT_POINTS.items()}


def _frame_time(frame, fps: float | None) -> float:
    t = getattr(frame, "time_s", None)
    if t is not None:
        return float(t)
    return float(frame.frame_index) / fps if fps else float("nan")


def valid_mask(person, n: int = 70) -> np.ndarray:
    """(n,) bool: the joints ``person`` has (all unless its ``joints_valid`` says otherwise)."""
    valid = getattr(person, "joints_valid", None)
    return np.ones(n, bool) if valid is None else np.asarray(valid, bool).reshape(n)


# --------------------------------------------------------------------------------------------------
# Per-track arrays
# --------------------------------------------------------------------------------------------------

@dataclass
class TrackSeries:
    """One track's results stacked over the frames it was seen in (time order).

    ``frame_index (T,)`` int, ``time_s (T,)`` seconds, ``fields`` name -> ``(T, ...)`` arrays (see
    :data:`PERSON_FIELDS` for units) plus ``score``/``focal_length`` ``(T,)`` and ``joints_valid (T, 70)``
    bool (the joints each frame really has; the rows of the others are NaN in the joint fields), and after
    the body fit ``joints_observed (T, 70)`` bool (given by the estimator, or by the fitted body alone).
    """

    track_id: int
    frame_index: np.ndarray
    time_s: np.ndarray
    fields: dict[str, np.ndarray]


def tracks_from_frames(frames: Iterable, fps: float | None = None) -> dict[int, TrackSeries]:
    """Group the persons of all frames by ``track_id`` (persons without a track ID are skipped)."""
    rows: dict[int, list] = {}
    for frame in frames:
        t = _frame_time(frame, fps)
        for p in frame.persons:
            tid = getattr(p, "track_id", None)
            if tid is None or int(tid) < 0:
                continue
            rows.setdefault(int(tid), []).append((int(frame.frame_index), t, p))
    out = {}
    for tid, items in sorted(rows.items()):
        items.sort(key=lambda r: r[0])
        valid = np.stack([valid_mask(p) for _, _, p in items])
        fields = {}
        for name in list(PERSON_FIELDS) + list(SCALAR_FIELDS):
            vals = [getattr(p, name, None) for _, _, p in items]
            if all(v is not None for v in vals):
                arr = np.stack([np.asarray(v, dtype=np.float32) for v in vals])
                if name in JOINT_FIELDS and not valid.all():
                    arr[~valid] = np.nan  # never a number that looks real for a joint the model lacks
                fields[name] = arr
        worlds = [getattr(p, "joints_3d_world", None) for _, _, p in items]
        if any(w is not None for w in worlds):  # frames before the floor was known are NaN
            arr = np.stack([np.full((70, 3), np.nan, np.float32) if w is None else np.asarray(w, np.float32)
                            for w in worlds])
            arr[~valid] = np.nan
            fields["joints_3d_world"] = arr
        contacts = [getattr(p, "contacts", None) for _, _, p in items]
        if any(c is not None for c in contacts):
            fields["contacts"] = np.array([[bool((c or {}).get(n, {}).get("contact", False)) for n in CONTACT_NAMES]
                                           for c in contacts])
            fields["contact_confidence"] = np.array(
                [[float((c or {}).get(n, {}).get("confidence", np.nan)) for n in CONTACT_NAMES] for c in contacts],
                np.float32)
        fields["joints_valid"] = valid
        observed = [getattr(p, "joints_observed", None) for _, _, p in items]
        if all(o is not None for o in observed):
            fields["joints_observed"] = np.stack([np.asarray(o, bool) for o in observed])
        out[tid] = TrackSeries(tid, np.array([r[0] for r in items], np.int64),
                               np.array([r[1] for r in items], np.float64), fields)
    return out


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------

def write_json(path, frames: Iterable, fps: float | None = None, meta: dict | None = None,
               summary: dict | None = None) -> Path:
    """All frames as one JSON document in the :mod:`~instanthmr.outputs.records` schema:
    ``{"meta": {fps, units, joint_order, **meta}, "frames": [...], "summary": summary}``."""
    head = document_head({"fps": fps, "units": UNITS, "joint_order": JOINT_ORDER, **(meta or {})})
    body = ",\n".join(json.dumps(frame_record(f.frame_index, _frame_time(f, fps), f, getattr(f, "name", "")))
                      for f in frames)
    with atomic_write(path, "w", what="JSON", encoding="utf-8") as fh:
        fh.write(head + body + document_tail(summary))
    return Path(path)


# --------------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------------

def _cells(arr, j: int, dims: int, ok: bool) -> list[str]:
    if arr is None or not ok:
        return [""] * dims
    return [f"{float(v):.6g}" if np.isfinite(v) else "" for v in np.asarray(arr)[j]]


def csv_header(ground: bool = False) -> str:
    """The header row: :data:`CSV_COLUMNS`, plus :data:`GROUND_CSV_COLUMNS` with ``ground``."""
    buf = io.StringIO()
    csv.writer(buf).writerow(CSV_COLUMNS + (GROUND_CSV_COLUMNS if ground else ()))
    return buf.getvalue()


def _ground_cells(p, j: int, ok: bool, floor: dict | None) -> list[str]:
    cells = _cells(getattr(p, "joints_3d_world", None), j, 3, ok)
    c = (getattr(p, "contacts", None) or {}).get(_CONTACT_OF_JOINT.get(j, ""))
    cells += ["", ""] if c is None else [str(int(c["contact"])), f"{float(c['confidence']):.3g}"]
    if floor is None:
        return cells + [""] * 5
    return cells + [f"{float(v):.6g}" for v in floor["normal_cam"]] + [f"{float(floor['camera_height_m']):.6g}",
                                                                      str(int(bool(floor["provisional"])))]


def csv_rows(frame_index: int, time_s: float, persons, ground: bool = False, floor: dict | None = None) -> str:
    """The CSV text of one frame: a row per person x joint (columns :data:`CSV_COLUMNS`, plus
    :data:`GROUND_CSV_COLUMNS` with ``ground``; ``floor``: the frame's ``ground`` record); a joint the person
    does not have, or a field it lacks, leaves its cells empty."""
    buf = io.StringIO()
    w = csv.writer(buf)
    for p in persons:
        tid = getattr(p, "track_id", None)
        j2, j3, jc = (getattr(p, name, None) for name in JOINT_FIELDS)
        valid = valid_mask(p)
        observed = getattr(p, "joints_observed", None)
        for j, name in enumerate(MHR70_NAMES):
            row = [int(frame_index), f"{time_s:.6f}", -1 if tid is None else int(tid), j, name]
            row += _cells(j2, j, 2, valid[j]) + _cells(j3, j, 3, valid[j]) + _cells(jc, j, 3, valid[j])
            row.append("" if observed is None else int(bool(observed[j])))
            if ground:
                row += _ground_cells(p, j, bool(valid[j]), floor)
            w.writerow(row)
    return buf.getvalue()


def write_csv(path, frames: Iterable, fps: float | None = None) -> int:
    """One row per frame x person x joint (columns :data:`CSV_COLUMNS`); returns the number of rows.

    ``x_m, y_m, z_m`` are the body-centred 3D joints, ``cam_*_m`` the camera-frame ones; ``observed`` is 1
    where the estimator gave the joint and 0 where the fitted body did (empty without the body fit); a column
    whose field a person lacks, or whose joint it does not have, is left empty. Frames with a ``ground`` record
    add :data:`GROUND_CSV_COLUMNS`.
    """
    n = 0
    frames = list(frames)
    ground = any(getattr(f, "ground", None) is not None for f in frames)
    with atomic_write(path, "w", what="CSV", newline="", encoding="utf-8") as fh:
        fh.write(csv_header(ground))
        for f in frames:
            fh.write(csv_rows(f.frame_index, _frame_time(f, fps), f.persons, ground, getattr(f, "ground", None)))
            n += 70 * len(f.persons)
    return n


# --------------------------------------------------------------------------------------------------
# NPZ
# --------------------------------------------------------------------------------------------------

def write_npz(path, frames: Iterable, fps: float | None = None) -> Path:
    """Arrays per track, in one compressed ``.npz``.

    Keys: ``track_ids (K,)``, ``joint_names (70,)``, ``fps ()`` and per track ``track_<id>/<field>`` with
    ``frame_index (T,)``, ``time_s (T,)``, ``joints_valid (T, 70)`` bool, ``joints_observed (T, 70)`` bool
    after the body fit, and every field present (see
    :data:`PERSON_FIELDS`) stacked ``(T, ...)`` (joints a frame does not have are NaN). With the
    grounded-motion stage also ``track_<id>/joints_3d_world (T, 70, 3)`` (m, Y up; NaN before the floor was
    known), ``track_<id>/contacts (T, 6)`` bool and ``contact_confidence (T, 6)`` in the order of
    ``contact_points (6,)``, and per frame with a floor ``ground_frame_index (F,)``, ``ground_normal_cam (F, 3)``,
    ``ground_camera_height_m (F,)``, ``ground_provisional (F,)``, ``ground_focal_estimate_px (F,)`` (NaN where the
    focal was not measured). Read back with :func:`read_npz_tracks`.
    """
    frames = list(frames)
    tracks = tracks_from_frames(frames, fps)
    arrays = {"track_ids": np.array(sorted(tracks), np.int64), "joint_names": np.array(MHR70_NAMES),
              "fps": np.array(np.nan if fps is None else fps, np.float64)}
    grounds = [(f.frame_index, f.ground) for f in frames if getattr(f, "ground", None) is not None]
    if grounds:
        arrays["contact_points"] = np.array(CONTACT_NAMES)
        arrays["ground_frame_index"] = np.array([i for i, _ in grounds], np.int64)
        arrays["ground_normal_cam"] = np.array([g["normal_cam"] for _, g in grounds], np.float64)
        arrays["ground_camera_height_m"] = np.array([g["camera_height_m"] for _, g in grounds], np.float64)
        arrays["ground_provisional"] = np.array([bool(g["provisional"]) for _, g in grounds])
        arrays["ground_focal_estimate_px"] = np.array([g.get("focal_estimate_px", np.nan) for _, g in grounds],
                                                      np.float64)
    for tid, s in tracks.items():
        arrays[f"track_{tid}/frame_index"] = s.frame_index
        arrays[f"track_{tid}/time_s"] = s.time_s
        for name, arr in s.fields.items():
            arrays[f"track_{tid}/{name}"] = arr
    with atomic_write(path, "wb", what="NPZ") as fh:
        np.savez_compressed(fh, **arrays)
    return Path(path)


def read_npz_tracks(path) -> dict[int, dict[str, np.ndarray]]:
    """``{track_id: {field: array}}`` from a file written by :func:`write_npz`."""
    with np.load(path, allow_pickle=False) as z:
        out: dict[int, dict[str, np.ndarray]] = {int(t): {} for t in z["track_ids"]}
        for key in z.files:
            if key.startswith("track_") and "/" in key:
                head, name = key.split("/", 1)
                out[int(head[len("track_"):])][name] = z[key]
    return out
