"""Temporal smoothing of per-person predictions: causal One-Euro for live use, a centred local-polynomial
smoother for offline video.

A single-frame network re-estimates every frame from scratch, so its outputs shake even when the person is
still. Two filters are offered, both per track and vectorised over joints:

* :class:`OneEuroFilter` (Casiez, Roussel & Vogel, CHI 2012): an exponential smoother whose cutoff rises
  with the signal's own speed, so it crushes jitter at rest and follows fast motion with little lag. Causal,
  zero latency: the choice for a camera.
* :func:`smooth_offline`: a centred Gaussian-weighted local polynomial fit (LOESS / Savitzky-Golay family)
  over a window of past *and future* frames. No phase lag and a clearly lower error when latency does not
  matter (a video file). Missing frames (a track not seen) are simply left out of each fit.

Angles need care: averaging 179 deg and -179 deg gives 0 deg, the wrong side of the circle. Both filters
take an ``angular`` mask; those channels are unwrapped (against the previous output for One-Euro, along
time for the offline fit), filtered as continuous values and wrapped back into ``(-pi, pi]``.

Units. One-Euro's ``beta`` multiplies a *speed*, so it depends on the unit of the signal. The defaults in
:data:`ONE_EURO_DEFAULTS` are per field: metres for 3D, radians for MHR angles, and 2D pixels divided by
the person's box size (MediaPipe's "value scale"), so one setting works for near and far people.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from instanthmr.body.mhr import ANGLE_PARAMS, NUM_MODEL_PARAMS, ROOT_ROTATION
from instanthmr.core.rotations import (
    euler_xyz_from_matrix,
    euler_xyz_nearest,
    euler_xyz_to_matrix,
    nearest_rotation,
    wrap_angle,
)

SMOOTH_MODES = ("none", "causal", "offline")


def mhr_angle_mask(dim: int = NUM_MODEL_PARAMS) -> np.ndarray:
    """Boolean mask ``(dim,)`` of the ``mhr_params`` channels that are angles (radians; the layout is
    :data:`instanthmr.body.mhr.ANGLE_PARAMS`); all False for another length."""
    mask = np.zeros(dim, dtype=bool)
    if dim == NUM_MODEL_PARAMS:
        mask[ANGLE_PARAMS] = True
    return mask


def _alpha(cutoff, dt: float):
    """Smoothing factor of a first-order low-pass with ``cutoff`` Hz sampled every ``dt`` seconds."""
    tau = 1.0 / (2.0 * np.pi * np.maximum(cutoff, 1e-9))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Causal One-Euro filter over an array of any fixed shape (each element adapts to its own speed).

    Args:
        min_cutoff: cutoff in Hz at rest; lower = smoother when still.
        beta: how fast the cutoff opens with speed (per unit of ``value * scale`` per second); higher = less
            lag during fast motion.
        d_cutoff: cutoff in Hz of the speed estimate itself.
        angular: ``None``, ``True`` (every element is an angle in radians) or a boolean mask broadcastable to
            the signal, marking angle elements. Angles are filtered on the unwrapped circle and returned in
            ``(-pi, pi]``.

    Call with the sample and its timestamp in seconds (``t``); timestamps must increase. A gap (missed
    frames) is just a longer ``dt``.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0, angular=None):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"One-Euro needs min_cutoff > 0, d_cutoff > 0, beta >= 0; got "
                             f"{min_cutoff}, {d_cutoff}, {beta}")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.angular = None if angular is None or angular is False else np.asarray(angular, dtype=bool)
        self.reset()

    def reset(self) -> None:
        self._x = None  # last output, unwrapped (continuous) for angle elements
        self._dx = None
        self._t = None

    def __call__(self, x, t: float, scale: float = 1.0) -> np.ndarray:
        """Filter one sample ``x`` taken at time ``t`` (s). ``scale`` multiplies the speed estimate (e.g.
        ``1 / box_size`` for pixel signals) so ``beta`` is independent of the signal's unit."""
        x = np.array(x, dtype=np.float64)
        if self._x is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return self._out(self._x)
        if x.shape != self._x.shape:
            raise ValueError(f"One-Euro filter got shape {x.shape}, was initialised with {self._x.shape}")
        dt = float(t) - self._t
        if not dt > 0:
            raise ValueError(f"One-Euro timestamps must increase (got t={t} after t={self._t})")
        # Absent elements (NaN: a joint the model does not give on this frame) are left out: their state is
        # forgotten, their output is NaN, and when they come back they start afresh from their new value.
        seen, known = np.isfinite(x), np.isfinite(self._x)
        if not (seen.all() and known.all()):
            fresh = seen & ~known
            self._x = np.where(seen, np.where(fresh, x, self._x), np.nan)
            self._dx = np.where(fresh | ~seen, 0.0, self._dx)
        if self.angular is not None:
            # Bring each angle within pi of the previous output so the step never crosses the wrap.
            x = np.where(self.angular, self._x + wrap_angle(x - self._x), x)
        dx = (x - self._x) / dt * scale
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        a = _alpha(self.min_cutoff + self.beta * np.abs(self._dx), dt)
        self._x = a * x + (1.0 - a) * self._x
        self._t = float(t)
        return self._out(self._x)

    def _out(self, x: np.ndarray) -> np.ndarray:
        if self.angular is None:
            return x.copy()
        return np.where(self.angular, wrap_angle(x), x)


# --------------------------------------------------------------------------------------------------
# Offline (centred) smoothing
# --------------------------------------------------------------------------------------------------

def _local_poly_weights(times: np.ndarray, valid: np.ndarray, sigma: float, degree: int,
                        radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output frame, the linear weights over its window of neighbours (Gaussian-weighted least squares
    fit of a polynomial of ``degree``, evaluated at the centre). Returns ``(index (T, W), weight (T, W))``."""
    n = len(times)
    offs = np.arange(-radius, radius + 1)
    idx = np.clip(np.arange(n)[:, None] + offs[None, :], 0, n - 1)
    inside = (np.arange(n)[:, None] + offs[None, :] >= 0) & (np.arange(n)[:, None] + offs[None, :] < n)
    ok = inside & valid[idx]
    dtm = (times[idx] - times[:, None]) / max(sigma, 1e-9)  # in units of sigma
    w = np.where(ok, np.exp(-0.5 * dtm ** 2), 0.0)
    weights = np.zeros_like(w)
    for i in range(n):
        m = ok[i]
        k = int(m.sum())
        if k == 0:
            continue
        deg = min(degree, k - 1)
        # Vandermonde in time offset; the fitted value at offset 0 is e0^T (X^T W X)^-1 X^T W y.
        x = np.vander(dtm[i, m], deg + 1, increasing=True)
        xw = x * w[i, m][:, None]
        gram = x.T @ xw
        try:
            row = np.linalg.solve(gram, xw.T)[0]
        except np.linalg.LinAlgError:
            row = w[i, m] / w[i, m].sum()
        weights[i, m] = row
    return idx, weights


def smooth_offline(seq, valid=None, times=None, sigma: float = 2.0, degree: int = 2, angular=None,
                   radius: int | None = None) -> np.ndarray:
    """Centred (non-causal) smoothing of a sequence ``(T, ...)`` along time.

    Args:
        seq: samples, ``(T, ...)``; rows where ``valid`` is False are ignored as inputs (and returned
            unchanged), and so is each NaN element (an absent joint; it stays NaN).
        valid: ``(T,)`` booleans; default all True.
        times: ``(T,)`` sample times in frames (default ``0..T-1``); gaps between valid frames are honoured.
        sigma: Gaussian width in frames. ``degree``: local polynomial degree (0 = weighted moving average,
            2 = keeps peaks sharper, like Savitzky-Golay).
        angular: mask broadcastable to one sample (``seq.shape[1:]``) marking angle channels (radians).
        radius: half window in frames (default ``ceil(3 * sigma)``).
    """
    x = np.array(seq, dtype=np.float64)
    n = x.shape[0]
    if n == 0:
        return x
    flat = x.reshape(n, -1)
    v = np.ones(n, bool) if valid is None else np.asarray(valid, dtype=bool).copy()
    # Per element: a NaN (a joint absent on that frame) is left out of its own channel's fits only, so one
    # absent joint does not throw away the frame's other joints. Channels with the same pattern of
    # presence share one set of weights.
    ok = v[:, None] & np.isfinite(flat)
    t = np.arange(n, dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    ang = np.zeros(flat.shape[1], bool)
    if angular is not None and angular is not False:
        ang = np.broadcast_to(np.asarray(angular, dtype=bool), x.shape[1:]).reshape(-1).copy()
    r = int(np.ceil(3.0 * sigma)) if radius is None else int(radius)
    out = flat.copy()
    patterns, group = np.unique(ok.T, axis=0, return_inverse=True)
    for k, rows in enumerate(patterns):
        if not rows.any():
            continue
        cols = np.flatnonzero(np.ravel(group) == k)
        vals = flat[:, cols]
        a = ang[cols]
        if a.any() and rows.sum() > 1:
            vi = np.flatnonzero(rows)
            vals[np.ix_(vi, a)] = np.unwrap(vals[np.ix_(vi, a)], axis=0)
        idx, w = _local_poly_weights(t, rows, sigma, degree, r)
        src = np.where(rows[:, None], vals, 0.0)
        res = np.where(rows[:, None], np.einsum("tw,twd->td", w, src[idx]), flat[:, cols])
        if a.any():
            res[:, a] = np.where(rows[:, None], wrap_angle(res[:, a]), res[:, a])
        out[:, cols] = res
    return out.reshape(x.shape)


# --------------------------------------------------------------------------------------------------
# Smoothing predictions of tracked people
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldFilter:
    """One-Euro settings of one prediction field. ``size_scaled``: the speed is divided by the person's box
    size in pixels (for pixel fields), so the same ``beta`` works at every distance."""

    min_cutoff: float
    beta: float
    d_cutoff: float = 1.0
    size_scaled: bool = False


#: Per-field One-Euro defaults (cutoffs in Hz; ``beta`` per unit/s of the field after scaling). The 2D and
#: 3D settings were picked by ``python tools/eval_temporal.py smoothing --tune`` on the shared mocap (the
#: steadiest setting within 10 % of the best MPJPE; see docs/temporal.md). ``mhr_params`` has no ground
#: truth here, so it uses a middle setting; shape barely changes within a track, so it gets a low cutoff.
ONE_EURO_DEFAULTS: dict[str, FieldFilter] = {
    "joints_2d": FieldFilter(1.0, 10.0, size_scaled=True),
    "joints_3d_local": FieldFilter(1.0, 3.0),
    "joints_3d_wholebody": FieldFilter(1.0, 3.0),
    "cam_trans": FieldFilter(1.0, 3.0),
    "mhr_params": FieldFilter(1.0, 1.0),
    "shape_params": FieldFilter(0.2, 0.0),
}

#: Offline smoother defaults, picked by the same tool: Gaussian sigma in frames at 30 fps (0.1 s; scaled
#: with fps) and a local quadratic fit, which keeps peaks (jumps, direction changes) where a plain moving
#: average flattens them.
OFFLINE_SIGMA_FRAMES_30FPS = 3.0
OFFLINE_DEGREE = 2


def _field_arrays(pred) -> dict[str, np.ndarray]:
    out = {}
    for name in ONE_EURO_DEFAULTS:
        val = getattr(pred, name, None)
        if val is not None:
            out[name] = np.asarray(val)
    return out


def _angular_for(name: str, value: np.ndarray):
    return mhr_angle_mask(value.shape[-1]) if name == "mhr_params" else None


def _box_size(pred) -> float:
    b = np.asarray(getattr(pred, "box"), dtype=np.float64)
    return float(max(b[2] - b[0], b[3] - b[1], 1.0))


def _replace(pred, fields: dict[str, np.ndarray]):
    """A copy of ``pred`` (a dataclass) with smoothed fields, each cast back to its original dtype.

    ``joints_3d_cam`` is not filtered on its own: it is rebuilt as ``joints_3d_local + cam_trans`` from the
    smoothed parts, so the three stay consistent (HMRPrediction defines it that way).
    """
    if "joints_3d_local" in fields and "cam_trans" in fields and getattr(pred, "joints_3d_cam", None) is not None:
        fields = {**fields, "joints_3d_cam": np.asarray(fields["joints_3d_local"]) + np.asarray(fields["cam_trans"])[None]}
    cast = {k: np.asarray(v).astype(np.asarray(getattr(pred, k)).dtype, copy=False) for k, v in fields.items()}
    return dataclasses.replace(pred, **cast)


class OneEuroSmoother:
    """Causal per-track smoothing of predictions (live use). One filter bank per track id; banks of tracks
    not updated for ``forget_after_s`` seconds are dropped (a re-found person restarts unfiltered).

    ``__call__(track_id, prediction, t)`` returns a smoothed copy of ``prediction`` (any dataclass with the
    :class:`~instanthmr.runtime.hmr.HMRPrediction` field names; absent fields are skipped).
    """

    def __init__(self, fields: dict[str, FieldFilter] | None = None, forget_after_s: float = 1.0,
                 cutoff_scale: float = 1.0, beta_scale: float = 1.0):
        self.fields = dict(ONE_EURO_DEFAULTS if fields is None else fields)
        self.forget_after_s = float(forget_after_s)
        self.cutoff_scale, self.beta_scale = float(cutoff_scale), float(beta_scale)
        self._banks: dict[int, dict[str, OneEuroFilter]] = {}
        self._last_t: dict[int, float] = {}

    def reset(self) -> None:
        self._banks.clear()
        self._last_t.clear()

    def _bank(self, track_id: int, t: float) -> dict[str, OneEuroFilter]:
        last = self._last_t.get(track_id)
        if last is not None and t - last > self.forget_after_s:
            self._banks.pop(track_id, None)
        return self._banks.setdefault(track_id, {})

    def __call__(self, track_id: int, pred, t: float):
        bank = self._bank(track_id, t)
        self._last_t[track_id] = float(t)
        size = _box_size(pred) if hasattr(pred, "box") else 1.0
        out = {}
        for name, value in _field_arrays(pred).items():
            cfg = self.fields.get(name)
            if cfg is None:
                continue
            filt = bank.get(name)
            if filt is None:
                filt = bank[name] = OneEuroFilter(cfg.min_cutoff * self.cutoff_scale, cfg.beta * self.beta_scale,
                                                  cfg.d_cutoff, angular=_angular_for(name, value))
            out[name] = filt(value, t, scale=1.0 / size if cfg.size_scaled else 1.0)
        return _replace(pred, out)

    def drop(self, track_ids: Iterable[int]) -> None:
        """Forget the filters of tracks that ended."""
        for tid in track_ids:
            self._banks.pop(tid, None)
            self._last_t.pop(tid, None)


def smooth_rotations_offline(euler, times, sigma: float, degree: int = OFFLINE_DEGREE) -> np.ndarray:
    """Centred smoothing of rotations given as Euler XYZ angles ``(T, 3)`` radians (MHR's root rotation) at
    ``times`` (frames): their matrices smoothed entry by entry (:func:`smooth_offline`), each projected back
    onto the nearest rotation (SVD), and spelled as Euler XYZ nearest the input's (continuous along the
    track). A rotation, not three angles, is averaged, whatever the gimbal."""
    e = np.asarray(euler, dtype=np.float64)
    if len(e) < 2:
        return e.copy()
    m = smooth_offline(euler_xyz_to_matrix(e).reshape(len(e), 9), times=times, sigma=sigma, degree=degree)
    return euler_xyz_nearest(euler_xyz_from_matrix(nearest_rotation(m.reshape(-1, 3, 3))), e)


def smooth_track_offline(preds: list, frame_indices, fps: float = 30.0, sigma_frames: float | None = None,
                         degree: int = OFFLINE_DEGREE) -> list:
    """Centred smoothing of one track's predictions (in time order) seen at ``frame_indices``.

    ``sigma_frames`` defaults to :data:`OFFLINE_SIGMA_FRAMES_30FPS` scaled to ``fps`` (same width in
    seconds at every frame rate). Every field on its own; in ``mhr_params`` the angles unwrapped along time
    and the root rotation as a rotation (:func:`smooth_rotations_offline`). Returns smoothed copies, same
    order.
    """
    if not preds:
        return []
    sigma = OFFLINE_SIGMA_FRAMES_30FPS * fps / 30.0 if sigma_frames is None else float(sigma_frames)
    times = np.asarray(frame_indices, dtype=np.float64)
    per_field: dict[str, np.ndarray] = {}
    for name, first in _field_arrays(preds[0]).items():
        stack = [getattr(p, name, None) for p in preds]
        if any(s is None or np.shape(s) != first.shape for s in stack):
            continue
        seq = np.stack([np.asarray(s, dtype=np.float64) for s in stack])
        per_field[name] = smooth_offline(seq, times=times, sigma=sigma, degree=degree,
                                         angular=_angular_for(name, first))
        if name == "mhr_params" and seq.shape[-1] == NUM_MODEL_PARAMS:
            # the root as a rotation, not as angles: near ry = +-pi/2 two of them swing by up to pi while the
            # rotation barely moves
            per_field[name][:, ROOT_ROTATION] = smooth_rotations_offline(seq[:, ROOT_ROTATION], times, sigma, degree)
    return [_replace(p, {k: v[i] for k, v in per_field.items()}) for i, p in enumerate(preds)]
