"""Grounded motion as one stage of a run: the floor, the world frame, foot contacts, root motion and foot lock
(:mod:`instanthmr.video.ground`) applied to tracked frames.

    stage = GroundStage(fps=30.0)                 # or GroundStage(fps, floor=Floor.parse("0,-1,0,1.6"))
    result = stage(tracking(image, i, t))          # live, causal: one frame at a time
    frames = stage.offline(frames)                 # a whole file, two-sided (after offline smoothing)

Each person gets ``joints_3d_world`` (70, 3): metres, Y up, the floor at y = 0, origin on the floor under the
first position of the first track, +Z towards the camera; and ``contacts``: ``{"left_heel": {"contact": bool,
"confidence": float}, ...}`` for heels, big toes and ankles. Each frame gets ``ground``: ``{"normal_cam":
[nx, ny, nz] (unit, up, camera frame x right y down z forward), "camera_height_m": h, "provisional": bool}``
once a floor is known (frames before that keep ``None`` and their persons no world joints).
Persons need ``track_id``, ``joints_3d_cam`` (camera frame, metres) and optionally ``joints_valid``.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from instanthmr.core.skeleton import MHR70_INDEX
from instanthmr.video.ground import (
    CONTACT_NAMES,
    FOOT_JOINTS,
    REST_HEIGHT_M,
    ContactConfig,
    ContactDetector,
    Floor,
    FloorConfig,
    FloorEstimator,
    FootLock,
    LockConfig,
    WorldFrame,
    contacts_offline,
    lock_track_offline,
)

_HIPS = [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]


def _joints(p) -> np.ndarray:
    """A person's camera-frame joints (70, 3) with the ones it lacks as NaN."""
    j = np.array(p.joints_3d_cam, np.float64)
    valid = getattr(p, "joints_valid", None)
    if valid is not None:
        j[~np.asarray(valid, bool)] = np.nan
    return j


def _root(j: np.ndarray) -> np.ndarray:
    """Mid-hip (camera frame, m), the track's position."""
    return j[_HIPS].mean(0)


def contacts_record(contact: np.ndarray, confidence: np.ndarray, known: np.ndarray) -> dict:
    """``{name: {"contact": bool, "confidence": float}}`` for the foot points the person has (``known``)."""
    return {n: {"contact": bool(c), "confidence": round(float(q), 3)}
            for n, c, q, k in zip(CONTACT_NAMES, contact, confidence, known) if k}


class GroundStage:
    """The grounded-motion stage (see the module docstring). ``floor``: a given floor (e.g. ``--floor``, from a
    calibration): used as it is, never re-estimated. ``timing``: :attr:`ms_per_person` keeps the cost of the
    per-person work (contacts, world frame, lock) and :attr:`fit_ms` the floor estimator's."""

    def __init__(self, fps: float, floor: Floor | None = None, contact: ContactConfig = ContactConfig(),
                 floor_cfg: FloorConfig = FloorConfig(), lock: LockConfig = LockConfig()):
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.given = floor
        self.contact_cfg, self.floor_cfg, self.lock_cfg = contact, floor_cfg, lock
        self.reset()

    def reset(self) -> None:
        """A new source: nothing carries over."""
        self.estimator = FloorEstimator(self.floor_cfg)
        self.anchor: np.ndarray | None = None  # the first position of the first track (camera frame)
        self.world: WorldFrame | None = None
        self._world_floor: Floor | None = None
        self.detectors: dict[int, ContactDetector] = {}
        self.locks: dict[int, FootLock] = {}
        self.last_time: dict[int, float] = {}
        self.person_ms: list[float] = []
        self.fit_ms: list[float] = []

    @property
    def floor(self) -> Floor | None:
        return self.given if self.given is not None else self.estimator.floor

    @property
    def ms_per_person(self) -> float:
        """Mean cost (ms) of the per-person work per person per frame, floor estimation excluded."""
        return float(np.mean(self.person_ms)) if self.person_ms else float("nan")

    def _world_for(self, floor: Floor) -> WorldFrame:
        if self.world is None or floor is not self._world_floor:
            self.world, self._world_floor = WorldFrame.from_floor(floor, self.anchor), floor
            for lock in self.locks.values():  # anchors of another world frame mean nothing in this one
                lock.anchor[:] = np.nan
        return self.world

    # ---- live ------------------------------------------------------------------------------------
    def __call__(self, result):
        """One tracked frame -> the same frame with ``ground`` and each person's ``joints_3d_world`` and
        ``contacts`` (causal: only this and earlier frames are used)."""
        t = result.time_s if getattr(result, "time_s", None) is not None else result.frame_index / self.fps
        joints = [_joints(p) for p in result.persons]
        t0 = time.perf_counter()
        if self.given is None:
            for p, j in zip(result.persons, joints):
                if p.track_id is not None:
                    self.estimator.observe(int(p.track_id), t, j)
            for tid in getattr(result, "ended_tracks", ()) or ():
                self.estimator.end_track(int(tid), t)
        self.fit_ms.append((time.perf_counter() - t0) * 1e3)
        for tid in getattr(result, "ended_tracks", ()) or ():
            for table in (self.detectors, self.locks, self.last_time):
                table.pop(int(tid), None)
        if self.anchor is None:
            for j in joints:
                if np.isfinite(_root(j)).all():
                    self.anchor = _root(j)
                    break
        floor = self.floor
        if floor is None or self.anchor is None:
            return result
        world = self._world_for(floor)
        persons = []
        for p, j in zip(result.persons, joints):
            t1 = time.perf_counter()
            persons.append(self._person(p, j, t, floor, world))
            self.person_ms.append((time.perf_counter() - t1) * 1e3)
        return dataclasses.replace(result, persons=persons, ground=floor.record())

    def _person(self, p, j: np.ndarray, t: float, floor: Floor, world: WorldFrame):
        tid = -1 if p.track_id is None else int(p.track_id)
        if tid not in self.detectors:
            self.detectors[tid] = ContactDetector(self.contact_cfg)
            self.locks[tid] = FootLock(self.fps, self.lock_cfg)
        det, lock = self.detectors[tid], self.locks[tid]
        feet = j[FOOT_JOINTS]
        contact, conf = det.update(t, floor.height(feet) - REST_HEIGHT_M, feet)
        dt = t - self.last_time.get(tid, t - 1.0 / self.fps)
        self.last_time[tid] = t
        w = lock.update(world.to_world(j), contact, dt if dt > 0 else 1.0 / self.fps)
        return dataclasses.replace(p, joints_3d_world=w.astype(np.float32),
                                   contacts=contacts_record(contact, conf, np.isfinite(feet).all(1)))

    # ---- a whole file ----------------------------------------------------------------------------
    def offline(self, frames: list) -> list:
        """Every frame of a file at once (two-sided: the floor from all of it, contacts with centred speeds,
        the lock blended on both sides). Returns new frames; the input is not modified."""
        self.reset()
        times = [f.time_s if getattr(f, "time_s", None) is not None else f.frame_index / self.fps for f in frames]
        where: dict[int, list[tuple[int, int]]] = {}
        cam: dict[tuple[int, int], np.ndarray] = {}
        for fi, (f, t) in enumerate(zip(frames, times)):
            for pi, p in enumerate(f.persons):
                if p.track_id is None:
                    continue
                j = cam[fi, pi] = _joints(p)
                where.setdefault(int(p.track_id), []).append((fi, pi))
                if self.given is None:
                    self.estimator.observe(int(p.track_id), t, j)
                if self.anchor is None and np.isfinite(_root(j)).all():
                    self.anchor = _root(j)
        floor = self.given if self.given is not None else self.estimator.fit_all()
        if floor is None or self.anchor is None:
            return list(frames)
        world = WorldFrame.from_floor(floor, self.anchor)
        persons = [list(f.persons) for f in frames]
        for tid, slots in where.items():
            ts = np.array([times[fi] for fi, _ in slots])
            j = np.stack([cam[s] for s in slots])
            feet = j[:, FOOT_JOINTS]
            contact, conf = contacts_offline(ts, floor.height(feet) - REST_HEIGHT_M, feet, self.contact_cfg)
            locked = lock_track_offline(ts, world.to_world(j), contact, self.lock_cfg)
            for k, (fi, pi) in enumerate(slots):
                persons[fi][pi] = dataclasses.replace(
                    persons[fi][pi], joints_3d_world=locked[k].astype(np.float32),
                    contacts=contacts_record(contact[k], conf[k], np.isfinite(feet[k]).all(1)))
        rec = floor.record()
        return [dataclasses.replace(f, persons=ps, ground=rec) for f, ps in zip(frames, persons)]
