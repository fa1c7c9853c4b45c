#!/usr/bin/env python3
"""Where the demo loop's slow frames go: a per-frame breakdown of the offline default (issue 23, item 3).

    python tools/frame_breakdown.py openpose_video.avi sports2d_demo.mp4 --frames 150 --rounds 2
    python tools/frame_breakdown.py clip.mp4 --max-persons 8 --json breakdown.json

Runs the demo's own run loop (:func:`instanthmr.runner.loop.run`, as ``demo.py --video CLIP --no-spawn`` runs
it; ``--max-persons`` default 1, hands and the body fit on unless turned off) on the first ``--frames`` frames
of each clip (``CLIP`` as given, else under ``--videos``, default the shared data's ``videos``), decoded
beforehand (decoding not timed), ``--rounds`` times with the same pipeline (the first round pays the first
calls' costs). :mod:`instanthmr.core.probe` records per frame: wall and process CPU ms, the named steps' wall
ms (``invoke:<model>``: each MediaPipe model's invoke; ``tracking``: the pose model, detector, IDs; ``hands``:
the hand passes, after tracking as the loop runs them (on its finishing thread; here inline); ``body_fit``,
``fit:bones`` the track's bone estimate; ``outputs``; ``gc``: garbage collections) and counts (``hand:tracked``
/ ``hand:tracked-lost`` / ``hand:search-found`` / ``hand:search-missed``, ``fit:track-start`` a track's first,
cold fit, ``fit:other-reading`` the left/right reading not held fitted too, ``publish`` a
partial file). Printed: each step's median and mean per frame, then every frame of the slowest 5 % with what it
had beyond a median frame (its cause), and the load average before/after. Times are ms, wall unless said;
the machine's load moves them, so compare steps within one run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from instanthmr.cli.common import clip_path, describe_load, load_average, run_main, write_json_report
from instanthmr.core.probe import FrameProbe
from instanthmr.outputs.summary import timing_stats
from instanthmr.video.sources import DecodedFrames

#: Counts shown as a slow frame's cause when they happen on it (a median frame has none of them).
EVENTS = ("hand:tracked-lost", "hand:search-found", "fit:track-start", "fit:other-reading", "publish")
#: A step counts as a cause when it took this much longer than on a median frame (ms).
EXCESS_MS = 2.0


class ProbedFrames(DecodedFrames):
    """Frames decoded beforehand (RGB) as a run's source, each one a :meth:`FrameProbe.frame` of ``probe``:
    from the loop getting it to the loop asking for the next."""

    def __init__(self, frames: list, probe: FrameProbe, fps: float = 30.0, name: str = "frames"):
        super().__init__(frames, fps, name)
        self.probe = probe

    def __iter__(self):
        for frame in super().__iter__():
            with self.probe.frame(frame.index):
                yield frame


def step_table(frames: list[dict]) -> dict:
    """Per step: (median, mean) per frame over ``frames`` (a step absent on a frame is 0) of its wall ms
    (``name``), its CPU ms (``name cpu``) and, for counts, how many (``#name``)."""
    out = {}
    for key, suffix, prefix in (("spans", "", ""), ("spans_cpu", " cpu", ""), ("counts", "", "#")):
        for k in sorted({k for f in frames for k in f[key]}):
            v = np.array([f[key].get(k, 0.0) for f in frames], np.float64)
            out[prefix + k + suffix] = (float(np.median(v)), float(v.mean()))
    return out


def causes(frame: dict, typical: dict) -> list[str]:
    """What ``frame`` had beyond a median frame: the steps whose CPU time was ``EXCESS_MS`` over their median
    (``typical``: name -> median CPU ms; wall where no CPU was taken), the :data:`EVENTS` counted on it, the
    garbage collections."""
    out = []
    for k, ms in sorted(frame["spans_cpu"].items(), key=lambda kv: -kv[1]):
        extra = ms - typical.get(k, 0.0)
        if extra > EXCESS_MS and k != "tracking":  # tracking holds the invokes: named by model
            calls = frame["calls"].get(k, 0)
            out.append(f"{k} +{extra:.0f} ({calls}x)" if k.startswith("invoke:") else f"{k} +{extra:.0f}")
    out += [f"{k} {frame['counts'][k]}" for k in EVENTS if frame["counts"].get(k)]
    out += [f"{k} {v}" for k, v in frame["counts"].items() if k.startswith("gc:")]
    return out


def slowest(frames: list[dict], by: str = "ms", share: float = 0.05) -> list[dict]:
    """The slowest ``share`` of ``frames`` (at least one), slowest first, by ``by`` (``"ms"`` wall,
    ``"cpu_ms"``)."""
    n = max(1, int(round(len(frames) * share)))
    return sorted(frames, key=lambda f: -f[by])[:n]


def run(args) -> dict:
    from instanthmr.core.paths import shared_data_dir
    from instanthmr.runner.config import RunConfig
    from instanthmr.runner.loop import run as run_loop
    from instanthmr.runtime.factory import PipelineSpec, create_pipeline
    from instanthmr.teachers.mediapipe_pose import read_frames

    videos = Path(args.videos) if args.videos else shared_data_dir() / "videos"
    paths = [clip_path(clip, videos) for clip in args.clips]  # every clip checked before the first frame
    spec = PipelineSpec(model="mediapipe", hands=not args.no_hands, max_persons=args.max_persons)
    pipeline = create_pipeline(spec, run_loop=True)  # the models as the demo's loop runs them
    report = {"frames": args.frames, "rounds": args.rounds, "max_persons": args.max_persons,
              "hands": not args.no_hands, "body_fit": not args.no_body_fit, "load_before": load_average(),
              "clips": {}}
    try:
        for path in paths:
            images = read_frames(path, args.frames)
            config = RunConfig(video=str(path), pipeline=spec, body_fit=not args.no_body_fit, smooth=args.smooth,
                               viewer=False, quiet=True, verbose=False, save_json=_per_clip(args.save_json, path,
                                                                                            len(args.clips)))
            probe = FrameProbe()
            rounds = []
            with probe.active():
                for r in range(args.rounds):
                    n0 = len(probe.frames)
                    run_loop(config, pipeline=pipeline, source=ProbedFrames(images, probe))
                    rounds.append([{**f, "round": r + 1} for f in probe.frames[n0:]])
            timed = [f for rd in rounds[1:] or rounds for f in rd]  # the first round warms up when there are more
            report["clips"][path.name] = print_clip(path.name, timed, len(rounds) > 1)
    finally:
        pipeline.close()
    report["load_after"] = load_average()
    print(f"\n{describe_load(report['load_before'], report['load_after'])} (other jobs move the wall times)")
    write_json_report(args.json, report)
    return report


def print_clip(name: str, frames: list[dict], warm: bool) -> dict:
    wall, cpu = timing_stats(f["ms"] for f in frames), timing_stats(f["cpu_ms"] for f in frames)
    print(f"\n{name}: {len(frames)} frames{' (rounds after the first)' if warm else ''}; wall median "
          f"{wall['median']:.1f} ms, p95 {wall['p95']:.1f} ({wall['p95'] / wall['median']:.2f}x the median); CPU "
          f"median {cpu['median']:.1f}, p95 {cpu['p95']:.1f} ({cpu['p95'] / cpu['median']:.2f}x)")
    table = step_table(frames)
    width = max(len(k) for k in ("step", *table)) + 2  # "invoke:hand_landmark_full cpu" is 29
    print(f"{'step':{width}}{'median':>8}{'mean':>8}")
    for k, (m, a) in table.items():
        print(f"{k:{width}}{m:8.2f}{a:8.2f}")
    typical = {k[:-4]: m for k, (m, _) in table.items() if k.endswith(" cpu")}
    rows = {}
    for by in ("ms", "cpu_ms"):
        slow = slowest(frames, by)
        print(f"slowest 5 % by {'wall' if by == 'ms' else 'CPU'} ({len(slow)} frames): round:frame wall / CPU ms, "
              "what it had beyond a median frame (CPU ms over the step's median)")
        rows[by] = []
        for f in slow:
            c = causes(f, typical)
            rows[by].append({"round": f["round"], "frame": f["index"], "ms": f["ms"], "cpu_ms": f["cpu_ms"],
                             "causes": c})
            print(f"  r{f['round']}:{f['index']:<4} {f['ms']:6.1f} / {f['cpu_ms']:5.1f}  " + ("; ".join(c) or "-"))
    return {"median": wall["median"], "p95": wall["p95"], "cpu_median": cpu["median"], "cpu_p95": cpu["p95"],
            "steps": table, "slowest_wall": rows["ms"], "slowest_cpu": rows["cpu_ms"],
            "per_frame": [{k: f[k] for k in ("round", "index", "ms", "cpu_ms", "spans", "spans_cpu", "counts")}
                          for f in frames]}


def build_parser() -> argparse.ArgumentParser:
    from instanthmr.video.smoothing import SMOOTH_MODES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clips", nargs="+", metavar="CLIP", help="videos (a path, or a name under --videos)")
    p.add_argument("--videos", default=None, metavar="DIR", help="folder of the clips given by name "
                   "(default: the shared data's videos)")
    p.add_argument("--frames", type=int, default=150, help="frames per round (default: 150)")
    p.add_argument("--rounds", type=int, default=2, help="runs over the frames; the first is left out when "
                   "there are more (default: 2)")
    p.add_argument("--max-persons", type=int, default=1, help="people followed at most, as demo.py's flag "
                   "(default: 1, issue 23's case)")
    p.add_argument("--no-hands", action="store_true", help="without the hand model, as demo.py's flag")
    p.add_argument("--no-body-fit", action="store_true", help="without the MHR body fit, as demo.py's flag")
    p.add_argument("--smooth", choices=SMOOTH_MODES, default=None, help="default: the headless demo's (offline)")
    p.add_argument("--save-json", default=None, metavar="PATH",
                   help="also write the demo's JSON (its partial publications are then timed too; with several "
                        "clips one file each, PATH's stem + '.' + the clip's stem)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the breakdown (every frame) here")
    return p


def _per_clip(save_json: str | None, clip: Path, clips: int) -> str | None:
    """``--save-json PATH`` for ``clip``: PATH itself for one clip, else ``<stem>.<clip stem><suffix>`` beside
    it (each clip's JSON kept, not overwritten by the next)."""
    if save_json is None or clips <= 1:
        return save_json
    p = Path(save_json)
    return str(p.with_name(f"{p.stem}.{clip.stem}{p.suffix or '.json'}"))


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
