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
model parameters and the camera translation. Without the released network (offline) the per-person model is
the MediaPipe path instead (--model mediapipe: BlazePose + hand landmarks as the same 70 keypoints, no body
model parameters; docs/offline.md). Every person gets a track ID that stays the same across
frames; results are smoothed over time (One-Euro live, or a centred fit over the whole file). Results go to
the Rerun viewer (or an .rrd file), JSON/CSV/NPZ/BVH files and an overlay video; MHR body meshes are drawn
with --mhr-model. Every output is written under a temporary name and renamed into place; the data files are
complete, valid files from the first frame on (docs/demo.md). Exit status: 0 done, 1 bad input or model
(message on stderr), 2 bad arguments (output paths included, checked before any work), 3 nobody found in
any frame (outputs still written), 130 / 143 / 129 stopped by Ctrl-C / SIGTERM / SIGHUP (the frames done so
far are saved).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from instanthmr.cli.common import flag_name, random_init_model
from instanthmr.core.paths import (
    DEFAULT_MODEL,
    MEDIAPIPE_MODEL_NAME,
    RELEASED_CHECKPOINT_NAME,
    RELEASED_ONNX_NAME,
    RELEASED_REPO_ID,
    SAMPLE_IMAGE_NAME,
    STARTER_MODEL,
    STARTER_MODEL_NAME,
    sample_image,
)
from instanthmr.outputs.atomic import ResultsWriteError
from instanthmr.outputs.signals import StopSignals
from instanthmr.runner.config import RunConfig
from instanthmr.runner.loop import EXIT_ERROR, EXIT_USAGE, run
from instanthmr.runtime.detector import RFDETR_VARIANTS
from instanthmr.runtime.factory import KEYPOINT_DETECT_EVERY, PipelineSpec
from instanthmr.runtime.factory import display_path as _display
from instanthmr.runtime.session import DEVICES, ModelLoadError, RuntimeOptions
from instanthmr.video.smoothing import SMOOTH_MODES
from instanthmr.video.sources import SourceError


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
    m.add_argument("--model", default=None, metavar="PATH|hf:SPEC",
                   help=f"InstantHMR ONNX file, or a file on the Hugging Face Hub: hf:OWNER/REPO[/FILE][@REVISION] "
                        f"(default: {_display(DEFAULT_MODEL)} when present, else the released network from the Hub, "
                        f"hf:{RELEASED_REPO_ID}/{RELEASED_ONNX_NAME}, downloaded once into the Hub cache ($HF_HOME; "
                        f"the repository also holds {RELEASED_CHECKPOINT_NAME}, the training checkpoint); "
                        f"offline (or HF_HUB_OFFLINE=1) the MediaPipe path). Two offline paths by name: "
                        f"'{MEDIAPIPE_MODEL_NAME}' = MediaPipe's BlazePose (+ hand) landmarks as MHR70 2D and metric 3D "
                        f"(no MHR parameters; docs/offline.md), '{STARTER_MODEL_NAME}' = the small starter network "
                        f"{_display(STARTER_MODEL)} (models/README.md)")
    m.add_argument("--no-hands", action="store_true",
                   help=f"--model {MEDIAPIPE_MODEL_NAME}: skip the hand landmark model (no finger joints; ~5 ms less "
                        "per hand)")
    m.add_argument("--random-init", action="store_true",
                   help="use a random-init network exported on the fly (needs torch; no weights needed; results "
                        "are meaningless, for plumbing and speed checks)")
    m.add_argument("--random-init-config", default=None, metavar="NAME",
                   help="architecture for --random-init (default: instanthmr_repvit_m1_5; the notebook's: "
                        "instanthmr_notebook_m2_3)")
    m.add_argument("--device", default="auto", choices=DEVICES,
                   help="where both models run: cuda | coreml | cpu, or auto = best available (default: auto)")
    m.add_argument("--detector", default=None, metavar="NAME|PATH",
                   help="person detector: 'rfdetr' (torch, rfdetr package), 'mediapipe', an RF-DETR .onnx from "
                        "tools/export_detector.py (no torch), or a .json file of boxes per frame (default: rfdetr; "
                        f"mediapipe with --model {MEDIAPIPE_MODEL_NAME}, whose landmarks it reuses)")
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
                        f"frame; {KEYPOINT_DETECT_EVERY} with --keypoint-crops). The MediaPipe path follows each person "
                        "with their landmarks and looks for newcomers every N frames (default: 10)")
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
                    help="CUDA provider: capture the network once per batch size (1, 2, 4, .. --max-persons) and "
                         "replay it")
    sp.add_argument("--detector-resolution", type=int, default=None, metavar="R",
                    help="RF-DETR input side, a multiple of 32 (e.g. 256; torch: built at it; an .onnx detector "
                         "must be exported at it with tools/export_detector.py --resolution R)")
    sp.add_argument("--async-detector", action="store_true",
                    help="run the detector on its own thread while the network uses the latest boxes (live "
                         "sources; not with --keypoint-crops, which drives the detector itself)")

    t = p.add_argument_group("tracking and smoothing (every person gets a track_id, stable across frames)")
    t.add_argument("--smooth", default=None, choices=SMOOTH_MODES,
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
                        "joints_3d_cam, cam_trans, mhr_params, shape_params, score, focal_length, joints_valid} "
                        "(read with instanthmr.outputs.files.read_npz_tracks)")
    o.add_argument("--save-bvh", default=None, metavar="PATH",
                   help="each track's 3D skeleton motion as BVH, one file per track (out.bvh -> out_track<id>.bvh; "
                        "Y up, metres, source fps; tracks seen in fewer than 2 frames are skipped)")
    o.add_argument("--save-gltf", default=None, metavar="PATH",
                   help="every track's skeleton motion in one animated glTF 2.0 binary (.glb) for Blender, Unity, "
                        "three.js: one animation per track, the video camera, and with --mhr-model the skinned MHR "
                        "body (Y up, metres, the video's clock; docs/animation.md)")
    o.add_argument("--rig", default="mhr70", choices=("mhr70", "mixamo"),
                   help="bone names and rest pose of --save-bvh/--save-gltf: mhr70 (ours, the track's own rest "
                        "pose) or mixamo (mixamorig:Hips ..., T-pose rest, to retarget onto Mixamo-named rigs) "
                        "(default: mhr70)")
    o.add_argument("--stream", default=None, metavar="vmc[:HOST:PORT]",
                   help="send one person's bone rotations and root position live over the VMC protocol (OSC/UDP; "
                        "VSeeFace-style receivers, Blender/Unity VMC plug-ins) to HOST:PORT (default "
                        "127.0.0.1:39539); frames the receiver cannot take are dropped, never waited for")
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


def pipeline_spec(args) -> PipelineSpec:
    """The models the flags ask for (``--random-init`` is made into a file by :func:`main`)."""
    return PipelineSpec(model=args.model or "auto", device=args.device, detector=args.detector,
                        detector_variant=args.detector_variant, detector_weights=args.detector_weights,
                        detector_resolution=args.detector_resolution, det_confidence=args.det_confidence,
                        max_persons=args.max_persons, detector_stride=args.detector_stride,
                        keypoint_crops=args.keypoint_crops, hands=not args.no_hands,
                        batch_persons=not args.no_batch_persons,
                        runtime=RuntimeOptions.from_flags(args.threads, args.int8, args.fp16, args.io_binding,
                                                          args.cuda_graph, args.async_detector),
                        mhr_model=args.mhr_model, mhr_lod=args.mhr_lod)


def run_config(args) -> RunConfig:
    """The run the flags ask for."""
    return RunConfig(image=args.image, video=args.video, camera=args.camera, frame_skip=args.frame_skip,
                     max_frames=args.max_frames, smooth=args.smooth, keypoint_crops=args.keypoint_crops,
                     pipeline=pipeline_spec(args), save_json=args.save_json, save_csv=args.save_csv,
                     save_npz=args.save_npz, save_bvh=args.save_bvh, save_gltf=args.save_gltf,
                     out_video=args.out_video, save_rrd=args.save_rrd, viewer=not args.no_spawn, rig=args.rig,
                     stream=args.stream, mhr_model=args.mhr_model, mhr_lod=args.mhr_lod,
                     mhr_overlay=args.mhr_overlay, quiet=args.quiet)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.image == SAMPLE_IMAGE_NAME and not Path(SAMPLE_IMAGE_NAME).exists():
        args.image = str(sample_image())
        print(f"image: the bundled sample photo {args.image}")
    try:
        if args.threads < 0:  # RuntimeOptions refuses it too, in its own words
            raise ValueError(f"--threads must be 0 (ONNX Runtime's choice) or more, got {args.threads}")
        config = run_config(args)
        config.validate(flag_name)  # every argument and output path, before the models load
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    # Damaged video frames are counted and reported once at the end, not by libav for every broken packet.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    with StopSignals(ignore_after_stop=True) as stop:
        try:
            if args.random_init:
                model = random_init_model(args.model, args.random_init_config)
                config = replace(config, pipeline=replace(config.pipeline, model=str(model), random_init=True))
            return run(config, stop=stop).exit_code
        except (SourceError, ModelLoadError, ResultsWriteError, ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print(f"stopped by {stop.stopped_by}" if stop.received else "interrupted", file=sys.stderr)
            return stop.exit_code
