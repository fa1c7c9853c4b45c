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
    depth_scale,
    gaussian_lowpass,
    lock_track_offline,
    lowest_sole,
    motion_points,
    unstretch,
)

#: Time constant (s) of the person's depth that converts their 2D foot motion to metres (motion_points).
DEPTH_REF_S = 1.0
#: Frames of a track's recent feet that its depth_scale is measured on (live).
SCALE_FRAMES = 300
SCALE_EVERY = 10  # frames between two measurements
SCALE_EASE_S = 1.0  # time constant (s) of the eased scale

_HIPS = [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]


def _joints(p) -> np.ndarray:
    """A person's camera-frame joints (70, 3) with the ones it lacks as NaN."""
    j = np.array(p.joints_3d_cam, np.float64)
    valid = getattr(p, "joints_valid", None)
    if valid is not None:
        j[~np.asarray(valid, bool)] = np.nan
    return j


def _pixels(p) -> np.ndarray | None:
    """A person's 2D foot points (6, 2) px, NaN where it lacks them; None without 2D joints."""
    uv = getattr(p, "joints_2d", None)
    if uv is None:
        return None
    uv = np.array(uv, np.float64)[FOOT_JOINTS]
    valid = getattr(p, "joints_valid", None)
    if valid is not None:
        uv[~np.asarray(valid, bool)[FOOT_JOINTS]] = np.nan
    return uv


def _root(j: np.ndarray) -> np.ndarray:
    """Mid-hip (camera frame, m), the track's position."""
    return j[_HIPS].mean(0)


def _unstretched(j: np.ndarray, floor: Floor) -> np.ndarray:
    """Camera-frame joints (70, 3) or a point (3,) with the floor's depth stretch taken out (unchanged
    without one)."""
    if floor.depth_stretch is None:
        return j
    root = _root(j) if j.ndim == 2 else j
    return unstretch(j, root[2], floor.depth_stretch)


def _ground_record(floor: Floor, persons) -> dict:
    rec = floor.record()
    if floor.depth_stretch is not None and persons:
        rec["focal_estimate_px"] = round(float(persons[0].focal_length) / floor.depth_stretch, 1)
    return rec


def contacts_record(contact: np.ndarray, confidence: np.ndarray, known: np.ndarray) -> dict:
    """``{name: {"contact": bool, "confidence": float}}`` for the foot points the person has (``known``)."""
    return {n: {"contact": bool(c), "confidence": round(float(q), 3)}
            for n, c, q, k in zip(CONTACT_NAMES, contact, confidence, known) if k}


class GroundStage:
    """The grounded-motion stage (see the module docstring). ``floor``: a given floor (e.g. ``--floor``, from a
    calibration): used as it is, never re-estimated. ``timing``: :attr:`ms_per_person` keeps the cost of the
    per-person work (contacts, world frame, lock) and :attr:`fit_ms` the floor estimator's. ``estimate_focal``:
    let the floor fit measure the depth stretch of a wrong focal length (:func:`~instanthmr.video.ground.depth_stretch`;
    only where the feet spread in depth under a tilted camera) and take it out of the world joints; the
    frame's ``ground`` then holds ``depth_stretch`` and ``focal_estimate_px``. Off when the focal was given."""

    def __init__(self, fps: float, floor: Floor | None = None, contact: ContactConfig = ContactConfig(),
                 floor_cfg: FloorConfig = FloorConfig(), lock: LockConfig = LockConfig(), estimate_focal: bool = True):
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.given = floor
        self.estimate_focal = bool(estimate_focal) and floor is None
        self.contact_cfg, self.floor_cfg, self.lock_cfg = contact, floor_cfg, lock
        self.reset()

    def reset(self) -> None:
        """A new source: nothing carries over."""
        self.estimator = FloorEstimator(self.floor_cfg, stretch=self.estimate_focal)
        self.anchor: np.ndarray | None = None  # the first position of the first track (camera frame)
        self.world: WorldFrame | None = None
        self._world_floor: Floor | None = None
        self.detectors: dict[int, ContactDetector] = {}
        self.locks: dict[int, FootLock] = {}
        self.last_time: dict[int, float] = {}
        self.depth_ref: dict[int, float] = {}  # per track: its smoothed depth (m), for motion_points
        self.feet_log: dict[int, list] = {}  # per track: rings of its lowest sole points and roots, frames written
        self.scales: dict[int, float] = {}  # per track: the depth_scale applied (eased)
        self.targets: dict[int, float] = {}  # per track: the last depth_scale measured
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
            self.world, self._world_floor = WorldFrame.from_floor(floor, _unstretched(self.anchor, floor)), floor
            for lock in self.locks.values():  # anchors of another world frame mean nothing in this one
                lock.anchor[:] = np.nan
        return self.world

    # ---- live ------------------------------------------------------------------------------------
    def __call__(self, result):
        """One tracked frame -> the same frame with ``ground`` and each person's ``joints_3d_world`` and
        ``contacts`` (causal: only this and earlier frames are used)."""
        t = result.time_s if getattr(result, "time_s", None) is not None else result.frame_index / self.fps
        joints = [_joints(p) for p in result.persons]
        motion = [self._motion(p, j, t) for p, j in zip(result.persons, joints)]
        t0 = time.perf_counter()
        if self.given is None:
            for p, j, (m, c) in zip(result.persons, joints, motion):
                if p.track_id is not None:
                    self.estimator.observe(int(p.track_id), t, j, m, c)
            for tid in getattr(result, "ended_tracks", ()) or ():
                self.estimator.end_track(int(tid), t)
        self.fit_ms.append((time.perf_counter() - t0) * 1e3)
        for tid in getattr(result, "ended_tracks", ()) or ():
            for table in (self.detectors, self.locks, self.last_time, self.depth_ref, self.feet_log, self.scales,
                          self.targets):
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
        for p, j, m in zip(result.persons, joints, motion):
            t1 = time.perf_counter()
            persons.append(self._person(p, j, m, t, floor, world))
            self.person_ms.append((time.perf_counter() - t1) * 1e3)
        return dataclasses.replace(result, persons=persons, ground=_ground_record(floor, result.persons))

    def _motion(self, p, j: np.ndarray, t: float) -> tuple[np.ndarray, float]:
        """The person's foot points for speeds (:func:`motion_points`) and their m-per-px scale (their
        causally smoothed depth over the focal)."""
        tid = -1 if p.track_id is None else int(p.track_id)
        z = float(_root(j)[2])
        ref = self.depth_ref.get(tid)
        if ref is None or not np.isfinite(ref):
            ref = z
        elif np.isfinite(z):
            dt = t - self.last_time.get(tid, t - 1.0 / self.fps)
            ref += (1.0 - np.exp(-max(dt, 0.0) / DEPTH_REF_S)) * (z - ref)
        self.depth_ref[tid] = ref
        focal = float(getattr(p, "focal_length", 0.0) or 0.0)
        pp = getattr(p, "principal_point", None)
        pix = _pixels(p) if pp is not None else None
        return (motion_points(j[FOOT_JOINTS], pix, np.zeros(2) if pp is None else pp, focal,
                              self.contact_cfg.depth_weight), ref / focal if focal > 0 else 1.0)

    def _person(self, p, j: np.ndarray, motion: tuple, t: float, floor: Floor, world: WorldFrame):
        tid = -1 if p.track_id is None else int(p.track_id)
        j = _unstretched(j, floor)
        if tid not in self.detectors:
            self.detectors[tid] = ContactDetector(self.contact_cfg)
            self.locks[tid] = FootLock(self.fps, self.lock_cfg)
            self.feet_log[tid] = [np.full((SCALE_FRAMES, 3), np.nan), np.full((SCALE_FRAMES, 3), np.nan), 0]
        det, lock = self.detectors[tid], self.locks[tid]
        log = self.feet_log[tid]
        log[0][log[2] % SCALE_FRAMES], log[1][log[2] % SCALE_FRAMES] = lowest_sole(floor, j), _root(j)
        log[2] += 1
        if log[2] % SCALE_EVERY == 1 or tid not in self.targets:  # it changes slowly: not every frame
            self.targets[tid] = depth_scale(floor, log[0], log[1])  # NaN rows (not yet filled) are skipped
        # eased towards the measurement (a jump in depth would be a jump of the whole body)
        prev = self.scales.get(tid, 1.0)
        scale = self.scales[tid] = prev + (1.0 - np.exp(-(1.0 / self.fps) / SCALE_EASE_S)) * (self.targets[tid] - prev)
        j = j + (scale - 1.0) * _root(j)  # the person slid along the camera rays onto the floor
        feet = j[FOOT_JOINTS]
        contact, conf = det.update(t, floor.height(feet) - REST_HEIGHT_M, *motion)
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
        for fi, f in enumerate(frames):
            for pi, p in enumerate(f.persons):
                if p.track_id is not None:
                    where.setdefault(int(p.track_id), []).append((fi, pi))
        tracks = {}  # per track: times (T,), camera-frame joints (T, 70, 3), foot motion points (T, 6, 3)
        for tid, slots in where.items():
            ts = np.array([times[fi] for fi, _ in slots])
            ps = [frames[fi].persons[pi] for fi, pi in slots]
            j = np.stack([_joints(p) for p in ps])
            z = j[:, _HIPS, 2].mean(1)
            ok = np.isfinite(z)
            ref = gaussian_lowpass(z[ok], ts[ok], DEPTH_REF_S)
            ref = np.interp(ts, ts[ok], ref) if ok.any() else z
            focal = np.array([float(p.focal_length or 0.0) for p in ps])
            m = np.stack([motion_points(j[k, FOOT_JOINTS], _pixels(p), p.principal_point, focal[k],
                                        self.contact_cfg.depth_weight) for k, p in enumerate(ps)])
            scale = np.where(focal > 0, ref / np.maximum(focal, 1e-9), 1.0)
            tracks[tid] = (ts, j, m, scale)
            for k in range(len(ts)):
                if self.given is None:
                    self.estimator.observe(tid, ts[k], j[k], m[k], scale[k])
            self.estimator.end_track(tid, ts[-1])
        for f in frames:  # the first position of the first track: the earliest frame's first person
            roots = [_root(_joints(p)) for p in f.persons if p.track_id is not None]
            roots = [r for r in roots if np.isfinite(r).all()]
            if roots:
                self.anchor = roots[0]
                break
        floor = self.given if self.given is not None else self.estimator.fit_all()
        if floor is None or self.anchor is None:
            return list(frames)
        world = WorldFrame.from_floor(floor, _unstretched(self.anchor, floor))
        persons = [list(f.persons) for f in frames]
        for tid, slots in where.items():
            ts, j, m, xy_scale = tracks[tid]
            if floor.depth_stretch is not None:
                j = unstretch(j, j[:, _HIPS, 2].mean(1), floor.depth_stretch)
            roots = j[:, _HIPS].mean(1)
            scale = self.scales[tid] = depth_scale(floor, lowest_sole(floor, j), roots)
            j = j + (scale - 1.0) * roots[:, None]  # the person slid along the camera rays onto the floor
            feet = j[:, FOOT_JOINTS]
            contact, conf = contacts_offline(ts, floor.height(feet) - REST_HEIGHT_M, m, self.contact_cfg, xy_scale)
            locked = lock_track_offline(ts, world.to_world(j), contact, self.lock_cfg)
            for k, (fi, pi) in enumerate(slots):
                persons[fi][pi] = dataclasses.replace(
                    persons[fi][pi], joints_3d_world=locked[k].astype(np.float32),
                    contacts=contacts_record(contact[k], conf[k], np.isfinite(feet[k]).all(1)))
        return [dataclasses.replace(f, persons=ps, ground=_ground_record(floor, ps)) for f, ps in zip(frames, persons)]
