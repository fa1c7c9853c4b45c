#!/usr/bin/env python3
"""Accuracy of the offline paths on real ground truth, one table: MediaPipe path, starter network, average pose.

    python tools/eval_offline.py                              # the shared data at ../shared/data
    python tools/eval_offline.py --mediapipe-pose --overlays outputs/eval_offline --json outputs/eval_offline.json

Ground truth (``../shared/data``; ``--data`` elsewhere):

* ``gt3d/h36m``, ``gt3d/mpi_inf_3dhp``: real frames with metric 3D in the camera frame. Scored on the 12 limb
  joints both skeletons share with MHR70 (hips, knees, ankles, shoulders, elbows, wrists), pelvis (mid-hip)
  aligned: MPJPE, and PA-MPJPE (after a similarity Procrustes fit).
* ``annotated_2d/coco``, ``annotated_2d/mpii``: photos with human 2D labels. PCK@0.1: the share of the
  labelled limb/face joints predicted within 0.1 x the long side of the person's box.

Every method gets the same person box (the COCO box; elsewhere the labelled joints' bounds padded 15 %, like a
detector's) and, for 3D, the dataset's focal length. A joint a method does not predict (``joints_valid``
False) or a person it does not find counts as a miss: it is left out of the 3D errors (the ``joints``
column says how many were scored) and counts as wrong in PCK.

Methods: ``mediapipe`` (the offline default: :class:`~instanthmr.runtime.mediapipe.estimator.MediaPipeHMR`, hands
on), ``mediapipe_fit`` (the same followed by the MHR body fit on each image alone), ``starter`` (``instanthmr/runtime/models/instanthmr-starter.onnx`` through :class:`~instanthmr.runtime.hmr.InstantHMR`),
``average`` (one constant pose: the per-joint mean of the MediaPipe path's pelvis-centred 3D turned to face
the camera, and of its 2D in box coordinates (back views mirrored), over every 10th frame of the starter's
training clips ``openpose_video.avi`` and ``sports2d_demo.mp4``), ``--model PATH`` (any other InstantHMR ``.onnx``), and with ``--mediapipe-pose``
MediaPipe Pose itself (``mediapipe==0.10.21``, ``static_image_mode=True``, complexity 1, on the box crop;
run in the ``.venv-mp`` environment of ``tools/bench_mediapipe.py``, built when missing).

``--overlays DIR`` draws each method's 2D skeleton (red) over every image with the ground truth (green), one
PNG per image and method: look at them, a mean error can hide a collapsed skeleton.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from instanthmr.cli.common import run_main, write_json_report
from instanthmr.core.paths import STARTER_MODEL
from instanthmr.training.eval_offline import evaluate


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None, help="the shared data folder (default: ../shared/data)")
    p.add_argument("--starter", type=Path, default=STARTER_MODEL, help="starter network (default: %(default)s)")
    p.add_argument("--model", type=Path, action="append", default=[],
                   help="another InstantHMR .onnx to score too (repeatable)")
    p.add_argument("--mediapipe-pose", action="store_true",
                   help="also score MediaPipe Pose itself (builds .venv-mp with mediapipe==0.10.21 when missing)")
    p.add_argument("--venv", type=Path, default=None, help="the MediaPipe venv (default: .venv-mp)")
    p.add_argument("--overlays", type=Path, default=None, help="write one overlay PNG per image and method here")
    p.add_argument("--json", default=None, help="also write the report here")
    return p


def run(args) -> dict:
    report = evaluate(args.data, args.starter, args.model, args.mediapipe_pose, args.venv, args.overlays)
    print_table(report)
    write_json_report(args.json, report)
    return report


def print_table(report: dict) -> None:
    cols3 = [k for k in ("h36m", "mpi_inf_3dhp", "gt3d") if any(k in r for r in report["methods"].values())]
    cols2 = [k for k in ("coco", "mpii", "annotated_2d") if any(k in r for r in report["methods"].values())]
    head = "| method | " + " | ".join(f"{c} PA-MPJPE / MPJPE (mm)" for c in cols3) + " | " + \
        " | ".join(f"{c} PCK@0.1" for c in cols2) + " |"
    print(head)
    print("|" + " --- |" * (1 + len(cols3) + len(cols2)))
    for r in report["methods"].values():
        cells = []
        for c in cols3:
            v = r[c]
            miss = f", {v['missed']} missed" if v["missed"] else ""
            cells.append(f"{v['pa_mpjpe_mm']:.0f} / {v['mpjpe_mm']:.0f} ({v['joints']}/{v['of_joints']} joints{miss})")
        for c in cols2:
            v = r[c]
            miss = f", {v['missed']} missed" if v["missed"] else ""
            cells.append(f"{100 * v['pck']:.0f} % ({v['joints']} joints{miss})")
        print(f"| {r['label']} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), run, argv)

