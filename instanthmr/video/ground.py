"""The floor, gravity, foot contacts and root motion, from the people themselves (numpy only).

Frames and units used everywhere here:

* **camera frame**: metres, x right, y down, z forward (the frame of ``joints_3d_cam``).
* **a floor** (:class:`Floor`): ``normal`` a unit vector pointing *up*, in the camera frame, and
  ``camera_height`` metres, the camera centre's height above the floor. The height of a camera-frame point
  ``X`` above the floor is ``normal . X + camera_height``.
* **world frame** (:class:`WorldFrame`): metres, Y up, the floor at y = 0, the origin on the floor under the
  first position of the first track; +Z points from the scene towards the camera (the camera's forward
  direction laid on the floor, reversed) and +X = Y x Z (the camera's right, laid on the floor).

The pieces are small and pure; :mod:`instanthmr.video.ground_stage` puts them together per frame (live,
causal) or over a whole file (two-sided).

* :func:`body_up`: the gravity direction a body shows (soles to hips-and-shoulders), independent of the focal.
* :func:`motion_points`, :class:`WindowSpeed`, :func:`speeds_centred`: foot speed over a few frames, across
  the view from the 2D joints, along it from the (jittery) depth, weighted down.
* :func:`contact_probability`, :class:`ContactDetector` (causal) and :func:`contacts_offline` (two-sided):
  foot contact per foot point from its height above the floor and its speed over a few frames, with
  hysteresis, a minimum duration and a confidence.
* :class:`FloorEstimator`: collects stationary-foot episodes of every track, fits the floor (RANSAC on
  episode medians, then a weighted refinement whose normal is pulled towards the bodies' up direction),
  freezes it when stable and re-estimates it when the residuals say the camera moved or the shot cut.
  Before that, :func:`provisional_floor` (body up + a low percentile of foot height), flagged provisional.
  :func:`depth_stretch` measures a wrong focal length from the same feet (:func:`unstretch` takes it out).
* :func:`depth_scale`: each person slid along the camera rays so that their feet stand on the floor (a
  monocular estimate gets each person's size, hence depth, a little wrong).
* :class:`FootLock` (causal) and :func:`lock_track_offline` (two-sided): root motion with the horizontal
  drift taken out by the contacting feet (pulled back towards the measured root slowly), feet held in place
  during contact by a two-bone leg IK (:func:`two_bone_ik`), blended in and out, no foot below the floor.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from instanthmr.core.skeleton import MHR70_INDEX

# --------------------------------------------------------------------------------------------------
# Data: the foot points, their height above the floor when the foot stands flat, their legs
# --------------------------------------------------------------------------------------------------

#: The foot points contacts are reported for: output name -> MHR70 joint name.
FOOT_POINTS: dict[str, str] = {
    "left_heel": "left_heel", "left_big_toe": "left_big_toe_tip", "left_ankle": "left_ankle",
    "right_heel": "right_heel", "right_big_toe": "right_big_toe_tip", "right_ankle": "right_ankle",
}
CONTACT_NAMES: tuple[str, ...] = tuple(FOOT_POINTS)
FOOT_JOINTS = np.array([MHR70_INDEX[j] for j in FOOT_POINTS.values()])
#: Height (m) of each foot point above the floor when the foot stands flat on it (MHR70's heel and big-toe
#: tip sit on the sole's surface, the ankle joint about 8 cm up).
REST_HEIGHT_M = np.array([0.02, 0.02, 0.08, 0.02, 0.02, 0.08])
#: The foot points whose resting positions the floor is fitted to (heels, big toes: the sole).
FLOOR_POINTS = np.array([0, 1, 3, 4])
#: Which foot (0 left, 1 right) each foot point belongs to.
FOOT_SIDE = np.array([0, 0, 0, 1, 1, 1])
#: Leg chains per side as MHR70 indices: (hip, knee, ankle), and the foot points moved with the ankle.
LEGS = ((MHR70_INDEX["left_hip"], MHR70_INDEX["left_knee"], MHR70_INDEX["left_ankle"]),
        (MHR70_INDEX["right_hip"], MHR70_INDEX["right_knee"], MHR70_INDEX["right_ankle"]))
FOOT_MEMBERS = tuple(np.array([MHR70_INDEX[f"{s}_{n}"] for n in ("heel", "big_toe_tip", "small_toe_tip")])
                     for s in ("left", "right"))
_HIPS = [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]
_SHOULDERS = [MHR70_INDEX["left_shoulder"], MHR70_INDEX["right_shoulder"]]


@dataclass(frozen=True)
class ContactConfig:
    """Contact thresholds. Heights are above the point's resting height (:data:`REST_HEIGHT_M`), metres;
    speeds metres per second over ``speed_window_s``. A contact starts below both ``*_on`` values and ends
    above either ``*_off`` value (hysteresis). Live, a contact is taken after ``on_frames`` frames agree and
    dropped after ``off_frames`` (each waiting frame is a frame of lag, and lag costs the first frames of a
    stance); over a file, runs shorter than ``min_frames`` are removed on both sides."""

    height_on: float = 0.06
    height_off: float = 0.11
    speed_on: float = 0.45  # these speeds and the 4-frame window: contact precision 0.84 / recall 0.86 live,
    speed_off: float = 0.8  # 0.87 / 0.98 over files on tools/eval_ground.py's takes (0.82 / 0.81 and 0.90 /
    speed_window_s: float = 0.134  # 0.97 with 0.35, 0.7 and 0.2 s), and less sliding, live most
    depth_weight: float = 0.3  # share of the camera-frame depth in a displacement (depth jitters most)
    min_frames: int = 3
    on_frames: int = 1  # 1 / 1: the least foot sliding live on tools/eval_ground.py (2 or 3 frames: more)
    off_frames: int = 1


# --------------------------------------------------------------------------------------------------
# Small geometry
# --------------------------------------------------------------------------------------------------

def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross costs ~20 us a call; this runs per leg per frame)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _unit(v: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / max(float(np.linalg.norm(v)), eps)


def body_up(joints: np.ndarray) -> np.ndarray | None:
    """The body's up direction (unit, same frame as ``joints (70, 3)``): from the middle of the soles (heels
    and big toes; the ankles when those are missing) to the middle of hips and shoulders, a stand-in for the
    centre of mass, which balance keeps above the feet; ``None`` when those joints are missing. The
    estimator's 3D is metric and camera-aligned, so in the camera frame this points against gravity whatever
    the focal length: on the mocap takes of tools/eval_ground.py its mean over a take is within 1.2 degrees of
    the true up (mid-hip to mid-shoulder alone: up to 13.5 degrees, on a bowing take)."""
    j = np.asarray(joints, np.float64)
    sole = j[FOOT_JOINTS[FLOOR_POINTS]]
    sole = sole[np.isfinite(sole).all(1)]
    if len(sole) == 0:
        sole = j[FOOT_JOINTS[[2, 5]]]
    v = np.concatenate([j[_SHOULDERS], j[_HIPS]]).mean(0) - sole.mean(0)
    n = float(np.linalg.norm(v))
    return v / n if np.isfinite(n) and n > 1e-6 else None


def motion_points(points_cam: np.ndarray, pixels: np.ndarray | None, principal_point, focal: float,
                  depth_weight: float) -> np.ndarray:
    """Foot points ``(n, 3)`` as their speed is measured: across the view in pixels from the principal point
    (the 2D joints ``pixels (n, 2)`` where given: a static camera sees a planted foot stand still in the
    image, and 2D keypoints jitter far less than a monocular depth; else the projection of the camera-frame
    point with ``focal`` px), along the view the camera-frame depth (m) times ``depth_weight`` (depth
    jitters most). The speed functions take ``xy_scale`` = the person's smoothed depth / focal (m per px)."""
    p = np.asarray(points_cam, np.float64)
    out = np.empty_like(p)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, :2] = focal * p[:, :2] / p[:, 2:3]
    if pixels is not None:
        uv = np.asarray(pixels, np.float64) - np.asarray(principal_point, np.float64)
        ok = np.isfinite(uv).all(1)
        out[ok, :2] = uv[ok]
    out[:, 2] = p[:, 2] * depth_weight
    return out


class WindowSpeed:
    """Speed (m/s) of a few points over about ``window_s`` seconds, causally: each call gives the positions
    ``(n, 3)`` of one frame at ``time_s``; the speed is the displacement since the oldest frame of the
    window (the previous frame when the window holds no older one), 0 on the first call. Averaging over a
    few frames keeps per-frame jitter from reading as motion. Positions are best :func:`motion_points`."""

    def __init__(self, window_s: float):
        self.window_s = float(window_s)
        self.history: deque = deque(maxlen=16)  # (time_s, positions)

    def __call__(self, time_s: float, positions: np.ndarray, xy_scale: float = 1.0) -> np.ndarray:
        """m/s; ``xy_scale`` multiplies the first two coordinates of each displacement (m per px for
        :func:`motion_points`)."""
        positions = np.asarray(positions, np.float64)
        older = [(t, p) for t, p in self.history if t < time_s]
        self.history.append((float(time_s), positions))
        if not older:
            return np.zeros(len(positions))
        inside = [(t, p) for t, p in older if time_s - t <= self.window_s + 1e-9]
        t_old, p_old = inside[0] if inside else older[-1]
        d = positions - p_old
        d[:, :2] *= xy_scale
        return np.linalg.norm(d, axis=-1) / (time_s - t_old)


def angle_deg(a, b) -> float:
    """Angle between two vectors, degrees."""
    c = float(np.dot(_unit(a), _unit(b)))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


@dataclass(frozen=True)
class Floor:
    """A floor plane in the camera frame: ``normal`` (3,) unit, pointing up; ``camera_height`` metres (the
    camera centre's height above it); ``provisional`` while it is the fallback, not a fit; ``depth_stretch``
    when the fit measured how much the estimator's depths are stretched by a wrong focal length: then the
    plane is in the corrected camera frame (:func:`unstretch`)."""

    normal: np.ndarray
    camera_height: float
    provisional: bool = False
    depth_stretch: float | None = None  # estimated f_assumed / f_true (:func:`depth_stretch`), or None

    def height(self, points: np.ndarray) -> np.ndarray:
        """Height (m) above the floor of camera-frame points ``(..., 3)``."""
        return np.asarray(points, np.float64) @ self.normal + self.camera_height

    def record(self) -> dict:
        """The per-frame ``ground`` JSON record."""
        rec = {"normal_cam": [round(float(x), 5) for x in self.normal],
               "camera_height_m": round(float(self.camera_height), 4), "provisional": bool(self.provisional)}
        if self.depth_stretch is not None:
            rec["depth_stretch"] = round(float(self.depth_stretch), 4)
        return rec

    @classmethod
    def parse(cls, text: str) -> "Floor":
        """``"nx,ny,nz,h"`` (camera frame, the normal pointing up, h the camera height in metres; ``--floor``).
        Raises ``ValueError`` with one line."""
        try:
            v = [float(x) for x in str(text).split(",")]
        except ValueError:
            v = []
        if len(v) != 4 or not np.all(np.isfinite(v)) or np.linalg.norm(v[:3]) < 1e-6:
            raise ValueError(f"--floor takes 'nx,ny,nz,h': the floor's up normal in the camera frame (x right, y "
                             f"down, z forward; level camera: 0,-1,0) and the camera height in metres, got {text!r}")
        return cls(_unit(v[:3]), float(v[3]))


def fit_plane_weighted(points: np.ndarray, weights: np.ndarray, up: np.ndarray,
                       prior: float = 0.0) -> tuple[np.ndarray, float]:
    """Weighted least-squares plane through ``points (N, 3)`` whose normal is pulled towards ``up`` (unit):
    minimises ``sum w (n.p + d)^2 + prior * sum(w) * (1 - (n.up)^2)``. The prior fixes what the points leave
    free (one person walking on a line leaves the roll about that line free). Returns ``(n, d)``, n pointing
    along ``up``."""
    w = np.asarray(weights, np.float64)
    w = w / max(w.sum(), 1e-12)
    c = (w[:, None] * points).sum(0)
    q = points - c
    cov = (w[:, None] * q).T @ q + prior * (np.eye(3) - np.outer(up, up))
    n = np.linalg.eigh(cov)[1][:, 0]
    if n @ up < 0:
        n = -n
    return n, -float(n @ c)


# --------------------------------------------------------------------------------------------------
# Contacts
# --------------------------------------------------------------------------------------------------

def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def contact_probability(height: np.ndarray, speed: np.ndarray, cfg: ContactConfig = ContactConfig()) -> np.ndarray:
    """How likely each foot point touches the floor, in [0, 1], from ``height`` (m above its resting height)
    and ``speed`` (m/s): a soft version of the thresholds, 0.5 in the middle of each hysteresis band."""
    h_mid, v_mid = (cfg.height_on + cfg.height_off) / 2, (cfg.speed_on + cfg.speed_off) / 2
    h_s, v_s = (cfg.height_off - cfg.height_on) / 4, (cfg.speed_off - cfg.speed_on) / 4
    return _sigmoid((h_mid - np.asarray(height)) / h_s) * _sigmoid((v_mid - np.asarray(speed)) / v_s)


def _candidate(state: np.ndarray, height: np.ndarray, speed: np.ndarray, cfg: ContactConfig) -> np.ndarray:
    """The hysteresis rule: what each point's state would be now, given its current ``state``."""
    on = (height < cfg.height_on) & (speed < cfg.speed_on)
    off = (height > cfg.height_off) | (speed > cfg.speed_off)
    return np.where(state, ~off, on)


class ContactDetector:
    """Causal foot contact of one track: :meth:`update` per frame with the foot points' heights above their
    resting heights (m) and their :func:`motion_points` (for the speed). Speeds are over the last
    ``cfg.speed_window_s`` seconds; a contact starts after ``cfg.on_frames`` frames agree and ends after
    ``cfg.off_frames`` (so it comes that many frames late). NaN heights (no floor, or a missing joint) leave
    the state as it is."""

    def __init__(self, cfg: ContactConfig = ContactConfig(), n: int = len(FOOT_POINTS)):
        self.cfg = cfg
        self.state = np.zeros(n, bool)
        self.pending = np.zeros(n, int)  # frames the other state has been the candidate
        self.speed = WindowSpeed(cfg.speed_window_s)

    def update(self, time_s: float, heights: np.ndarray, positions: np.ndarray,
               xy_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """``(contact (n,) bool, confidence (n,))``: confidence in the state reported (P(contact) for a
        contact, 1 - P(contact) otherwise; :func:`contact_probability`). ``xy_scale``: see :class:`WindowSpeed`."""
        speed = self.speed(time_s, positions, xy_scale)
        known = np.isfinite(heights) & np.isfinite(speed)
        h = np.where(known, heights, np.inf)
        cand = _candidate(self.state, h, np.where(known, speed, np.inf), self.cfg)
        differ = known & (cand != self.state)
        self.pending = np.where(differ, self.pending + 1, 0)
        flip = self.pending >= np.where(self.state, self.cfg.off_frames, self.cfg.on_frames)
        self.state = np.where(flip, ~self.state, self.state)
        self.pending[flip] = 0
        p = np.where(known, contact_probability(h, speed, self.cfg), 0.0)
        return self.state.copy(), np.where(self.state, p, 1.0 - p)


def speeds_centred(times: np.ndarray, positions: np.ndarray, window_s: float, xy_scale=None) -> np.ndarray:
    """Two-sided speed (m/s) of ``positions (T, n, 3)`` at ``times (T,)``: the displacement over about
    ``window_s`` centred on each frame (one-sided at the ends); ``xy_scale (T,)`` as :class:`WindowSpeed`."""
    t = np.asarray(times, np.float64)
    n = len(t)
    lo = np.searchsorted(t, t - window_s / 2, "left")
    hi = np.searchsorted(t, t + window_s / 2, "right") - 1
    lo, hi = np.minimum(lo, np.arange(n)), np.maximum(hi, np.arange(n))
    same = hi == lo
    lo = np.where(same, np.maximum(np.arange(n) - 1, 0), lo)
    hi = np.where(same, np.minimum(np.arange(n) + 1, n - 1), hi)
    dt = np.maximum(t[hi] - t[lo], 1e-9)
    d = positions[hi] - positions[lo]
    if xy_scale is not None:
        d[..., :2] *= np.asarray(xy_scale, np.float64)[:, None, None]
    v = np.linalg.norm(d, axis=-1) / dt[:, None]
    return np.where((hi > lo)[:, None], v, 0.0)


def _drop_short_runs(x: np.ndarray, min_len: int) -> np.ndarray:
    """``x (T,)`` bool with runs (of either value) shorter than ``min_len`` flipped to their neighbours'."""
    x = x.copy()
    if len(x) == 0 or min_len <= 1:
        return x
    for value in (True, False):  # short contacts go first, then short gaps between contacts
        edges = np.flatnonzero(np.diff(np.r_[False, x == value, False].astype(int)))
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a < min_len and a > 0 and b < len(x):
                x[a:b] = not value
            elif b - a < min_len and value and (a == 0 or b == len(x)):
                x[a:b] = False
    return x


def contacts_offline(times: np.ndarray, heights: np.ndarray, positions: np.ndarray,
                     cfg: ContactConfig = ContactConfig(), xy_scale=None) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided contacts of one track over a whole file: ``heights (T, n)`` above the resting heights (m),
    ``positions (T, n, 3)`` their :func:`motion_points` (m). Centred speeds, the same hysteresis, then runs shorter than
    ``min_frames`` removed on both sides (no delay). Returns ``(contact (T, n), confidence (T, n))``."""
    speed = speeds_centred(times, positions, cfg.speed_window_s, xy_scale)
    known = np.isfinite(heights) & np.isfinite(speed)
    h = np.where(known, heights, np.inf)
    v = np.where(known, speed, np.inf)
    state = np.zeros(heights.shape, bool)
    cur = np.zeros(heights.shape[1], bool)
    for i in range(len(times)):
        cur = _candidate(cur, h[i], v[i], cfg)
        state[i] = cur
    for k in range(state.shape[1]):
        state[:, k] = _drop_short_runs(state[:, k], cfg.min_frames)
    p = np.where(known, contact_probability(h, v, cfg), 0.0)
    return state, np.where(state, p, 1.0 - p)


# --------------------------------------------------------------------------------------------------
# The floor
# --------------------------------------------------------------------------------------------------

def depth_stretch(points: np.ndarray, weights: np.ndarray, up: np.ndarray, min_depth_spread: float = 0.75,
                  min_tilt: float = 0.05, max_rel_error: float = 0.2) -> float | None:
    """How much a wrong focal length stretched the depths of floor points ``points (N, 3)`` (camera frame, m;
    weights ``(N,)``): ``k = f_assumed / f_true``, from the bodies' ``up`` (unit, camera frame). A body of
    known size seen with focal f_assumed is put at depth z k, with x and y right; the estimator's metric,
    camera-aligned 3D (and so ``up``) does not depend on the focal. The true floor has normal ``up``:
    ``up_x x + up_y y = -h - (up_z / k) z``, a straight line in z whose slope gives k. It needs the points
    spread in depth (``min_depth_spread`` m, weighted std) and a tilted view (``|up_z| >= min_tilt``); None
    when those lack or the slope's relative standard error exceeds ``max_rel_error``, or k is outside 0.5-2."""
    up = np.asarray(up, np.float64)
    if abs(up[2]) < min_tilt or len(points) < 4:
        return None
    w = np.asarray(weights, np.float64) / max(float(np.sum(weights)), 1e-12)
    z, s = points[:, 2], points[:, :2] @ up[:2]
    dz, ds = z - w @ z, s - w @ s
    var_z = float(w @ dz ** 2)
    if var_z < min_depth_spread ** 2:
        return None
    beta = float(w @ (dz * ds)) / var_z
    n_eff = 1.0 / float(w @ w)
    se = np.sqrt(float(w @ (ds - beta * dz) ** 2) / (var_z * max(n_eff - 2.0, 1.0)))
    if beta == 0 or se / abs(beta) > max_rel_error:
        return None
    k = -up[2] / beta
    return float(k) if 0.5 < k < 2.0 else None


def unstretch(points: np.ndarray, root_depth, stretch: float) -> np.ndarray:
    """Camera-frame points ``(..., 3)`` of a person whose root is at depth ``root_depth`` (m; broadcast over
    the points' leading axes) with the depth stretch ``stretch`` taken out: the person moved along z to
    ``root_depth / stretch``, their own shape unchanged (only the translation came from the focal)."""
    out = np.array(points, np.float64)
    rd = np.asarray(root_depth, np.float64)
    out[..., 2] += rd.reshape(rd.shape + (1,) * (out.ndim - 1 - rd.ndim)) * (1.0 / stretch - 1.0)
    return out


def provisional_floor(ups: np.ndarray, foot_points: np.ndarray, percentile: float = 5.0) -> Floor | None:
    """The fallback floor before a fit converges: the normal is the mean body up direction (:func:`body_up`;
    ``ups (N, 3)``,
    camera frame), the height puts a low ``percentile`` of the sole points ``(M, 3)`` (camera frame, metres)
    at their resting height. ``provisional=True``; None without data."""
    ups = np.asarray(ups, np.float64).reshape(-1, 3)
    pts = np.asarray(foot_points, np.float64).reshape(-1, 3)
    ups, pts = ups[np.isfinite(ups).all(1)], pts[np.isfinite(pts).all(1)]
    if len(ups) == 0 or len(pts) == 0:
        return None
    n = _unit(ups.mean(0))
    s = pts @ n  # up-coordinate of each sole point; the floor is below the lowest ones
    return Floor(n, float(-np.percentile(s, percentile) + REST_HEIGHT_M[0]), provisional=True)


@dataclass(frozen=True)
class FloorConfig:
    """How the floor is fitted. Distances in metres, angles in degrees, durations in seconds."""

    stationary_speed: float = 0.3  # a sole point slower than this (m/s) ...
    speed_window_s: float = 0.2  # ... over this long may be standing
    lowest_margin: float = 0.1  # ... and no higher than this above its body's lowest sole point (along up)
    min_episode_s: float = 0.2  # an episode shorter than this is not used
    max_episode_s: float = 1.0  # a long stand is cut into episodes of this length (each one a sample)
    min_episodes: int = 6  # episodes before the first fit
    min_spread: float = 0.3  # m: the episodes must cover at least this much floor
    ransac_iters: int = 200
    inlier_m: float = 0.05
    max_tilt_deg: float = 30.0  # a plane this far from the bodies' up direction is rejected
    prior: float = 0.05  # fit_plane_weighted's pull towards the bodies' up (m^2 per unit of 1 - cos^2)
    stable_deg: float = 1.0  # fits within this angle ...
    stable_m: float = 0.03  # ... and this camera height of the previous one count as stable
    stable_fits: int = 3  # this many stable fits in a row freeze the floor
    moved_m: float = 0.12  # a frozen floor is re-estimated when new episodes sit this far off it ...
    moved_count: int = 4  # ... this many in a row
    keep: int = 400  # episodes kept (the oldest go)
    refit_every_s: float = 1.0  # fit at most this often until frozen


@dataclass
class _Episode:
    points: list = field(default_factory=list)  # camera-frame positions (m)
    start: float = 0.0


class FloorEstimator:
    """The floor from every track's standing feet (causal; a static camera).

    :meth:`observe` per person per frame with their joints in the camera frame; :attr:`floor` is the current
    estimate: ``None``, then :func:`provisional_floor` (``provisional=True``), then a fit (RANSAC on episode
    medians within ``max_tilt_deg`` of the bodies' up, then :func:`fit_plane_weighted` on the inliers),
    frozen after ``stable_fits`` agreeing fits. A frozen floor that ``moved_count`` new episodes in a row
    sit ``moved_m`` off is dropped and re-fitted from those episodes on (the camera moved, or the shot cut).
    :meth:`fit_all` fits a whole file at once (two-sided).
    """

    def __init__(self, cfg: FloorConfig = FloorConfig(), seed: int = 0, stretch: bool = False):
        self.cfg = cfg
        self.stretch = bool(stretch)  # measure the depth stretch of a wrong focal (depth_stretch)
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.episodes: deque = deque(maxlen=self.cfg.keep)  # (median point (3,), weight, time_s)
        self.open: dict[tuple[int, int], _Episode] = {}
        self.speeds: dict[int, WindowSpeed] = {}  # per track, of its sole points
        self.ups: deque = deque(maxlen=600)
        self.lows: deque = deque(maxlen=600)
        self.floor: Floor | None = None
        self.frozen = False
        self.stable = 0
        self.off = 0
        self.next_fit = -np.inf
        self.fits = 0
        self.refits = 0  # times a frozen floor was dropped

    # ---- evidence -------------------------------------------------------------------------------
    def observe(self, track_id: int, time_s: float, joints_cam: np.ndarray, motion: np.ndarray | None = None,
                xy_scale: float = 1.0) -> None:
        """One person on one frame: ``joints_cam (70, 3)`` camera frame, metres (NaN for missing joints);
        ``motion``: the foot points' :func:`motion_points` (:data:`FOOT_POINTS` order) and its ``xy_scale``
        (default: the camera frame with the depth weighted 0.3)."""
        j = np.asarray(joints_cam, np.float64)
        up = body_up(j)
        sole = j[FOOT_JOINTS[FLOOR_POINTS]]
        if up is None or not np.isfinite(sole).any():
            return
        self.ups.append(up)
        self.lows.append(sole[np.isfinite(sole).all(1)])
        if motion is None:
            motion = j[FOOT_JOINTS] * [1.0, 1.0, 0.3]
        if track_id not in self.speeds:
            self.speeds[track_id] = WindowSpeed(self.cfg.speed_window_s)
        speed = self.speeds[track_id](time_s, np.asarray(motion)[FLOOR_POINTS], xy_scale)
        if len(self.speeds[track_id].history) < 2:
            return
        s = sole @ up
        lowest = np.nanmin(s) if np.isfinite(s).any() else np.nan
        still = np.isfinite(speed) & (speed < self.cfg.stationary_speed) & (s < lowest + self.cfg.lowest_margin)
        for k in range(len(FLOOR_POINTS)):
            key = (track_id, k)
            ep = self.open.get(key)
            if still[k]:
                if ep is None:
                    ep = self.open[key] = _Episode(start=time_s)
                ep.points.append(sole[k])
                if time_s - ep.start >= self.cfg.max_episode_s:
                    self._close(key, time_s)
            elif ep is not None:
                self._close(key, time_s)
        if time_s >= self.next_fit:
            self.update(time_s)

    def end_track(self, track_id: int, time_s: float) -> None:
        """A track ended: its open episodes are closed."""
        for key in [k for k in self.open if k[0] == track_id]:
            self._close(key, time_s)
        self.speeds.pop(track_id, None)

    def _close(self, key, time_s: float) -> None:
        ep = self.open.pop(key)
        if time_s - ep.start >= self.cfg.min_episode_s and len(ep.points) >= 2:
            pts = np.array(ep.points)
            self._add(np.median(pts, 0), float(len(pts)), time_s)

    def _add(self, point: np.ndarray, weight: float, time_s: float) -> None:
        self.episodes.append((point, weight, time_s))
        if self.frozen and self.floor is not None:
            if abs(float(self.floor.height(point)) - REST_HEIGHT_M[0]) > self.cfg.moved_m:
                self.off += 1
            else:
                self.off = 0
            if self.off >= self.cfg.moved_count:  # the camera moved or the shot cut: start again from here
                recent = list(self.episodes)[-self.off:]
                self.episodes.clear()
                self.episodes.extend(recent)
                self.frozen, self.stable, self.off, self.next_fit = False, 0, 0, -np.inf
                self.refits += 1

    # ---- fitting ---------------------------------------------------------------------------------
    def up(self) -> np.ndarray | None:
        """The bodies' mean up direction (camera frame, unit), or None."""
        return _unit(np.mean(self.ups, 0)) if self.ups else None

    def fit(self, points: np.ndarray, weights: np.ndarray, up: np.ndarray) -> Floor | None:
        """RANSAC then the weighted, up-pulled refinement on episode medians ``points (N, 3)`` (camera frame);
        None when there are too few, too clustered or no plane near ``up``."""
        cfg = self.cfg
        n_pts = len(points)
        if n_pts < cfg.min_episodes:
            return None
        spread = np.linalg.norm(points - np.median(points, 0), axis=1)
        if np.percentile(spread, 90) < cfg.min_spread / 2:
            return None
        # every RANSAC hypothesis at once: (iters, 3) normals of random triples, those near the bodies' up kept
        tri = points[np.argsort(self.rng.random((cfg.ransac_iters, n_pts)), axis=1)[:, :3]]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        size = np.linalg.norm(normals, axis=1)
        ok = size > 1e-9
        normals = normals[ok] / size[ok, None]
        d = -(normals * tri[ok, 0]).sum(1)
        plausible = np.abs(normals @ up) >= np.cos(np.radians(cfg.max_tilt_deg))
        best = None
        if plausible.any():
            inl = np.abs(points @ normals[plausible].T + d[plausible]) < cfg.inlier_m  # (N, hypotheses)
            best = inl[:, np.argmax(weights @ inl)]
        if best is None or best.sum() < 3:  # no 3 points span a plausible plane: the up direction and all points
            best = np.abs(points @ up - np.median(points @ up)) < 2 * cfg.inlier_m
        if best.sum() < 3:
            return None
        k = depth_stretch(points[best], weights[best], up) if self.stretch else None
        if k is not None:
            points = points * [1.0, 1.0, 1.0 / k]  # feet near their root: the stretch moves them alike
        n, d = fit_plane_weighted(points[best], weights[best], up, cfg.prior)
        if angle_deg(n, up) > cfg.max_tilt_deg:
            return None
        return Floor(n, d + REST_HEIGHT_M[0], depth_stretch=k)  # the sole points rest REST_HEIGHT_M above it

    def update(self, time_s: float) -> Floor | None:
        """Fit again now (until frozen; at most every ``refit_every_s``) or fall back to the provisional
        floor; returns :attr:`floor`."""
        self.next_fit = time_s + self.cfg.refit_every_s
        if self.frozen:
            return self.floor
        up = self.up()
        fitted = None
        if up is not None and len(self.episodes) >= self.cfg.min_episodes:
            pts = np.array([e[0] for e in self.episodes])
            w = np.array([e[1] for e in self.episodes])
            fitted = self.fit(pts, w, up)
        if fitted is None:
            if self.floor is None or self.floor.provisional:
                self.floor = self._provisional()
            return self.floor
        self.fits += 1
        prev = self.floor
        if prev is not None and not prev.provisional and angle_deg(prev.normal, fitted.normal) < self.cfg.stable_deg \
                and abs(prev.camera_height - fitted.camera_height) < self.cfg.stable_m:
            self.stable += 1
        else:
            self.stable = 0
        self.floor = fitted
        self.frozen = self.stable + 1 >= self.cfg.stable_fits
        return self.floor

    def fit_all(self) -> Floor | None:
        """Everything observed so far in one fit (two-sided use: call after observing a whole file)."""
        for key in list(self.open):
            self._close(key, np.inf)
        up = self.up()
        if up is not None and len(self.episodes) >= self.cfg.min_episodes:
            pts = np.array([e[0] for e in self.episodes])
            f = self.fit(pts, np.array([e[1] for e in self.episodes]), up)
            if f is not None:
                self.floor, self.frozen = f, True
                return f
        self.floor = self._provisional()
        return self.floor

    def _provisional(self) -> Floor | None:
        return provisional_floor(np.array(self.ups), np.concatenate(list(self.lows) or [np.zeros((0, 3))]))


# --------------------------------------------------------------------------------------------------
# The world frame
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WorldFrame:
    """Camera frame -> world frame (Y up, the floor at y = 0, metres; see the module docstring):
    ``world = rotation @ (cam - origin)``. ``rotation`` rows are the world X, Y, Z axes in the camera frame;
    ``origin`` is the world origin in the camera frame (on the floor)."""

    rotation: np.ndarray
    origin: np.ndarray

    @classmethod
    def from_floor(cls, floor: Floor, anchor_cam: np.ndarray) -> "WorldFrame":
        """The world frame of ``floor`` with its origin on the floor under ``anchor_cam`` (camera frame, m:
        the first position of the first track) and +Z the camera's forward direction laid on the floor,
        reversed (towards the camera)."""
        y = _unit(floor.normal)
        fwd = np.array([0.0, 0.0, 1.0]) - y[2] * y
        if np.linalg.norm(fwd) < 1e-6:  # looking straight down: the image's up is the heading
            fwd = np.array([0.0, -1.0, 0.0]) - y[1] * y
        z = -_unit(fwd)
        x = np.cross(y, z)
        a = np.asarray(anchor_cam, np.float64)
        origin = a - floor.height(a) * y
        return cls(np.stack([x, y, z]), origin)

    def to_world(self, points_cam: np.ndarray) -> np.ndarray:
        return (np.asarray(points_cam, np.float64) - self.origin) @ self.rotation.T

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        return np.asarray(points_world, np.float64) @ self.rotation + self.origin

    @property
    def camera_position(self) -> np.ndarray:
        """The camera centre in the world frame (m); its y is the camera height."""
        return self.to_world(np.zeros(3))


#: The depth_scale range: a body-size misjudgment of more than this is more likely a bad estimate (a far,
#: grazing view turns centimetres of foot height into metres of depth) than a person of that size.
DEPTH_SCALE_RANGE = (0.75, 1.33)


def depth_scale(floor: Floor, lowest: np.ndarray, roots: np.ndarray, prior: float = 0.01) -> float:
    """How far one person should slide along the camera rays so that their feet stand on ``floor``: the
    factor ``s`` that moves every joint ``X`` to ``X + (s - 1) root``, from frames of their lowest sole point
    ``lowest (N, 3)`` and root (mid-hip) ``roots (N, 3)``, camera frame, m. A monocular estimate gets each
    person's size, hence their depth, a little wrong (people float or sink); the floor under everybody's feet
    measures it. Least squares of ``height(lowest + (s - 1) root) = rest height`` with a pull towards 1
    (``prior``, m^2 per frame): from a camera at hip height, moving along the ray does not change the height,
    so nothing is learned and ``s`` stays 1; clipped to :data:`DEPTH_SCALE_RANGE`. NaN rows are skipped."""
    low, r = np.asarray(lowest, np.float64), np.asarray(roots, np.float64)
    ok = np.isfinite(low).all(1) & np.isfinite(r).all(1)
    if not ok.any():
        return 1.0
    a = r[ok] @ floor.normal  # d height / d s
    b = REST_HEIGHT_M[0] - floor.height(low[ok])  # the lowest point's height still to go
    a_med, b_med = np.median(a), np.median(b)  # robust: jumps and mis-detections are a minority
    return float(np.clip(1.0 + a_med * b_med / (a_med * a_med + prior), *DEPTH_SCALE_RANGE))


def lowest_sole(floor: Floor, joints: np.ndarray) -> np.ndarray:
    """The sole point (heel or big toe, camera frame, m) nearest the floor of each ``joints (..., 70, 3)``:
    ``(..., 3)``, NaN where a pose has none."""
    sole = np.asarray(joints, np.float64)[..., FOOT_JOINTS[FLOOR_POINTS], :]
    h = floor.height(sole)
    h = np.where(np.isfinite(h), h, np.inf)
    k = np.argmin(h, axis=-1)
    low = np.take_along_axis(sole, k[..., None, None], axis=-2)[..., 0, :]
    return np.where(np.isfinite(np.min(h, axis=-1))[..., None], low, np.nan)


def floor_grid(floor: Floor, centre_cam: np.ndarray, half_size: float = 3.0, step: float = 0.5) -> list[np.ndarray]:
    """Line strips (each (2, 3), camera frame, m) of a square grid on ``floor``, ``2 half_size`` metres a side
    with lines every ``step`` metres, centred under ``centre_cam`` (camera frame): for drawing the floor."""
    n = _unit(floor.normal)
    c = np.asarray(centre_cam, np.float64)
    c = c - floor.height(c) * n
    e1 = np.array([1.0, 0.0, 0.0]) - n[0] * n
    e1 = _unit(e1)
    e2 = np.cross(n, e1)
    ticks = np.arange(-half_size, half_size + 1e-9, step)
    lines = [np.stack([c + t * e1 - half_size * e2, c + t * e1 + half_size * e2]) for t in ticks]
    lines += [np.stack([c + t * e2 - half_size * e1, c + t * e2 + half_size * e1]) for t in ticks]
    return lines


# --------------------------------------------------------------------------------------------------
# Root motion and foot lock
# --------------------------------------------------------------------------------------------------

def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray,
                target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New ``(knee, ankle)`` that bring the ankle to ``target`` (or as near as the leg reaches) with the hip
    fixed, both bone lengths kept and the knee bending in the plane it bends in now. Any frame, metres."""
    l1, l2 = float(np.linalg.norm(knee - hip)), float(np.linalg.norm(ankle - knee))
    to = target - hip
    d_raw = float(np.linalg.norm(to))
    if l1 < 1e-6 or l2 < 1e-6 or d_raw < 1e-6:
        return knee, ankle
    u = to / d_raw
    d = float(np.clip(d_raw, abs(l1 - l2) + 1e-4, l1 + l2 - 1e-4))
    a = (l1 * l1 - l2 * l2 + d * d) / (2 * d)
    r = np.sqrt(max(l1 * l1 - a * a, 0.0))
    bend = (knee - hip) - ((knee - hip) @ u) * u
    if np.linalg.norm(bend) < 1e-6:  # a straight leg: bend forward-ish, the way the foot points
        bend = _cross(u, _cross(ankle - hip, u)) if np.linalg.norm(_cross(ankle - hip, u)) > 1e-6 else \
            np.array([0.0, 0.0, 1.0]) - u[2] * u
    bend = _unit(bend)
    return hip + a * u + r * bend, hip + d * u


def _lock_legs(world: np.ndarray, deltas: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Move each foot by ``weights[s] * deltas[s]`` (world, m) through the leg IK: knee and ankle from
    :func:`two_bone_ik`, the foot points shifted with the ankle."""
    out = world.copy()
    for s, (h, k, a) in enumerate(LEGS):
        if weights[s] <= 0 or not np.isfinite(deltas[s]).all() or not np.isfinite(world[[h, k, a]]).all():
            continue
        target = world[a] + weights[s] * deltas[s]
        out[k], out[a] = two_bone_ik(world[h], world[k], world[a], target)
        shift = out[a] - world[a]
        members = FOOT_MEMBERS[s]
        out[members] = world[members] + shift
    return out


def _no_penetration(world: np.ndarray) -> np.ndarray:
    """Raise each foot (through its leg) so that no foot point is below the floor (y < 0)."""
    out = world
    for s, (_, _, a) in enumerate(LEGS):
        y = out[np.r_[a, FOOT_MEMBERS[s]], 1]
        low = float(np.nanmin(y)) if np.isfinite(y).any() else 0.0
        if low < 0:
            deltas, weights = np.zeros((2, 3)), np.zeros(2)
            deltas[s, 1], weights[s] = -low, 1.0
            out = _lock_legs(out, deltas, weights)
    return out


@dataclass(frozen=True)
class LockConfig:
    """Foot lock and drift correction. ``blend_frames``: frames to blend the lock in and out;
    ``pullback_s``: time constant (s) of the pull of the corrected root back to the measured one."""

    blend_frames: int = 4
    pullback_s: float = 2.0


class FootLock:
    """Causal root motion and foot lock of one track, in the world frame.

    :meth:`update` per frame with the world joints (70, 3) and the contacts: while a foot point touches the
    floor, its horizontal motion is taken out of the whole body (the root's drift, TransPose-style: the body
    moves about its standing foot), an offset pulled back towards the measured root with time constant
    ``pullback_s``; each contacting foot is then held where it landed (on the floor) by the leg IK, blended in
    and out over ``blend_frames``; no foot ends below the floor."""

    def __init__(self, fps: float, cfg: LockConfig = LockConfig()):
        self.cfg, self.fps = cfg, float(fps)
        self.offset = np.zeros(3)  # world, horizontal: added to the whole body
        self.prev: np.ndarray | None = None  # last frame's measured foot points (world)
        self.prev_contact = np.zeros(len(FOOT_POINTS), bool)
        self.anchor = np.full((len(FOOT_POINTS), 3), np.nan)  # where each contacting point stays (world)
        self.weight = np.zeros(2)
        self.last_delta = np.zeros((2, 3))

    def update(self, world: np.ndarray, contact: np.ndarray, dt: float | None = None) -> np.ndarray:
        """The corrected world joints (70, 3) of this frame; ``world`` is the measured ones (m, Y up)."""
        dt = 1.0 / self.fps if dt is None else float(dt)
        feet = world[FOOT_JOINTS]
        both = contact & self.prev_contact
        if self.prev is not None and both.any():
            step = feet[both] - self.prev[both]
            step = step[np.isfinite(step).all(1)]
            if len(step):
                self.offset[[0, 2]] -= np.median(step, 0)[[0, 2]]
        self.offset *= np.exp(-dt / self.cfg.pullback_s)
        self.prev, self.prev_contact = feet.copy(), contact.copy()
        out = world + self.offset
        return self._lock(out, contact)

    def _lock(self, out: np.ndarray, contact: np.ndarray) -> np.ndarray:
        feet = out[FOOT_JOINTS]
        landing = contact & ~np.isfinite(self.anchor).all(1)
        self.anchor[landing] = feet[landing]  # a point that lands stays here, on the floor
        self.anchor[landing, 1] = REST_HEIGHT_M[landing]
        self.anchor[~contact] = np.nan
        deltas = _foot_deltas(self.anchor - feet, contact)
        step = 1.0 / max(self.cfg.blend_frames, 1)
        for s in range(2):
            if np.isfinite(deltas[s]).all():
                self.weight[s] = min(1.0, self.weight[s] + step)
                self.last_delta[s] = deltas[s]
            else:
                self.weight[s] = max(0.0, self.weight[s] - step)
                deltas[s] = self.last_delta[s]  # blend out the last correction, not a new one
        return _no_penetration(_pin(_lock_legs(out, deltas, self.weight), self.anchor, contact, self.weight))


def _pin(world: np.ndarray, anchor: np.ndarray, contact: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each contacting foot point moved onto its anchor (world, m), by its foot's weight: the rigid shift
    of :func:`_lock_legs` leaves each point's own jitter, this takes it out."""
    out = world.copy()
    m = contact & np.isfinite(anchor).all(1)
    w = weights[FOOT_SIDE[m]][:, None]
    out[FOOT_JOINTS[m]] += w * (anchor[m] - out[FOOT_JOINTS[m]])
    return out


def _foot_deltas(pull: np.ndarray, contact: np.ndarray) -> np.ndarray:
    """Per foot (2, 3): the mean pull (anchor - current, world m) of its contacting points; NaN when none."""
    out = np.full((2, 3), np.nan)
    for s in range(2):
        m = contact & (FOOT_SIDE == s) & np.isfinite(pull).all(1)
        if m.any():
            out[s] = pull[m].mean(0)
    return out


def gaussian_lowpass(x: np.ndarray, times: np.ndarray, sigma_s: float, block: int = 512) -> np.ndarray:
    """Centred Gaussian smoothing of ``x (T, ...)`` sampled at ``times`` (s, increasing). Weights past 6 sigma
    (below 2e-8 of the centre's) are left out, and rows are done ``block`` at a time, so memory stays
    ``block x window`` rather than ``T x T`` (an hour at 30 fps would need 90 GB)."""
    t = np.asarray(times, np.float64)
    x = np.asarray(x)
    out = np.empty(x.shape, np.result_type(x.dtype, np.float64))
    for i in range(0, len(t), block):
        rows = t[i:i + block]
        lo = int(np.searchsorted(t, rows[0] - 6 * sigma_s, side="left"))
        hi = int(np.searchsorted(t, rows[-1] + 6 * sigma_s, side="right"))
        w = np.exp(-0.5 * ((rows[:, None] - t[None, lo:hi]) / sigma_s) ** 2)
        w /= w.sum(1, keepdims=True)
        out[i:i + block] = np.tensordot(w, x[lo:hi], axes=(1, 0))
    return out


def lock_track_offline(times: np.ndarray, world: np.ndarray, contact: np.ndarray,
                       cfg: LockConfig = LockConfig()) -> np.ndarray:
    """Two-sided root motion and foot lock of one track over a whole file: ``world (T, 70, 3)`` measured
    world joints (m), ``contact (T, n)`` per foot point. The drift offset is integrated over the contacts
    as :class:`FootLock` does, and its slow part (a centred Gaussian of ``pullback_s``) taken off, so the root
    follows the measurement on both sides; the lock blends in before a contact and out after it."""
    t_count = len(times)
    feet = world[:, FOOT_JOINTS]
    offset = np.zeros((t_count, 3))
    for i in range(1, t_count):
        offset[i] = offset[i - 1]
        both = contact[i] & contact[i - 1]
        if both.any():
            step = feet[i, both] - feet[i - 1, both]
            step = step[np.isfinite(step).all(1)]
            if len(step):
                offset[i, [0, 2]] -= np.median(step, 0)[[0, 2]]
    if t_count > 1:
        offset = offset - gaussian_lowpass(offset, times, cfg.pullback_s)
    out = world + offset[:, None, :]
    # each contact segment of each foot point is held at its median (corrected) position, on the floor
    fe = out[:, FOOT_JOINTS]
    anchor = np.full(fe.shape, np.nan)
    for k in range(contact.shape[1]):
        edges = np.flatnonzero(np.diff(np.r_[False, contact[:, k], False].astype(int)))
        for start, end in zip(edges[::2], edges[1::2]):
            anchor[start:end, k] = np.nanmedian(fe[start:end, k], 0)
            anchor[start:end, k, 1] = REST_HEIGHT_M[k]
    deltas = np.stack([_foot_deltas(anchor[i] - fe[i], contact[i]) for i in range(t_count)]) \
        if t_count else np.zeros((0, 2, 3))
    weights = np.isfinite(deltas).all(2).astype(float)  # (T, 2)
    n_blend = max(cfg.blend_frames, 1)
    for s in range(2):
        on = weights[:, s] > 0
        edges = np.flatnonzero(np.diff(np.r_[False, on, False].astype(int)))
        for start, end in zip(edges[::2], edges[1::2]):
            for k in range(1, n_blend):  # blend in before the contact and out after it
                w = 1.0 - k / n_blend
                for i, d0 in ((start - k, deltas[start, s]), (end - 1 + k, deltas[end - 1, s])):
                    if 0 <= i < t_count and w > weights[i, s]:
                        weights[i, s], deltas[i, s] = w, d0
    deltas = np.nan_to_num(deltas)
    result = np.stack([_pin(_lock_legs(out[i], deltas[i], weights[i]), anchor[i], contact[i], weights[i])
                       for i in range(t_count)]) if t_count else out
    return np.stack([_no_penetration(r) for r in result])
