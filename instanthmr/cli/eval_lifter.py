#!/usr/bin/env python
"""Evaluate the LLM 2D-to-3D lifter against real 3D ground truth.

Two steps (the lifter itself runs in between, on a GPU machine, with ``tools/annotate_llm.py``):

1. ``make-set``: build 2D/3D pairs from real 3D: every BVH take under ``<data>/mocap`` (seen by a virtual
   camera at several azimuths) and the Human3.6M / MPI-INF-3DHP frames (their real 2D). Writes an NPZ that
   ``annotate_llm.py --input`` reads directly.
2. ``score``: MPJPE / PA-MPJPE in the lifter's normalised space, per part, and the parse rate, for lifter
   outputs (``annotate_llm``'s raw ``.jsonl``, its shard folder, or an NPZ of ``keys/joints/mask``) or for
   a baseline: ``protocol`` (ground truth through format -> parse: the quantisation floor) or ``flat``
   (the 2D input with zero depth: what a lifter that knows nothing about depth scores).

Ground truth here has body joints only (hips, knees, ankles, shoulders, elbows, wrists, and big toes from
mocap); errors are computed on the joints that exist, and per-part rows without ground truth print n/a.

    python tools/eval_lifter.py make-set --out /tmp/lifter_set.npz
    python tools/eval_lifter.py score --set /tmp/lifter_set.npz --baseline protocol
    python tools/eval_lifter.py score --set /tmp/lifter_set.npz --outputs labels/raw_llm_lifter-.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from instanthmr.core.paths import shared_data_dir
from instanthmr.core.skeleton import COCO_WHOLEBODY_INDEX as CI
from instanthmr.core.mocap import BVHError, coco_wholebody_joints, detect_profile, load_bvh
from instanthmr.teachers.lifter import protocol
from instanthmr.teachers.lifter.evaluate import (
    evaluate_lifter,
    fill_missing_2d,
    project_to_image,
    world_to_camera,
)

IMAGE_WH = (1000, 1000)


class EvalError(RuntimeError):
    """A one-line, user-facing failure."""


# ------------------------------------------------------------------------------------------------
# make-set
# ------------------------------------------------------------------------------------------------


def mocap_pairs(path: Path, stride_s: float, azimuths, elevation: float, distance: float) -> dict:
    motion = load_bvh(path)
    profile = detect_profile(motion)
    world, valid = coco_wholebody_joints(motion, profile)
    step = max(1, int(round(stride_s * motion.fps)))
    world = world[::step]
    keys, kp2d, gt = [], [], []
    for az in azimuths:
        cam = world_to_camera(world, profile.up, az, elevation, distance)
        cam[:, ~valid] = 0.0
        px = project_to_image(cam, IMAGE_WH)
        for t in range(len(world)):
            keys.append(f"{path.parent.name}/{path.name}#{t * step:06d}@az{az:g}")
        kp2d.append(px)
        gt.append(cam)
    n = len(keys)
    return {"keys": keys, "kp2d": np.concatenate(kp2d), "gt3d": np.concatenate(gt),
            "gt_valid": np.broadcast_to(valid, (n, 133)).copy(), "source": [f"bvh:{profile.name}"] * n}


def dataset_pairs(data: Path, dataset: str) -> dict:
    from instanthmr.training.data.gt3d import SHARED_NAMES, dataset_to_names, load_gt3d

    names = [n for n in SHARED_NAMES if n != "pelvis"]
    frames = load_gt3d(data / "gt3d", dataset)
    n = len(frames)
    kp2d, gt = np.zeros((n, 133, 2)), np.zeros((n, 133, 3))
    valid = np.zeros((n, 133), bool)
    cols = [CI[c] for c in names]
    for i, f in enumerate(frames):
        kp2d[i, cols] = dataset_to_names(f.joints_2d, dataset, names)
        gt[i, cols] = dataset_to_names(f.joints_cam, dataset, names)
        valid[i, cols] = dataset_to_names(f.visible[:, None], dataset, names)[:, 0]
    return {"keys": [f"{dataset}/{f.image_path.name}" for f in frames], "kp2d": kp2d, "gt3d": gt,
            "gt_valid": valid, "source": [dataset] * n}


def make_set(args) -> int:
    data = Path(args.data) if args.data else shared_data_dir()
    if not data.is_dir():
        raise EvalError(f"data folder not found: {data} (pass --data or set INSTANTHMR_DATA)")
    parts, skipped = [], []
    azimuths = [float(a) for a in args.azimuths.split(",")]
    for bvh in sorted((data / "mocap").rglob("*.bvh")):
        try:
            parts.append(mocap_pairs(bvh, args.stride_seconds, azimuths, args.elevation, args.distance))
        except BVHError as e:
            skipped.append(f"{bvh.name}: {e}".split(": ", 1)[-1])
    for ds in ("h36m", "mpi_inf_3dhp"):
        try:
            parts.append(dataset_pairs(data, ds))
        except FileNotFoundError as e:
            skipped.append(str(e))
    if not parts:
        raise EvalError(f"no ground truth found under {data} (expected mocap/*.bvh or gt3d/)")
    cat = {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in ("keys", "kp2d", "gt3d", "gt_valid", "source")}
    kp2d_valid = cat["gt_valid"].copy()
    kp2d = fill_missing_2d(cat["kp2d"], kp2d_valid)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, keys=cat["keys"].astype(str), kp2d=kp2d.astype(np.float32), kp2d_valid=kp2d_valid,
             gt3d=cat["gt3d"].astype(np.float32), gt_valid=cat["gt_valid"], source=cat["source"].astype(str),
             image_size=np.broadcast_to(np.array(IMAGE_WH, np.int32), (len(kp2d), 2)))
    counts = {s: int((cat["source"] == s).sum()) for s in sorted(set(cat["source"].tolist()))}
    print(f"wrote {out}: {len(kp2d)} samples {counts}; ground-truth joints per sample "
          f"{cat['gt_valid'].sum(1).min()}-{cat['gt_valid'].sum(1).max()} of 133")
    for s in skipped:
        print(f"skipped: {s}")
    return 0


# ------------------------------------------------------------------------------------------------
# score
# ------------------------------------------------------------------------------------------------


def load_set(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            s = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise EvalError(f"{path}: cannot read evaluation set ({e})") from None
    missing = {"keys", "kp2d", "gt3d", "gt_valid"} - set(s)
    if missing:
        raise EvalError(f"{path}: not an evaluation set (missing {sorted(missing)}; make one with make-set)")
    return s


def load_outputs(path: Path, coord_format: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{key: (joints (133, 3) normalised, mask (133,))}`` from a raw .jsonl, an NPZ or a shard folder."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if path.is_dir():
        from instanthmr.training.data.shards import ShardFormatError, ShardReader
        try:
            for inst in ShardReader(path):
                out[inst["source"]] = (inst["joints_3d_wholebody"], inst["joints_3d_wholebody_valid"])
        except (ShardFormatError, FileNotFoundError) as e:
            raise EvalError(str(e)) from None
    elif path.suffix == ".jsonl":
        try:
            lines = path.read_text().splitlines()
        except OSError as e:
            raise EvalError(f"{path}: cannot read outputs ({e.strerror})") from None
        bad = 0
        for ln in lines:
            try:
                rec = json.loads(ln)
                j, m, _ = protocol.parse_output(rec["text"], rec.get("coord_format", coord_format),
                                                drop_last_partial=bool(rec.get("truncated", False)))
            except (json.JSONDecodeError, KeyError, TypeError):
                bad += 1
                continue
            out[str(rec["key"])] = (j, m)
        if bad:
            print(f"warning: {path}: {bad} malformed line(s) skipped", file=sys.stderr)
    elif path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                for k, j, m in zip(z["keys"], z["joints"], z["mask"]):
                    out[str(k)] = (j, m)
        except (OSError, ValueError, KeyError) as e:
            raise EvalError(f"{path}: cannot read outputs NPZ with keys/joints/mask ({e})") from None
    else:
        raise EvalError(f"{path}: outputs must be a .jsonl, a .npz or a shard folder")
    return out


def baseline_outputs(s: dict, kind: str, coord_format: str) -> tuple[np.ndarray, np.ndarray]:
    gt, valid = s["gt3d"].astype(np.float64), s["gt_valid"].astype(bool)
    n = len(gt)
    if kind == "protocol":
        root = gt[:, list(protocol.ROOT_JOINTS)].mean(axis=1, keepdims=True)
        filled = np.where(valid[..., None], gt, root)  # absent joints at the root: they must not set the scale
        res = [protocol.parse_output(protocol.format_target(g, coord_format), coord_format) for g in filled]
        return np.stack([r[0] for r in res]), np.stack([r[1] for r in res])
    if kind == "flat":
        pred = np.concatenate([s["kp2d"].astype(np.float64), np.zeros((n, 133, 1))], axis=-1)
        return protocol.normalize_3d(pred)[0], np.ones((n, 133), bool)
    raise EvalError(f"unknown baseline {kind!r}")


def format_report(r: dict, title: str) -> str:
    def f(v):
        return "n/a" if v != v else f"{v:.4f}"

    lines = [f"== {title}",
             f"samples {r['samples']}  parsed {r['parsed']} ({100 * r['parse_rate']:.1f}%)  mean joints parsed "
             f"{r['mean_joints_parsed']:.1f}/133  scored {r['scored']} on {r['joints_scored']:.1f} joints each",
             f"MPJPE {f(r['mpjpe'])}  PA-MPJPE {f(r['pa_mpjpe'])}  (normalised units: mid-hip root, max-abs 1)",
             f"{'part':<12}{'MPJPE':>10}{'PA-MPJPE':>10}"]
    for part in r["per_part"]:
        lines.append(f"{part:<12}{f(r['per_part'][part]):>10}{f(r['pa_per_part'][part]):>10}")
    return "\n".join(lines)


def score(args) -> int:
    s = load_set(Path(args.set))
    keys = [str(k) for k in s["keys"]]
    if args.baseline:
        pred, mask = baseline_outputs(s, args.baseline, args.coord_format)
        title = f"baseline {args.baseline} ({args.coord_format})"
    else:
        outs = load_outputs(Path(args.outputs), args.coord_format)
        pred, mask = np.zeros((len(keys), 133, 3)), np.zeros((len(keys), 133), bool)
        for i, k in enumerate(keys):
            if k in outs:
                pred[i], mask[i] = outs[k]
        missing = sum(k not in outs for k in keys)
        if missing == len(keys):
            raise EvalError(f"{args.outputs}: no output matches a key of {args.set}")
        if missing:
            print(f"warning: {missing} of {len(keys)} samples have no lifter output (counted as unparsed)",
                  file=sys.stderr)
        title = f"lifter outputs {args.outputs}"
    sources = np.asarray(s.get("source", np.array(["all"] * len(keys)))).astype(str)
    reports = {"all": evaluate_lifter(pred, mask, s["gt3d"], s["gt_valid"], args.min_fraction)}
    if args.per_source:
        for src in sorted(set(sources.tolist())):
            sel = sources == src
            reports[src] = evaluate_lifter(pred[sel], mask[sel], s["gt3d"][sel], s["gt_valid"][sel], args.min_fraction)
    for name, r in reports.items():
        print(format_report(r, f"{title} [{name}]"))
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-set", help="2D/3D pairs from the shared mocap and 3D datasets")
    m.add_argument("--out", required=True)
    m.add_argument("--data", help="shared data folder (default: INSTANTHMR_DATA or ../shared/data)")
    m.add_argument("--stride-seconds", type=float, default=0.5, help="mocap frame spacing")
    m.add_argument("--azimuths", default="0,90,180,270", help="virtual camera azimuths, degrees")
    m.add_argument("--elevation", type=float, default=10.0)
    m.add_argument("--distance", type=float, default=4.0)
    s = sub.add_parser("score", help="score lifter outputs or a baseline")
    s.add_argument("--set", required=True, help="NPZ from make-set")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--outputs", help="annotate_llm raw .jsonl, shard folder, or NPZ keys/joints/mask")
    g.add_argument("--baseline", choices=("protocol", "flat"))
    s.add_argument("--coord-format", choices=protocol.COORD_FORMATS, default="bins")
    s.add_argument("--min-fraction", type=float, default=protocol.DEFAULT_MIN_FRACTION)
    s.add_argument("--per-source", action="store_true", help="also report each data source")
    s.add_argument("--json", help="write the numbers here")
    args = ap.parse_args(argv)
    try:
        return make_set(args) if args.cmd == "make-set" else score(args)
    except (EvalError, protocol.LifterProtocolError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
