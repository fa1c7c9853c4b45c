#!/usr/bin/env python3
"""Synthetic people with exact labels: MHR bodies rendered onto real background photos.

Each sample: parameters drawn from a prior fitted to real teacher outputs (SAM 3D Body ``mhr_model_params``
/ ``shape_params``: blends of two real poses plus per-dimension noise, random heading), decoded through
the MHR layer, placed in front of a pinhole camera (the product's default focal, random distance and
position), painted with per-part colours onto a random crop of a real photo, and written as a standard
shard instance carrying all five network outputs exactly: ``mhr_params``, ``shape_params``, ``cam_trans``,
``joints_2d`` (projection of the exact 3D keypoints) and ``joints_3d``, plus the embedded context crop.

    python tools/synth_mhr.py --mhr-model models/mhr_lod3.npz --out data/synth_mhr --n 5000 \
        [--prior SHARDS_OR_SAMPLES ...] [--backgrounds DIR] [--seed 0] [--size 640 480]

Domain gap (be honest when mixing this in): untextured, flat-shaded bodies without clothes or hair, no
lighting match, no occluders, sharp silhouettes; backgrounds may contain real unlabelled people; poses come
from a handful of real examples unless ``--prior`` points at a large teacher shard set. Resumable: rerun the
same command to continue (inputs already written are skipped).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from instanthmr.body.mhr import MHRAssetError, MHRNumpy
from instanthmr.training.data.synth_mhr import ParamPrior, list_backgrounds, synth_sample, write_synth_shards


def main(argv=None) -> int:
    from instanthmr.core.paths import shared_data_dir, shared_mhr_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mhr-model", required=True, type=Path, help="converted MHR .npz with a keypoint regressor")
    ap.add_argument("--out", required=True, type=Path, help="shard folder")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prior", type=Path, nargs="+", default=None,
                    help="teacher dicts / shard sets to fit the pose prior on (default: $INSTANTHMR_MHR/samples)")
    ap.add_argument("--backgrounds", type=Path, default=None, help="photo folder (default: shared images)")
    ap.add_argument("--size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"))
    ap.add_argument("--shard-size", type=int, default=256)
    ap.add_argument("--preview", type=Path, default=None, help="also save the first image as PNG here")
    args = ap.parse_args(argv)
    try:
        model = MHRNumpy.from_npz(args.mhr_model)
        if not model.has_keypoints:
            raise MHRAssetError(f"{args.mhr_model}: no keypoint regressor (convert with --regressor)")
        prior = ParamPrior.from_paths(args.prior or [shared_mhr_dir() / "samples"])
    except (MHRAssetError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    photos = list_backgrounds(args.backgrounds or shared_data_dir() / "images")
    if not photos:
        print("[synth] no background photos found: using flat noisy colours", file=sys.stderr)
    if args.preview:
        import cv2

        image, _ = synth_sample(model, prior, np.random.default_rng([args.seed, 0]), photos, tuple(args.size))
        cv2.imwrite(str(args.preview), image[..., ::-1])
    n = write_synth_shards(model, prior, args.out, args.n, args.seed, photos, tuple(args.size), args.shard_size)
    print(f"[synth] wrote {n} new samples to {args.out} ({args.n - n} already there); prior from "
          f"{len(prior.params)} real examples, {len(photos)} background photos")
    return 0
