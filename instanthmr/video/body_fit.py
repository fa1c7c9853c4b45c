"""The per-track MHR body fit stage: every tracked person gets a fitted MHR body, left and right kept.

Runs after tracking (each person has a ``track_id``) on the persons of each
:class:`~instanthmr.runtime.pipeline.FrameResult`::

    stage = BodyFitStage()                      # the shipped LOD 6 model unless given one
    result = stage(tracking(image, index, t))   # live: each person filled in place of the estimator's joints
    frames = stage.finish(frames)               # files (--smooth offline): left/right decided over whole tracks
    frames = stage.rederive(smooth_frames_offline(frames, fps))   # the joints of the smoothed bodies

What it writes into each person (:class:`~instanthmr.runtime.hmr.HMRPrediction`): ``mhr_params`` (204),
``shape_params`` (45), all 70 joints from the fitted body (``joints_3d_local`` metres relative to the MHR
model origin, camera axes; ``joints_3d_cam``; ``joints_2d`` px: the estimator's own 2D where it gave the joint
(sides corrected), the fitted body's projection elsewhere), ``cam_trans`` (m, the model origin in the camera)
and ``joints_observed`` (70 bool: given by the estimator, or by the fitted body alone); ``joints_valid``
becomes None (all 70 are real now).

Per track (see :mod:`instanthmr.body.fit` for the fit itself):

* **Shape**: the mean MHR body until the track has ``shape_frames`` good frames (torso and limbs seen in 3D),
  then bone lengths estimated from them (:func:`~instanthmr.body.fit.estimate_bone_params`) and held for
  the rest of the track, so every bone keeps its length; a new track starts anew. With the network's own
  ``shape_params`` / bone parameters, their median over those frames is held instead. :meth:`finish` refits
  the first frames with the held shape, so in files every frame of a track has the same bones.
* **Left and right**: each frame is read two ways, the labels as given and mirrored (left/right swapped, depth
  reflected about the hips: a person seen from the back with the sides swapped). A two-state Viterbi
  decides: per frame each reading costs its fit's data and limit terms (their difference shrunk when the
  torso is seen side-on, where the mirrored body is nearly the same body; the mirrored one a prior more,
  smaller where MediaPipe reads a clear front: its failure is a back read as a front, in stretches) and
  what the hands' look says (MediaPipe's handedness: a right hand at the "left" wrist is evidence for the
  mirrored reading) and which way the person walks (people face where they walk: a reading whose torso
  faces against the track's own brisk walk in depth pays for it), and going from a reading on one frame to
  a reading on the next costs a switch plus their continuity (how far the hip-centred 3D joints move, how
  far the torso heading turns: observation-level, no fit needed). The mirrored reading is FITTED only when
  it matters: when continuity alone brings it within ``margin`` of winning (a swap, or a person seen from
  the side), when the fit's body cost jumps (the fingers' terms left out: a hand found is no sign of a
  swap), when the face vanishes while the torso stays seen, when the reading followed faces against the
  person's walk, for ``hold_frames`` after, and on every frame the track is read mirrored (so the labels as
  given win back as soon as the evidence evens out). Decided live at the newest frame (``lag_frames`` = 0,
  no delay), after a fixed lag (:meth:`push`, at most about 150 ms of frames), or
  over the whole track (:meth:`finish`).

Run-time floor: numpy only (no torch). Cost per person per frame and accuracy: docs/body_fit.md.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from instanthmr.body.fit import (
    FACE_KEYPOINTS,
    SHAPE_PARAMS,
    TORSO_KEYPOINTS,
    BodyFitter,
    BodyShape,
    FitConfig,
    FitResult,
    Observation,
    estimate_bone_params,
    torso_heading,
)
from instanthmr.body.mhr import SHIPPED_MHR_MODEL, MHRNumpy
from instanthmr.core import probe
from instanthmr.core.geometry import project_points
from instanthmr.core.skeleton import COCO_WHOLEBODY_FLIP_PERM, COCO_WHOLEBODY_INDEX, MHR70_FLIP_PERM, MHR70_INDEX

_FLIP = np.asarray(MHR70_FLIP_PERM)
_SAME = np.arange(len(_FLIP))
_FLIP_WB = np.asarray(COCO_WHOLEBODY_FLIP_PERM)
#: MHR70 joints whose 3D must be seen for a frame to count toward a track's shape.
_SHAPE_JOINTS = tuple(MHR70_INDEX[n] for n in (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"))


@dataclass(frozen=True)
class SwapConfig:
    """The left/right decision (costs in the fit's cost units: squared scaled residuals).

    margin: the other reading is fitted when continuity alone brings it this close to winning a frame;
    hold_frames: how many frames both readings keep running after a trigger;
    switch_cost: the cost of changing reading between two frames; mirror_cost: per frame, for the mirrored
    reading where the labels as given read a back or a side (torso heading z >= -front_z[0]): the labels as
    given are preferred when the evidence is even (MediaPipe's back views on the shared clips are right but
    for an arms-only swap, docs/body_fit.md); mirror_cost_front: the same where they read a front
    (heading z <= -front_z[1]; linear between), and only on a front reached through side-on (side-on more
    recently than a back read with z > back_z): reading a back as a front is MediaPipe's failure, and it comes
    in whole stretches (the held-out clip: a third of it), so the prior against it is the switches in and out
    of a stretch, not a per-frame cost that a long stretch can never repay; max_emission_gap: the most one
    frame's fits may differ between the readings (a failed fit must not force a switch); unevaluated_cost: added to the
    reading not fitted on a frame; heading_weight: per (1 - cos) of the torso heading's change between two
    frames' readings; motion_sigma (m): the hip-centred 3D joints' typical move between two frames (a
    transition costs the mean squared move over joints in these units, each joint capped at motion_cap m);
    motion_sigma_2d / motion_cap_2d: the same for the 2D joints, in units of the person's 2D height (sides
    swapped in 2D jump across the body; a depth flip alone does not). The continuity that tells a swap from
    a turn, for each pair of readings on consecutive frames. hand_weight: per frame, what a reading pays for
    each hand the hand model is sure sits at the wrong wrist (:func:`hand_chirality`; scaled by its presence
    and confidence; both hands together at most this much): a hand's look (thumb side, palm or back) tells
    left from right, though not from every viewpoint (docs/body_fit.md).
    side_on_z: seen side-on the mirrored body is nearly the same body (the mirror flips only the depth
    component of the torso heading), so the readings' fit costs differ by noise there: their difference is
    scaled by |heading z| / side_on_z (capped at 1; the unit heading of the labels as given).
    walk_weight: per frame, the most a reading pays when its torso faces against the way the person walks in
    depth (:func:`walk_costs`; people face where they walk, and a person walking away from the camera shows
    their back: a cue to a back read as a front from outside the body's own geometry); walk_noise (m/s per
    metre of depth): the depth speed a monocular depth drifts by, taken off the walk's; walk_speed (m/s):
    the depth speed beyond that from which the cue speaks, and from which it counts fully (a shuffle or a
    turn on the spot says nothing); walk_window_s: the track's path (the fitted body's origin in the camera,
    x and z) over which the walking velocity is fitted, ending at the frame (causal: the same costs live and
    offline); walk_trigger: the reading followed paying this much more for the walk than the other reading
    has that one fitted too. Off without frame times (``FrameResult.time_s``). A moving or zooming camera
    misleads it (docs/body_fit.md, "Walking away")."""

    margin: float = 30.0
    trigger_cost: float = 3.0
    hold_frames: int = 3
    switch_cost: float = 20.0
    mirror_cost: float = 5.0
    mirror_cost_front: float = 1.0
    front_z: tuple = (0.15, 0.45)
    back_z: float = 0.7
    unevaluated_cost: float = 3.0
    max_emission_gap: float = 15.0
    heading_weight: float = 20.0
    motion_sigma: float = 0.06
    motion_cap: float = 0.3
    motion_sigma_2d: float = 0.03
    motion_cap_2d: float = 0.3
    hand_weight: float = 20.0
    side_on_z: float = 0.3
    walk_weight: float = 10.0
    walk_speed: tuple = (0.4, 0.9)
    walk_noise: float = 0.05
    walk_window_s: float = 0.5
    walk_trigger: float = 1.0

    def __post_init__(self):
        if not (self.walk_window_s > 0 and self.walk_speed[1] > self.walk_speed[0]):
            raise ValueError(f"SwapConfig: walk_window_s must be > 0 and walk_speed rising (low, high) m/s, got "
                             f"{self.walk_window_s} and {self.walk_speed}")


def decide_states(costs: np.ndarray, switch_cost: float, lag: int | None = None,
                  transitions: np.ndarray | None = None) -> np.ndarray:
    """Two-state Viterbi over per-frame reading costs (T,2) with ``switch_cost`` per change: (T,) int
    (0 = labels as given, 1 = mirrored). ``transitions`` (T,2,2): extra cost of going from reading ``a`` on
    frame t-1 to reading ``b`` on frame t (``[t, a, b]``; row 0 unused), e.g. how far the joints jump.
    ``lag`` None decides every frame from the whole sequence (files); ``lag`` L decides frame t from frames up
    to t + L only (live with a fixed delay; 0 = no delay)."""
    costs = np.asarray(costs, np.float64)
    n = len(costs)
    if n == 0:
        return np.zeros(0, np.int64)
    extra = np.zeros((n, 2, 2)) if transitions is None else np.asarray(transitions, np.float64)
    step = extra + switch_cost * (1 - np.eye(2))[None]
    dp = np.zeros((n, 2))
    back = np.zeros((n, 2), np.int64)
    dp[0] = costs[0]
    for t in range(1, n):
        total = dp[t - 1][:, None] + step[t]                              # [from, to]
        back[t] = np.argmin(total, 0)
        dp[t] = total[back[t], [0, 1]] + costs[t]

    if lag is None:
        states = np.zeros(n, np.int64)
        states[-1] = int(np.argmin(dp[-1]))
        for t in range(n - 1, 0, -1):
            states[t - 1] = back[t, states[t]]
        return states
    return np.asarray([_walk_back(dp, back, min(t + lag, n - 1), t) for t in range(n)], np.int64)


def _walk_back(dp: np.ndarray, back: np.ndarray, end: int, t: int) -> int:
    """The state at frame ``t`` on the best path ending at frame ``end`` (Viterbi tables (T,2))."""
    state = int(np.argmin(dp[end]))
    for k in range(end, t, -1):
        state = int(back[k, state])
    return state


def walking_velocity(path, window_s: float) -> np.ndarray | None:
    """The ground-plane velocity (vx, vz) m/s of a track's path ``path`` (a sequence of (time_s, (3,) camera
    position m), oldest first): the least-squares slope over the samples within ``window_s`` of the newest;
    None with fewer than 4 samples there or spanning less than half the window."""
    if not path:
        return None
    t_end = path[-1][0]
    near = [(t, x) for t, x in path if t_end - t <= window_s + 1e-9]
    if len(near) < 4 or t_end - near[0][0] < window_s / 2 or window_s <= 0:
        return None
    t = np.array([t for t, _ in near])
    xz = np.array([[x[0], x[2]] for _, x in near])
    dt = t - t.mean()
    return (dt @ (xz - xz.mean(0))) / (dt @ dt)   # dt @ dt > 0: the samples span at least half a window


def walk_costs(headings, velocity, depth_m: float, weight: float, speed: tuple, noise: float) -> np.ndarray:
    """(2,) what each reading pays for facing against the way the person walks in depth: ``weight`` x the
    depth part of its torso heading pointing against the walk (the heading's z on the ground plane, x and z,
    where its sign is the walk's opposite) x how brisk the walk in depth is: the depth speed |vz| less what a
    monocular depth drifts by at ``depth_m`` (``noise`` per metre of depth, m/s), 0 below ``speed[0]`` m/s,
    1 from ``speed[1]``. Only the depth part: the two readings differ in the heading's z alone, and a
    walk across the picture (or a camera panning) tells them nothing. ``headings``: the two readings'
    torso headings (unit, camera axes; None: unknown); ``velocity`` (vx, vz) m/s or None (no cost)."""
    out = np.zeros(2)
    if velocity is None:
        return out
    vz = float(velocity[1])
    brisk = min(max((abs(vz) - noise * max(depth_m, 0.0) - speed[0]) / (speed[1] - speed[0]), 0.0), 1.0)
    if brisk == 0.0:
        return out
    for r, h in enumerate(headings):
        if h is None:
            continue
        n = float(math.hypot(h[0], h[2]))
        if n > 1e-6:
            out[r] = weight * brisk * max(-math.copysign(1.0, vz) * float(h[2]) / n, 0.0)
    return out


#: Rows of both readings' joints stacked (2*70): as given, then mirrored (labels swapped).
_BOTH = np.concatenate([_SAME, _FLIP])
_TORSO, _FACE = np.asarray(TORSO_KEYPOINTS), np.asarray(FACE_KEYPOINTS)
_HIPS = np.asarray([MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]])


def _centred(obs: Observation):
    """For the continuity between frames, of both readings (as given, mirrored: the depth reflection about
    the hips is a sign once hip-centred, the labels a permutation, the heading's z flips): (hip-centred 3D
    joints (2,70,3) m, their weights > 0 (2,70), the two torso headings (the given one None when unknown), 2D
    joints (2,70,2) centred on their weighted mean and divided by the person's 2D height, their weights > 0
    (2,70)). Both readings stacked once per frame: the next frame's transitions read them as they are."""
    if obs.joints_3d is None:
        j3, w3, head = np.zeros((70, 3)), np.zeros(70), None
    else:
        w3 = obs.w3d
        c = (obs.joints_3d[_HIPS[0]] + obs.joints_3d[_HIPS[1]]) / 2 if (w3[_HIPS] > 0).all() else \
            np.average(obs.joints_3d, axis=0, weights=w3 + 1e-12)
        j3, head = obs.joints_3d - c, torso_heading(obs.joints_3d, w3)
    j3 = j3[_BOTH].reshape(2, -1, 3)
    np.negative(j3[1, :, 2], out=j3[1, :, 2])
    heads = (head, None if head is None else head * np.array([1.0, 1.0, -1.0]))
    seen3 = (w3[_BOTH] > 0).reshape(2, -1)
    if obs.joints_2d is None or (obs.w2d > 0).sum() < 2:
        return j3, seen3, heads, np.zeros((2, 70, 2)), np.zeros((2, 70), bool)
    w2, seen = obs.w2d, obs.w2d > 0
    w = w2 + 1e-12
    centre = (w @ obs.joints_2d) / w.sum()
    y = obs.joints_2d[seen, 1]
    height = max(float(y.max() - y.min()), 1.0)
    j2 = ((obs.joints_2d - centre) / height)[_BOTH].reshape(2, -1, 2)
    return j3, seen3, heads, j2, seen[_BOTH].reshape(2, -1)


def hand_chirality(pred) -> float:
    """Evidence in [-2, 2] that ``pred``'s left/right labels are swapped, from its hands' look: per hand found
    (``pred.landmarks.hands``, the MediaPipe path's
    :class:`~instanthmr.runtime.mediapipe.hands.HandLandmarks`, keyed by the body's label of the wrist it was
    found at), its presence x (2 ``right_score`` - 1), counted + for the "left" wrist's hand and - for the
    "right" one's. > 0: the hands say mirrored; 0 without hands or handedness (the network path) and with the
    hands together (:data:`HANDS_TOGETHER`)."""
    hands = getattr(getattr(pred, "landmarks", None), "hands", None) or {}
    evidence = 0.0
    for side, sign in (("left", 1.0), ("right", -1.0)):
        hand = hands.get(side)
        right = getattr(hand, "right_score", None)
        if right is not None:
            evidence += sign * float(hand.score) * (2.0 * float(right) - 1.0)
    # hands together: no evidence (checked only when there is some: most frames have no hand found)
    return 0.0 if evidence and _hands_together(pred) else evidence


#: Wrists closer than this many torso lengths (2D, shoulders' to hips' midpoint): the hands are together
#: (holding a phone, clapping, arms folded) and each wrist's crop holds both, so the hand model may describe
#: the other hand: its handedness then says nothing about the body's labels.
HANDS_TOGETHER = 0.6
_WRISTS_TORSO = (MHR70_INDEX["left_wrist"], MHR70_INDEX["right_wrist"], *TORSO_KEYPOINTS)   # hips, shoulders


def _hands_together(pred) -> bool:
    j = getattr(pred, "joints_2d", None)
    if j is None:
        return False
    j = np.asarray(j, np.float64)[list(_WRISTS_TORSO)]
    if not np.isfinite(j).all():
        return False
    lw, rw, lh, rh, ls, rs = j
    torso = np.linalg.norm((ls + rs) / 2 - (lh + rh) / 2)
    return bool(torso > 0 and np.linalg.norm(lw - rw) < HANDS_TOGETHER * torso)


def observation_from(pred) -> Observation:
    """The fit's :class:`~instanthmr.body.fit.Observation` from an HMRPrediction: its valid joints in 2D
    (px, its focal and principal point) and 3D (``joints_3d_local``, metres), weight 1 each; a network's own
    ``mhr_params`` (None on the MediaPipe path) as the per-frame pose prior."""
    valid = pred.valid_mask.astype(np.float64)
    net = getattr(pred, "mhr_params", None)
    return Observation(joints_3d=np.asarray(pred.joints_3d_local, np.float64), w3d=valid,
                       joints_2d=np.asarray(pred.joints_2d, np.float64), w2d=valid.copy(),
                       focal=float(pred.focal_length), principal_point=np.asarray(pred.principal_point, np.float64),
                       prior_params=None if net is None else np.asarray(net, np.float64))


@dataclass
class _Record:
    """One frame of a track, kept for :meth:`BodyFitStage.finish` / :meth:`BodyFitStage.push`."""

    frame_index: int
    obs: Observation
    costs: np.ndarray                    # (2,)
    transitions: np.ndarray              # (2,2) continuity cost from each reading of the previous frame
    dp: np.ndarray                       # (2,) Viterbi cost of the best path ending in each reading
    back: np.ndarray                     # (2,) the reading on the previous frame of that path
    fits: dict                           # reading -> FitResult (the readings fitted on this frame)
    live: int                            # the reading output live (what the person returned by __call__ carries)
    provisional: bool                    # fitted before the track's shape was held
    pred: object = None                  # the estimator's prediction (sides as given)
    shown: FitResult | None = None       # the fit the person returned by __call__ was filled with
    settled: int | None = None           # the reading last decided by _settle (warm start of the next frame)


@dataclass
class _Track:
    shape: BodyShape | None = None
    good: list = field(default_factory=list)          # (joints_3d, weights) of good frames
    net_shape: list = field(default_factory=list)     # the network's (shape_params, bone params), when given
    prev: FitResult | None = None
    state: int = 0
    dp: np.ndarray = field(default_factory=lambda: np.zeros(2))
    hold: int = 0
    face: bool = False                                # the face was seen on the previous frame
    via_side: bool = False                            # labels as given: side-on more recently than clearly back
    path: deque = field(default_factory=deque)       # (time_s, (3,) m): the body origin's last walk_window_s
    level: float | None = None                        # running level of the fit cost (triggers on jumps)
    last: tuple | None = None                         # previous frame: both readings' joints (_centred)
    chains: dict = field(default_factory=dict)        # reading -> its fit on the previous frame
    records: list = field(default_factory=list)


class BodyFitStage:
    """The per-track body fit (module docstring). ``model``: an :class:`~instanthmr.body.mhr.MHRNumpy` with a
    keypoint regressor (default: the shipped LOD 6 file); ``keep_history``: keep each track's frames for
    :meth:`finish` / :meth:`push` (memory grows with the video; off for an endless camera)."""

    def __init__(self, model: MHRNumpy | None = None, config: FitConfig | None = None,
                 swap: SwapConfig | None = None, shape_frames: int = 5, keep_observed_2d: bool = True,
                 keep_history: bool = True, lag_frames: int = 0):
        self.model = model if model is not None else MHRNumpy.from_npz(SHIPPED_MHR_MODEL)
        self.fitter = BodyFitter(self.model, config)
        self.swap = swap or SwapConfig()
        self._switch = self.swap.switch_cost * (1 - np.eye(2))   # (2,2) what changing reading costs
        self.shape_frames = int(shape_frames)
        self.keep_observed_2d = keep_observed_2d
        self.keep_history = keep_history or lag_frames > 0
        self.lag_frames = int(lag_frames)
        self.tracks: dict[int, _Track] = {}
        self.timings_ms: list[float] = []            # fit time per person per frame (both readings)
        self.mirrored_runs = 0                       # how many times the mirrored reading was fitted
        self._pending: deque = deque()
        self._whole: dict[int, np.ndarray] = {}

    def reset(self) -> None:
        self.tracks.clear()
        self._pending.clear()

    # ------------------------------------------------------------------------------------------------
    def __call__(self, result):
        """Fit every person of ``result`` (a FrameResult); returns a new FrameResult (lag 0: no delay) whose
        ``total_ms`` includes the fit."""
        t0 = time.perf_counter()
        time_s = getattr(result, "time_s", None)
        persons = [self._person(p, int(result.frame_index), time_s) for p in result.persons]
        for tid in getattr(result, "ended_tracks", []) or []:
            if not self.keep_history:
                self.tracks.pop(tid, None)
        extra = {"total_ms": result.total_ms + (time.perf_counter() - t0) * 1000} if hasattr(result, "total_ms") else {}
        return dataclasses.replace(result, persons=persons, **extra)

    def push(self, result) -> list:
        """Fixed-lag live use: fit ``result`` now, and return the frames whose left/right decision is final
        (the one ``lag_frames`` older, decided with the frames since). :meth:`flush` returns the rest."""
        self._pending.append(self(result))
        out = []
        while len(self._pending) > self.lag_frames:
            out.append(self._settle(self._pending.popleft(), lag=self.lag_frames))
        return out

    def flush(self) -> list:
        out = [self._settle(r, lag=self.lag_frames) for r in self._pending]
        self._pending.clear()
        return out

    def finish(self, results: list) -> list:
        """Files: decide left/right over each whole track and hold each track's shape from its first frame on
        (refitting the frames that differ); returns new FrameResults in the same order."""
        self._whole = {tid: decide_states(np.stack([r.costs for r in tr.records]), self.swap.switch_cost,
                                          transitions=np.stack([r.transitions for r in tr.records]))
                       for tid, tr in self.tracks.items() if tr.records}
        try:
            return [self._settle(r, lag=None) for r in results]
        finally:
            self._whole = {}

    def rederive(self, results: list) -> list:
        """Files, after the offline smoothing (:func:`~instanthmr.video.tracking.smooth_frames_offline`: the
        fitted ``mhr_params`` with their angles unwrapped and the root as a rotation, ``cam_trans``): each
        fitted person's joints derived again from that smoothed body: the 70 keypoints of ``mhr_params`` with
        the track's one shape (forward kinematics, metres relative to the model origin), ``joints_3d_cam`` =
        those + ``cam_trans``, ``joints_2d`` (px) their projection with the frame's camera, the estimator's own
        (smoothed) 2D kept where it gave the joint (as live). Every bone between skeleton joints of a track
        then has exactly one length in the files, and the mesh ``mhr_params`` draws is the one the joints come
        from. Persons without the fit (``joints_observed`` None: observed joints only) stay as they are, with
        the smoothing's joints."""
        shapes: dict = {}
        return [dataclasses.replace(r, persons=[self._from_body(p, shapes) if _fitted(p) else p for p in r.persons])
                for r in results]

    def _from_body(self, pred, shapes: dict):
        """``pred`` with its joints from its ``mhr_params`` and ``cam_trans`` (:meth:`rederive`); ``shapes``:
        track id -> its :class:`BodyShape`, filled on first use (the held shape, else the first frame's)."""
        tid = pred.track_id if pred.track_id is not None else -1
        shape = shapes.get(tid)
        if shape is None:
            tr = self.tracks.get(tid)
            shape = shapes[tid] = tr.shape if tr is not None and tr.shape is not None else self.fitter.shape(
                pred.shape_params, np.asarray(pred.mhr_params, np.float64)[SHAPE_PARAMS])
        params = self.fitter.full_params(shape, pred.mhr_params)
        params[:3] = 0.0                                   # as fitted: the model origin placed by cam_trans
        kp = self.fitter.forward(shape, params)[0]
        xc = kp + np.asarray(pred.cam_trans, np.float64)
        uv = project_points(xc, float(pred.focal_length), pred.principal_point)
        if self.keep_observed_2d and pred.joints_2d is not None:
            seen = np.asarray(pred.joints_observed, bool)
            uv[seen] = np.asarray(pred.joints_2d, np.float64)[seen]
        return dataclasses.replace(
            pred, joints_3d_local=kp.astype(np.float32), joints_3d_cam=xc.astype(np.float32),
            joints_2d=uv.astype(np.float32), mhr_params=params.astype(np.float32),
            shape_params=shape.shape_params.astype(np.float32))

    # ------------------------------------------------------------------------------------------------
    def _person(self, pred, frame_index: int, time_s: float | None = None):
        tid = pred.track_id if pred.track_id is not None else -1
        tr = self.tracks.setdefault(tid, _Track())
        t0 = time.perf_counter()
        obs = observation_from(pred).clean()
        if not ((obs.w2d > 0).any() or (obs.w3d > 0).any()):   # nothing seen (a person leaving): nothing to fit
            return pred
        shape = self._shape(tr, obs, pred)
        if tr.prev is None:
            probe.count("fit:track-start")
        readings = {0: obs}
        s = tr.state
        readings[s] = obs if s == 0 else obs.mirrored()
        # each reading is warm-started from its own last fit when it had one (a reading fitted from the other's
        # body would pay for that body in its data cost), else from the track's live body
        fits = {s: self.fitter.fit(readings[s], shape, tr.chains.get(s, tr.prev), init_params=self._init(tr, pred))}
        hands = hand_chirality(pred)
        now = _centred(obs)
        heading = now[2][0]
        decisive = self._decisive(heading)
        tr.via_side = self._via_side(tr.via_side, heading)
        prior = self._mirror_prior(heading, tr.via_side)
        trans = self._transitions(tr.last, now)
        tr.last = now
        walk = self._walking_cue(tr, time_s, fits[s], now[2])
        # the reading followed facing against the way the person walks is a trigger too (a switch in the middle
        # of a turned-away stretch costs its heading's half turn, which the other reading's guessed cost,
        # unevaluated_cost, never pays back); _triggered first and only after a track's first frame, as before:
        # it keeps the face seen on the previous frame
        if tr.prev is not None and (self._triggered(tr, readings[s], fits[s])
                                    or walk[s] > walk[1 - s] + self.swap.walk_trigger
                                    or self._close_call(tr.dp, trans,
                                                        self._costs(fits, s, hands, decisive, prior) + walk, s)):
            tr.hold = self.swap.hold_frames
        # the body's cost (a hand found adds its fingers' terms: no sign of a swap, and the other reading's fit
        # it would trigger for hold_frames doubled the cost of those frames, issue 22 item 5)
        body = fits[s].body_cost
        tr.level = body if tr.level is None else 0.9 * tr.level + 0.1 * min(body, 3 * tr.level)
        if tr.hold > 0 or s == 1:   # while mirrored, the labels as given are always re-read (no lock-in)
            tr.hold = max(tr.hold - 1, 0)
            o = 1 - s
            readings[o] = obs if o == 0 else obs.mirrored()
            fits[o] = self.fitter.fit(readings[o], shape, tr.chains.get(o, tr.prev))
            self.mirrored_runs += 1
            probe.count("fit:other-reading")
        costs = self._costs(fits, s, hands, decisive, prior) + walk
        if tr.prev is None:     # a track starts as given: reading it mirrored takes a switch's worth of evidence
            costs[1] += self.swap.switch_cost
        total = tr.dp[:, None] + trans + self._switch
        back = np.argmin(total, 0)
        dp = total[back, [0, 1]] + costs
        best = int(np.argmin(dp))
        tr.dp = dp - dp.min()
        if best not in fits:    # the other reading wins without having been fitted on this frame
            fits[best] = self.fitter.fit(obs if best == 0 else obs.mirrored(), shape, tr.prev)
        tr.state, tr.prev = best, fits[best]
        tr.chains = dict(fits)
        self.timings_ms.append((time.perf_counter() - t0) * 1000)
        if self.keep_history:
            tr.records.append(_Record(frame_index, obs, costs, trans, tr.dp.copy(), back, fits, best,
                                      tr.shape is None, pred, fits[best], best))
        return self._fill(pred, fits[best], best, obs, shape)

    def _init(self, tr: _Track, pred):
        """A track's first frame starts from the network's own parameters when it gives them."""
        if tr.prev is None and getattr(pred, "mhr_params", None) is not None:
            return np.asarray(pred.mhr_params, np.float64)
        return None

    def _shape(self, tr: _Track, obs: Observation, pred) -> BodyShape:
        if tr.shape is not None:
            return tr.shape
        net = getattr(pred, "mhr_params", None) is not None and getattr(pred, "shape_params", None) is not None
        if net:
            tr.net_shape.append((np.asarray(pred.shape_params, np.float64), np.asarray(pred.mhr_params, np.float64)[SHAPE_PARAMS]))
            if len(tr.net_shape) >= self.shape_frames:
                tr.shape = self.fitter.shape(np.median([a for a, _ in tr.net_shape], 0),
                                             np.median([b for _, b in tr.net_shape], 0))
                return tr.shape
            return self.fitter.shape(tr.net_shape[0][0], tr.net_shape[0][1])
        if obs.joints_3d is not None and (obs.w3d[list(_SHAPE_JOINTS)] > 0).all():
            tr.good.append((obs.joints_3d, obs.w3d))
            if len(tr.good) >= self.shape_frames:
                with probe.span("fit:bones"):
                    tr.shape = estimate_bone_params(self.fitter, np.stack([j for j, _ in tr.good]),
                                                    np.stack([w for _, w in tr.good]))
                return tr.shape
        return self.fitter.shape()

    def _walking_cue(self, tr: _Track, time_s: float | None, fit: FitResult, headings) -> np.ndarray:
        """(2,) the readings' walking-direction costs (:func:`walk_costs`) on this frame; records the body
        origin (the fit's camera translation) on the track's path at ``time_s`` (None: no times, no cost; a fit
        without 2D has no camera translation, and adds nothing). Only once the track's bones are held: the
        depth a fit finds from the same 2D scales with the body's size, so the provisional mean body's
        depths are no path (holding the bones stepped them by 0.24 m on a mocap bow, and the cold first fits
        crept by 0.06 m a frame: 2 m/s of walk that was not)."""
        root = fit.cam_trans
        if time_s is None or root is None or tr.shape is None or not (
                math.isfinite(time_s) and np.isfinite(root).all()):
            return np.zeros(2)
        sw = self.swap
        if tr.path and time_s <= tr.path[-1][0]:    # a source whose clock went back (a new file): start anew
            tr.path.clear()
        tr.path.append((float(time_s), np.asarray(root, np.float64)))
        while time_s - tr.path[0][0] > sw.walk_window_s + 1e-9:   # (as walking_velocity counts its window)
            tr.path.popleft()
        return walk_costs(headings, walking_velocity(tr.path, sw.walk_window_s), float(root[2]), sw.walk_weight,
                          sw.walk_speed, sw.walk_noise)

    def _close_call(self, dp: np.ndarray, trans: np.ndarray, costs: np.ndarray, stay: int) -> bool:
        """Whether the other reading, not fitted yet (its cost guessed as the fitted one's plus
        ``unevaluated_cost``), comes within ``margin`` of winning this frame on continuity alone: then it is
        worth fitting. Cheap (no fit); seen from the side the two readings are close and it fits both."""
        total = dp[:, None] + trans + self._switch
        best = total.min(0) + costs
        return bool(best[1 - stay] - best[stay] < self.swap.margin)

    def _triggered(self, tr: _Track, obs: Observation, fit: FitResult) -> bool:
        if tr.level is not None and fit.body_cost > self.swap.trigger_cost * tr.level + 10.0:
            return True
        # the face vanishing while the torso stays (turning away) also triggers; a track without a face does not
        torso_seen = (obs.w2d[_TORSO] > 0).all()
        face = (obs.w2d[_FACE] > 0).sum() >= self.fitter.config.min_face_joints
        lost = tr.face and not face
        tr.face = face
        return bool(torso_seen and lost)

    def _decisive(self, heading) -> float:
        """How much the readings' fit costs may differ on a frame whose torso heading (labels as given) is
        ``heading`` (None: unknown, 1): ``SwapConfig.side_on_z``."""
        return 1.0 if heading is None else min(1.0, abs(float(heading[2])) / self.swap.side_on_z)

    def _via_side(self, via_side: bool, heading) -> bool:
        """Whether the labels as given have read the person side-on (|heading z| < front_z[0]) more recently
        than clearly from the back (z > back_z: 45 degrees or more past side-on, beyond the heading's noise
        of a person just past side-on), updated with this frame's ``heading`` (None: unchanged)."""
        if heading is None:
            return via_side
        z = float(heading[2])
        return True if abs(z) < self.swap.front_z[0] else False if z > self.swap.back_z else via_side

    def _mirror_prior(self, heading, via_side: bool = True) -> float:
        """The mirrored reading's cost on a frame whose torso heading, labels as given, is ``heading`` (None:
        unknown): ``mirror_cost`` where MediaPipe reads a back or a side (heading z >= -front_z[0]: side-on the
        two readings are the same body and its labels a coin toss), ``mirror_cost_front`` where it clearly reads
        a front (z <= -front_z[1]: 27 degrees or more from side-on), linear between (:class:`SwapConfig`). The
        lower cost only on a front MediaPipe came to through side-on (``via_side``, :meth:`_via_side`): that is
        where its failure starts (a turn away: its labels cross where the two readings are the same body); a
        track's first frames, or a front right after it read a clear back (its labels jumped), keep the full
        cost."""
        sw = self.swap
        if heading is None or not via_side:
            return sw.mirror_cost
        lo, hi = sw.front_z
        front = min(max((-float(heading[2]) - lo) / (hi - lo), 0.0), 1.0)
        return sw.mirror_cost + front * (sw.mirror_cost_front - sw.mirror_cost)

    def _costs(self, fits: dict, stay: int, hands: float = 0.0, decisive: float = 1.0,
               mirror: float | None = None) -> np.ndarray:
        """Per reading, what this frame alone says: the fit's data and limit costs (not its temporal term:
        continuity is the transitions' job; their difference scaled by ``decisive``, :meth:`_decisive`), the
        mirrored reading's prior, the hands' look (``hands``,
        :func:`hand_chirality`: the reading it contradicts pays ``hand_weight`` per sure hand); a reading not
        fitted borrows the other's plus ``unevaluated_cost``."""
        sw = self.swap
        costs = np.zeros(2)
        for h in (0, 1):
            f = fits.get(h)
            if f is not None:
                costs[h] = f.data_cost + f.limit_cost
        for h in (0, 1):
            if h not in fits:
                costs[h] = costs[stay] + sw.unevaluated_cost
        # one frame's fit can fail (occlusion, a local minimum): its cost may tip a close call, never force a
        # switch on its own (continuity between frames is the evidence that does)
        costs = np.minimum(costs, costs.min() + sw.max_emission_gap)
        costs = costs.min() + decisive * (costs - costs.min())
        costs[1] += sw.mirror_cost if mirror is None else mirror
        # evidence of its own (not the fit's), so outside the gap's clip; at most hand_weight a frame, so that
        # one frame's hands (a photo) cannot overturn a track's start as given (switch_cost + mirror_cost)
        hands = min(max(hands, -1.0), 1.0)
        costs += sw.hand_weight * np.array([max(hands, 0.0), max(-hands, 0.0)])
        return costs

    def _transitions(self, last, now) -> np.ndarray:
        """(2,2) continuity cost from each reading of the previous frame to each reading of this one: the torso
        heading's turn and the hip-centred joints' mean squared move (:class:`SwapConfig`)."""
        out = np.zeros((2, 2))
        if last is None:
            return out
        sw = self.swap
        # the four pairs at once: [a, b] = reading a on the previous frame, reading b on this one (_centred)
        for k, sigma, cap in ((0, sw.motion_sigma, sw.motion_cap), (3, sw.motion_sigma_2d, sw.motion_cap_2d)):
            ja, jb = last[k], now[k]
            ok = last[k + 1][:, None] & now[k + 1][None]                      # (2,2,70)
            d = jb[None] - ja[:, None]
            d2 = np.minimum(np.einsum("abjc,abjc->abj", d, d), cap ** 2)
            out += (d2 * ok).sum(-1) / np.maximum(ok.sum(-1), 1) / sigma ** 2   # 0 where no joint is in both
        for a in (0, 1):
            for b in (0, 1):
                ha, hb = last[2][a], now[2][b]
                if ha is not None and hb is not None:
                    out[a, b] += sw.heading_weight * (1.0 - math.cos(math.acos(min(max(float(ha @ hb), -1.0), 1.0))))
        return out

    def _fill(self, pred, fit: FitResult, reading: int, obs: Observation, shape: BodyShape, given=None):
        """``pred`` with the fitted body (module docstring). Mirrored: the estimator's 2D and observed flags are
        relabelled to the body's true sides. ``given``: the estimator's own prediction when ``pred`` is an
        output already filled (its whole-body joints are relabelled from the sides as given)."""
        perm = _FLIP if reading == 1 else _SAME
        observed = ((obs.w3d > 0) | (obs.w2d > 0))[perm]
        kp = fit.keypoints                                                  # (70,3) float64, read only here
        if fit.cam_trans is not None:
            cam = fit.cam_trans
        else:   # 3D only: the observation's camera translation moved to the model origin
            cam = np.asarray(pred.cam_trans, np.float64) + fit.offset_3d
        xc = kp + cam
        uv = project_points(xc, float(pred.focal_length), pred.principal_point)
        if self.keep_observed_2d and obs.joints_2d is not None:
            seen2d = (obs.w2d > 0)[perm]
            uv[seen2d] = obs.joints_2d[perm][seen2d]
        extra = {}
        wb = getattr(pred if given is None else given, "joints_3d_wholebody", None)
        if reading == 1 and wb is not None:   # the network's whole-body joints get the same sides and depth
            wb = np.asarray(wb, np.float64)[_FLIP_WB]
            hips = [COCO_WHOLEBODY_INDEX["left_hip"], COCO_WHOLEBODY_INDEX["right_hip"]]
            wb[:, 2] = 2 * wb[hips, 2].mean() - wb[:, 2]
            extra["joints_3d_wholebody"] = wb.astype(np.float32)
        return dataclasses.replace(
            pred, **extra, joints_3d_local=kp.astype(np.float32), joints_3d_cam=xc.astype(np.float32),
            joints_2d=uv.astype(np.float32), cam_trans=cam.astype(np.float32),
            mhr_params=fit.params.astype(np.float32), shape_params=shape.shape_params.astype(np.float32),
            joints_valid=None, joints_observed=observed)

    # ------------------------------------------------------------------------------------------------
    def _settle(self, result, lag: int | None):
        """``result`` with each person's reading as decided with ``lag`` (None: whole track) and, once its
        track's shape is held, fitted with that shape."""
        persons = []
        for p in result.persons:
            tr = self.tracks.get(p.track_id if p.track_id is not None else -1)
            rec_i = None if tr is None else _find(tr.records, int(result.frame_index))
            if rec_i is None:
                persons.append(p)
                continue
            want = self._decision(p.track_id if p.track_id is not None else -1, tr, rec_i, lag)
            rec = tr.records[rec_i]
            refit = rec.provisional and tr.shape is not None and lag is None
            rec.settled = want
            # ``p`` is what __call__ returned (reading ``live``, fit ``shown``), even when an earlier settle (a
            # partial file written during the run calls finish) decided otherwise: compare with those, not with
            # the last decision
            if want == rec.live and not refit and rec.fits.get(want) is rec.shown:
                persons.append(p)
                continue
            shape = tr.shape or self.fitter.shape()
            prev = self._settled_prev(tr, rec_i)
            fit = None if rec.provisional and tr.shape is not None else rec.fits.get(want)
            if fit is None:
                fit = self.fitter.fit(rec.obs if want == 0 else rec.obs.mirrored(), shape, prev)
                rec.fits[want] = fit
            rec.provisional = rec.provisional and tr.shape is None
            persons.append(self._fill(p, fit, want, rec.obs, shape, given=rec.pred))
        return dataclasses.replace(result, persons=persons)

    def _decision(self, tid: int, tr: _Track, i: int, lag: int | None) -> int:
        if lag is None:
            return int(self._whole[tid][i])
        end = min(i + lag, len(tr.records) - 1)
        dp = np.stack([r.dp for r in tr.records[i:end + 1]])
        back = np.stack([r.back for r in tr.records[i:end + 1]])
        return _walk_back(dp, back, end - i, 0)

    @staticmethod
    def _settled_prev(tr: _Track, i: int) -> FitResult | None:
        if i == 0:
            return None
        r = tr.records[i - 1]
        return r.fits.get(r.live if r.settled is None else r.settled)


def _fitted(pred) -> bool:
    """Whether ``pred`` carries a fitted body (:meth:`BodyFitStage._fill` sets ``joints_observed``)."""
    return getattr(pred, "joints_observed", None) is not None and getattr(pred, "mhr_params", None) is not None


def _find(records: list, frame_index: int) -> int | None:
    for i in range(len(records) - 1, -1, -1):
        if records[i].frame_index == frame_index:
            return i
    return None
