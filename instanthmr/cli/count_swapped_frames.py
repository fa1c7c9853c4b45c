"""Swapped frames of demo runs against the by-eye labels of ``docs/body_fit_eye_labels.csv``.

    python demo.py --video openpose_video.avi --no-spawn --save-json A.json --no-body-fit
    python demo.py --video openpose_video.avi --no-spawn --save-json B.json
    python tools/count_swapped_frames.py openpose_video A.json B.json

A labelled frame (``truth`` not ``unclear``) is swapped in a run when the sign of the left-minus-right x of
the shoulders + hips (px; the shoulders alone where a hip is missing) in that run's ``joints_2d`` differs
from the sign the label says is right (column ``a_...`` for ``A`` / ``both``, ``b_...`` for ``B``, the
opposite of ``a_...`` for ``neither``: both labelled runs had it wrong); a frame where the run has no
shoulders is not judged. Prints,
per run, the frames judged and the swapped ones, then the frames where each two runs disagree on that sign
(the frames to label by eye next).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from instanthmr.core.paths import REPO_ROOT
from instanthmr.core.skeleton import MHR70_INDEX

LABELS = REPO_ROOT / "docs" / "body_fit_eye_labels.csv"
_LS, _RS, _LH, _RH = (MHR70_INDEX[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))


def torso_signs(path: str | Path) -> dict[tuple[int, int], int]:
    """(frame index, track id) -> sign of left-minus-right x (0 when the shoulders are missing)."""
    out = {}
    for f in json.loads(Path(path).read_text())["frames"]:
        for p in f["persons"]:
            j = np.array([[np.nan, np.nan] if v is None else v for v in p["joints_2d"]], float)
            s = j[_LS, 0] + j[_LH, 0] - j[_RS, 0] - j[_RH, 0]
            if not np.isfinite(s):
                s = j[_LS, 0] - j[_RS, 0]
            out[(f["frame_index"], p["track_id"])] = int(np.sign(s)) if np.isfinite(s) else 0
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip", help="the clip column of the labels, e.g. openpose_video")
    ap.add_argument("runs", nargs="+", help="demo --save-json files of that clip")
    ap.add_argument("--labels", default=str(LABELS))
    args = ap.parse_args(argv)
    try:
        with open(args.labels, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["clip"] == args.clip]
        runs = {r: torso_signs(r) for r in args.runs}
    except (OSError, ValueError, KeyError) as exc:  # a missing file, or not a labels CSV / demo --save-json
        print(f"error: cannot read the labels {args.labels} or the runs ({type(exc).__name__}: {exc}): give the "
              "labels CSV (--labels) and demo --save-json files of the clip", file=sys.stderr)
        return 2
    if not rows:
        print(f"error: no labels for clip {args.clip!r} in {args.labels}", file=sys.stderr)
        return 2
    for name, signs in runs.items():
        judged, swapped = 0, []
        for r in rows:
            key = (int(r["frame"]), int(r["track"]))
            if r["truth"] == "unclear" or not signs.get(key):  # not labelled, or no shoulders in this run
                continue
            right = (int(r["b_left_minus_right_x_sign"]) if r["truth"] == "B" else
                     -int(r["a_left_minus_right_x_sign"]) if r["truth"] == "neither" else
                     int(r["a_left_minus_right_x_sign"]))
            judged += 1
            if signs[key] != right:
                swapped.append(f"{key[0]}:{key[1]}")
        print(f"{name}: {judged} frames judged, {len(swapped)} swapped {' '.join(swapped)}")
    names = list(runs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            diff = sorted(k for k in runs[a] if k in runs[b] and runs[a][k] != runs[b][k] and runs[a][k] and runs[b][k])
            print(f"{a} vs {b}: disagree on {len(diff)} (frame:track) {' '.join(f'{f}:{t}' for f, t in diff)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
