"""The per-track MHR body fit: the shipped model, the fit itself, shape per track, the left/right decision,
and what reaches the output files (instanthmr/body/fit.py, instanthmr/video/body_fit.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from instanthmr.body.fit import BodyFitter, Observation, _State, estimate_bone_params, torso_heading
from instanthmr.body.mhr import SHIPPED_MHR_MODEL, MHRNumpy
from instanthmr.core.paths import shared_mhr_dir
from instanthmr.core.skeleton import MHR70_FLIP_PERM, MHR70_INDEX
from instanthmr.runtime.hmr import HMRPrediction
from instanthmr.runtime.pipeline import FrameResult
from instanthmr.video.body_fit import BodyFitStage, decide_states

FOCAL, PP = 1468.6, np.array([640.0, 360.0])
CAM = np.array([0.05, 0.9, 4.0])   # model origin (floor) 4 m in front, 0.9 m below the optical axis
BODY = ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
        "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "nose", "left_eye", "right_eye",
        "left_ear", "right_ear", "left_heel", "right_heel", "left_big_toe_tip", "right_big_toe_tip"]
SEEN = np.zeros(70, bool)
SEEN[[MHR70_INDEX[n] for n in BODY]] = True


@pytest.fixture(scope="module")
def fitter():
    return BodyFitter(MHRNumpy.from_npz(SHIPPED_MHR_MODEL))


def _pose(fitter, rng, scale=0.35):
    p = np.zeros(204)
    body = fitter.groups["body"]
    p[body] = rng.uniform(-scale, scale, len(body))
    lo, hi = fitter.limits[body, 0], fitter.limits[body, 1]
    p[body] = np.clip(p[body], lo + 0.05, hi - 0.05)
    return p


def _motion(fitter, n, seed=0):
    """(n,204) a smooth made-up motion facing the camera: arms and legs swinging, a slow turn."""
    rng = np.random.default_rng(seed)
    base, amp = _pose(fitter, rng, 0.2), _pose(fitter, rng, 0.3) - 0.0
    t = np.arange(n)[:, None] / 30.0
    poses = base + np.sin(2 * np.pi * 0.8 * t) * amp * 0.5
    poses[:, 4] = 0.4 * np.sin(2 * np.pi * 0.2 * t[:, 0])            # root_ry: turning a little
    body = fitter.groups["body"]
    poses[:, body] = np.clip(poses[:, body], fitter.limits[body, 0] + 0.02, fitter.limits[body, 1] - 0.02)
    return poses


def _prediction(kp_local, cam=CAM, track_id=1, seen=SEEN, noise=0.0, rng=None):
    j3 = kp_local + (0 if rng is None else rng.normal(0, noise, kp_local.shape))
    xc = kp_local + cam
    j2 = FOCAL * xc[:, :2] / xc[:, 2:] + PP + (0 if rng is None else rng.normal(0, noise * 400, (70, 2)))
    j2, j3 = j2.astype(np.float32), j3.astype(np.float32)
    j2[~seen], j3[~seen] = np.nan, np.nan
    return HMRPrediction(box=np.array([400, 50, 900, 700], np.float32), score=1.0, joints_3d_local=j3,
                         joints_3d_cam=j3 + cam.astype(np.float32), joints_2d=j2, cam_trans=cam.astype(np.float32),
                         focal_length=FOCAL, principal_point=PP.astype(np.float32), mhr_params=None,
                         shape_params=None, joints_valid=seen.copy(), track_id=track_id)


def _mirror(pred):
    """What MediaPipe gives for a person seen from the back: sides swapped, depth reflected about the hips."""
    perm = np.asarray(MHR70_FLIP_PERM)
    j3, j2 = pred.joints_3d_local[perm].copy(), pred.joints_2d[perm].copy()
    hips = [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]
    j3[:, 2] = 2 * j3[hips, 2].mean() - j3[:, 2]
    import dataclasses
    return dataclasses.replace(pred, joints_3d_local=j3, joints_2d=j2, joints_valid=pred.joints_valid[perm])


def _frames(preds, timed: bool = False):
    """One FrameResult per prediction; ``timed``: with frame times at 30 fps (as tracking gives them)."""
    return [FrameResult(persons=[p], detector_ms=0.0, hmr_ms=0.0, total_ms=0.0, detector_ran=True, frame_index=i,
                        image_size=(1280, 720), time_s=i / 30.0 if timed else None) for i, p in enumerate(preds)]


# ------------------------------------------------------------------------------------------------------
def test_shipped_model_is_small_licensed_and_complete():
    assert SHIPPED_MHR_MODEL.is_file() and SHIPPED_MHR_MODEL.stat().st_size < 2_000_000
    for name in ("LICENSE-MHR", "NOTICE"):
        assert (SHIPPED_MHR_MODEL.parent / name).is_file()
    assert "Apache License" in (SHIPPED_MHR_MODEL.parent / "LICENSE-MHR").read_text()
    a = MHRNumpy.from_npz(SHIPPED_MHR_MODEL).assets
    assert a.lod == 6 and a.num_vertices == 595 and a.keypoint_regressor is not None
    assert a.parameter_limits.shape == (204, 2) and (a.parameter_limit_weights > 0).sum() > 100
    assert a.parameter_limits[MHR70_INDEX["left_knee"] * 0 + list(a.parameter_names).index("l_knee_bend"), 0] == 0


def test_shipped_model_matches_real_sam3d_body_outputs():
    samples = sorted((shared_mhr_dir() / "samples").glob("*.npz"))
    if not samples:
        pytest.skip("no SAM 3D Body samples under the shared MHR folder")
    model = MHRNumpy.from_npz(SHIPPED_MHR_MODEL)
    for path in samples:
        z = np.load(path)
        out = model(z["shape_params"], z["mhr_model_params"], z["expr_params"])
        assert np.abs(out.joints[0] - z["pred_joint_coords"]).max() < 1e-5                     # 127 joints: exact
        kp_err = np.linalg.norm(out.keypoints[0] - z["pred_keypoints_3d"], axis=-1)
        assert kp_err.mean() < 0.003 and kp_err[:21].mean() < 0.002                          # m


def _euler_written_out(e):
    """Rz Ry Rx of (n,3) angles, the formulas written out entry by entry (the fit's reference)."""
    c, s = np.cos(e), np.sin(e)
    cx, cy, cz, sx, sy, sz = c[:, 0], c[:, 1], c[:, 2], s[:, 0], s[:, 1], s[:, 2]
    return np.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx,
                     sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx,
                     -sy, cy * sx, cy * cx], -1).reshape(-1, 3, 3)


def test_the_fits_fast_paths_give_the_same_bits(fitter):
    """Issue 22 item 5: the fit's cheaper forms compute the same floats as the plain ones, not just close ones
    (a swap decision compares costs: the same bits keep every decision): the Euler matrices, the per-fit
    kinematics against the generic forward kinematics, the root's Euler angles in float maths, the unfitted
    hands' keypoints from the fit's transforms against a whole forward pass's."""
    from instanthmr.body import fit as fit_mod
    from instanthmr.core.rotations import euler_xyz_nearest

    rng = np.random.default_rng(3)
    e = rng.normal(0, 2, (59, 7))[:, 3:6]
    e[rng.random(e.shape) < 0.1] = 0.0
    assert np.array_equal(fit_mod._euler_matrices(e), _euler_written_out(e))
    assert np.array_equal(fit_mod._euler_matrix3(e[0].tolist()), _euler_written_out(e[:1])[0])
    for _ in range(200):
        a, ref = rng.normal(0, 3, 3), rng.normal(0, 3, 3)
        assert np.array_equal(fit_mod._euler_nearest3(a.tolist(), ref.tolist()), euler_xyz_nearest(a, ref))
    bones = np.zeros(74)
    bones[[fitter.param_index[n] - 130 for n in ("scale_uparms", "scale_uplegs")]] = (0.3, -0.2)
    for shape in (fitter.shape(), fitter.shape(rng.normal(0, 0.5, 45), bones)):
        p = fitter.full_params(shape, _pose(fitter, rng))
        plan = fitter._body_plan
        kin = fit_mod._Kinematics(plan, shape, p)
        g_r, g_t, g_s, _ = kin.forward(p)
        want = fitter._fk(p, plan.chain)[:3]
        assert all(np.array_equal(x, y) for x, y in zip((g_r, g_t, g_s), want))
        assert np.array_equal(kin.points(g_r, g_t), fitter._points(shape, g_r, g_t, g_s, plan.pts))
        known = (plan.coeff @ kin.points(g_r, g_t)) * fit_mod._D
        full = fitter.complete_keypoints(shape, p, (plan, (g_r, g_t, g_s)), known=known)
        np.testing.assert_allclose(full, fitter.forward(shape, p)[0], atol=1e-12)   # all 70, hands included
        assert np.array_equal(full[plan.kp_rows], known[plan.kp_rows])


def test_jacobian_matches_finite_differences(fitter):
    shape = fitter.shape()
    p = _pose(fitter, np.random.default_rng(0))
    kp, _ = fitter.forward(shape, p)
    obs = Observation(kp + 0.01, SEEN.astype(float)).clean()
    plan = fitter._plan(fitter.active_params(obs))
    st = _State(plan, obs, shape, p.copy(), None, None, None, False)
    st.evaluate(with_jacobian=True)
    n = len(plan.active)
    rows = np.flatnonzero(SEEN)
    from instanthmr.body.fit import _robust
    rw, _ = _robust((kp[rows] + st.tau - obs.joints_3d[rows]) / fitter.config.sigma_3d, np.ones(len(rows)),
                    fitter.config.robust)
    analytic = st.jac[:3 * len(rows), :n].reshape(len(rows), 3, n) * fitter.config.sigma_3d / rw[:, None, None]
    for k in range(0, n, 5):
        q = p.copy()
        q[plan.active[k]] += 1e-6
        numeric = (fitter.forward(shape, q)[0][rows] - kp[rows]) / 1e-6
        np.testing.assert_allclose(analytic[:, :, k], numeric, atol=1e-4)


def _linear_curvature(step):
    """``_State.step`` as before issue 22's chord-step fix: the diagonal terms' curvature of the LINEAR state
    (the one whose Jacobian the step uses), their gradient this state's."""
    def old(self, lam, linear=None):
        lin = linear or self
        own, self.diag_h = self.diag_h, lin.diag_h
        try:
            return step(self, lam, linear)
        finally:
            self.diag_h = own
    return old


def test_the_chord_step_sees_a_limit_the_last_step_crossed(fitter):
    """A warm frame's second step reuses the first state's Jacobian (a chord step); the diagonal terms (limits,
    priors) are this state's, curvature and gradient alike. An elbow pushed 0.1 rad past its limit is pulled
    back by about that much; with the first state's curvature (no limit there) the step flew off (-6 rad),
    promising more than the whole cost, and was rejected (90 % of openpose_video.avi's warm fits)."""
    shape = fitter.shape()
    p = _pose(fitter, np.random.default_rng(0))
    pred = _prediction(fitter.forward(shape, p)[0])
    obs = Observation(pred.joints_3d_local, SEEN, pred.joints_2d, SEEN, FOCAL, PP).clean()
    plan = fitter._plan(fitter.active_params(obs))
    linear = _State(plan, obs, shape, p.copy(), None, None, p.copy(), True)
    linear.evaluate(with_jacobian=True)
    i = int(np.flatnonzero(plan.active == fitter._indices(["l_elbow_bend"])[0])[0])
    push = np.zeros(len(plan.active) + 6)
    push[i] = fitter.limits[plan.active[i], 1] + 0.1 - p[plan.active[i]]     # 0.1 rad past the upper limit
    state = linear.moved(push)
    cost = state.evaluate(with_jacobian=False)
    step = state.step(1e-4, linear)
    assert -0.2 < step[i] < -0.05 and np.abs(step[:len(plan.active)]).max() < 1.0, step[i]
    assert state.gain <= cost                     # its model promises no more than the whole cost
    old = _linear_curvature(_State.step)(state, 1e-4, linear)
    assert abs(old[i]) > 1.0 and state.gain > cost


def _noisy_track_fits(fitter, n: int) -> list:
    """The fits along a made-up track of ``n`` frames (mean body, 4 cm of noise in 3D, 16 px in 2D; the same
    frames every call), each warm-started from the one before."""
    shape = fitter.shape()
    rng = np.random.default_rng(1)
    frames = [_prediction(fitter.forward(shape, q)[0], noise=0.04, rng=rng) for q in _motion(fitter, n, seed=1)]
    prev, out = None, []
    for pr in frames:
        prev = fitter.fit(Observation(pr.joints_3d_local, SEEN, pr.joints_2d, SEEN, FOCAL, PP), shape, prev)
        out.append(prev)
    return out


def test_warm_fits_along_a_track_stay_within_the_limits(fitter, monkeypatch):
    """Along a noisy made-up track the warm fits (two steps, the second a chord step) end within MHR's joint
    limits and at a lower cost than with the linear state's curvature, whose second steps flew off wherever
    the first crossed a limit (the fit kept the first step's state past the limit: mean limit cost ~20)."""
    from instanthmr.body import fit as fit_module

    shape = fitter.shape()
    rng = np.random.default_rng(1)
    frames = [_prediction(fitter.forward(shape, q)[0], noise=0.04, rng=rng) for q in _motion(fitter, 20, seed=1)]

    def track():
        prev, out = None, []
        for pr in frames:
            prev = fitter.fit(Observation(pr.joints_3d_local, SEEN, pr.joints_2d, SEEN, FOCAL, PP), shape, prev)
            out.append((prev.cost, prev.limit_cost))
        return np.asarray(out[1:])                       # the warm frames

    fixed = track()
    monkeypatch.setattr(fit_module._State, "step", _linear_curvature(fit_module._State.step))
    before = track()
    assert fixed[:, 1].mean() < 2.0 < 10.0 < before[:, 1].mean(), (fixed[:, 1].mean(), before[:, 1].mean())
    assert fixed[:, 0].mean() < 0.9 * before[:, 0].mean()


def test_a_step_its_model_says_lowers_the_cost_below_zero_is_not_evaluated(fitter, monkeypatch):
    """A step whose linear model promises more than the whole cost (which cannot go below 0) is rejected
    without its evaluation, as the evaluation would reject it: the same fits along a track with and without
    that guard."""
    from instanthmr.body import fit as fit_module

    def track():
        return np.stack([f.params for f in _noisy_track_fits(fitter, 12)])

    guarded = track()
    real_step = fit_module._State.step

    def unguarded(self, lam, linear=None):
        x = real_step(self, lam, linear)
        self.gain = -np.inf
        return x

    monkeypatch.setattr(fit_module._State, "step", unguarded)
    np.testing.assert_array_equal(track(), guarded)


def test_the_mean_body_is_made_once_and_equals_a_fresh_one(fitter):
    """BodyFitter.shape() with no arguments (a track before its shape is held) reuses the mean body's rigid
    points: equal to those computed afresh, and the bone parameters still per call."""
    fresh = BodyFitter(fitter.model).shape()
    a, b = fitter.shape(), fitter.shape(bone_params=np.full(74, 0.1))
    np.testing.assert_array_equal(a.local_points, fresh.local_points)
    assert b.local_points is a.local_points and (b.bone_params == 0.1).all() and (a.bone_params == 0).all()
    assert fitter.shape(np.full(45, 0.5)).local_points is not a.local_points   # another identity: its own points


def test_fit_recovers_known_parameters(fitter):
    rng = np.random.default_rng(1)
    shape = fitter.shape()
    for _ in range(3):
        p = _pose(fitter, rng)
        p[3:6] = rng.uniform(-0.4, 0.4, 3)
        kp, _ = fitter.forward(shape, p)
        pred = _prediction(kp)
        obs = Observation(pred.joints_3d_local, SEEN, pred.joints_2d, SEEN, FOCAL, PP)
        res = fitter.fit(obs, shape, None, iterations=30)
        err = np.linalg.norm(res.keypoints - kp, axis=1)[SEEN]
        assert err.mean() < 0.012, err.mean()                  # m, all observed joints (prior pulls a little)
        assert res.rms_2d_px < 3.0
        np.testing.assert_allclose(res.cam_trans, CAM, atol=0.03)
        assert res.limit_cost < 1.0


def test_network_pose_is_a_per_frame_prior(fitter):
    """The network path: a network's own mhr_params pull the fit toward its body angles where the keypoints
    leave them open (arms not seen), and give way where the keypoints are seen; without them nothing
    changes (FitConfig.network_sigma unused); the mirrored reading drops them (they name the sides as given)."""
    import dataclasses

    from instanthmr.body.fit import FitConfig
    from instanthmr.video.body_fit import observation_from

    rng = np.random.default_rng(7)
    shape = fitter.shape()
    truth = _pose(fitter, rng, 0.3)
    arms = [fitter.param_index[f"{s}_{n}"] for s in ("l", "r") for n in ("uparm_ry", "uparm_rz", "elbow_bend")]
    truth[arms] = [0.6, 0.8, 1.2, -0.5, 0.9, 1.0]                  # rad: arms raised, elbows bent
    kp, _ = fitter.forward(shape, truth)
    no_arms = SEEN.copy()
    no_arms[[MHR70_INDEX[n] for n in ("left_elbow", "right_elbow", "left_wrist", "right_wrist")]] = False
    pred = _prediction(kp, seen=no_arms)
    base = observation_from(pred)
    assert base.prior_params is None                              # the MediaPipe path: no network parameters
    without = fitter.fit(base, shape, None, iterations=30)
    with_net = fitter.fit(dataclasses.replace(base, prior_params=truth), shape, None, iterations=30)
    gap = np.abs(without.params[arms] - truth[arms]).mean()
    assert gap > 0.15                                              # rad: unseen arms stay near rest
    assert np.abs(with_net.params[arms] - truth[arms]).mean() < 0.3 * gap    # pulled toward the network's
    # seen joints win over a wrong network pose
    seen = observation_from(_prediction(kp))
    wrong = fitter.fit(dataclasses.replace(seen, prior_params=_pose(fitter, rng, 0.5)), shape, None, iterations=30)
    assert np.linalg.norm(wrong.keypoints - kp, axis=1)[SEEN].mean() < 0.02    # m
    # without network parameters the prior's weight changes nothing
    other = BodyFitter(fitter.model, FitConfig(network_sigma=0.01))
    np.testing.assert_array_equal(other.fit(base, shape, None, iterations=5).params,
                                  fitter.fit(base, shape, None, iterations=5).params)
    net_pred = dataclasses.replace(pred, mhr_params=truth.astype(np.float32))
    obs = observation_from(net_pred).clean()
    np.testing.assert_allclose(obs.prior_params, truth, atol=1e-6)
    assert obs.mirrored().prior_params is None


def test_bone_lengths_are_estimated_symmetric_and_held(fitter):
    rng = np.random.default_rng(2)
    names = ["scale_uparms", "scale_lowarms", "scale_uplegs", "scale_lowlegs", "scale_shoulder_width"]
    truth = np.zeros(74)
    for n in names:
        truth[fitter.param_index[n] - 130] = rng.uniform(-0.5, 0.5)
    true_shape = fitter.shape(None, truth)
    frames = np.stack([fitter.forward(true_shape, fitter.full_params(true_shape, _pose(fitter, rng)))[0]
                       for _ in range(5)])
    est = estimate_bone_params(fitter, frames + rng.normal(0, 0.005, frames.shape))
    for n in names:
        i = fitter.param_index[n] - 130
        assert abs(est.bone_params[i] - truth[i]) < 0.15, n     # 1.5 cm of bone


def test_track_keeps_its_bones_and_fits_closely(fitter):
    poses = _motion(fitter, 40, seed=3)
    truth = fitter.shape(None, np.where(np.arange(74) == fitter.param_index["scale_uplegs"] - 130, 0.4, 0.0))
    rng = np.random.default_rng(3)
    kps = [fitter.forward(truth, fitter.full_params(truth, p))[0] for p in poses]
    stage = BodyFitStage(fitter.model)
    live = [stage(f) for f in _frames([_prediction(k, noise=0.01, rng=rng) for k in kps])]
    final = stage.finish(live)
    thigh = [MHR70_INDEX["left_hip"], MHR70_INDEX["left_knee"]]    # both single skeleton joints in MHR70
    lengths = np.array([np.linalg.norm(np.subtract(*f.persons[0].joints_3d_local[thigh])) for f in final])
    assert lengths.std() < 1e-4                                     # m: one body for the whole track
    live_len = np.array([np.linalg.norm(np.subtract(*f.persons[0].joints_3d_local[thigh])) for f in live])
    assert live_len[stage.shape_frames:].std() < 1e-4             # live: held once the shape is estimated
    true_len = np.linalg.norm(np.subtract(*kps[0][thigh]))
    assert abs(lengths.mean() - true_len) < 0.02
    err = np.mean([np.linalg.norm(f.persons[0].joints_3d_cam - (k + CAM), axis=1)[SEEN].mean()
                   for f, k in zip(final, kps)])
    assert err < 0.04                                               # m, camera frame, with 1 cm noise
    assert np.median(stage.timings_ms) < 100                        # sanity only; speed: tools/eval_body_fit.py


def test_offline_smoothing_keeps_every_bone_exactly(fitter):
    """``--smooth offline`` with the fit: the smoothed bodies' joints are derived again from ``mhr_params``
    (BodyFitStage.rederive), so a track's bones between skeleton joints keep one length to 1e-6 m, the result
    stays near the unsmoothed fit and moves more smoothly; smoothing the joints on their own (before) does not
    keep the bones."""
    from instanthmr.video.tracking import smooth_frames_offline

    poses = _motion(fitter, 45, seed=6)
    shape = fitter.shape()
    rng = np.random.default_rng(6)
    kps = [fitter.forward(shape, fitter.full_params(shape, p))[0] for p in poses]
    stage = BodyFitStage(fitter.model)
    fitted = stage.finish([stage(f) for f in _frames([_prediction(k, noise=0.01, rng=rng) for k in kps])])
    joints_only = smooth_frames_offline(fitted, fps=30.0)
    final = stage.rederive(joints_only)
    bones = [("left_hip", "left_knee"), ("right_hip", "right_knee"), ("left_hip", "right_hip")]   # skeleton joints
    # (the shoulder width is not a bone: the clavicles move the shoulders)

    def spread(frames, field="joints_3d_cam"):
        j = np.stack([getattr(f.persons[0], field) for f in frames]).astype(np.float64)
        return max(np.linalg.norm(j[:, MHR70_INDEX[a]] - j[:, MHR70_INDEX[b]], axis=-1).std() for a, b in bones)

    assert spread(final) < 1e-6 and spread(final, "joints_3d_local") < 1e-6    # m: exactly one body
    assert spread(joints_only) > 1e-5                                # the joints smoothed on their own: not
    j_fit, j_out, j_joints = (np.stack([f.persons[0].joints_3d_cam for f in frames]).astype(np.float64)
                              for frames in (fitted, final, joints_only))
    truth = np.stack(kps) + CAM

    def err(a, b):
        return np.linalg.norm(a - b, axis=-1)[:, SEEN].mean()

    assert err(j_out, j_fit) < 0.02 and err(j_out, j_joints) < 0.002     # m: near the fit, and the joints' smoothing
    assert err(j_out, truth) < err(j_fit, truth)                         # with 1 cm noise: nearer the truth

    def accel(j):
        return np.linalg.norm(j[2:] - 2 * j[1:-1] + j[:-2], axis=-1)[:, SEEN].mean()

    assert accel(j_out) < 0.7 * accel(j_fit)                         # smoother
    p, q = final[20].persons[0], fitted[20].persons[0]
    np.testing.assert_allclose(p.joints_3d_cam, p.joints_3d_local + p.cam_trans, atol=1e-5)
    kp = fitter.forward(shape, p.mhr_params.astype(np.float64))[0]   # the joints ARE the mesh's body
    np.testing.assert_allclose(p.joints_3d_local, kp, atol=1e-5)
    uv = FOCAL * (kp + p.cam_trans)[:, :2] / (kp + p.cam_trans)[:, 2:] + PP
    np.testing.assert_allclose(p.joints_2d[~SEEN], uv[~SEEN], atol=1e-2)    # px: the body's projection
    assert (p.joints_observed == q.joints_observed).all()
    # without the fit (joints_observed None) the smoothing's joints stay as they are
    raw = smooth_frames_offline(_frames([_prediction(k) for k in kps[:5]]), fps=30.0)
    assert stage.rederive(raw)[3].persons[0] is raw[3].persons[0]


def test_swapped_segment_is_corrected(fitter):
    poses = _motion(fitter, 60, seed=4)
    shape = fitter.shape()
    kps = [fitter.forward(shape, fitter.full_params(shape, p))[0] for p in poses]
    assert torso_heading(kps[0])[2] < -0.8                          # facing the camera
    rng = np.random.default_rng(4)
    preds = [_prediction(k, noise=0.005, rng=rng) for k in kps]
    swapped = np.zeros(len(preds), bool)
    swapped[20:38] = True
    preds = [_mirror(p) if s else p for p, s in zip(preds, swapped)]
    stage = BodyFitStage(fitter.model)
    live = [stage(f) for f in _frames(preds)]
    offline = stage.finish(live)
    lagging = BodyFitStage(fitter.model, lag_frames=4)               # decided 4 frames (133 ms) late
    lagged = [r for f in _frames(preds) for r in lagging.push(f)]
    assert len(lagged) == len(preds) - 4
    lagged += lagging.flush()
    assert [f.frame_index for f in lagged] == list(range(len(preds)))
    lw = MHR70_INDEX["left_wrist"]
    for name, res in (("live", live), ("offline", offline), ("lag", lagged)):
        wrong = 0
        for f, k in zip(res, kps):
            true_uv = FOCAL * (k + CAM)[:, :2] / (k + CAM)[:, 2:] + PP
            uv = f.persons[0].joints_2d
            wrong += np.linalg.norm(uv[lw] - true_uv[lw]) > np.linalg.norm(uv[lw] - true_uv[MHR70_FLIP_PERM[lw]])
        assert wrong <= (2 if name == "live" else 0), (name, wrong)
    assert 0 < stage.mirrored_runs < len(preds)                     # the mirrored reading ran only when triggered
    heading = [torso_heading(f.persons[0].joints_3d_local)[2] for f in offline]
    assert max(heading) < -0.5                                      # the body never turned its back


def test_decide_states_whole_track_and_fixed_lag():
    costs = np.zeros((30, 2))
    costs[:, 1] = 1.0
    costs[10:20, 0] = 10.0                                            # frames 10-19 read mirrored
    whole = decide_states(costs, switch_cost=5.0)
    assert whole[10:20].all() and not whole[:10].any() and not whole[20:].any()
    live = decide_states(costs, switch_cost=5.0, lag=0)
    assert live[11:20].all() and not live[:10].any()                 # no delay: the first frame still pays the switch
    assert (decide_states(costs, switch_cost=5.0, lag=6) == whole).all()   # enough look-ahead: the same path
    lagged = decide_states(costs, switch_cost=5.0, lag=3)
    assert lagged[10:20].all() and (lagged != whole).sum() <= 3          # short look-ahead: late by a few frames


def test_outputs_carry_the_fitted_body(fitter, tmp_path):
    from instanthmr.outputs.files import CSV_COLUMNS, read_npz_tracks, write_csv, write_json, write_npz

    poses = _motion(fitter, 6, seed=5)
    shape = fitter.shape()
    preds = [_prediction(fitter.forward(shape, fitter.full_params(shape, p))[0]) for p in poses]
    stage = BodyFitStage(fitter.model)
    frames = [stage(f) for f in _frames(preds)]
    p = frames[-1].persons[0]
    assert p.mhr_params.shape == (204,) and p.shape_params.shape == (45,) and p.joints_valid is None
    assert p.joints_observed.dtype == bool and (p.joints_observed == SEEN).all()
    assert np.isfinite(p.joints_2d).all() and np.isfinite(p.joints_3d_cam).all()
    np.testing.assert_allclose(p.joints_3d_cam, p.joints_3d_local + p.cam_trans, atol=1e-5)
    write_json(tmp_path / "r.json", frames, fps=30.0)
    rec = json.loads((tmp_path / "r.json").read_text())["frames"][-1]["persons"][0]
    assert len(rec["mhr_params"]) == 204 and len(rec["shape_params"]) == 45
    assert rec["joints_observed"] == SEEN.tolist() and None not in sum(rec["joints_2d"], [])
    write_csv(tmp_path / "r.csv", frames, fps=30.0)
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert tuple(rows[0]) == CSV_COLUMNS and {r["observed"] for r in rows} == {"0", "1"}
    write_npz(tmp_path / "r.npz", frames, fps=30.0)
    track = read_npz_tracks(tmp_path / "r.npz")[1]
    assert track["joints_observed"].shape == (6, 70) and track["mhr_params"].shape == (6, 204)
    assert Path(SHIPPED_MHR_MODEL).is_file()


def test_fast_paths_match_the_model(fitter):
    """The fit's own forward kinematics (one affine matmul per level, bone scales on) matches the model's, and
    the keypoints of a hand the fit does not move, completed after the fit, match a full forward pass."""
    from instanthmr.body.fit import _HAND_KEYPOINTS
    rng = np.random.default_rng(3)
    p = np.zeros(204)
    p[3:130], p[130:] = rng.uniform(-0.3, 0.3, 127), rng.uniform(-0.5, 0.5, 74)
    shape = fitter.shape(None, p[130:])
    kp, joints = fitter.forward(shape, p)
    out = fitter.model(np.zeros(45), p, np.zeros(72))
    assert np.abs(out.joints[0] - joints).max() < 1e-6
    assert np.abs(out.keypoints[0] - kp).max() < 1e-6
    seen = SEEN.copy()
    seen[list(_HAND_KEYPOINTS["left"])] = True                      # the left hand's fingers fitted, not the right's
    obs = Observation(kp, seen.astype(float)).clean()
    plan = fitter._plan_for(obs)
    assert plan is fitter._plan(fitter.active_params(obs)) and plan.rest is not None and len(plan.other_rows)
    res = fitter.fit(obs, shape, None, iterations=2)
    np.testing.assert_allclose(res.keypoints, fitter.forward(shape, res.params)[0], atol=1e-9)


def _hand_case(fitter, seed=7):
    """A body with the left hand's fingers bent, seen with its fingers (3D noise 4 mm, 2D 1.6 px)."""
    from instanthmr.body.fit import _HAND_KEYPOINTS
    rng = np.random.default_rng(seed)
    shape = fitter.shape()
    p = _pose(fitter, rng)
    fingers = fitter.groups["left"]
    lo, hi = fitter.limits[fingers, 0], fitter.limits[fingers, 1]
    p[fingers] = np.clip(rng.uniform(-0.6, 0.6, len(fingers)), lo + 0.05, hi - 0.05)
    kp, _ = fitter.forward(shape, p)
    seen = SEEN.copy()
    seen[list(_HAND_KEYPOINTS["left"])] = True
    pred = _prediction(kp, seen=seen, noise=0.004, rng=rng)
    return shape, kp, Observation(pred.joints_3d_local, seen, pred.joints_2d, seen, FOCAL, PP)


#: mm, keypoints (left wrist, thumb, index and pinky tips, right wrist, left ankle) of the warm-started fit in
#: test_a_fit_with_a_hand_keeps_its_keypoints, as fitted by the joint body + finger solve of 2026-12-07 (e3d7d5c)
_HAND_CASE_ROWS = ("left_wrist", "left_thumb_tip", "left_index_tip", "left_pinky_tip", "right_wrist", "left_ankle")
_HAND_CASE_MM = [[510.62, -1105.03, -227.91], [489.94, -1000.5, -306.61], [609.86, -977.43, -261.06],
                 [601.28, -1023.6, -156.19], [-516.31, -977.65, -66.1], [403.49, -155.05, 13.87]]


def test_a_fit_with_a_hand_keeps_its_keypoints(fitter):
    """A change to how the fingers are solved must not move the fitted body or hand (pinned, 0.05 mm)."""
    shape, _, obs = _hand_case(fitter)
    res = fitter.fit(obs, shape, fitter.fit(obs, shape, None))
    rows = [MHR70_INDEX[n] for n in _HAND_CASE_ROWS]
    np.testing.assert_allclose(res.keypoints[rows] * 1000, _HAND_CASE_MM, atol=0.05)


def test_the_fingers_are_fitted(fitter):
    """Seen fingers are fitted: the hand's keypoints land within a few mm of the truth, well under the error
    of the same body with the fingers at rest, and a hand not seen is not moved."""
    from instanthmr.body.fit import _HAND_KEYPOINTS
    shape, kp, obs = _hand_case(fitter)
    res = fitter.fit(obs, shape, fitter.fit(obs, shape, None))
    hand = list(_HAND_KEYPOINTS["left"])
    err = np.linalg.norm(res.keypoints[hand] - kp[hand], axis=1).mean()
    rest = res.params.copy()
    rest[fitter.groups["left"]] = 0.0
    err_rest = np.linalg.norm(fitter.forward(shape, rest)[0][hand] - kp[hand], axis=1).mean()
    assert err < 0.008 and err < 0.5 * err_rest, (err, err_rest)          # m
    assert np.abs(res.params[fitter.groups["left"]]).max() > 0.1
    assert not res.params[fitter.groups["right"]].any()
    assert 0 < res.hand_cost < res.data_cost and res.body_cost == res.cost - res.hand_cost
    obs.w3d[hand] = obs.w2d[hand] = 0                               # the same body without its hand
    assert fitter.fit(obs, shape, None).hand_cost == 0.0


def test_a_hand_found_does_not_trigger_the_mirrored_reading(fitter):
    """A hand found mid-track adds its fingers' terms to the fit's cost; that jump is no sign of a swap, so
    the stage does not fit the other reading for it (each such frame cost two fits, issue 22 item 5)."""
    from instanthmr.body.fit import _HAND_KEYPOINTS
    rng = np.random.default_rng(4)
    shape = fitter.shape()
    with_hand = SEEN.copy()
    with_hand[list(_HAND_KEYPOINTS["left"])] = True
    preds = []
    for i, p in enumerate(_motion(fitter, 30, seed=2)):
        pred = _prediction(fitter.forward(shape, p)[0], seen=with_hand if i >= 15 else SEEN, noise=0.004, rng=rng)
        if i >= 15:     # MediaPipe's hand: its own size and place, a few cm off the body's
            h = list(_HAND_KEYPOINTS["left"])
            pred.joints_3d_local[h] += rng.normal(0, 0.02, (len(h), 3)).astype(np.float32)
        preds.append(pred)
    stage = BodyFitStage(fitter.model)
    out = [stage(f) for f in _frames(preds)]
    assert stage.mirrored_runs == 0                                 # 5 when the trigger counted the fingers
    assert out[-1].persons[0].joints_observed[list(_HAND_KEYPOINTS["left"])].all()


# ------------------------------------------------------------------------------------------------------
# Left and right: the hands' look, side-on turns
def _with_hands(pred, left_right: float, right_right: float, presence: float = 0.9):
    """``pred`` with MediaPipe-path hands at its "left" / "right" wrists whose handedness says "right hand"
    with these probabilities (``HandLandmarks.right_score``)."""
    import dataclasses

    from instanthmr.runtime.mediapipe.estimator import PersonLandmarks
    from instanthmr.runtime.mediapipe.hands import HandLandmarks

    def hand(right):
        return HandLandmarks(np.zeros((21, 2), np.float32), np.zeros((21, 3), np.float32), presence, None, right)
    return dataclasses.replace(pred, landmarks=PersonLandmarks(None, {"left": hand(left_right),
                                                                      "right": hand(right_right)}))


def _left_wrist_wrong(res, kps, cams=None):
    """Per frame, whether the left wrist's 2D sits nearer the true right wrist (``cams``: each frame's camera
    translation, default CAM)."""
    lw = MHR70_INDEX["left_wrist"]
    wrong = []
    for f, k, cam in zip(res, kps, [CAM] * len(kps) if cams is None else cams):
        true_uv = FOCAL * (k + cam)[:, :2] / (k + cam)[:, 2:] + PP
        uv = f.persons[0].joints_2d
        wrong.append(np.linalg.norm(uv[lw] - true_uv[lw]) > np.linalg.norm(uv[lw] - true_uv[MHR70_FLIP_PERM[lw]]))
    return np.array(wrong)


def test_hand_chirality_term():
    from instanthmr.video.body_fit import hand_chirality

    pred = _prediction(np.zeros((70, 3)))
    assert hand_chirality(pred) == 0.0                                   # no hands (the network path): no term
    assert hand_chirality(_with_hands(pred, 0.05, 0.95)) < -1.5          # the hands where the labels say
    assert hand_chirality(_with_hands(pred, 0.95, 0.05)) > 1.5           # a right hand at the "left" wrist
    assert hand_chirality(_with_hands(pred, 0.5, 0.5)) == 0.0            # unsure: no evidence
    assert abs(hand_chirality(_with_hands(pred, 0.95, 0.05, presence=0.5))) < hand_chirality(
        _with_hands(pred, 0.95, 0.05))                                   # a faint hand counts less


def test_hands_held_together_say_nothing_about_the_labels(fitter):
    """Wrists together (a phone held, hands clasped): each wrist's crop holds both hands, so their look is no
    evidence; the same hands with the arms at the sides are."""
    import dataclasses

    from instanthmr.video.body_fit import HANDS_TOGETHER, hand_chirality

    shape = fitter.shape()
    pred = _prediction(fitter.forward(shape, fitter.full_params(shape, np.zeros(204)))[0])
    j2 = pred.joints_2d.copy()
    lw, rw = MHR70_INDEX["left_wrist"], MHR70_INDEX["right_wrist"]
    torso = np.linalg.norm(j2[[MHR70_INDEX["left_shoulder"], MHR70_INDEX["right_shoulder"]]].mean(0)
                           - j2[[MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]].mean(0))
    assert np.linalg.norm(j2[lw] - j2[rw]) > HANDS_TOGETHER * torso      # the rest pose: hands apart
    assert hand_chirality(_with_hands(pred, 0.95, 0.05)) > 1.5
    centre = (j2[lw] + j2[rw]) / 2
    j2[lw], j2[rw] = centre - [0.2 * torso, 0], centre + [0.2 * torso, 0]
    together = dataclasses.replace(pred, joints_2d=j2)
    assert hand_chirality(_with_hands(together, 0.95, 0.05)) == 0.0


def test_hands_that_say_mirrored_win_where_nothing_else_tells(fitter):
    """A track read mirrored from its first frame (a person seen from the back throughout: no jump for
    continuity to see) keeps the labels as given without hands; with hands whose look says each sits at the
    other wrist, the mirrored reading wins, live after a couple of frames and over the whole track."""
    poses = _motion(fitter, 30, seed=7)
    shape = fitter.shape()
    kps = [fitter.forward(shape, fitter.full_params(shape, p))[0] for p in poses]
    rng = np.random.default_rng(7)
    preds = [_mirror(_prediction(k, noise=0.005, rng=rng)) for k in kps]
    stage = BodyFitStage(fitter.model)
    plain = stage.finish([stage(f) for f in _frames(preds)])
    assert _left_wrist_wrong(plain, kps).all()                           # nothing tells: labels as given
    stage = BodyFitStage(fitter.model)
    live = [stage(f) for f in _frames([_with_hands(p, 0.93, 0.08) for p in preds])]
    offline = stage.finish(live)
    assert not _left_wrist_wrong(offline, kps).any()
    assert _left_wrist_wrong(live, kps).sum() <= 2


def test_a_side_on_frame_neither_pays_nor_earns_much(fitter):
    """Seen side-on the mirrored body is nearly the same body: a fit that happens to do better mirrored there
    must not outweigh the prior toward the labels as given; facing the camera it counts in full."""
    from types import SimpleNamespace

    stage = BodyFitStage(fitter.model)
    fits = {0: SimpleNamespace(data_cost=140.0, limit_cost=0.0), 1: SimpleNamespace(data_cost=120.0, limit_cost=0.0)}
    side = stage._costs(fits, 0, decisive=stage._decisive(np.array([0.998, 0.0, -0.05])))
    front = stage._costs(fits, 0, decisive=stage._decisive(np.array([0.0, 0.0, -1.0])))
    assert side[1] - side[0] > 0 > front[1] - front[0]
    assert stage._decisive(None) == 1.0


def test_a_turn_to_side_on_and_back_is_not_read_mirrored(fitter):
    """A person turning from facing the camera to side-on (90 degrees) and back, with noise and no swap: no
    frame is read mirrored, live, 4 frames late or over the whole track."""
    poses = _motion(fitter, 60, seed=9)
    poses[:, 4] = 0.5 * np.pi * np.sin(np.pi * np.arange(60) / 59.0) ** 2   # root_ry 0 -> 90 deg -> 0
    shape = fitter.shape()
    kps = [fitter.forward(shape, fitter.full_params(shape, p))[0] for p in poses]
    assert abs(torso_heading(kps[30])[2]) < 0.2                           # side-on mid-turn
    rng = np.random.default_rng(9)
    preds = [_prediction(k, noise=0.01, rng=rng) for k in kps]
    stage = BodyFitStage(fitter.model)
    live = [stage(f) for f in _frames(preds)]
    offline = stage.finish(live)
    lagging = BodyFitStage(fitter.model, lag_frames=4)
    lagged = [r for f in _frames(preds) for r in lagging.push(f)] + lagging.flush()
    for res in (live, offline, lagged):
        assert not _left_wrist_wrong(res, kps).any()


def test_a_person_with_nothing_seen_passes_through(fitter):
    """A tracked person whose joints are all invalid (leaving the picture: romp_sample_video_football.mp4 frame
    127 stopped the demo with 'need at least one array to concatenate') is passed on unfitted."""
    import dataclasses

    kp = fitter.forward(fitter.shape(), fitter.full_params(fitter.shape(), np.zeros(204)))[0]
    seen = _prediction(kp)
    blind = dataclasses.replace(seen, joints_valid=np.zeros(70, bool), joints_2d=np.full((70, 2), np.nan, np.float32),
                                joints_3d_local=np.full((70, 3), np.nan, np.float32))
    stage = BodyFitStage(fitter.model)
    live = [stage(f) for f in _frames([seen, blind, seen])]
    assert live[1].persons[0] is blind and live[2].persons[0].mhr_params is not None
    assert len(stage.finish(live)) == 3


def test_finish_twice_gives_the_decision_not_the_live_reading(fitter):
    """The demo writes partial files during a run (each calls finish on the frames so far), then finishes the
    whole run: the final output must carry the final whole-track decision, not the live reading of a frame an
    earlier, partial finish had decided the same way (romp_sample_video_football.mp4: 11 frames were written
    with their live reading)."""
    poses = _motion(fitter, 60, seed=4)
    shape = fitter.shape()
    kps = [fitter.forward(shape, fitter.full_params(shape, p))[0] for p in poses]
    rng = np.random.default_rng(4)
    preds = [_prediction(k, noise=0.005, rng=rng) for k in kps]
    preds = [_mirror(p) if 20 <= i < 38 else p for i, p in enumerate(preds)]
    stage = BodyFitStage(fitter.model)
    live = [stage(f) for f in _frames(preds)]
    once = BodyFitStage(fitter.model)
    expected = once.finish([once(f) for f in _frames(preds)])
    for n in (21, 30, 45):                                             # partial files along the way
        stage.finish(live[:n])
    final = stage.finish(live)
    assert not _left_wrist_wrong(final, kps).any()
    for a, b in zip(final, expected):
        np.testing.assert_allclose(a.persons[0].joints_2d, b.persons[0].joints_2d, atol=1e-3)


def test_a_person_turning_their_back_is_read_mirrored_once_turned(fitter):
    """The held-out clip's case: a person turns from facing the camera to their back (0 -> 180 degrees over 40
    frames), and from the moment their back is toward the camera the observations cross left and right (what
    MediaPipe does): the crossing falls on a side-on frame, so 2D shows no jump. The mirrored reading must win
    on the back frames: 4 frames late (133 ms) and over the whole track with no wrong frame; live (no delay)
    a few frames late without hands, at most one with hands seen on every other frame."""
    n = 90
    poses = _motion(fitter, n, seed=1)
    poses[:, 4] = np.clip(np.arange(n) - 20, 0, 40) / 40 * np.pi
    shape = fitter.shape()
    kps = [fitter.forward(shape, fitter.full_params(shape, p))[0] for p in poses]
    away = np.array([torso_heading(k)[2] > 0 for k in kps])
    assert 40 < away.sum() < 60
    rng = np.random.default_rng(1)
    preds = [_prediction(k, noise=0.01, rng=rng) for k in kps]
    preds = [_mirror(p) if a else p for p, a in zip(preds, away)]
    with_hands = [_with_hands(p, 0.9 if a else 0.1, 0.1 if a else 0.9, 0.8) if i % 2 == 0 else p
                  for i, (p, a) in enumerate(zip(preds, away))]
    for obs, live_ok in ((preds, 4), (with_hands, 1)):
        stage = BodyFitStage(fitter.model)
        live = [stage(f) for f in _frames(obs)]
        offline = stage.finish(live)
        lagging = BodyFitStage(fitter.model, lag_frames=4)
        lagged = [r for f in _frames(obs) for r in lagging.push(f)] + lagging.flush()
        assert not _left_wrist_wrong(offline, kps).any() and not _left_wrist_wrong(lagged, kps).any()
        assert _left_wrist_wrong(live, kps).sum() <= live_ok


def test_count_swapped_frames_judges_only_frames_with_shoulders(tmp_path, capsys):
    """tools/count_swapped_frames.py: a labelled frame is swapped when the run's left-minus-right x sign differs
    from the label's; a frame where the run has no shoulders is not judged (nor counted swapped); a missing
    file is one error line."""
    from instanthmr.cli import count_swapped_frames as tool

    labels = tmp_path / "labels.csv"
    labels.write_text("clip,frame,track,a_left_minus_right_x_sign,b_left_minus_right_x_sign,truth\n"
                      "c,0,1,1,-1,A\nc,1,1,1,-1,B\nc,2,1,1,-1,both\nc,3,1,1,-1,unclear\n"
                      "c,4,1,1,1,neither\nc,5,1,1,1,neither\n")

    def person(lr_sign):  # left shoulder / hip at x 100 + 10 * sign, right ones at 100 - 10 * sign
        j = [None] * len(MHR70_INDEX)
        if lr_sign:
            for side, s in (("left", lr_sign), ("right", -lr_sign)):
                for part in ("shoulder", "hip"):
                    j[MHR70_INDEX[f"{side}_{part}"]] = [100.0 + 10 * s, 50.0]
        return {"track_id": 1, "joints_2d": j}

    # frame 0 right (A: +1), frame 1 swapped (B: -1), frame 2 no shoulders, frames 4-5 labelled neither (both
    # runs +1, wrong: -1 is right): 4 as those runs (swapped), 5 the other way (right)
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"frames": [{"frame_index": i, "persons": [person(s)]}
                                          for i, s in enumerate((1, 1, 0, 1, 1, -1))]}))
    assert tool.main(["c", str(run), "--labels", str(labels)]) == 0
    assert f"{run}: 4 frames judged, 2 swapped 1:1 4:1" in capsys.readouterr().out
    assert tool.main(["c", str(tmp_path / "missing.json"), "--labels", str(labels)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot read") and "missing.json" in err and len(err.splitlines()) == 1


def _turn_on_the_spot(fitter, yaw, seed, away_from=None):
    """A person in MHR's rest pose (left and right alike: swapping the labels moves no joint far in 2D) turning
    on the spot with root yaw ``yaw`` (n,) rad, observed with noise; frames whose true torso heading points
    away from the camera (heading z > ``away_from``) read mirrored, as MediaPipe reads a back as a front.
    Returns (true keypoints per frame, predictions, true heading z per frame)."""
    shape = fitter.shape()
    kps = []
    for y in yaw:
        p = np.zeros(204)
        p[4] = y                                                          # root_ry
        kps.append(fitter.forward(shape, fitter.full_params(shape, p))[0])
    hz = np.array([torso_heading(k)[2] for k in kps])
    rng = np.random.default_rng(seed)
    preds = [_prediction(k, noise=0.01, rng=rng) for k in kps]
    if away_from is not None:
        preds = [_mirror(p) if z > away_from else p for p, z in zip(preds, hz)]
    return kps, preds, hz


def _decided(fitter, preds, timed: bool = False):
    """Live, 4 frames late (133 ms) and whole-track results of the stage on ``preds`` (``timed``: the frames
    carry times, so the walking cue speaks)."""
    frames = _frames(preds, timed)
    stage = BodyFitStage(fitter.model)
    live = [stage(f) for f in frames]
    offline = stage.finish(live)
    lagging = BodyFitStage(fitter.model, lag_frames=4)
    lagged = [r for f in frames for r in lagging.push(f)] + lagging.flush()
    return live, lagged, offline


def test_a_steady_turn_through_side_on_read_mirrored_past_it_is_decided_right(fitter):
    """The held-out clip's failure (issue 22): a person turning steadily on the spot (3 deg/frame) from facing
    the camera through side-on to their back, and MediaPipe reading every frame past side-on mirrored. With
    a symmetric pose nothing jumps in 2D where the labels cross (side-on, where the mirrored body is nearly the
    same body). Judged on the frames more than ~17 degrees from side-on (closer, left and right overlap in
    2D). (This clean MHR body is also decided right by the code before the front prior: its fit tells the
    readings apart; the mocap bow below is the case that failed.)"""
    n = 100
    yaw = np.clip(np.arange(n) - 10, 0, 60) * np.radians(3.0)              # 0 -> 180 deg over frames 10-70
    kps, preds, hz = _turn_on_the_spot(fitter, yaw, 0, away_from=0.0)
    judged = np.abs(hz) > 0.3
    assert (hz > 0.3).sum() > 40
    live, lagged, offline = _decided(fitter, preds)
    assert not (_left_wrist_wrong(offline, kps) & judged).any()
    assert not (_left_wrist_wrong(lagged, kps) & judged).any()


def test_a_turn_to_side_on_and_back_on_the_spot_is_not_read_mirrored(fitter):
    """The other side of that test: the same person turning to side-on (90 deg) and back (a smooth turn,
    slowing to a stop at side-on), nothing mirrored: no frame is read mirrored, live, 4 frames late or over
    the whole track (judged as above)."""
    n = 100
    yaw = 0.5 * np.pi * np.sin(np.pi * np.clip(np.arange(n) - 10, 0, 80) / 80.0) ** 2
    kps, preds, hz = _turn_on_the_spot(fitter, yaw, 0)
    judged = np.abs(hz) > 0.3
    for res in _decided(fitter, preds):
        assert not (_left_wrist_wrong(res, kps) & judged).any()


def _mocap_take(name):
    from instanthmr.training.data.mocap_takes import load_takes

    takes, _ = load_takes(max_frames=300)
    take = next((t for t in takes if name in t.name), None)
    if take is None:
        pytest.skip(f"no mocap take {name} under the shared data (../shared/data/mocap)")
    from instanthmr.cli.eval_body_fit import mhr70_take
    return mhr70_take(take)


def test_a_bow_turning_through_side_on_read_mirrored_past_it_is_decided_right(fitter):
    """``tools/eval_body_fit.py --swap-away 90`` on one real take (a bow, arms down: nothing jumps in 2D where
    the labels cross at side-on), turned on the spot +-150 degrees: MediaPipe's failure on a back, the
    held-out clip's. The code before ``mirror_cost_front`` read every one of its 77 mirrored frames as given,
    live, 4 frames late and over the whole track (the per-frame prior outweighed everything a stretch shows);
    with it 3 offline on the fit before the chord step's fix, 9 after (measured 2026-12-07)."""
    from instanthmr.cli.eval_body_fit import run_take

    cam, uv, valid = _mocap_take("bow_normal")
    rows, _, injected = run_take(cam, uv, valid, np.random.default_rng(0), 4, fitter.model, swap_away=90.0,
                                 sweep=150.0, timings=False)
    assert injected > 60
    assert rows["offline"]["swapped"] <= 15 and rows["lag 4"]["swapped"] <= 25


def test_a_bow_turning_to_side_on_and_back_is_not_read_mirrored(fitter):
    """The same take turned +-80 degrees (to about side-on and back), nothing mirrored: no frame read
    mirrored at any lag."""
    from instanthmr.cli.eval_body_fit import run_take

    cam, uv, valid = _mocap_take("bow_normal")
    rows, _, injected = run_take(cam, uv, valid, np.random.default_rng(0), 4, fitter.model, swap_away=180.0,
                                 sweep=80.0, timings=False)
    assert injected == 0
    assert rows["live"]["swapped"] == rows["lag 4"]["swapped"] == rows["offline"]["swapped"] == 0


def test_the_mirrored_reading_is_cheap_only_where_mediapipe_reads_a_front(fitter):
    """The mirrored reading's prior per frame: MediaPipe's failure is a back read as a front, in whole stretches,
    so where the labels as given read a clear front it costs mirror_cost_front; where they read a back (MediaPipe
    was right about backs on the shared clips) or a side (a coin toss), the full mirror_cost."""
    stage = BodyFitStage(fitter.model)
    sw = stage.swap
    front, back = np.array([0.0, 0.0, -1.0]), np.array([0.0, 0.0, 1.0])
    side = np.array([np.sqrt(1 - 0.1 ** 2), 0.0, -0.1])                   # 6 degrees from side-on, facing side
    assert stage._mirror_prior(front) == sw.mirror_cost_front < sw.mirror_cost
    assert stage._mirror_prior(back) == stage._mirror_prior(side) == stage._mirror_prior(None) == sw.mirror_cost
    half = np.array([np.sqrt(1 - 0.3 ** 2), 0.0, -0.3])
    assert sw.mirror_cost_front < stage._mirror_prior(half) < sw.mirror_cost
    # only on a front reached through side-on: not on a track's first frames, nor right after a clear back
    assert stage._mirror_prior(front, via_side=False) == sw.mirror_cost
    via = False                                                          # a track starting facing the camera
    for h in (front, side, front):                                       # turns to side-on and back
        via = stage._via_side(via, h)
    assert via and not stage._via_side(via, back) and stage._via_side(True, half)
    assert stage._via_side(True, np.array([np.sqrt(1 - 0.5 ** 2), 0.0, 0.5]))   # just past side-on: noise


def test_swap_away_reads_mirrored_the_frames_turned_past_the_threshold(fitter):
    """tools/eval_body_fit.py --swap-away: the yaw sweep turns a body facing the camera on the spot (the angle
    from the camera follows |yaw|, the hips stay put), and the frames turned more than DEG are the mirrored
    ones, with a flicker only within --jitter of DEG."""
    from instanthmr.cli.eval_body_fit import away_degrees, swap_away_frames, yaw_sweep

    shape = fitter.shape()
    kp = fitter.forward(shape, fitter.full_params(shape, np.zeros(204)))[0] + CAM
    cam = np.repeat(kp[None], 240, 0)
    valid = np.ones(70, bool)
    turned, uv = yaw_sweep(cam, valid, 150.0, period=240)
    away = away_degrees(turned)
    assert away.max() == pytest.approx(150, abs=3) and away[0] < 3
    hips = [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]
    np.testing.assert_allclose(turned[:, hips].mean(1), cam[:, hips].mean(1), atol=1e-9)
    assert uv.shape == (240, 70, 2) and np.isfinite(uv).all()
    swapped = swap_away_frames(away, 90.0, 0.0, np.random.default_rng(0))
    assert (swapped == (away > 90)).all() and 0 < swapped.sum() < 240
    flicker = swap_away_frames(away, 90.0, 5.0, np.random.default_rng(0))
    assert (flicker == swapped)[np.abs(away - 90) >= 5].all()


def test_walking_velocity_and_what_facing_against_it_costs():
    """The walking cue's two pure parts: the path's ground-plane velocity (a least-squares slope over the last
    window, camera x and z; none from too short a path) and each reading's cost: the one facing against a
    brisk walk in depth pays; a walk across the picture (a camera panning), a shuffle, or a depth drift within
    what a monocular depth drifts by at that distance says nothing."""
    from instanthmr.video.body_fit import walk_costs, walking_velocity

    rng = np.random.default_rng(0)
    t = np.arange(30) / 30.0
    path = [(s, np.array([0.1, 0.9 - 0.2 * s, 4.0 + 1.2 * s]) + rng.normal(0, [0.01, 0.01, 0.05])) for s in t]
    v = walking_velocity(path, 0.5)
    assert v.shape == (2,) and abs(v[0]) < 0.1 and v[1] == pytest.approx(1.2, abs=0.25)   # y (up/down) left out
    assert walking_velocity(path[:6], 0.5) is None                                        # < half a window
    assert walking_velocity([path[0], path[10], path[20]], 0.5) is None                   # 3 samples
    assert walking_velocity([], 0.5) is None
    away, toward = np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, -1.0])

    def cost(headings, velocity, depth=4.0):
        return walk_costs(headings, None if velocity is None else np.asarray(velocity, float), depth, 10.0,
                          (0.4, 0.9), 0.05)

    np.testing.assert_allclose(cost((toward, away), [0.0, 1.2]), [10.0, 0.0])      # walking away: a back
    np.testing.assert_allclose(cost((away, toward), [0.0, -1.2]), [10.0, 0.0])     # walking closer: a front
    np.testing.assert_allclose(cost((toward, away), [0.0, 0.85]), [5.0, 0.0])      # 0.85 - 0.2 allowed at 4 m
    np.testing.assert_allclose(cost((toward, away), [0.0, 0.85], depth=8.0), [1.0, 0.0])   # further: surer
    oblique = np.array([0.6, 0.0, -0.8])                                           # its depth part: 0.8
    np.testing.assert_allclose(cost((oblique, oblique * [1, 1, -1]), [0.6, 1.2]), [8.0, 0.0])
    side = np.array([0.98, 0.0, -0.2])
    assert not cost((side, side * [1, 1, -1]), [1.5, 0.0]).any()                   # across the picture
    assert not cost((toward, away), [0.0, 0.5]).any()                              # a shuffle
    assert not cost((toward, away), None).any()
    assert cost((None, away), [0.0, -1.2])[0] == 0.0


def _walker(fitter, n, yaw, speed_z, start_z, seed=2):
    """A person swinging arms and legs, facing ``yaw`` (root yaw, rad; pi = back to the camera), walking along
    the camera's z at ``speed_z`` m/s from ``start_z`` m: (true keypoints, camera translations, predictions)."""
    poses = _motion(fitter, n, seed=seed)
    poses[:, 4] = yaw
    shape = fitter.shape()
    kps = [fitter.forward(shape, fitter.full_params(shape, p))[0] for p in poses]
    cams = [CAM + [0.0, 0.0, start_z - CAM[2] + speed_z * i / 30.0] for i in range(n)]
    rng = np.random.default_rng(seed)
    return kps, cams, [_prediction(k, cam=c, noise=0.01, rng=rng) for k, c in zip(kps, cams)]


def test_a_person_walking_away_read_as_a_front_from_the_first_frame_is_decided_right(fitter):
    """MediaPipe reads a back as a front from a track's first frame: nothing in the body tells (no turn, no
    jump), but the person walks away from the camera, and people face where they walk (SwapConfig.walk_weight).
    With frame times the whole track is read right, and 4 frames late (133 ms) from a second in; without
    them (no walking cue) every frame stays as given, wrong."""
    n = 90
    kps, cams, preds = _walker(fitter, n, np.pi, 1.3, 4.0)
    preds = [_mirror(p) for p in preds]
    live, lagged, offline = _decided(fitter, preds, timed=True)
    assert not _left_wrist_wrong(offline, kps, cams).any()
    assert not _left_wrist_wrong(lagged, kps, cams)[30:].any() and not _left_wrist_wrong(live, kps, cams)[30:].any()
    for res in _decided(fitter, preds):
        assert _left_wrist_wrong(res, kps, cams).all()


def test_a_person_walking_toward_the_camera_or_backing_away_briefly_keeps_the_labels(fitter):
    """The other side: a person facing the camera and walking toward it, read right, is never read mirrored
    (a regression guard: here the body's own fit outweighs the cue either way round; the cue's sign is
    tested above and by the walk away); nor is one who steps back from the camera for two thirds of a second
    (20 frames at 1.3 m/s) between stands (this bounds walk_weight: at 40 it was read mirrored)."""
    kps, cams, preds = _walker(fitter, 90, 0.0, -1.3, 7.0)
    for res in _decided(fitter, preds, timed=True):
        assert not _left_wrist_wrong(res, kps, cams).any()
    kps, cams, preds = _walker(fitter, 90, 0.0, 0.0, 4.0)
    z = 4.0 + 1.3 * np.clip(np.arange(90) - 40, 0, 20) / 30.0             # still, 20 frames back, still
    cams = [CAM + [0.0, 0.0, zi - CAM[2]] for zi in z]
    rng = np.random.default_rng(3)
    preds = [_prediction(k, cam=c, noise=0.01, rng=rng) for k, c in zip(kps, cams)]
    for res in _decided(fitter, preds, timed=True):
        assert not _left_wrist_wrong(res, kps, cams).any()


def test_turn_take_turns_the_path_with_the_body(fitter):
    """tools/eval_body_fit.py --views: a walk across the camera (along x, facing its walk) seen from 90
    degrees round is a walk in depth, still facing its walk; from 180, the same walk the other way round.
    The mean hip position stays, and the body faces where it goes in every view (unlike the yaw sweep)."""
    from instanthmr.body.fit import torso_heading as heading
    from instanthmr.cli.eval_body_fit import turn_take

    shape = fitter.shape()
    p = np.zeros(204)
    p[4] = np.pi / 2                                                     # facing +x (root yaw 90 degrees)
    kp = fitter.forward(shape, fitter.full_params(shape, p))[0]
    assert heading(kp)[0] > 0.95
    cam = np.stack([kp + CAM + [1.3 * i / 30.0, 0.0, 1.0] for i in range(60)])
    valid = np.ones(70, bool)
    hips = [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]
    for deg in (90.0, 180.0, 270.0):
        turned, uv = turn_take(cam, valid, deg)
        walk = turned[-1, hips].mean(0) - turned[0, hips].mean(0)
        np.testing.assert_allclose(turned[:, hips].mean((0, 1)), cam[:, hips].mean((0, 1)), atol=1e-9)
        np.testing.assert_allclose(np.linalg.norm(walk), 1.3 * 59 / 30.0, rtol=1e-9)
        h = heading(turned[30] - turned[30, hips].mean(0))
        assert h @ walk / np.linalg.norm(walk) > 0.95                     # facing where it walks
        assert uv.shape == (60, 70, 2) and np.isfinite(uv).all()
    assert turn_take(cam, valid, 90.0)[0][-1, hips, 2].mean() < turn_take(cam, valid, 90.0)[0][0, hips, 2].mean()


def test_bench_body_fit_stage_times_the_stage_with_frame_times(fitter):
    """tools/bench_body_fit_stage.py's timer wraps the stage's per-person step: on tracked frames that carry
    times (as the demo's do) it times every person-frame and returns the stage's own results (it broke once
    when the step took the frame's time)."""
    from instanthmr.cli.bench_body_fit_stage import time_stage

    kps, cams, preds = _walker(fitter, 12, np.pi, 1.3, 4.0)
    best, info, out, cpu = time_stage(_frames(preds, timed=True), passes=2)
    assert sorted(best) == [(i, 1) for i in range(12)] and all(ms > 0 for ms in best.values())
    assert len(out) == 12 and all(p.mhr_params is not None for r in out for p in r.persons) and cpu > 0


def test_the_walking_path_starts_once_the_track_s_bones_are_held(fitter):
    """A track's first frames are fitted with the provisional mean body: their depths (from the same 2D, a
    body of another size is found nearer or further) are no path. The walk is read only from the frames
    fitted with the track's held bones: a person walking away facing the camera pays nothing before them,
    and pays once a quarter second of them is there."""
    from types import SimpleNamespace

    from instanthmr.video.body_fit import _Track

    stage = BodyFitStage(fitter.model)
    tr = _Track()
    toward, away = np.array([0.0, 0.0, -1.0]), np.array([0.0, 0.0, 1.0])
    costs = []
    for i in range(30):
        if i == 10:
            tr.shape = fitter.shape()                                    # the bones held from frame 10 on
        fit = SimpleNamespace(cam_trans=np.array([0.0, 0.5, 4.0 + 1.3 * i / 30.0]))   # walking away, 1.3 m/s
        costs.append(stage._walking_cue(tr, i / 30.0, fit, (toward, away)))
    costs = np.array(costs)
    assert not costs[:17].any()                                          # 7 held frames: under a quarter second
    assert (costs[18:, 0] > 5.0).all() and not costs[:, 1].any()
    assert not stage._walking_cue(tr, 1.0, SimpleNamespace(cam_trans=None), (toward, away)).any()   # no 2D, no path
    assert not stage._walking_cue(tr, None, SimpleNamespace(cam_trans=np.ones(3)), (toward, away)).any()
    assert len(tr.path) == 16                                            # the last half second only
    nan = SimpleNamespace(cam_trans=np.array([0.0, np.nan, 5.0]))
    assert not stage._walking_cue(tr, 1.1, nan, (toward, away)).any() and len(tr.path) == 16
    assert not stage._walking_cue(tr, 0.0, SimpleNamespace(cam_trans=np.ones(3)), (toward, away)).any()
    assert len(tr.path) == 1                                             # the clock went back: a new path


def test_correlated_noise_keeps_its_variance_and_the_draws_after_it():
    """tools/eval_body_fit.py --noise-corr: the observation noise as an AR(1) sequence over frames: unit variance
    per frame, the asked correlation between consecutive frames, white for 0 (the default's draws unchanged),
    and as many draws from the generator as white noise, so what is drawn after it does not move."""
    from instanthmr.cli.eval_body_fit import correlated_normal

    white = correlated_normal(np.random.default_rng(5), (4000, 3), 0.0)
    np.testing.assert_array_equal(white, np.random.default_rng(5).normal(0, 1, (4000, 3)))
    rng = np.random.default_rng(5)
    x = correlated_normal(rng, (4000, 3), 0.85)
    assert x.std() == pytest.approx(1.0, abs=0.1)
    lag1 = np.mean([np.corrcoef(x[1:, k], x[:-1, k])[0, 1] for k in range(3)])
    assert lag1 == pytest.approx(0.85, abs=0.03)
    after = np.random.default_rng(5)
    after.normal(0, 1, (4000, 3))
    assert rng.random() == after.random()
