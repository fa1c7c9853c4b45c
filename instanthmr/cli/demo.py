#!/usr/bin/env python3
"""InstantHMR demo: 3D human poses from a photo, a folder of photos, a video file or a live camera.

    python demo.py --camera 0
    python demo.py --video clip.mp4 --save-rrd out.rrd --out-video out.mp4 --save-json out.json
    python demo.py --image photo.jpg --no-spawn --save-rrd photo.rrd
    python demo.py --image photos/ --no-spawn --save-json photos.json     # every photo in a folder
    python demo.py --video clip.mp4 --random-init --no-spawn --save-json out.json   # no weights: plumbing only
    python demo.py --video clip.mp4 --keypoint-crops --save-bvh out.bvh --save-npz out.npz --mhr-model models/

A person detector (RF-DETR by default) finds people every --detector-stride frames; the InstantHMR ONNX
network turns each person crop into 70 MHR keypoints in 2D (pixels) and 3D (camera space, metres), body
model parameters and the camera translation. Every person gets a track ID that stays the same across
frames; results are smoothed over time (One-Euro live, or a centred fit over the whole file). Results go to
the Rerun viewer (or an .rrd file), JSON/CSV/NPZ/BVH files and an overlay video; MHR body meshes are drawn
with --mhr-model. Exit status: 0 done, 1 bad input or model (message on stderr), 2 bad arguments,
3 nobody found in any frame (outputs still written), 130 interrupted (frames done so far are saved).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from instanthmr.core.paths import (
    DEFAULT_MODEL,
    REPO_ROOT,
    SAMPLE_IMAGE_NAME,
    STARTER_MODEL,
    default_model,
    sample_image,
)
from instanthmr.outputs.files import ResultsWriteError
from instanthmr.runtime.detector import RFDETR_VARIANTS
from instanthmr.runtime.session import DEVICES, ModelLoadError, precision_from_flags
from instanthmr.video.sources import Frame, SourceError, VideoWriter, open_source

EXIT_OK, EXIT_ERROR, EXIT_NO_PERSONS, EXIT_INTERRUPTED = 0, 1, 3, 130
SMOOTH_CHOICES = ("none", "causal", "offline")
#: --detector-stride default with --keypoint-crops: the detector still runs at least this often to find
#: newcomers (docs/temporal.md: 10 frames kept the crops as good as detecting every frame, 10x fewer calls).
KEYPOINT_DETECT_EVERY = 10
RANDOM_BANNER = ("WARNING: RANDOM WEIGHTS (--random-init): the network is untrained, its poses mean nothing. "
                 "This run only exercises the plumbing and measures speed.")


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("source (exactly one)").add_mutually_exclusive_group(required=True)
    src.add_argument("--image", metavar="PATH",
                     help=f"a photo (any format OpenCV reads), or a folder: every photo directly in it, by name, "
                          f"each on its own (unreadable files are skipped and counted); '{SAMPLE_IMAGE_NAME}' = a "
                          "bundled real photo (matplotlib's public-domain portrait of Grace Hopper)")
    src.add_argument("--video", metavar="PATH", help="a video file (any format OpenCV decodes)")
    src.add_argument("--camera", metavar="INDEX", type=int, help="a live camera by index (0 = default camera)")

    m = p.add_argument_group("models")
    m.add_argument("--model", default=None, metavar="PATH",
                   help=f"InstantHMR ONNX file (default: {_display(DEFAULT_MODEL)} when present, else the offline "
                        f"starter {_display(STARTER_MODEL)}; see models/README.md)")
    m.add_argument("--random-init", action="store_true",
                   help="use a random-init network exported on the fly (needs torch; no weights needed; results "
                        "are meaningless, for plumbing and speed checks)")
    m.add_argument("--random-init-config", default=None, metavar="NAME",
                   help="architecture for --random-init (default: the released one)")
    m.add_argument("--device", default="auto", choices=DEVICES,
                   help="where both models run: cuda | coreml | cpu, or auto = best available (default: auto)")
    m.add_argument("--detector", default="rfdetr", metavar="NAME|PATH",
                   help="person detector: 'rfdetr' (torch, rfdetr package), 'mediapipe', an RF-DETR .onnx from "
                        "tools/export_detector.py (no torch), or a .json file of boxes per frame (default: rfdetr)")
    m.add_argument("--detector-variant", default="nano", choices=list(RFDETR_VARIANTS),
                   help="RF-DETR size for --detector rfdetr (default: nano)")
    m.add_argument("--detector-weights", default=None, metavar="PATH",
                   help="RF-DETR checkpoint .pth (default: models/ or the rfdetr cache ~/.roboflow/models, $RF_HOME; "
                        "downloaded there on first use)")
    m.add_argument("--det-confidence", type=float, default=0.5, metavar="S",
                   help="minimum detection score in [0, 1] (default: 0.5)")
    m.add_argument("--max-persons", type=int, default=8, metavar="N",
                   help="at most N persons per frame, highest scores first (default: 8)")
    m.add_argument("--detector-stride", type=int, default=None, metavar="N",
                   help="run the detector on every Nth processed frame; frames between reuse its boxes enlarged "
                        "by 10%% a side, or with --keypoint-crops follow each person's joints (default: 1 = every "
                        f"frame; {KEYPOINT_DETECT_EVERY} with --keypoint-crops)")
    m.add_argument("--frame-skip", type=int, default=1, metavar="K",
                   help="process every Kth frame of a video/camera, drop the others (default: 1 = all)")
    m.add_argument("--no-batch-persons", action="store_true",
                   help="one network call per person instead of one batched call per frame")
    m.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="stop after N processed frames (default: the whole video; a camera runs until Ctrl-C)")

    sp = p.add_argument_group("speed levers (docs/performance.md measures each; all off by default)")
    sp.add_argument("--threads", type=int, default=0, metavar="N",
                    help="ONNX Runtime threads per model, idle threads sleep instead of spinning (default: 0 = "
                         "ONNX Runtime's choice; 1 is fastest on a busy 2-core CPU)")
    prec = sp.add_mutually_exclusive_group()
    prec.add_argument("--int8", action="store_true",
                      help="run the int8 copies <model>.int8.onnx (and <detector>.int8.onnx for an .onnx detector) "
                           "made by tools/quantize_onnx.py (for CPUs)")
    prec.add_argument("--fp16", action="store_true",
                      help="run the fp16 copy <model>.fp16.onnx made by tools/quantize_onnx.py --mode fp16, and the "
                           "detector in fp16 (torch RF-DETR in float16; an .onnx detector's <detector>.fp16.onnx) "
                           "(for GPUs)")
    sp.add_argument("--io-binding", action="store_true",
                    help="bind the network's inputs/outputs once per shape (GPU: outputs stay on the device)")
    sp.add_argument("--cuda-graph", action="store_true",
                    help="CUDA provider: capture the network once and replay it (fixed batch of --max-persons)")
    sp.add_argument("--detector-resolution", type=int, default=None, metavar="R",
                    help="RF-DETR input side, a multiple of 32 (e.g. 256; torch: built at it; an .onnx detector "
                         "must be exported at it with tools/export_detector.py --resolution R)")
    sp.add_argument("--async-detector", action="store_true",
                    help="run the detector on its own thread while the network uses the latest boxes (live "
                         "sources; not with --keypoint-crops, which drives the detector itself)")

    t = p.add_argument_group("tracking and smoothing (every person gets a track_id, stable across frames)")
    t.add_argument("--smooth", default=None, choices=SMOOTH_CHOICES,
                   help="temporal smoothing of each track: none; causal = One-Euro filter, no delay (live); "
                        "offline = centred fit over past and future frames, lower error, but outputs are written "
                        "only after the whole video is processed (default: causal for --camera and for --video "
                        "with a live viewer, offline for a headless --video (--no-spawn), none for --image; see "
                        "docs/temporal.md)")
    t.add_argument("--keypoint-crops", action="store_true",
                   help="between detector runs, cut each person's crop around their previous 2D joints instead of "
                        "reusing the detector box; the detector runs every --detector-stride frames, on the next "
                        "frame when a crop loses its person, and whenever nobody is tracked")

    o = p.add_argument_group("outputs")
    o.add_argument("--save-rrd", default=None, metavar="PATH",
                   help="save the Rerun recording to this .rrd file (open it later with `rerun PATH`)")
    o.add_argument("--no-spawn", action="store_true",
                   help="headless: do not open the Rerun viewer window")
    o.add_argument("--save-json", default=None, metavar="PATH",
                   help="per frame, per person: track_id, box, score, joints_2d (px), joints_3d_cam (m), cam_trans "
                        "(m), focal_length (px), mhr_params, shape_params; per frame timings")
    o.add_argument("--save-csv", default=None, metavar="PATH",
                   help="one row per frame x person x joint: frame_index, time_s, track_id, joint, x_px, y_px, "
                        "body-centred x/y/z_m and camera-frame cam_x/y/z_m (metres, x right, y down, z forward)")
    o.add_argument("--save-npz", default=None, metavar="PATH",
                   help="arrays per track: track_<id>/{frame_index, time_s, box, joints_2d, joints_3d_local, "
                        "joints_3d_cam, cam_trans, mhr_params, shape_params, score, focal_length} "
                        "(read with instanthmr.outputs.files.read_npz_tracks)")
    o.add_argument("--save-bvh", default=None, metavar="PATH",
                   help="each track's 3D skeleton motion as BVH, one file per track (out.bvh -> out_track<id>.bvh; "
                        "Y up, metres, source fps; tracks seen in fewer than 2 frames are skipped)")
    o.add_argument("--out-video", default=None, metavar="PATH",
                   help="write the frames with skeletons, boxes and track IDs drawn (.mp4/.avi; source fps / "
                        "--frame-skip)")
    o.add_argument("--quiet", action="store_true", help="no progress lines")

    mh = p.add_argument_group("MHR body meshes (in the Rerun 3D view and, with --mhr-overlay, on the images)")
    mh.add_argument("--mhr-model", default=None, metavar="PATH",
                    help="converted MHR model .npz (tools/convert_mhr.py), or a folder holding mhr_lod<N>.npz; "
                         "draws each person's mesh from their predicted mhr_params/shape_params, placed with "
                         "cam_trans (metres, Y down). Missing or wrong file: one line, the demo goes on without "
                         "meshes (default: off; models/mhr_lod<N>.npz when only --mhr-lod/--mhr-overlay is given)")
    mh.add_argument("--mhr-lod", type=int, default=None, metavar="N",
                    help="mesh level of detail, 0 = finest .. 6 = coarsest (default: 3)")
    mh.add_argument("--mhr-overlay", action="store_true",
                    help="also paint the meshes over the camera image (Rerun image and --out-video)")
    return p


# --------------------------------------------------------------------------------------------------
# model resolution
# --------------------------------------------------------------------------------------------------

def resolve_model(args) -> Path:
    """The InstantHMR .onnx to run: ``--model``, the default file, or a random-init export."""
    if args.random_init:
        if args.model:
            raise ModelLoadError("give either --model or --random-init, not both")
        print(RANDOM_BANNER, file=sys.stderr)
        print("exporting a random-init network (first time: ~30 s) ...", file=sys.stderr)
        from instanthmr.training.export import random_init_onnx

        try:
            return random_init_onnx(args.random_init_config)
        except ImportError as e:
            raise ModelLoadError(f"--random-init needs torch and the training package ({e})") from None
    path = Path(args.model) if args.model else default_model()
    if not args.model and path != DEFAULT_MODEL:
        print(f"note: {_display(DEFAULT_MODEL)} not found; running the small offline starter model "
              f"{_display(path)} (much less accurate; see models/README.md)", file=sys.stderr)
    if not path.is_file():
        hint = ("Download the released instanthmr.onnx (see models/README.md) and put it at "
                f"{DEFAULT_MODEL}, or pass --model PATH" if not args.model else "check the --model path")
        raise ModelLoadError(f"InstantHMR model not found: {path}. {hint}; for a plumbing run without weights "
                             "use --random-init")
    return path


# --------------------------------------------------------------------------------------------------
# sinks: each gets every (frame, result[, meshes]) and is closed at the end, whatever happened. Data sinks
# (JSON, CSV, NPZ, BVH) need no image; image sinks (overlay video, Rerun) do.
# --------------------------------------------------------------------------------------------------

def _r(a, nd: int):
    return np.round(np.asarray(a, dtype=np.float64), nd).tolist()


def person_record(p) -> dict:
    """One person as JSON-ready numbers (pixels rounded to 0.01, metres to 0.1 mm). ``track_id``, ``source``
    (detector | reused_box | keypoints: where the crop came from) and ``confidence`` when tracked."""
    track = {}
    if getattr(p, "track_id", None) is not None:
        track = {"track_id": int(p.track_id), "source": str(p.source), "confidence": round(float(p.confidence), 4)}
    return {**track, "box": _r(p.box, 2), "score": round(float(p.score), 4), "joints_2d": _r(p.joints_2d, 2),
            "joints_3d_cam": _r(p.joints_3d_cam, 4), "cam_trans": _r(p.cam_trans, 4),
            "focal_length": round(float(p.focal_length), 3), "mhr_params": _r(p.mhr_params, 5),
            "shape_params": _r(p.shape_params, 5)}


def frame_record(frame: Frame, result) -> dict:
    named = {"file": frame.name} if getattr(frame, "name", "") else {}
    return {"frame_index": int(frame.index), **named, "time_s": round(float(frame.time_s), 4),
            "detector_ran": bool(result.detector_ran), "reused_boxes": bool(getattr(result, "reused", False)),
            "timings": {"detector_ms": round(result.detector_ms, 3), "hmr_ms": round(result.hmr_ms, 3),
                        "total_ms": round(result.total_ms, 3)},
            "persons": [person_record(p) for p in result.persons]}


class JsonSink:
    """Streams ``{"meta": ..., "frames": [...], "summary": ...}``; each frame is flushed as it comes, so an
    interrupted run keeps the frames done (the closing brackets are written by :meth:`close`)."""

    def __init__(self, path: str | Path, meta: dict):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.f = open(self.path, "w")
        except OSError as e:
            raise SourceError(f"cannot write {self.path}: {e.strerror or e}") from None
        self.f.write('{"meta": ' + json.dumps(meta) + ',\n"frames": [\n')
        self.count = 0

    def write(self, frame: Frame, result, meshes=None) -> None:
        self.f.write((",\n" if self.count else "") + json.dumps(frame_record(frame, result)))
        self.f.flush()
        self.count += 1

    def close(self, summary: dict | None = None) -> None:
        if self.f is None:
            return
        self.f.write('\n],\n"summary": ' + json.dumps(summary or {}) + "}\n")
        self.f.close()
        self.f = None


class TrackFileSink:
    """CSV, NPZ or BVH (``kind``) from :mod:`instanthmr.outputs.files`. These formats group by track or need
    every frame, so frames are kept (results only, no images) and the file is written by :meth:`close`,
    which also runs on Ctrl-C or an error: the frames processed so far are written."""

    def __init__(self, kind: str, path: str | Path, fps: float):
        self.kind, self.path, self.fps = kind, Path(path), float(fps)
        self.frames: list = []
        self.written: list[Path] = []
        target = self.path.parent if kind == "bvh" else self.path
        try:  # fail before any processing when the place cannot be written
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if kind != "bvh":
                open(target, "a").close()
            elif not os.access(target, os.W_OK):
                raise PermissionError(13, "not writable")
        except OSError as e:
            raise SourceError(f"cannot write {target}: {e.strerror or e}") from None

    def write(self, frame: Frame, result, meshes=None) -> None:
        self.frames.append(result)

    def close(self, summary: dict | None = None) -> None:
        from instanthmr.outputs.bvh import write_bvh
        from instanthmr.outputs.files import write_csv, write_npz

        if self.kind == "csv":
            write_csv(self.path, self.frames, self.fps)
            self.written = [self.path]
        elif self.kind == "npz":
            write_npz(self.path, self.frames, self.fps)
            self.written = [self.path]
        else:
            self.written = write_bvh(self.path, self.frames, self.fps)


class VideoSink:
    """The overlay video (skeletons, boxes, track IDs, timings; meshes with --mhr-overlay) at the source
    fps / frame skip."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], mesh_overlay: bool = False):
        self.writer = VideoWriter(path, fps, size)
        self.mesh_overlay = mesh_overlay

    def write(self, frame: Frame, result, meshes=None) -> None:
        from instanthmr.outputs.visualizer import draw_frame

        self.writer.write(draw_frame(frame.image, result, meshes=meshes if self.mesh_overlay else None))

    def close(self, summary: dict | None = None) -> None:
        self.writer.close()


class RerunSink:
    def __init__(self, spawn: bool, save_path: str | None, mesh_overlay: bool = False):
        self.mesh_overlay = mesh_overlay
        from instanthmr.outputs.visualizer import RerunVisualizer

        try:
            self.viz = RerunVisualizer("instanthmr", spawn=spawn, save_path=save_path)
        except Exception as e:  # no viewer binary / no display: say what to do instead
            raise SourceError(f"cannot start Rerun ({str(e).strip().splitlines()[0] if str(e).strip() else e!r}); "
                              "run headless with --no-spawn (and --save-rrd PATH to keep the recording)") from None

    def write(self, frame: Frame, result, meshes=None) -> None:
        self.viz.log_frame(frame.image, result, frame_index=frame.index, time_s=frame.time_s, meshes=meshes,
                           mesh_overlay=self.mesh_overlay)

    def close(self, summary: dict | None = None) -> None:
        self.viz.close()


class Progress:
    """Frames done / total and FPS on stderr: a rewritten line on a terminal, a line every ~5 s otherwise."""

    def __init__(self, total: int | None, label: str, quiet: bool = False):
        self.total, self.label, self.quiet = total, label, quiet
        self.tty = sys.stderr.isatty()
        self.t0 = self.last = time.monotonic()
        self.done = 0

    def update(self, result) -> None:
        self.done += 1
        now = time.monotonic()
        if self.quiet or (now - self.last < (0.5 if self.tty else 5.0) and self.done != self.total):
            return
        self.last = now
        fps = self.done / max(now - self.t0, 1e-9)
        of = f"/{self.total} ({100.0 * self.done / self.total:.0f}%)" if self.total else ""
        line = (f"[{self.label}] {self.done}{of} frames | {fps:.1f} FPS | det {result.detector_ms:.0f} ms | "
                f"HMR {result.hmr_ms:.0f} ms | {len(result.persons)} person(s)")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.tty and not self.quiet and self.done:
            print(file=sys.stderr)


def print_summary(s: dict, wall_s: float, file=None) -> None:
    file = file or sys.stdout
    if not s["frames"]:
        print("no frame processed", file=file)
        return
    d, h, t = s["detector_call_ms"], s["hmr_ms"], s["total_ms"]
    print(f"{s['frames']} frame(s) in {wall_s:.1f} s ({s['frames'] / max(wall_s, 1e-9):.1f} FPS wall), "
          f"{s['detector_calls']} detector run(s), {s['persons_per_frame']:.2f} person(s)/frame, "
          f"{s['frames'] - s['frames_with_persons']} frame(s) without anybody", file=file)
    print(f"  detector per run : mean {d['mean']:7.1f} ms  median {d['median']:7.1f}  p95 {d['p95']:7.1f}", file=file)
    print(f"  HMR per frame    : mean {h['mean']:7.1f} ms  median {h['median']:7.1f}  p95 {h['p95']:7.1f}", file=file)
    print(f"  total per frame  : mean {t['mean']:7.1f} ms  median {t['median']:7.1f}  p95 {t['p95']:7.1f}  "
          f"({s['fps']:.1f} FPS, visualisation excluded)", file=file)


# --------------------------------------------------------------------------------------------------
# main loop
# --------------------------------------------------------------------------------------------------

def resolve_smooth(args) -> str:
    """``--smooth`` or its default: none for a single image; causal (no delay) wherever someone watches live
    (a camera, or a video in the viewer); offline for a headless video, where it has the lower error (see
    docs/temporal.md) and nobody waits on a blank viewer."""
    if args.smooth is not None:
        return args.smooth
    if args.image:
        return "none"
    return "offline" if args.video and args.no_spawn else "causal"


def open_meshes(args):
    """The MHR mesh renderer when meshes were asked for, else None (one stderr line when the file is off)."""
    if args.mhr_model is None and args.mhr_lod is None and not args.mhr_overlay:
        return None
    from instanthmr.body.mesh import MeshRenderer

    return MeshRenderer.open(args.mhr_model, args.mhr_lod)


class Emitter:
    """Hands each (frame, tracked result) to the sinks; meshes are decoded once per frame for all image
    sinks."""

    def __init__(self, data_sinks: list, image_sinks: list, mesh=None):
        self.data_sinks, self.image_sinks, self.mesh = data_sinks, image_sinks, mesh

    @property
    def sinks(self) -> list:
        return self.data_sinks + self.image_sinks

    def data(self, frame, result) -> None:
        for sink in self.data_sinks:
            sink.write(frame, result)

    def images(self, frame: Frame, result) -> None:
        if not self.image_sinks:
            return
        meshes = None
        if self.mesh is not None:
            from instanthmr.outputs.visualizer import mesh_frame

            meshes = mesh_frame(self.mesh, result.persons)
        for sink in self.image_sinks:
            sink.write(frame, result, meshes)

    def __call__(self, frame: Frame, result) -> None:
        self.data(frame, result)
        self.images(frame, result)


def emit_offline(args, results: list, fps: float, emit: Emitter, quiet: bool) -> bool:
    """``--smooth offline``: smooth every track over the frames done, write the data outputs from them, then
    decode the source again for the image outputs (frames are not kept in memory). Returns True when
    Ctrl-C stopped the image pass (the data outputs are complete by then)."""
    from instanthmr.video.tracking import smooth_frames_offline

    smoothed = smooth_frames_offline(results, fps=fps)
    for r in smoothed:
        emit.data(SimpleFrame(r.frame_index, r.time_s), r)
    if not emit.image_sinks:
        return False
    by_index = {r.frame_index: r for r in smoothed}
    last = max(by_index)
    again = open_source(args.image, args.video, args.camera, frame_skip=args.frame_skip, max_frames=len(smoothed))
    progress = Progress(len(smoothed), "offline outputs", quiet=quiet)
    try:
        for frame in again:
            r = by_index.get(frame.index)
            if r is not None:
                emit.images(frame, r)
                progress.update(r)
            if frame.index >= last:
                break
    except KeyboardInterrupt:
        return True
    finally:
        progress.finish()
        again.close()
    return False


class FrameStats(NamedTuple):
    """What the end-of-run summary reads from a frame, without its arrays: a camera may run for hours, and
    keeping every frame's joints would grow memory without bound. ``persons`` holds the track IDs."""

    detector_ms: float
    hmr_ms: float
    total_ms: float
    detector_ran: bool
    persons: tuple

    @classmethod
    def of(cls, result) -> "FrameStats":
        return cls(result.detector_ms, result.hmr_ms, result.total_ms, bool(result.detector_ran),
                   tuple(p.track_id for p in result.persons))


class SimpleFrame:
    """Frame number and time without an image (what the data sinks read)."""

    def __init__(self, index: int, time_s: float):
        self.index, self.time_s = int(index), float(time_s)


def run(args) -> int:
    from instanthmr.runtime.pipeline import PosePipeline, summarize
    from instanthmr.video.tracking import TrackingPipeline

    stride = args.detector_stride if args.detector_stride is not None else (
        KEYPOINT_DETECT_EVERY if args.keypoint_crops else 1)
    if stride < 1 or args.frame_skip < 1 or args.max_persons < 1:
        raise ValueError("--detector-stride, --frame-skip and --max-persons must be >= 1")
    smooth = resolve_smooth(args)
    source = open_source(args.image, args.video, args.camera, frame_skip=args.frame_skip,
                         max_frames=args.max_frames)
    photos = source.kind == "images"  # unrelated photos: no boxes, tracks or smoothing carried between them
    if photos and smooth != "none":
        print(f"smoothing: none for a folder of photos (--smooth {smooth} ignored)", file=sys.stderr)
        smooth = "none"
    emit = Emitter([], [])
    results: list = []  # every tracked frame, in order, for --smooth offline; else their FrameStats
    interrupted = False
    offline_pending = False
    t_start = time.monotonic()
    try:
        model = resolve_model(args)
        pipeline = PosePipeline(model, device=args.device, detector=args.detector,
                                detector_variant=args.detector_variant, det_confidence=args.det_confidence,
                                max_persons=args.max_persons, detector_stride=stride,
                                batch_persons=not args.no_batch_persons, detector_weights=args.detector_weights,
                                threads=args.threads, spinning=False if args.threads else None,
                                precision=precision_from_flags(args.int8, args.fp16), io_binding=args.io_binding, cuda_graph=args.cuda_graph,
                                detector_resolution=args.detector_resolution,
                                async_detector=args.async_detector and not args.keypoint_crops)
        # source.fps, not the output fps: frame indices count source frames (--frame-skip leaves gaps).
        tracking = TrackingPipeline.from_pipeline(pipeline, keypoint_crops=args.keypoint_crops, detect_every=stride,
                                                  smooth="causal" if smooth == "causal" else "none", fps=source.fps)
        det_desc = getattr(pipeline.detector, "variant", "")
        crops = (f"keypoint crops, detector at least every {stride} frame(s)" if args.keypoint_crops
                 else f"detector every {stride} frame(s), boxes reused between")
        print(f"source: {source.kind} {source.name} ({source.size[0]}x{source.size[1]}, "
              f"{source.expected_frames if source.expected_frames is not None else '?'} frame(s) to process)")
        levers = [n for n, on in (("io binding", pipeline.hmr.io_binding), ("CUDA graph", pipeline.hmr.cuda_graph)) if on]
        print(f"model: {pipeline.hmr.path} ({pipeline.hmr.model_info['precision']}"
              f"{', ' + ', '.join(levers) if levers else ''}) on {pipeline.hmr.provider}; detector: {pipeline.detector.name} {det_desc} "
              f"(stride {stride}, confidence {args.det_confidence})")
        print(f"tracking: {crops}; smoothing: {smooth}"
              + (" (outputs are written after the whole video)" if smooth == "offline" else ""))
        meta = {"source": str(args.image or args.video or f"camera:{args.camera}"), "source_kind": source.kind,
                "image_size": list(source.size), "fps": source.output_fps, "source_fps": source.fps,
                "frame_skip": args.frame_skip,
                "model": str(model), "random_init": bool(args.random_init), "provider": pipeline.hmr.provider,
                "detector": pipeline.detector.name, "detector_variant": det_desc,
                "detector_stride": stride, "det_confidence": args.det_confidence,
                "keypoint_crops": bool(args.keypoint_crops), "smooth": smooth,
                "units": {"box": "px xyxy", "joints_2d": "px", "joints_3d_cam": "m, camera frame x right y down "
                          "z forward", "cam_trans": "m", "focal_length": "px", "timings": "ms",
                          "track_id": "int, the same person keeps it across frames (never reused in a run)"},
                "joint_order": "MHR70 (instanthmr.core.skeleton.MHR70_NAMES)"}
        if args.save_json:
            emit.data_sinks.append(JsonSink(args.save_json, meta))
        for kind in ("csv", "npz", "bvh"):
            path = getattr(args, f"save_{kind}")
            if path:
                emit.data_sinks.append(TrackFileSink(kind, path, source.fps))
        if args.out_video:
            emit.image_sinks.append(VideoSink(args.out_video, source.output_fps, source.size, args.mhr_overlay))
        if args.save_rrd or not args.no_spawn:
            emit.image_sinks.append(RerunSink(spawn=not args.no_spawn, save_path=args.save_rrd,
                                              mesh_overlay=args.mhr_overlay))
        if emit.image_sinks:
            emit.mesh = open_meshes(args)
        elif args.mhr_model or args.mhr_lod is not None or args.mhr_overlay:
            print("[mhr] meshes need the viewer, --save-rrd or --out-video; none of them is on", file=sys.stderr)
        quiet = args.quiet or source.kind == "image"
        progress = Progress(source.expected_frames, source.kind, quiet=quiet)
        offline_pending = smooth == "offline"
        try:
            for frame in source:
                if photos:
                    tracking.reset()
                result = tracking(frame.image, frame.index, frame.time_s)
                results.append(result if offline_pending else FrameStats.of(result))
                if not offline_pending:
                    emit(frame, result)
                progress.update(result)
        except KeyboardInterrupt:
            interrupted = True
        progress.finish()
        if offline_pending and results:
            offline_pending = False
            interrupted = emit_offline(args, results, source.fps, emit, quiet) or interrupted
    finally:
        try:
            if offline_pending and results:  # an error stopped the run: still write the frames done, smoothed
                emit_offline(args, results, source.fps, emit, True)
        finally:
            summary = summarize(results)
            if photos:
                summary["skipped_files"] = list(source.skipped)
            for sink in emit.sinks:
                sink.close(summary)
            source.close()
    if args.random_init:
        print(RANDOM_BANNER, file=sys.stderr)
    print_summary(summary, time.monotonic() - t_start)
    tracks = sorted({t if isinstance(r, FrameStats) else t.track_id for r in results for t in r.persons})
    if tracks:
        print(f"{len(tracks)} track(s): IDs {', '.join(str(t) for t in tracks[:20])}{' ...' if len(tracks) > 20 else ''}")
    for kind, path in (("json", args.save_json), ("csv", args.save_csv), ("npz", args.save_npz),
                       ("video", args.out_video), ("rrd", args.save_rrd)):
        if path:
            print(f"wrote {kind}: {path}")
    for sink in emit.data_sinks:
        if isinstance(sink, TrackFileSink) and sink.kind == "bvh":
            if sink.written:
                print(f"wrote bvh: {', '.join(str(p) for p in sink.written)}")
            else:
                print(f"bvh: nothing written to {sink.path} (no track seen in 2 or more frames)")
    if photos and source.skipped:
        print(f"skipped {len(source.skipped)} unreadable file(s) of {source.total} in {source.path}: "
              f"{', '.join(source.skipped[:10])}{' ...' if len(source.skipped) > 10 else ''}", file=sys.stderr)
    if interrupted:
        print(f"interrupted after {len(results)} frame(s); outputs keep them", file=sys.stderr)
        return EXIT_INTERRUPTED
    if results and summary["frames_with_persons"] == 0:
        print(f"no person found in {source.kind} {source.name} (detector {pipeline.detector.name}, "
              f"confidence > {args.det_confidence}); try a lower --det-confidence", file=sys.stderr)
        return EXIT_NO_PERSONS
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smooth == "offline" and args.camera is not None:
        parser.error("--smooth offline needs the whole video before any output; use causal or none with --camera")
    try:
        if args.image == SAMPLE_IMAGE_NAME and not Path(SAMPLE_IMAGE_NAME).exists():
            args.image = str(sample_image())
            print(f"image: the bundled sample photo {args.image}")
        return run(args)
    except (SourceError, ModelLoadError, ResultsWriteError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
