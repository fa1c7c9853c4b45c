"""The per-track body fit measured on real motion capture seen through a virtual camera (synthetic
observations, real motion; no network or MediaPipe model needed).

    python tools/eval_body_fit.py                      # every readable BVH take in <shared data>/mocap
    python tools/eval_body_fit.py --max-frames 150 --seed 1 --lag 4
    python tools/eval_body_fit.py --hands --swap-start   # + the hand model's handedness; swaps from frame 0
    python tools/eval_body_fit.py --swap-away 110 --jitter 5   # people turning away, read mirrored past 110 deg
    python tools/eval_body_fit.py --swap-away 90 --sweep 0 --views 8 --no-timings   # walks seen from 8 sides

Method. Each BVH take (walking, turning, jumping, ...) is read and placed in front of a virtual 1280x720
camera as in ``tools/eval_temporal.py`` (30 fps, focal = image diagonal); its 14 body joints (shoulders,
elbows, wrists, hips, knees, ankles, big toes) are the truth, in MHR70 order. The observations imitate
MediaPipe Pose:

* 2D: projected joints + 1 % of the person's height of noise per joint, 2 % of joints outliers at 5 %;
* 3D: hip-centred joints + 15 mm (x, y) / 30 mm (depth) noise per joint, and a camera translation with
  1 cm (x, y) / 5 cm (depth) error;
* left/right swaps: segments of 10-40 frames (about one per 100 frames) where the labels are swapped and the
  3D depth reflected about the hips (MediaPipe's failure on people turned away: their back read as a front);
  with ``--swap-start`` each take's first segment starts at frame 0 (a person read mirrored from the first
  frame: no jump for continuity to see);
* with ``--swap-away DEG`` instead (the held-out clip's failure): each take is turned on the spot by a slow
  yaw sweep (:func:`yaw_sweep`, +-150 degrees over 8 s: from facing the camera through side-on to the back,
  both ways; ``--sweep``), and the frames whose true torso heading is more than DEG from the camera are read
  mirrored (``--jitter``: a flicker at the boundary). The crossing then falls where the mirrored body is
  nearly the same body: no heading jump at the switch, only the turn reversing;
* with ``--views N``, each take is seen from N directions around it (:func:`turn_take`: the whole take, its
  path too, turned about the vertical through its mean hip position), so that its walks go toward, across
  and away from the camera with the body facing where it walks; with ``--swap-away DEG --sweep 0`` the
  frames facing more than DEG from the camera are then read mirrored from wherever the take starts (a track
  that starts from the back, a walk away from the camera);
* with ``--noise-corr RHO``, the 2D, 3D and camera noise drifts: an AR(1) sequence over frames with
  correlation RHO (0.85: a torso heading about as steady as MediaPipe's own; 0, the default: independent);
* with ``--hands``, the hand model's handedness (``HandLandmarks.right_score``, see
  :data:`HAND_NOISE`): each hand seen on half the frames, at the wrist the (possibly swapped) labels name,
  right on most frames and confidently wrong in whole stretches, as measured on the shared clips.

Reported per take and overall, before (the observations) and after the fit (live: no delay; lag: the
decision ``--lag`` frames late; offline: whole track; ``sm joints`` / ``sm body``: offline then the demo's
``--smooth offline`` smoothing, with the joints as the smoothing leaves them / derived again from the
smoothed body, what the demo writes): PA-MPJPE (mm, 3D, per frame on the 14 joints),
2D error (px), bone-length spread (mm: the standard deviation over frames of each of 10 limb lengths,
averaged; and the worst of the thighs and the hip width, bones between skeleton joints), acceleration
error (mm/frame^2 of the hip-centred 3D joints), swapped frames (a frame is
swapped when its 2D joints are closer to the truth with left and right exchanged), and the fit's cost per
person per frame (ms, median / p95; the mirrored reading included when it runs).

The fitted body's MHR70 joints are not defined like a BVH skeleton's joint centres (a hip or shoulder
keypoint of MHR sits elsewhere than the mocap rig's joint), so "after" carries that definitional offset
too: it is an upper bound on the fit's own error.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

from instanthmr.cli.common import describe_load, load_average
from instanthmr.core.metrics import acceleration_error, pa_mpjpe
from instanthmr.core.skeleton import COCO_WHOLEBODY_TO_MHR70, MHR70_FLIP_PERM, MHR70_INDEX
from instanthmr.runtime.hmr import HMRPrediction
from instanthmr.runtime.pipeline import FrameResult

IMAGE_WH = (1280, 720)
FPS = 30.0
#: Limb bones whose length spread is reported (MHR70 names).
BONES = (("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"), ("left_elbow", "left_wrist"),
         ("right_elbow", "right_wrist"), ("left_hip", "left_knee"), ("right_hip", "right_knee"),
         ("left_knee", "left_ankle"), ("right_knee", "right_ankle"), ("left_shoulder", "right_shoulder"),
         ("left_hip", "right_hip"))
#: Of those, the bones between two skeleton joints of MHR70 (the others end at skinned vertices, elbows and
#: ankles, or move with the clavicles): one fitted body keeps them exactly.
SKELETON_BONES = (("left_hip", "left_knee"), ("right_hip", "right_knee"), ("left_hip", "right_hip"))
_FLIP = np.asarray(MHR70_FLIP_PERM)
#: The synthetic hand model (``--hands``), from its handedness on the shared clips (docs/body_fit.md): of the
#: hands it was sure of (|right_score - 0.5| > 0.3), 85 % were right; the wrong ones came in whole stretches
#: (small backlit hands, hands seen from the back). seen: per hand and frame; presence: uniform range;
#: confidence: |2 right_score - 1|, uniform range; misleading: the share of 30-frame blocks where it is wrong.
HAND_NOISE = {"seen": 0.5, "presence": (0.6, 1.0), "confidence": (0.4, 1.0), "misleading": 0.15, "block": 30}
_HIPS = [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]
#: ``--swap-away``'s yaw sweep: its period in frames (8 s at 30 fps) and default amplitude (degrees).
SWEEP_PERIOD, SWEEP_AMPLITUDE = 240, 150.0


def mhr70_take(take) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cam (T,70,3) m, uv (T,70,2) px, valid (70,) bool) of an ``eval_temporal`` take in MHR70 order.

    The camera is a proper rotation of the mocap world (Y up -> y down AND z -> -z, then 5 m away): the
    x-kept, y-flipped view of ``eval_temporal`` is a mirror image, harmless for smoothing but it turns a
    left arm into a right one, which a body model cannot fit."""
    from instanthmr.core.geometry import default_focal, project_points

    world = take.joints_world
    centre = world[:, list(take.hips)].mean(1).mean(0)
    cam_j = np.stack([world[..., 0] - centre[0], -(world[..., 1] - 1.0), -(world[..., 2] - centre[2]) + 5.0], -1)
    cam_j[..., 2] = np.maximum(cam_j[..., 2], 1.5)
    uv_j = project_points(cam_j, default_focal(IMAGE_WH), (IMAGE_WH[0] / 2, IMAGE_WH[1] / 2))
    t = world.shape[0]
    cam, uv = np.full((t, 70, 3), np.nan), np.full((t, 70, 2), np.nan)
    valid = np.zeros(70, bool)
    for k, c in enumerate(take.coco_index):
        m = COCO_WHOLEBODY_TO_MHR70.get(int(c))
        if m is not None:
            cam[:, m], uv[:, m], valid[m] = cam_j[:, k], uv_j[:, k], True
    return cam, uv, valid


def swap_segments(t: int, rng, per_frames: int = 100, lengths=(10, 40), at_start: bool = False) -> np.ndarray:
    """(T,) bool: frames inside injected left/right swaps (about one segment per ``per_frames`` frames; the
    first one from frame 0 with ``at_start``)."""
    out = np.zeros(t, bool)
    n = max(1, int(round(t / per_frames)))
    for k in range(n):
        length = int(rng.integers(lengths[0], lengths[1] + 1))
        if t <= length + 10:
            break
        start = int(rng.integers(5, t - length))
        start = 0 if at_start and k == 0 else start
        out[start:start + length] = True
    return out


def _turned(cam: np.ndarray, valid: np.ndarray, centre: np.ndarray, yaw, min_depth: float | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """(cam (T,70,3) m, uv (T,70,2) px, invalid joints NaN) of ``cam`` turned by ``yaw`` rad (a number, or
    (T,1) per frame) about the vertical through ``centre`` ((3,), or (T,1,3) per frame; camera axes, y down),
    depths kept at ``min_depth`` m or more when given."""
    from instanthmr.core.geometry import default_focal, project_points

    c, s = np.cos(yaw), np.sin(yaw)
    rel = cam - centre
    out = cam.copy()
    out[..., 0] = centre[..., 0] + c * rel[..., 0] + s * rel[..., 2]
    out[..., 2] = centre[..., 2] - s * rel[..., 0] + c * rel[..., 2]
    if min_depth is not None:
        out[..., 2] = np.maximum(out[..., 2], min_depth)
    uv = project_points(out, default_focal(IMAGE_WH), (IMAGE_WH[0] / 2, IMAGE_WH[1] / 2))
    uv[:, ~valid] = np.nan
    return out, uv


def yaw_sweep(cam: np.ndarray, valid: np.ndarray, amplitude_deg: float, period: int = SWEEP_PERIOD
              ) -> tuple[np.ndarray, np.ndarray]:
    """(cam (T,70,3) m, uv (T,70,2) px) of a take turned about the vertical through each frame's hip centre by
    ``amplitude_deg`` x sin(2 pi t / ``period``) (camera axes, y down: a person turning on the spot, added to
    the take's own turns). With 150 degrees the person turns from facing the camera through side-on to their
    back and back again, both ways, crossing side-on at ~3 deg/frame (90 deg/s at 30 fps)."""
    t = np.arange(len(cam))
    yaw = np.radians(amplitude_deg) * np.sin(2 * np.pi * t / period)
    return _turned(cam, valid, cam[:, _HIPS].mean(1, keepdims=True), yaw[:, None])


def turn_take(cam: np.ndarray, valid: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """(cam (T,70,3) m, uv (T,70,2) px) of a take seen from another direction: the whole take (its path too)
    turned by ``degrees`` about the vertical through its mean hip position (camera axes, y down; depths kept
    at 1.5 m or more, as :func:`mhr70_take` places them). Unlike :func:`yaw_sweep` the body keeps facing
    where it walks; 180 turns a walk toward the camera into a walk away from it."""
    return _turned(cam, valid, np.nanmean(cam[:, _HIPS].mean(1), 0), np.radians(degrees), min_depth=1.5)


def away_degrees(cam: np.ndarray) -> np.ndarray:
    """(T,) degrees between the true torso heading and the direction from the hips to the camera: 0 facing the
    camera, 90 side-on, 180 the back toward it."""
    from instanthmr.body.fit import torso_heading

    out = np.zeros(len(cam))
    for i, frame in enumerate(cam):
        h = torso_heading(np.nan_to_num(frame))
        to_cam = -frame[_HIPS].mean(0)
        to_cam[1] = 0.0                                      # the heading lies in the ground plane
        out[i] = np.degrees(np.arccos(np.clip(h @ to_cam / np.linalg.norm(to_cam), -1.0, 1.0)))
    return out


def swap_away_frames(away: np.ndarray, threshold_deg: float, jitter_deg: float, rng) -> np.ndarray:
    """(T,) bool: the frames MediaPipe reads mirrored in ``--swap-away`` (its failure on people turned away:
    their back read as a front): the true heading more than ``threshold_deg`` from the camera; within
    ``jitter_deg`` of the threshold, each frame either way at random (a flicker at the boundary)."""
    out = away > threshold_deg
    band = np.abs(away - threshold_deg) < jitter_deg
    out[band] = rng.random(int(band.sum())) < 0.5
    return out


def synthetic_hands(swapped: np.ndarray, rng) -> list[dict]:
    """Per frame, ``{"left": HandLandmarks | None, "right": ...}`` keyed by the observation's labels, with
    only presence and handedness meaningful (:data:`HAND_NOISE`; no hand points)."""
    from instanthmr.runtime.mediapipe.hands import HandLandmarks

    n = HAND_NOISE
    t = len(swapped)
    misleading = np.repeat(rng.random(t // n["block"] + 1) < n["misleading"], n["block"])[:t]
    out = []
    for i in range(t):
        hands = {}
        for side in ("left", "right"):
            if rng.random() >= n["seen"]:
                hands[side] = None
                continue
            is_right = (side == "right") != bool(swapped[i])          # the hand at this label's wrist
            says_right = is_right != bool(misleading[i])
            conf = rng.uniform(*n["confidence"])
            hands[side] = HandLandmarks(np.zeros((21, 2), np.float32), np.zeros((21, 3), np.float32),
                                        float(rng.uniform(*n["presence"])), None,
                                        0.5 + (0.5 if says_right else -0.5) * conf)
        out.append(hands)
    return out


def correlated_normal(rng, shape, rho: float) -> np.ndarray:
    """Standard normal noise of ``shape`` whose first axis (frames) is an AR(1) sequence with correlation
    ``rho`` between consecutive frames (0: independent frames); every frame keeps unit variance. Draws as
    many numbers from ``rng`` as ``rng.normal(0, 1, shape)``, so the draws after it do not change with rho."""
    e = rng.normal(0, 1, shape)
    if rho == 0.0:
        return e
    out = np.empty_like(e)
    out[0] = e[0]
    k = math.sqrt(1.0 - rho * rho)
    for i in range(1, len(e)):
        out[i] = rho * out[i - 1] + k * e[i]
    return out


def observations(cam, uv, valid, swapped, rng, focal, pp, hands: list | None = None,
                 noise_corr: float = 0.0) -> list[HMRPrediction]:
    """MediaPipe-like per-frame predictions (module docstring) with the injected swaps; ``hands``: per frame,
    the hands the MediaPipe path would carry (:func:`synthetic_hands`); ``noise_corr``: the 2D, 3D and camera
    noise's correlation between consecutive frames (:func:`correlated_normal`; 0: independent, as MediaPipe's
    is not: its joints drift together over frames)."""
    from instanthmr.runtime.mediapipe.estimator import PersonLandmarks

    t = len(cam)
    ys = uv[:, valid, 1]
    height = (ys.max(1) - ys.min(1))[:, None, None]
    uv_n = uv + correlated_normal(rng, uv.shape, noise_corr) * 0.01 * height
    out = rng.random(uv.shape[:2]) < 0.02
    uv_n[out] += rng.normal(0, 1, (int(out.sum()), 2)) * 0.05 * np.repeat(height[:, 0], 70, 1)[out][:, None]
    root = cam[:, _HIPS].mean(1, keepdims=True)
    local = cam - root + correlated_normal(rng, cam.shape, noise_corr) * [0.015, 0.015, 0.03]
    trans = root[:, 0] + correlated_normal(rng, (t, 3), noise_corr) * [0.01, 0.01, 0.05]
    preds = []
    for i in range(t):
        j2, j3 = uv_n[i].copy(), local[i].copy()
        if swapped[i]:
            j2, j3 = j2[_FLIP], j3[_FLIP]
            zc = j3[_HIPS, 2].mean()
            j3[:, 2] = 2 * zc - j3[:, 2]
        j2[~valid], j3[~valid] = np.nan, np.nan
        box = np.array([*np.nanmin(j2, 0), *np.nanmax(j2, 0)], np.float32)
        preds.append(HMRPrediction(box=box, score=1.0, joints_3d_local=j3.astype(np.float32),
                                   joints_3d_cam=(j3 + trans[i]).astype(np.float32), joints_2d=j2.astype(np.float32),
                                   cam_trans=trans[i].astype(np.float32), focal_length=focal,
                                   principal_point=np.asarray(pp, np.float32), mhr_params=None, shape_params=None,
                                   joints_valid=valid.copy(), track_id=1,
                                   landmarks=None if hands is None else PersonLandmarks(None, hands[i])))
    return preds


def score(preds, cam, uv, valid) -> dict[str, float]:
    """PA-MPJPE (mm), 2D error (px), bone spread (mm), acceleration error (mm/frame^2), swapped frames."""
    j3 = np.stack([np.asarray(p.joints_3d_cam, np.float64) for p in preds])[:, valid]
    j2 = np.stack([np.asarray(p.joints_2d, np.float64) for p in preds])
    gt3, gt2 = cam[:, valid], uv[:, valid]
    pa = pa_mpjpe(j3, gt3).mean() * 1000
    e2 = np.linalg.norm(j2[:, valid] - gt2, axis=-1).mean()
    idx = {m: k for k, m in enumerate(np.flatnonzero(valid))}
    spreads, skeleton = [], []
    for a, b in BONES:
        ia, ib = MHR70_INDEX[a], MHR70_INDEX[b]
        if ia in idx and ib in idx:
            spreads.append(np.linalg.norm(j3[:, idx[ia]] - j3[:, idx[ib]], axis=-1).std() * 1000)
            if (a, b) in SKELETON_BONES:
                skeleton.append(spreads[-1])
    hips = [idx[h] for h in _HIPS]
    rel, rel_gt = j3 - j3[:, hips].mean(1, keepdims=True), gt3 - gt3[:, hips].mean(1, keepdims=True)
    acc = acceleration_error(rel, rel_gt) * 1000
    flipped = uv[:, _FLIP]
    d_true = np.linalg.norm(j2[:, valid] - gt2, axis=-1).mean(1)
    d_flip = np.linalg.norm(j2[:, valid] - flipped[:, valid], axis=-1).mean(1)
    return {"pa_mpjpe_mm": float(pa), "err2d_px": float(e2), "bone_spread_mm": float(np.mean(spreads)),
            "skeleton_spread_mm": float(np.max(skeleton)),
            "accel_mm": float(acc), "swapped": int((d_flip < d_true).sum())}


def run_take(cam, uv, valid, rng, lag: int, model=None, hands_rng=None, swap_start: bool = False,
             swap_away: float | None = None, jitter: float = 0.0, sweep: float = 0.0, timings: bool = True,
             view: float = 0.0, noise_corr: float = 0.0) -> tuple[dict, list[float], int]:
    """One take; ``hands_rng``: a generator for :func:`synthetic_hands` (None: no hands); ``swap_away``
    (degrees): instead of random swaps, the frames turned further than that from the camera are read
    mirrored (:func:`swap_away_frames`, ``jitter`` degrees of flicker), the take first turned by a yaw sweep of
    ``sweep`` degrees (:func:`yaw_sweep`; 0: as recorded); ``timings`` False skips the timing passes (tests);
    ``view`` (degrees): the take seen from that direction (:func:`turn_take`; 0: as recorded); ``noise_corr``:
    the observation noise's correlation between frames (:func:`observations`)."""
    from instanthmr.video.body_fit import BodyFitStage
    from instanthmr.video.tracking import smooth_frames_offline

    focal = float(np.hypot(*IMAGE_WH))
    pp = (IMAGE_WH[0] / 2, IMAGE_WH[1] / 2)
    if view:
        cam, uv = turn_take(cam, valid, view)
    if sweep:
        cam, uv = yaw_sweep(cam, valid, sweep)
    if swap_away is None:
        swapped = swap_segments(len(cam), rng, at_start=swap_start)
    else:
        swapped = swap_away_frames(away_degrees(cam), swap_away, jitter, rng)
    hands = None if hands_rng is None else synthetic_hands(swapped, hands_rng)
    preds = observations(cam, uv, valid, swapped, rng, focal, pp, hands, noise_corr)
    frames = [FrameResult(persons=[p], detector_ms=0.0, hmr_ms=0.0, total_ms=0.0, detector_ran=True, frame_index=i,
                          image_size=IMAGE_WH, time_s=i / FPS) for i, p in enumerate(preds)]
    stage = BodyFitStage(model)
    live = [stage(f) for f in frames]
    offline = stage.finish(live)
    lagged_stage = BodyFitStage(stage.model, lag_frames=lag)
    lagged = []
    for f in frames:
        lagged += lagged_stage.push(f)
    lagged += lagged_stage.flush()
    # --smooth offline as the demo runs it: the whole-track decision, the centred smoothing of every field, the
    # joints derived again from the smoothed body (smoothed: body); before that change the smoothed joints
    # were written as they came out of the smoothing (smoothed: joints)
    joints = smooth_frames_offline(offline, fps=FPS)
    body = stage.rederive(joints)
    rows = {"before": score(preds, cam, uv, valid)}
    for name, res in (("live", live), (f"lag {lag}", lagged), ("offline", offline), ("sm joints", joints),
                      ("sm body", body)):
        rows[name] = score([r.persons[0] for r in res], cam, uv, valid)
    rows["live"]["mirrored_fits"] = stage.mirrored_runs
    if timings:
        rows["live"]["fit_alone_ms"] = fit_alone_ms(stage, preds)
        clean = observations(cam, uv, valid, np.zeros(len(cam), bool), np.random.default_rng(1), focal, pp,
                             noise_corr=noise_corr)
        rows["live"]["stage_clean_ms"] = stage_fastest_ms(stage.model, clean)
    return rows, stage.timings_ms, int(swapped.sum())


def stage_fastest_ms(model, preds, repeats: int = 3) -> list[float]:
    """Per frame, the whole stage (observation, shape, both readings when they run, the decision, the
    output fields) on a take WITHOUT injected swaps, the fastest of ``repeats`` fresh passes: what a person
    costs per frame in ordinary footage, the machine's load mostly filtered out."""
    from instanthmr.video.body_fit import BodyFitStage

    best = np.full(len(preds), np.inf)
    for _ in range(repeats):
        stage = BodyFitStage(model, keep_history=False)
        for i, p in enumerate(preds):
            f = FrameResult(persons=[p], detector_ms=0.0, hmr_ms=0.0, total_ms=0.0, detector_ran=True,
                            frame_index=i, image_size=IMAGE_WH, time_s=i / FPS)
            t0 = time.perf_counter()
            stage(f)
            best[i] = min(best[i], (time.perf_counter() - t0) * 1000)
    return best.tolist()


def fit_alone_ms(stage, preds, repeats: int = 3) -> list[float]:
    """Per frame, the fit of one reading alone (warm-started along the take, the track's held shape, all 70
    keypoints out), the fastest of ``repeats`` passes: the fit's own cost with the machine's load mostly
    filtered out (another process can only make a pass slower)."""
    from instanthmr.video.body_fit import observation_from

    tr = stage.tracks.get(1)
    if tr is None or tr.shape is None:
        return []
    obs = [observation_from(p).clean() for p in preds]
    best = np.full(len(obs), np.inf)
    for _ in range(repeats):
        prev = None
        for i, o in enumerate(obs):
            t0 = time.perf_counter()
            prev = stage.fitter.fit(o, tr.shape, prev)
            _ = prev.keypoints
            best[i] = min(best[i], (time.perf_counter() - t0) * 1000)
    return best[1:].tolist()   # the first frame is a cold start (more iterations), once per track


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-frames", type=int, default=300, help="frames per take (30 fps)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lag", type=int, default=4, help="fixed-lag decision delay in frames (4 = 133 ms at 30 fps)")
    ap.add_argument("--mhr-model", default=None, help="converted MHR .npz (default: the shipped LOD 6)")
    ap.add_argument("--hands", action="store_true",
                    help="the observations carry the hand model's handedness, with its measured errors (HAND_NOISE)")
    ap.add_argument("--swap-start", action="store_true",
                    help="each take's first injected swap starts at frame 0 (read mirrored from the first frame)")
    ap.add_argument("--swap-away", type=float, default=None, metavar="DEG",
                    help="no random swaps: the frames whose true torso heading is more than DEG degrees from the "
                         "camera are read mirrored (MediaPipe's failure on people turned away; 90 = past side-on), "
                         "each take turned by a yaw sweep (--sweep)")
    ap.add_argument("--jitter", type=float, default=0.0, metavar="DEG",
                    help="with --swap-away: frames within DEG degrees of the threshold flicker either way at random")
    ap.add_argument("--sweep", type=float, default=None, metavar="DEG",
                    help=f"yaw sweep amplitude added to each take (default {SWEEP_AMPLITUDE:g} with --swap-away, "
                         f"else 0; period {SWEEP_PERIOD} frames)")
    ap.add_argument("--views", type=int, default=1, metavar="N",
                    help="each take seen from N directions around it, its path turned too (360/N degrees apart; "
                         "1: as recorded): walks toward, across and away from the camera")
    ap.add_argument("--no-timings", action="store_true", help="skip the timing passes (quicker; no cost lines)")
    ap.add_argument("--noise-corr", type=float, default=0.0, metavar="RHO",
                    help="the observation noise's correlation between consecutive frames (0: independent, the "
                         "default; 0.85: a torso heading as steady as MediaPipe's own, docs/body_fit.md)")
    args = ap.parse_args(argv)
    if args.views < 1:
        ap.error(f"--views must be at least 1, got {args.views}")
    if not 0.0 <= args.noise_corr < 1.0:
        ap.error(f"--noise-corr must be in [0, 1), got {args.noise_corr}")
    sweep = args.sweep if args.sweep is not None else (SWEEP_AMPLITUDE if args.swap_away is not None else 0.0)
    from instanthmr.body.mhr import MHRAssetError, MHRNumpy
    from instanthmr.training.data.mocap_takes import load_takes

    try:
        model = MHRNumpy.from_npz(args.mhr_model) if args.mhr_model else None
    except MHRAssetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    takes, skipped = load_takes(max_frames=args.max_frames)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if not takes:
        print("error: no readable BVH take under the shared data's mocap folder", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    hands_rng = np.random.default_rng(args.seed + 1000) if args.hands else None   # the default's draws unchanged
    totals: dict[str, list] = {}
    timings: list[float] = []
    n_swapped = n_frames = n_mirrored = 0
    alone: list[float] = []
    clean_stage: list[float] = []
    t0 = time.perf_counter()
    keys = ("pa_mpjpe_mm", "err2d_px", "bone_spread_mm", "accel_mm", "swapped")
    print(f"{'take':40s} {'frames':>6s} {'injected':>8s} | " + " | ".join(
        f"{k:>9s}" for k in ("", "PA-MPJPE", "2D px", "bones", "accel", "swapped")))
    for take, view in ((t, 360.0 * k / args.views) for t in takes for k in range(args.views)):
        cam, uv, valid = mhr70_take(take)
        rows, ms, inj = run_take(cam, uv, valid, rng, args.lag, model, hands_rng, args.swap_start,
                                 args.swap_away, args.jitter, sweep, not args.no_timings, view, args.noise_corr)
        timings += ms
        n_swapped += inj
        n_mirrored += rows["live"].pop("mirrored_fits")
        alone += rows["live"].pop("fit_alone_ms", [])
        clean_stage += rows["live"].pop("stage_clean_ms", [])
        n_frames += len(cam)
        label = take.name if args.views == 1 else f"{take.name} @{view:g}"
        for name, r in rows.items():
            print(f"{label:40s} {len(cam):6d} {inj:8d} | {name:>9s} | " + " | ".join(
                f"{r[k]:9.1f}" if k != "swapped" else f"{r[k]:9d}" for k in keys))
            totals.setdefault(name, []).append((len(cam), r))
    print(f"\nall takes: {n_frames} frames, {n_swapped} injected swapped frames ({time.perf_counter() - t0:.0f} s)")
    for name, rows in totals.items():
        w = np.array([n for n, _ in rows], float)
        agg = {k: float(np.average([r[k] for _, r in rows], weights=w)) for k in keys if k != "swapped"}
        agg["swapped"] = sum(r["swapped"] for _, r in rows)
        skel = max(r["skeleton_spread_mm"] for _, r in rows)
        print(f"  {name:>9s}: PA-MPJPE {agg['pa_mpjpe_mm']:.1f} mm, 2D {agg['err2d_px']:.1f} px, bone spread "
              f"{agg['bone_spread_mm']:.1f} mm (between skeleton joints, worst take and bone: {skel:.2g} mm), accel {agg['accel_mm']:.1f} mm/frame^2, swapped frames "
              f"{agg['swapped']} of {n_frames}")
    t = np.asarray(timings)
    print(f"  fit time per person per frame (live, both readings when the mirrored one runs): median "
          f"{np.median(t):.2f} ms, p95 {np.percentile(t, 95):.2f} ms ({len(t)} person-frames; wall clock on this "
          f"machine under its current load: {describe_load(load_average())} on "
          f"{os.cpu_count() or 0} CPU(s)); mirrored reading fitted on {n_mirrored} of {n_frames} frames")
    if args.no_timings:
        return 0
    a = np.asarray(alone)
    print(f"  the fit of one reading alone (fastest of 3 passes per frame): median {np.median(a):.2f} ms, "
          f"p95 {np.percentile(a, 95):.2f} ms")
    c = np.asarray(clean_stage)
    print(f"  the whole stage per person per frame on the takes without swaps (fastest of 3 passes per frame): "
          f"median {np.median(c):.2f} ms, p95 {np.percentile(c, 95):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
