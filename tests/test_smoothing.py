"""One-Euro and offline smoothing on known signals: noise reduced, lag bounded, angles across +-pi."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from instanthmr.video.smoothing import (
    OneEuroFilter,
    OneEuroSmoother,
    mhr_angle_mask,
    smooth_offline,
    smooth_track_offline,
    wrap_angle,
)

FPS = 30.0


def _noisy_sine(n=300, noise=0.05, seed=0):
    t = np.arange(n) / FPS
    clean = np.sin(2 * np.pi * 0.4 * t)
    return t, clean, clean + np.random.default_rng(seed).normal(0, noise, n)


def _lag_frames(out, ref, max_lag=15):
    """Delay (frames) that best aligns ``out`` with ``ref``."""
    errs = [np.mean((out[k:] - ref[: len(ref) - k]) ** 2) for k in range(max_lag)]
    return int(np.argmin(errs))


def _jitter(x):
    return np.abs(np.diff(x, 2, axis=0)).mean()


def test_one_euro_reduces_noise_with_bounded_lag():
    t, clean, noisy = _noisy_sine()
    f = OneEuroFilter(min_cutoff=1.0, beta=0.5)
    out = np.array([f(x, tt) for x, tt in zip(noisy, t)])
    assert _jitter(out) < 0.35 * _jitter(noisy)
    assert _jitter(out) > _jitter(clean)  # it is a filter, not an oracle
    assert _lag_frames(out, clean) <= 3  # 0.1 s at 30 fps
    # A higher beta follows motion more closely (less lag) at the cost of more jitter.
    g = OneEuroFilter(min_cutoff=1.0, beta=50.0)
    fast = np.array([g(x, tt) for x, tt in zip(noisy, t)])
    assert _lag_frames(fast, clean) <= _lag_frames(out, clean)
    assert _jitter(fast) > _jitter(out)


def test_one_euro_is_vectorised_per_element():
    t = np.arange(60) / FPS
    still = np.zeros(60)
    moving = np.linspace(0, 3, 60)
    f = OneEuroFilter(1.0, 1.0)
    out = np.array([f(np.array([[s, m]]), tt) for s, m, tt in zip(still, moving, t)])
    assert out.shape == (60, 1, 2)
    np.testing.assert_allclose(out[:, 0, 0], 0.0)
    # The moving element keeps up with its ramp (speed-adaptive cutoff) within a few frames of motion.
    assert abs(out[-1, 0, 1] - moving[-1]) < 4 * (moving[1] - moving[0])


def test_one_euro_rejects_non_increasing_time():
    f = OneEuroFilter()
    f(1.0, 0.0)
    with pytest.raises(ValueError, match="increase"):
        f(1.0, 0.0)


def _angle_through_wrap(n=120, seed=3):
    truth = np.pi - 0.5 + np.linspace(0, 1.0, n)  # crosses +pi half way
    noisy = wrap_angle(truth + np.random.default_rng(seed).normal(0, 0.03, n))
    return wrap_angle(truth), noisy


def test_one_euro_angle_wrap():
    truth, noisy = _angle_through_wrap()
    t = np.arange(len(noisy)) / FPS
    f = OneEuroFilter(1.0, 0.3, angular=True)
    out = np.array([f(a, tt) for a, tt in zip(noisy, t)])
    assert np.all(np.abs(out) > 2.4)  # never averaged through zero
    assert np.abs(wrap_angle(out - truth)).max() < 0.1
    assert np.all((out > -np.pi) & (out <= np.pi))
    naive = OneEuroFilter(1.0, 0.3)  # the bug the angular mode exists to avoid
    bad = np.array([naive(a, tt) for a, tt in zip(noisy, t)])
    assert np.abs(wrap_angle(bad - truth)).max() > 1.0


def test_offline_angle_wrap_and_mask():
    truth, noisy = _angle_through_wrap()
    seq = np.stack([noisy, noisy], axis=1)  # column 0 angle, column 1 treated as plain numbers
    out = smooth_offline(seq, angular=np.array([True, False]))
    assert np.abs(wrap_angle(out[:, 0] - truth)).max() < 0.06
    assert np.abs(wrap_angle(out[:, 1] - truth)).max() > 1.0


def test_offline_beats_causal_and_has_no_lag():
    t, clean, noisy = _noisy_sine()
    f = OneEuroFilter(1.0, 0.5)
    causal = np.array([f(x, tt) for x, tt in zip(noisy, t)])
    off = smooth_offline(noisy, sigma=2.0)
    rmse = lambda x: np.sqrt(np.mean((x - clean) ** 2))  # noqa: E731
    assert rmse(off) < 0.6 * rmse(noisy)
    assert rmse(off) < rmse(causal)
    assert _lag_frames(off, clean) == 0
    assert _jitter(off) < 0.2 * _jitter(noisy)


def test_offline_preserves_a_quadratic_and_skips_missing_frames():
    n = 40
    x = np.arange(n, dtype=float)
    quad = 0.01 * x ** 2 - 0.3 * x + 2.0
    np.testing.assert_allclose(smooth_offline(quad, sigma=2.0, degree=2), quad, atol=1e-9)
    corrupt = quad.copy()
    valid = np.ones(n, bool)
    corrupt[[5, 6, 20]] = 1e6  # garbage in frames where the person was not seen
    valid[[5, 6, 20]] = False
    out = smooth_offline(corrupt, valid=valid, sigma=2.0, degree=2)
    np.testing.assert_allclose(out[valid], quad[valid], atol=1e-6)
    nan_in = quad.copy()
    nan_in[10] = np.nan
    assert np.isfinite(smooth_offline(nan_in)[np.arange(n) != 10]).all()


@dataclass
class _Pred:
    box: np.ndarray
    joints_2d: np.ndarray
    joints_3d_local: np.ndarray
    cam_trans: np.ndarray
    mhr_params: np.ndarray
    shape_params: np.ndarray
    score: float = 1.0
    track_id: int | None = None


def _pred(rng, yaw):
    mhr = np.zeros(204, np.float32)
    mhr[4] = yaw  # a root-rotation channel (angle)
    mhr[150] = 1.0 + rng.normal(0, 0.01)  # a bone scale (not an angle)
    return _Pred(np.array([100, 100, 200, 400], np.float32),
                 (np.array([[150.0, 250.0]] * 70) + rng.normal(0, 3, (70, 2))).astype(np.float32),
                 rng.normal(0, 0.01, (70, 3)).astype(np.float32), np.array([0, 0, 5.0], np.float32) + rng.normal(0, 0.05, 3).astype(np.float32),
                 mhr, np.zeros(45, np.float32), track_id=7)


def test_prediction_smoothers_per_track_with_angle_channels():
    assert mhr_angle_mask()[3:136].all() and not mhr_angle_mask()[136:].any() and not mhr_angle_mask()[:3].any()
    assert not mhr_angle_mask(10).any()  # another parameter layout: no channel is taken for an angle
    rng = np.random.default_rng(4)
    truth, noisy = _angle_through_wrap(60)
    sm = OneEuroSmoother()
    raw, out = [], []
    for i, yaw in enumerate(noisy):
        p = _pred(rng, yaw)
        raw.append(p)
        out.append(sm(7, p, i / FPS))
        other = sm(8, _pred(rng, 0.0), i / FPS)  # a second track must not disturb the first
        assert abs(other.mhr_params[4]) < 1e-6
    assert out[0].joints_2d.dtype == np.float32 and out[0].joints_2d.shape == (70, 2)
    yaws = np.array([o.mhr_params[4] for o in out])
    assert np.all(np.abs(yaws) > 2.4)
    j = np.stack([o.joints_2d for o in out])
    jr = np.stack([r.joints_2d for r in raw])
    assert _jitter(j) < 0.5 * _jitter(jr)
    assert out[-1].score == raw[-1].score and out[-1].track_id == 7  # untouched fields (track columns) pass through

    off = smooth_track_offline(raw, np.arange(len(raw)), fps=FPS)
    yaws_off = np.array([o.mhr_params[4] for o in off])
    assert np.abs(wrap_angle(yaws_off - truth)).max() < 0.1
    assert _jitter(np.stack([o.cam_trans for o in off])) < 0.3 * _jitter(np.stack([r.cam_trans for r in raw]))


@dataclass
class _CamPred:
    box: np.ndarray
    joints_3d_local: np.ndarray
    cam_trans: np.ndarray
    joints_3d_cam: np.ndarray


def test_camera_joints_stay_local_plus_translation():
    rng = np.random.default_rng(5)
    preds = []
    for _ in range(20):
        loc, tr = rng.normal(0, 0.3, (70, 3)), np.array([0, 0, 4.0]) + rng.normal(0, 0.1, 3)
        preds.append(_CamPred(np.array([0, 0, 100, 200.0]), loc, tr, loc + tr))
    sm = OneEuroSmoother()
    for out in [sm(1, p, i / FPS) for i, p in enumerate(preds)] + smooth_track_offline(preds, np.arange(20)):
        np.testing.assert_allclose(out.joints_3d_cam, out.joints_3d_local + out.cam_trans, atol=1e-12)
    assert not np.allclose(out.joints_3d_cam, preds[-1].joints_3d_cam)  # it was smoothed, not copied


def test_offline_root_rotation_is_smoothed_as_a_rotation():
    """A root turning smoothly, noisy, each frame spelled in either of its two Euler XYZ spellings (as a
    per-frame estimator may give it): mhr_params' root rotation is smoothed as a rotation, so the result stays
    within a few degrees of the truth, where smoothing the three angles on their own (unwrapped) does not."""
    from instanthmr.core.rotations import euler_xyz_from_matrix, euler_xyz_to_matrix
    from instanthmr.video.smoothing import ROOT_ROTATION, smooth_rotations_offline

    n = 60
    rng = np.random.default_rng(0)
    t = np.linspace(-1.0, 1.0, n)
    truth = euler_xyz_to_matrix(np.stack([0.2 * t, 0.5 + 0.3 * t, 1.5 * t], -1))
    euler = euler_xyz_from_matrix(truth @ euler_xyz_to_matrix(rng.normal(0, 0.02, (n, 3))))
    other = rng.random(n) < 0.3                                  # the other spelling of the same rotation
    euler[other] = np.stack([euler[other, 0] + np.pi, np.pi - euler[other, 1], euler[other, 2] + np.pi], -1)

    def worst_deg(e):
        r = euler_xyz_to_matrix(e) @ np.swapaxes(truth, -1, -2)
        return np.degrees(np.arccos(np.clip((np.trace(r, axis1=-2, axis2=-1) - 1) / 2, -1, 1))).max()

    assert worst_deg(euler) < 5.0                                # the input: right rotations, mixed spellings
    assert worst_deg(smooth_rotations_offline(euler, np.arange(n, dtype=np.float64), sigma=3.0)) < 3.0
    assert worst_deg(smooth_offline(euler, sigma=3.0, angular=True)) > 20.0   # three angles on their own
    params = np.zeros((n, 204))
    params[:, ROOT_ROTATION] = euler

    @dataclass
    class P:
        mhr_params: np.ndarray

    out = smooth_track_offline([P(p) for p in params], np.arange(n), fps=FPS)
    assert worst_deg(np.stack([o.mhr_params[ROOT_ROTATION] for o in out])) < 3.0
