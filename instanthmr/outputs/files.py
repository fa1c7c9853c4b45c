"""Writing tracked results for other tools: JSON, CSV and NPZ (BVH: :mod:`instanthmr.outputs.bvh`).

Input everywhere is a sequence of *frames*; a frame has ``frame_index``, optionally ``time_s``, and
``persons``; a person has ``track_id`` and the :class:`~instanthmr.runtime.hmr.HMRPrediction` fields, either
directly or on a wrapped ``prediction`` (as :class:`~instanthmr.video.tracking.TrackedPerson` does). Missing
optional fields are skipped, never invented.

Coordinate frames written (also stated in each file's metadata):

* ``joints_2d``: full-image pixels, x right, y down.
* ``joints_3d`` (= ``joints_3d_local``): metres, body-centred, camera axes (x right, y down, z forward).
* ``joints_3d_cam``: metres, camera frame (x right, y down, z forward).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from instanthmr.core.skeleton import MHR70_NAMES

#: Per-person array fields written to JSON/NPZ when present (name -> trailing shape, for the NPZ schema).
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

CSV_COLUMNS = ("frame_index", "time_s", "track_id", "joint_index", "joint_name", "x_px", "y_px",
               "x_m", "y_m", "z_m", "cam_x_m", "cam_y_m", "cam_z_m")


class ResultsWriteError(RuntimeError):
    """Results could not be written (path not writable, nothing to write)."""


def _get(person, name: str):
    """A field of a person, looked up on the person, then on its wrapped ``prediction``."""
    if hasattr(person, name):
        return getattr(person, name)
    inner = getattr(person, "prediction", None)
    return getattr(inner, name, None) if inner is not None else None


def _frame_time(frame, fps: float | None) -> float:
    t = getattr(frame, "time_s", None)
    if t is not None:
        return float(t)
    return float(frame.frame_index) / fps if fps else float("nan")


def _open_for_write(path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResultsWriteError(f"{path}: cannot create folder ({e.strerror or e})") from None
    return path


# --------------------------------------------------------------------------------------------------
# Per-track arrays
# --------------------------------------------------------------------------------------------------

@dataclass
class TrackSeries:
    """One track's results stacked over the frames it was seen in (time order).

    ``frame_index (T,)`` int, ``time_s (T,)`` seconds, ``fields`` name -> ``(T, ...)`` arrays (see
    :data:`PERSON_FIELDS` for units) plus ``score``/``focal_length`` ``(T,)``.
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
            tid = _get(p, "track_id")
            if tid is None or int(tid) < 0:
                continue
            rows.setdefault(int(tid), []).append((int(frame.frame_index), t, p))
    out = {}
    for tid, items in sorted(rows.items()):
        items.sort(key=lambda r: r[0])
        fields = {}
        for name in list(PERSON_FIELDS) + list(SCALAR_FIELDS):
            vals = [_get(p, name) for _, _, p in items]
            if all(v is not None for v in vals):
                fields[name] = np.stack([np.asarray(v, dtype=np.float32) for v in vals])
        out[tid] = TrackSeries(tid, np.array([r[0] for r in items], np.int64),
                               np.array([r[1] for r in items], np.float64), fields)
    return out


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------

def _round(a, nd: int = 5):
    return np.round(np.asarray(a, dtype=np.float64), nd).tolist()


def person_record(person) -> dict:
    """A JSON-ready dict of one person (``track_id`` first; arrays as nested lists)."""
    rec: dict = {}
    tid = _get(person, "track_id")
    if tid is not None:
        rec["track_id"] = int(tid)
    for name in SCALAR_FIELDS:
        v = _get(person, name)
        if v is not None:
            rec[name] = round(float(v), 5)
    for name in PERSON_FIELDS:
        v = _get(person, name)
        if v is not None:
            rec[name] = _round(v)
    return rec


def write_json(path, frames: Iterable, fps: float | None = None, meta: dict | None = None) -> Path:
    """All frames as one JSON document ``{"meta": ..., "frames": [{frame_index, time_s, persons}]}``."""
    path = _open_for_write(path)
    doc = {
        "meta": {
            "joint_names": list(MHR70_NAMES),
            "units": {"joints_2d": "px (x right, y down)", "joints_3d_local": "m, body-centred, camera axes",
                      "joints_3d_cam": "m, camera frame (x right, y down, z forward)", "cam_trans": "m"},
            "fps": fps,
            **(meta or {}),
        },
        "frames": [
            {"frame_index": int(f.frame_index), "time_s": _frame_time(f, fps),
             "persons": [person_record(p) for p in f.persons]}
            for f in frames
        ],
    }
    try:
        path.write_text(json.dumps(doc, allow_nan=False, default=float).replace("NaN", "null"))
    except (OSError, ValueError) as e:
        raise ResultsWriteError(f"{path}: cannot write JSON ({e})") from None
    return path


# --------------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------------

def write_csv(path, frames: Iterable, fps: float | None = None) -> int:
    """One row per frame x person x joint (columns :data:`CSV_COLUMNS`); returns the number of rows.

    ``x_m, y_m, z_m`` are the body-centred 3D joints, ``cam_*_m`` the camera-frame ones; a column whose
    field a person lacks is left empty.
    """
    path = _open_for_write(path)
    n = 0
    try:
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_COLUMNS)
            for f in frames:
                t = _frame_time(f, fps)
                for p in f.persons:
                    tid = _get(p, "track_id")
                    j2 = _get(p, "joints_2d")
                    j3 = _get(p, "joints_3d_local")
                    jc = _get(p, "joints_3d_cam")
                    for j, name in enumerate(MHR70_NAMES):
                        row = [int(f.frame_index), f"{t:.6f}", -1 if tid is None else int(tid), j, name]
                        for arr, dims in ((j2, 2), (j3, 3), (jc, 3)):
                            row += [""] * dims if arr is None else [f"{float(v):.6g}" for v in np.asarray(arr)[j]]
                        w.writerow(row)
                        n += 1
    except OSError as e:
        raise ResultsWriteError(f"{path}: cannot write CSV ({e.strerror or e})") from None
    return n


# --------------------------------------------------------------------------------------------------
# NPZ
# --------------------------------------------------------------------------------------------------

def write_npz(path, frames: Iterable, fps: float | None = None) -> Path:
    """Arrays per track, in one compressed ``.npz``.

    Keys: ``track_ids (K,)``, ``joint_names (70,)``, ``fps ()`` and per track ``track_<id>/<field>`` with
    ``frame_index (T,)``, ``time_s (T,)`` and every field present (see :data:`PERSON_FIELDS`) stacked
    ``(T, ...)``. Read back with :func:`read_npz_tracks`.
    """
    path = _open_for_write(path)
    tracks = tracks_from_frames(frames, fps)
    arrays = {"track_ids": np.array(sorted(tracks), np.int64), "joint_names": np.array(MHR70_NAMES),
              "fps": np.array(np.nan if fps is None else fps, np.float64)}
    for tid, s in tracks.items():
        arrays[f"track_{tid}/frame_index"] = s.frame_index
        arrays[f"track_{tid}/time_s"] = s.time_s
        for name, arr in s.fields.items():
            arrays[f"track_{tid}/{name}"] = arr
    try:
        with path.open("wb") as fh:
            np.savez_compressed(fh, **arrays)
    except OSError as e:
        raise ResultsWriteError(f"{path}: cannot write NPZ ({e.strerror or e})") from None
    return path


def read_npz_tracks(path) -> dict[int, dict[str, np.ndarray]]:
    """``{track_id: {field: array}}`` from a file written by :func:`write_npz`."""
    with np.load(path, allow_pickle=False) as z:
        out: dict[int, dict[str, np.ndarray]] = {int(t): {} for t in z["track_ids"]}
        for key in z.files:
            if key.startswith("track_") and "/" in key:
                head, name = key.split("/", 1)
                out[int(head[len("track_"):])][name] = z[key]
    return out
