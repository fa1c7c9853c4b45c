"""How well the grounded-motion stage finds the floor and stops foot sliding, on real motion capture seen by
virtual cameras of known height, tilt and focal length.

    python tools/eval_ground.py                        # every take x camera x focal, live and two-sided
    python tools/eval_ground.py --focal 0.76 --json out.json
    python tools/eval_ground.py --from-npz run.npz       # a real video: demo.py ... --save-npz run.npz
    python tools/eval_ground.py --cost                   # CPU ms per frame of the live stage

Method (pure numpy, no network weights): each BVH take in ``<shared data>/mocap`` (:mod:`instanthmr.outputs.bvh`)
is resampled to 30 fps and its body joints put in MHR70 order (heels, which the takes lack, are placed rigidly
on each foot 6 cm below the ankle). A virtual 1920x1080 camera stands ``--distance`` m from the middle of the
take's path at a known height, pitched down to look at a point 1 m above the floor there; its true focal is a
fraction of the image diagonal (``--focal``). The "estimator" sees what a single-frame network would: the true
root-relative joints plus 15 mm per-joint noise, and a camera translation with 1 cm (x, y) and 5 cm (depth)
per-frame noise, and the true 2D projection with 1 % of the person's height of noise per joint; the
translation is computed, like InstantHMR, with the default focal (the image diagonal) unless
``--given-focal``: a wrong focal scales every depth by f_assumed / f_true and leaves x, y as they are. Those
are smoothed as the demo does (One-Euro live, the centred fit for the two-sided run) and handed to
:class:`~instanthmr.video.ground_stage.GroundStage`.

Reported per run (the truth: the take's floor y = 0 and its up axis, the camera's pose):
floor normal angle error (deg) and camera height error (m); foot sliding (mm per frame, horizontal, over
consecutive frames where the true heel / big toe moves under 0.15 m/s), the share of those frames that skate
(over 10 mm per frame) and penetration / float (mm below the floor / above the true height) of those
points, for the measured world joints ("before": the estimator's joints in the fitted world frame) and the
stage's output ("after"); the stage's cost in ms per person per frame, the floor fit apart.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.core.skeleton import COCO_WHOLEBODY_INDEX, MHR70_INDEX
from instanthmr.runtime.hmr import HMRPrediction
from instanthmr.runtime.pipeline import FrameResult
from instanthmr.training.data.mocap_takes import FPS
from instanthmr.video.ground import FOOT_JOINTS, angle_deg
from instanthmr.video.ground_stage import GroundStage
from instanthmr.video.smoothing import OneEuroSmoother, smooth_track_offline

IMAGE_WH = (1920, 1080)
#: The virtual cameras: (height m, distance m, view): "side" = side-on to the take's main direction of
#: travel, "front" = along it (people walk towards or away from the camera: feet spread in depth).
CAMERAS = ((1.6, 5.0, "side"), (2.5, 5.0, "side"), (1.0, 4.0, "side"), (1.6, 6.0, "front"), (2.5, 6.0, "front"))
FOCALS = (0.76, 0.9, 1.0)  # true focal, fractions of the image diagonal
STATIC_SPEED = 0.15  # m/s: the truth's foot point stands still below this
SKATE_MM = 10.0  # mm per frame (0.3 m/s at 30 fps): a static point moving more than this skates
_SOLE = FOOT_JOINTS[[0, 1, 3, 4]]  # heels and big toes
_MAP = {"left_hip": "left_hip", "right_hip": "right_hip", "left_knee": "left_knee", "right_knee": "right_knee",
        "left_ankle": "left_ankle", "right_ankle": "right_ankle", "left_big_toe_tip": "left_big_toe",
        "right_big_toe_tip": "right_big_toe", "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder",
        "left_elbow": "left_elbow", "right_elbow": "right_elbow", "left_wrist": "left_wrist",
        "right_wrist": "right_wrist"}


@dataclass
class Take:
    name: str
    world: np.ndarray  # (T, 70, 3) metres, Y up, the capture floor at y = 0; NaN for joints the take lacks


def _heel(ankle: np.ndarray, toe: np.ndarray) -> np.ndarray:
    """A heel point rigid on the foot: 6 cm below the ankle along the foot's own up, 2 cm behind it."""
    f = toe - ankle
    f /= np.linalg.norm(f, axis=-1, keepdims=True)
    side = np.cross(np.array([0.0, 1.0, 0.0]), f)
    side /= np.maximum(np.linalg.norm(side, axis=-1, keepdims=True), 1e-9)
    u = np.cross(f, side)
    return ankle - 0.06 * u - 0.02 * f


def load_takes(root: Path | None = None, max_frames: int = 900) -> tuple[list[Take], list[str]]:
    """Every readable BVH take at 30 fps in MHR70 order; and one line per skipped file."""
    from instanthmr.training.data.mocap_takes import read_mocap

    takes = []
    read, skipped = read_mocap(root, max_frames)
    for name, j, _ in read:
        if len(j) < 60:
            skipped.append(f"{name}: {len(j)} frames at 30 fps, too short")
            continue
        w = np.full((len(j), 70, 3), np.nan)
        for mhr, coco in _MAP.items():
            w[:, MHR70_INDEX[mhr]] = j[:, COCO_WHOLEBODY_INDEX[coco]]
        for s in ("left", "right"):
            ankle, toe = w[:, MHR70_INDEX[f"{s}_ankle"]], w[:, MHR70_INDEX[f"{s}_big_toe_tip"]]
            w[:, MHR70_INDEX[f"{s}_heel"]] = _heel(ankle, toe)
        takes.append(Take(name, w))
    return takes, skipped


def camera_pose(take: Take, height: float, distance: float, view: str = "side") -> tuple[np.ndarray, np.ndarray]:
    """``(R, c)``: world -> camera rotation (rows: camera x, y, z axes in world; y down) and the camera
    centre (world), ``distance`` m from the middle of the take's path, side-on to it (``view`` "side") or
    along it ("front"), ``height`` m up, pitched to look at 1 m above the floor there."""
    root = np.nanmean(take.world[:, [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]], 1)
    xz = root[:, [0, 2]]
    mid = xz.mean(0)
    _, _, vt = np.linalg.svd(xz - mid)
    side = np.array([-vt[0, 1], vt[0, 0]]) if view == "side" else vt[0]  # across or along the main direction
    c = np.array([mid[0] + distance * side[0], height, mid[1] + distance * side[1]])
    look = np.array([mid[0], 1.0, mid[1]]) - c
    z = look / np.linalg.norm(look)
    x = np.cross(np.array([0.0, -1.0, 0.0]), z)  # camera right with y down
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z]), c


def estimator_frames(take: Take, rot: np.ndarray, centre: np.ndarray, focal_ratio: float, assumed_ratio: float,
                     seed: int = 0) -> tuple[list[FrameResult], np.ndarray]:
    """The take as one track of per-frame network-like predictions (see the module docstring); and the true
    camera-frame joints (T, 70, 3)."""
    rng = np.random.default_rng(seed)
    cam = (take.world - centre) @ rot.T
    hips = [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]
    root = cam[:, hips].mean(1)
    t = len(cam)
    local = cam - root[:, None] + rng.normal(0, 0.015, cam.shape)
    trans = root + rng.normal(0, 1, (t, 3)) * [0.01, 0.01, 0.05]
    trans[:, 2] *= assumed_ratio / focal_ratio  # depth from a body of known size seen with the assumed focal
    valid = np.isfinite(cam).all(-1)
    frames = []
    f_px = assumed_ratio * float(np.hypot(*IMAGE_WH))
    f_true = focal_ratio * float(np.hypot(*IMAGE_WH))
    pp = np.array(IMAGE_WH, np.float64) / 2
    uv = f_true * cam[..., :2] / cam[..., 2:3] + pp  # what the camera sees: the true focal
    height_px = f_true * 1.7 / root[:, 2]
    uv += rng.normal(0, 1, uv.shape) * 0.01 * height_px[:, None, None]
    for i in range(t):
        p = HMRPrediction(box=np.zeros(4), score=1.0, joints_3d_local=local[i], joints_3d_cam=local[i] + trans[i],
                          joints_2d=uv[i], cam_trans=trans[i], focal_length=f_px, principal_point=pp,
                          mhr_params=None, shape_params=None, joints_valid=valid[i], track_id=1)
        frames.append(FrameResult(persons=[p], detector_ms=0, hmr_ms=0, total_ms=0, detector_ran=True,
                                  frame_index=i, time_s=i / FPS))
    return frames, cam


def _smoothed(frames: list[FrameResult], mode: str) -> list[FrameResult]:
    import dataclasses

    preds = [f.persons[0] for f in frames]
    if mode == "causal":
        sm = OneEuroSmoother()
        out = [sm(1, p, f.time_s) for p, f in zip(preds, frames)]
    else:
        out = smooth_track_offline(preds, [f.frame_index for f in frames], fps=FPS)
    return [dataclasses.replace(f, persons=[p]) for f, p in zip(frames, out)]


def foot_metrics(world_out: np.ndarray, world_true: np.ndarray) -> dict[str, float]:
    """Sliding (mm/frame), skating share (%), penetration and float (mm) of the heels and big toes where the
    truth stands still; both arrays (T, 70, 3) in their own world frames (Y up, floor y = 0)."""
    tr = world_true[:, _SOLE]
    out = world_out[:, _SOLE]
    v_true = np.linalg.norm(np.diff(tr, axis=0), axis=-1) * FPS
    static = (v_true < STATIC_SPEED) & np.isfinite(np.diff(out, axis=0)).all(-1)
    step = np.linalg.norm(np.diff(out, axis=0)[..., [0, 2]], axis=-1) * 1000
    s = step[static]
    y_out = out[1:][static][:, 1]
    y_true = tr[1:][static][:, 1]
    return {"slide_mm": float(s.mean()) if len(s) else float("nan"),
            "skate_pct": float(100 * (s > SKATE_MM).mean()) if len(s) else float("nan"),
            "penetration_mm": float(1000 * np.maximum(-y_out, 0).mean()) if len(s) else float("nan"),
            "float_mm": float(1000 * np.maximum(y_out - y_true, 0).mean()) if len(s) else float("nan"),
            "static_pairs": int(static.sum())}


def evaluate(take: Take, height: float, distance: float, focal_ratio: float, given_focal: bool,
             mode: str, seed: int = 0, view: str = "side") -> dict:
    """One take, camera and focal through the stage (``mode``: ``causal`` live or ``offline`` two-sided)."""
    rot, centre = camera_pose(take, height, distance, view)
    assumed = focal_ratio if given_focal else 1.0
    frames, _ = estimator_frames(take, rot, centre, focal_ratio, assumed, seed)
    frames = _smoothed(frames, mode)
    stage = GroundStage(FPS, estimate_focal=not given_focal)
    t0 = time.perf_counter()
    if mode == "causal":
        out = [stage(f) for f in frames]
    else:
        out = stage.offline(frames)
    total_ms = (time.perf_counter() - t0) * 1e3
    last = out[-1].ground
    true_up_cam = rot @ np.array([0.0, 1.0, 0.0])
    row = {"take": take.name, "camera": f"{height:.1f} m {view}", "focal": focal_ratio, "given_focal": given_focal,
           "mode": mode, "frames": len(frames)}
    if last is None:
        return {**row, "floor": "none"}
    n = np.array(last["normal_cam"])
    row.update(normal_err_deg=angle_deg(n, true_up_cam), height_err_m=abs(last["camera_height_m"] - height),
               provisional=last["provisional"],
               focal_estimate=(last["focal_estimate_px"] / float(np.hypot(*IMAGE_WH))
                               if "focal_estimate_px" in last else None))
    done = [f for f in out if f.ground is not None]
    first = next(i for i, f in enumerate(out) if f.ground is not None and not f.ground["provisional"]) \
        if any(f.ground is not None and not f.ground["provisional"] for f in out) else None
    row["converged_s"] = None if first is None else first / FPS
    # before: the estimator's joints in the same (final) world frame; after: the stage's output
    from instanthmr.video.ground import Floor, WorldFrame

    from instanthmr.video.ground_stage import _unstretched

    floor = Floor(n, last["camera_height_m"], depth_stretch=last.get("depth_stretch"))
    wf = WorldFrame.from_floor(floor, _unstretched(stage.anchor, floor))
    idx = [i for i, f in enumerate(out) if f.ground is not None]
    before = np.stack([wf.to_world(_unstretched(np.where(np.asarray(frames[i].persons[0].joints_valid)[:, None],
                                                         frames[i].persons[0].joints_3d_cam, np.nan), floor))
                       for i in idx])
    after = np.stack([f.persons[0].joints_3d_world for f in done]).astype(np.float64)
    truth = take.world[idx]
    b, a = foot_metrics(before, truth), foot_metrics(after, truth)
    row.update({f"before_{k}": v for k, v in b.items() if k != "static_pairs"})
    row.update({f"after_{k}": v for k, v in a.items() if k != "static_pairs"})
    row["truth_slide_mm"] = foot_metrics(truth, truth)["slide_mm"]
    row["static_pairs"] = a["static_pairs"]
    row["ms_per_person"] = stage.ms_per_person if mode == "causal" else total_ms / len(frames)
    row["fit_ms_per_frame"] = float(np.mean(stage.fit_ms)) if stage.fit_ms else float("nan")
    return row


KEYS = ("normal_err_deg", "height_err_m", "focal_estimate", "before_slide_mm", "after_slide_mm", "truth_slide_mm",
        "before_skate_pct", "after_skate_pct", "before_penetration_mm", "after_penetration_mm",
        "before_float_mm", "after_float_mm", "ms_per_person")


def table(rows: list[dict], keys=KEYS) -> str:
    head = ["take", "camera", "focal", "mode"] + list(keys)
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        focal = f"{r['focal']:.2f}" + (" given" if r["given_focal"] else "")
        cells = [str(r["take"]).split("/")[-1], r["camera"], focal, r["mode"]]
        for k in keys:
            v = r.get(k)
            cells.append("-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def summary(rows: list[dict]) -> str:
    """Medians over takes per focal x given x mode."""
    lines = ["| focal | mode | runs | normal err deg (median / max) | height err m (median / max) | focal estimated: "
             "runs, median / max error % | slide mm/frame before -> after (median) | skate % before -> after | "
             "ms/person |", "|---|---|---|---|---|---|---|---|---|"]
    groups: dict = {}
    for r in rows:
        if "normal_err_deg" in r:
            groups.setdefault((r["focal"], r["given_focal"], r["mode"]), []).append(r)
    for (f, g, m), rs in sorted(groups.items()):
        def col(k):
            return np.array([r[k] for r in rs], float)
        ne, he = col("normal_err_deg"), col("height_err_m")
        fe = np.array([abs(r["focal_estimate"] / r["focal"] - 1) * 100 for r in rs if r.get("focal_estimate")])
        fcell = f"{len(fe)}, {np.median(fe):.0f} / {fe.max():.0f}" if len(fe) else "0"
        lines.append(f"| {f:.2f}{' given' if g else ''} | {m} | {len(rs)} | {np.median(ne):.1f} / {ne.max():.1f} | "
                     f"{np.median(he):.2f} / {he.max():.2f} | {fcell} | {np.nanmedian(col('before_slide_mm')):.1f} -> "
                     f"{np.nanmedian(col('after_slide_mm')):.1f} | {np.nanmedian(col('before_skate_pct')):.0f} -> "
                     f"{np.nanmedian(col('after_skate_pct')):.0f} | {np.nanmedian(col('ms_per_person')):.2f} |")
    return "\n".join(lines)


def video_metrics(npz_path, planted_px: float = 2.0, min_frames: int = 3) -> dict:
    """Foot sliding on a real video, from a demo run's ``--save-npz`` (with the grounded-motion stage): where
    a heel or big toe stands still *in the image* (its 2D point moves under ``planted_px`` px per frame for
    ``min_frames`` frames or more; the camera is static, so the foot is planted), the horizontal displacement
    per frame (mm) of the estimator's joints in the run's world frame ("before") and of ``joints_3d_world``
    ("after"), over all tracks; also the floor's last state."""
    from instanthmr.outputs.files import read_npz_tracks
    from instanthmr.video.ground import Floor, WorldFrame

    with np.load(npz_path) as z:
        if "ground_normal_cam" not in z.files:
            raise ValueError(f"{npz_path}: no ground arrays; run the demo without --no-ground")
        n, h = z["ground_normal_cam"][-1], float(z["ground_camera_height_m"][-1])
        provisional = bool(z["ground_provisional"][-1])
    rot = WorldFrame.from_floor(Floor(n, h), np.zeros(3)).rotation  # displacements do not need the origin
    before, after, per_track = [], [], {}
    for tid, t in read_npz_tracks(npz_path).items():
        if "joints_3d_world" not in t or len(t["frame_index"]) < min_frames + 1:
            continue
        consecutive = np.diff(t["frame_index"]) == 1
        uv = t["joints_2d"][:, _SOLE]
        still = (np.linalg.norm(np.diff(uv, axis=0), axis=-1) < planted_px) & consecutive[:, None]
        for k in range(still.shape[1]):  # keep runs of min_frames or more
            edges = np.flatnonzero(np.diff(np.r_[False, still[:, k], False].astype(int)))
            for a, b in zip(edges[::2], edges[1::2]):
                if b - a < min_frames:
                    still[a:b, k] = False
        cam = t["joints_3d_cam"][:, _SOLE] @ rot.T
        world = t["joints_3d_world"][:, _SOLE]
        steps = []
        for arr, out in ((cam, before), (world, after)):
            step = np.linalg.norm(np.diff(arr, axis=0)[..., [0, 2]], axis=-1) * 1000
            steps.append(step[still & np.isfinite(step)])
            out.extend(steps[-1].tolist())
        if len(steps[0]):
            per_track[int(tid)] = {"frames": len(t["frame_index"]), "planted_pairs": len(steps[0]),
                                   "before_median_mm": round(float(np.median(steps[0])), 1),
                                   "after_median_mm": round(float(np.median(steps[1])), 1)}
    b, a = np.array(before), np.array(after)
    return {"file": str(npz_path), "planted_pairs": len(b), "before_slide_mm": float(np.mean(b)) if len(b) else None,
            "after_slide_mm": float(np.mean(a)) if len(a) else None,
            "before_median_mm": float(np.median(b)) if len(b) else None,
            "after_median_mm": float(np.median(a)) if len(a) else None,
            "before_skate_pct": float(100 * (b > SKATE_MM).mean()) if len(b) else None,
            "after_skate_pct": float(100 * (a > SKATE_MM).mean()) if len(a) else None,
            "normal_cam": [round(float(x), 4) for x in n], "camera_height_m": round(h, 3), "provisional": provisional,
            "tracks": per_track}


def cost(take: Take, rounds: int = 3) -> list[dict]:
    """CPU ms per frame of the live stage on one take seen by the 1.6 m side camera (one person):
    ``given`` with the true floor (the per-person work alone: contacts, depth slide, world frame, lock) and
    ``estimated`` (plus the floor estimator). Process CPU time, so other jobs on the machine count less."""
    from instanthmr.video.ground import Floor

    rot, centre = camera_pose(take, 1.6, 5.0)
    frames = _smoothed(estimator_frames(take, rot, centre, 1.0, 1.0)[0], "causal")
    out = []
    for _ in range(rounds):
        row = {}
        for name, floor in (("given", Floor(rot @ np.array([0.0, 1.0, 0.0]), 1.6)), ("estimated", None)):
            stage = GroundStage(FPS, floor=floor)
            c0 = time.process_time()
            for f in frames:
                stage(f)
            row[f"{name}_cpu_ms_per_frame"] = round((time.process_time() - c0) * 1e3 / len(frames), 3)
        out.append(row)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mocap", default=None, help="folder of BVH takes (default: <shared data>/mocap)")
    ap.add_argument("--focal", type=float, nargs="+", default=list(FOCALS),
                    help="true focal lengths, fractions of the image diagonal (default: 0.76 0.9 1.0)")
    ap.add_argument("--given-focal", action="store_true", help="the estimator is given the true focal")
    ap.add_argument("--modes", nargs="+", default=["causal", "offline"], choices=("causal", "offline"))
    ap.add_argument("--max-frames", type=int, default=600, help="frames per take at 30 fps (default: 600)")
    ap.add_argument("--json", default=None, help="also write every row to this JSON file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--from-npz", nargs="+", default=None, metavar="NPZ",
                    help="instead: foot sliding on real videos, from demo runs' --save-npz files (feet planted in "
                         "the image; see video_metrics)")
    ap.add_argument("--cost", action="store_true", help="instead: CPU ms per frame of the live stage (one person)")
    args = ap.parse_args(argv)
    if args.cost:
        takes, _ = load_takes(args.mocap, args.max_frames)
        for row in cost(takes[1] if len(takes) > 1 else takes[0]):
            print(json.dumps(row))
        return 0
    if args.from_npz:
        for path in args.from_npz:
            print(json.dumps(video_metrics(path)))
        return 0
    takes, skipped = load_takes(args.mocap, args.max_frames)
    for s in skipped:
        print(f"skipped {s}")
    if not takes:
        print("no mocap takes found (give --mocap)")
        return 1
    rows = []
    for take in takes:
        for height, distance, view in CAMERAS:
            for f in args.focal:
                for mode in args.modes:
                    rows.append(evaluate(take, height, distance, f, args.given_focal, mode, args.seed, view))
    print(table(rows))
    print()
    print(summary(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
