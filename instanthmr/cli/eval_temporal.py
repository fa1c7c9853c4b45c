"""Temporal measurements: jitter and acceleration error before/after smoothing, and detector calls saved
by keypoint-driven crops, on real motion capture seen through a virtual camera.

    python tools/eval_temporal.py smoothing            # none / causal One-Euro / offline, 2D and 3D
    python tools/eval_temporal.py smoothing --tune     # also grid-search the One-Euro settings
    python tools/eval_temporal.py stride               # detector calls vs crop quality

Method (pure numpy, no network weights needed): each BVH take in ``<shared data>/mocap`` is read with
:mod:`instanthmr.core.mocap`, resampled to 30 fps and placed 5 m in front of a virtual 1280x720 camera (focal =
image diagonal). The true joints give

* 2D: projected joints plus detector-like noise (1 % of the person's height per joint, 2 % of joints
  outliers at 5 %);
* 3D: root-relative joints plus 15 mm per-joint noise and a per-frame camera-translation error (1 cm in x/y,
  5 cm in depth), the failure mode of single-frame networks.

These stand in for a network's per-frame outputs; they are smoothed with the real
:class:`~instanthmr.video.smoothing.OneEuroSmoother` / :func:`~instanthmr.video.smoothing.smooth_track_offline` and
compared with the truth. ``stride`` runs the real :class:`~instanthmr.video.tracking.TrackingPipeline` with a
detector that returns the true box and a pose "network" that returns the noisy joints it can see in its
crop (joints outside the crop are clamped to its border, as a network cannot see them).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from instanthmr.core.geometry import box_iou, square_crop_box
from instanthmr.core.metrics import acceleration_error, jitter, mpjpe
from instanthmr.core.paths import shared_data_dir
from instanthmr.training.data.mocap_takes import FPS, IMAGE_WH, Take, load_takes
from instanthmr.video.smoothing import ONE_EURO_DEFAULTS, FieldFilter, OneEuroSmoother, smooth_track_offline
from instanthmr.video.tracking import TrackingPipeline, box_from_keypoints

@dataclass
class _Pred:
    """The HMRPrediction fields these evaluations read, plus the track columns tracking sets."""

    box: np.ndarray
    joints_2d: np.ndarray
    joints_3d_local: np.ndarray
    cam_trans: np.ndarray
    track_id: int | None = None
    source: str = "detector"
    confidence: float | None = None


def noisy_predictions(take: Take, seed: int = 0) -> list[_Pred]:
    """Per-frame stand-ins for network outputs (see the module docstring for the noise model)."""
    rng = np.random.default_rng(seed)
    t, j = take.uv.shape[:2]
    boxes = np.array([box_from_keypoints(u) for u in take.uv])
    height = (boxes[:, 3] - boxes[:, 1])[:, None, None]
    uv = take.uv + rng.normal(0, 1, take.uv.shape) * 0.01 * height
    out = rng.random((t, j)) < 0.02
    uv[out] += rng.normal(0, 1, (int(out.sum()), 2)) * 0.05 * np.repeat(height[:, 0], j, 1)[out][:, None]
    root = take.cam[:, list(take.hips)].mean(1, keepdims=True)
    local = take.cam - root + rng.normal(0, 0.015, take.cam.shape)
    trans = root[:, 0] + rng.normal(0, 1, (t, 3)) * [0.01, 0.01, 0.05]
    return [_Pred(boxes[i], uv[i], local[i], trans[i]) for i in range(t)]


def _stack(preds, name):
    return np.stack([np.asarray(getattr(p, name), dtype=np.float64) for p in preds])


def score(take: Take, preds) -> dict[str, float]:
    """2D (px) and 3D camera-frame (mm) errors of a prediction sequence against the truth."""
    uv = _stack(preds, "joints_2d")
    cam = _stack(preds, "joints_3d_local") + _stack(preds, "cam_trans")[:, None]
    return {
        "mpjpe2d_px": float(mpjpe(uv, take.uv).mean()),
        "accel2d_px": acceleration_error(uv, take.uv),
        "jitter2d_px": jitter(uv),
        "mpjpe3d_mm": 1000 * float(mpjpe(cam, take.cam).mean()),
        "accel3d_mm": 1000 * acceleration_error(cam, take.cam),
        "jitter3d_mm": 1000 * jitter(cam),
    }


def run_causal(preds, fields=None) -> list:
    sm = OneEuroSmoother(fields)
    return [sm(1, p, i / FPS) for i, p in enumerate(preds)]


def run_offline(preds, sigma=None, degree=None) -> list:
    kw = {} if degree is None else {"degree": degree}
    return smooth_track_offline(preds, np.arange(len(preds)), fps=FPS, sigma_frames=sigma, **kw)


def _table(rows: list[tuple[str, dict]], keys: list[str]) -> str:
    out = ["| take | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for name, d in rows:
        out.append(f"| {name} | " + " | ".join(f"{d[k]:.2f}" if isinstance(d[k], float) else str(d[k]) for k in keys) + " |")
    return "\n".join(out)


def cmd_smoothing(args) -> None:
    takes, skipped = load_takes(max_frames=args.max_frames)
    if not takes:
        raise SystemExit(f"error: no readable BVH take under {shared_data_dir() / 'mocap'}")
    for s in skipped:
        print(f"skipped {s}")
    keys = ["mpjpe2d_px", "accel2d_px", "jitter2d_px", "mpjpe3d_mm", "accel3d_mm", "jitter3d_mm"]
    rows, totals = [], {}
    for take in takes:
        preds = noisy_predictions(take)
        root = take.cam[:, list(take.hips)].mean(1)
        truth = score(take, [_Pred(None, take.uv[i], take.cam[i] - root[i], root[i]) for i in range(len(take.uv))])
        methods = {"truth": None, "none": preds, "causal": run_causal(preds), "offline": run_offline(preds)}
        for m, seq in methods.items():
            d = truth if seq is None else score(take, seq)
            rows.append((f"{take.name} ({len(take.uv)} f)", {"method": m, **d}))
            totals.setdefault(m, []).append(d)
    mean_rows = [("mean", {"method": m, **{k: float(np.mean([d[k] for d in ds])) for k in keys}}) for m, ds in totals.items()]
    print(_table(rows + mean_rows, ["method"] + keys))
    if args.tune:
        tune(takes)


def tune(takes) -> None:
    """Grid-search One-Euro (min_cutoff, beta) for the 2D and the 3D fields; reports mean MPJPE and accel
    error per setting (lower is better), best MPJPE first."""
    preds = [(t, noisy_predictions(t)) for t in takes]
    for label, names, metric in (("2D", ("joints_2d",), "2d_px"), ("3D", ("joints_3d_local", "cam_trans"), "3d_mm")):
        results = []
        for mc in (0.3, 0.5, 1.0, 2.0, 4.0):
            for beta in (0.0, 0.3, 1.0, 3.0, 10.0, 30.0):
                fields = dict(ONE_EURO_DEFAULTS)
                for n in names:
                    fields[n] = FieldFilter(mc, beta, size_scaled=ONE_EURO_DEFAULTS[n].size_scaled)
                ds = [score(t, run_causal(p, fields)) for t, p in preds]
                results.append((float(np.mean([d["mpjpe" + metric] for d in ds])),
                                float(np.mean([d["accel" + metric] for d in ds])), mc, beta))
        results.sort()
        print(f"\nOne-Euro grid, {label} fields {names}: mean MPJPE, accel error ({metric})")
        for r in results[:8]:
            print(f"  min_cutoff={r[2]:<4} beta={r[3]:<5} mpjpe={r[0]:.2f} accel={r[1]:.2f}")
        # The pick: steadiest setting whose MPJPE is within 10 % of the best one.
        ok = [r for r in results if r[0] <= 1.1 * results[0][0]]
        pick = min(ok, key=lambda r: r[1])
        print(f"  pick (lowest accel error with MPJPE within 10 % of best): min_cutoff={pick[2]} beta={pick[3]} "
              f"mpjpe={pick[0]:.2f} accel={pick[1]:.2f}")
    print("\nOffline sigma/degree grid (3D mpjpe mm, accel mm/f^2, 2D mpjpe px)")
    for sigma in (1.0, 1.5, 2.0, 3.0, 4.0):
        for degree in (0, 1, 2):
            ds = [score(t, run_offline(p, sigma, degree)) for t, p in preds]
            print(f"  sigma={sigma} degree={degree}: " + ", ".join(
                f"{k}={np.mean([d[k] for d in ds]):.2f}" for k in ("mpjpe3d_mm", "accel3d_mm", "mpjpe2d_px")))


class _SimScene:
    """A detector returning the true box and a pose 'network' returning the noisy joints in its crop."""

    def __init__(self, take: Take, seed: int = 0):
        self.take, self.f = take, 0
        self.noisy = noisy_predictions(take, seed)

    def detector(self, image, frame_index):
        from types import SimpleNamespace

        return SimpleNamespace(boxes=box_from_keypoints(self.take.uv[self.f], IMAGE_WH)[None], scores=np.array([0.9]))

    def estimator(self, image, boxes, scores):
        out = []
        for b in boxes:
            cx, cy, side = square_crop_box(b)
            lo, hi = np.array([cx - side / 2, cy - side / 2]), np.array([cx + side / 2, cy + side / 2])
            p = self.noisy[self.f]
            out.append(_Pred(np.asarray(b), np.clip(p.joints_2d, lo, hi), p.joints_3d_local, p.cam_trans))
        return out


def cmd_stride(args) -> None:
    takes, _ = load_takes(max_frames=args.max_frames)
    configs = [
        ("detector every frame", dict(crops="boxes", detect_every=1)),
        ("reuse box, detect every 5", dict(crops="boxes", detect_every=5)),
        ("reuse box, detect every 10", dict(crops="boxes", detect_every=10)),
        ("keypoint crops, detect every 10", dict(crops="keypoints", detect_every=10)),
        ("keypoint crops, detect every 30", dict(crops="keypoints", detect_every=30)),
    ]
    img = np.zeros((IMAGE_WH[1], IMAGE_WH[0], 3), np.uint8)
    print("| config | detector calls / frames | mean crop IoU vs true box | frames with all joints in crop | 2D MPJPE px |")
    print("|---|---|---|---|---|")
    for label, kw in configs:
        calls = frames = 0
        ious, inside, errs = [], [], []
        for take in takes:
            scene = _SimScene(take)
            tp = TrackingPipeline(scene.detector, scene.estimator, smooth="none", fps=FPS, **kw)
            for f in range(len(take.uv)):
                scene.f = f
                out = tp(img, f)
                frames += 1
                if not out.persons:
                    ious.append(0.0)
                    inside.append(False)
                    continue
                p = out.persons[0]
                true_box = box_from_keypoints(take.uv[f], IMAGE_WH)
                ious.append(float(box_iou(p.box, true_box)[0, 0]))
                cx, cy, side = square_crop_box(p.box)
                inside.append(bool((np.abs(take.uv[f] - [cx, cy]) <= side / 2).all()))
                errs.append(float(mpjpe(p.joints_2d, take.uv[f])))
            calls += tp.detector_calls
        print(f"| {label} | {calls} / {frames} ({100 * calls / frames:.0f} %) | {np.mean(ious):.3f} | "
              f"{100 * np.mean(inside):.1f} % | {np.mean(errs):.2f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("smoothing", help="jitter / accel error / MPJPE before and after smoothing")
    s.add_argument("--tune", action="store_true", help="grid-search One-Euro and offline settings")
    s.add_argument("--max-frames", type=int, default=600)
    s.set_defaults(func=cmd_smoothing)
    st = sub.add_parser("stride", help="detector calls saved by keypoint-driven crops")
    st.add_argument("--max-frames", type=int, default=600)
    st.set_defaults(func=cmd_stride)
    args = ap.parse_args(argv)
    args.func(args)
    return 0
