"""The flags the demo and batch jobs share, and what they make: a :class:`PipelineSpec` and a :class:`RunConfig`
(the library's configurations; each command adds its own source and output flags)."""

from __future__ import annotations

import argparse

from instanthmr.core.paths import (
    DEFAULT_MODEL,
    MEDIAPIPE_MODEL_NAME,
    RELEASED_CHECKPOINT_NAME,
    RELEASED_ONNX_NAME,
    RELEASED_REPO_ID,
    STARTER_MODEL,
    STARTER_MODEL_NAME,
)
from instanthmr.runner.config import RIGS, RunConfig
from instanthmr.runtime.detector import RFDETR_VARIANTS
from instanthmr.runtime.factory import KEYPOINT_DETECT_EVERY, PipelineSpec
from instanthmr.runtime.factory import display_path as _display
from instanthmr.runtime.mediapipe.files import LANDMARK_PRECISIONS
from instanthmr.runtime.session import DEVICES, RUNTIME_PRESETS, RuntimeOptions
from instanthmr.video.smoothing import SMOOTH_MODES


def add_model_flags(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The models group (the network, the detector, which frames), titled ``prefix + "models"``."""
    m = p.add_argument_group(prefix + "models")
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
    m.add_argument("--mediapipe-precision", default="int8", choices=LANDMARK_PRECISIONS,
                   help=f"--model {MEDIAPIPE_MODEL_NAME}: how the hand model runs: int8 = its int8 ONNX copy shipped in "
                        "the package, on ONNX Runtime (half the time; its drift from MediaPipe's file: docs/offline.md); "
                        "float = MediaPipe's own file on LiteRT. The pose models are MediaPipe's own files either way "
                        "(default: int8)")
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



def add_speed_flags(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The speed levers (threads, precision, I/O binding, CUDA graph, detector resolution, async detector)."""
    sp = p.add_argument_group(prefix + "speed levers (docs/performance.md measures each; all off by default)")
    sp.add_argument("--preset", default="default", choices=list(RUNTIME_PRESETS),
                    help="a named set of the levers below (the ones given on top override it): default; cpu-fast = "
                         "--threads 1 and the body fit off (--body-fit turns it back on); cpu-live = --frames-in-flight 2 "
                         "--async-detector, threads per model by rule (a network with --keypoint-crops); gpu = "
                         "--io-binding --cuda-graph (default: default)")
    sp.add_argument("--threads", type=int, default=None, metavar="N",
                    help="ONNX Runtime threads per model, idle threads sleep instead of spinning; on the MediaPipe path "
                         "the LiteRT models' threads (default: the preset's, else 0 = the runtime's choice: on the "
                         "MediaPipe path every core but one with hands, as the hand passes take one; 1 is fastest for "
                         "a network on a busy 2-core CPU)")
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
    sp.add_argument("--async-detector", action=argparse.BooleanOptionalAction, default=None,
                    help="run the detector on its own thread while the network uses the latest boxes (live "
                         "sources); with --keypoint-crops the people followed keep their crops while it looks "
                         "(default: the preset's; --no-async-detector turns it off over --preset cpu-live)")
    sp.add_argument("--frames-in-flight", type=int, default=None, metavar="N",
                    help="with --keypoint-crops: run N frames' network calls at once on worker threads, each "
                         "frame's crops from the latest finished frame, results in order N-1 frames late; with "
                         "--threads 0 each model then gets cores/N threads (default: 1; 2 is the fastest "
                         "measured on a 2-core CPU, docs/performance.md; the preset's when not given)")



def add_tracking_flags(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """Smoothing and keypoint crops."""
    t = p.add_argument_group(prefix + "tracking and smoothing (every person gets a track_id, stable across frames)")
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
    fit = t.add_mutually_exclusive_group()
    fit.add_argument("--no-body-fit", action="store_true",
                     help="do not fit the MHR body model to each track (on by default on the MediaPipe path: every "
                          "person then gets mhr_params, shape_params, all 70 joints from the body, left and right "
                          "kept when people turn, meshes in the viewer and the .glb; see docs/body_fit.md)")
    fit.add_argument("--body-fit", action="store_true",
                     help="fit the MHR body model to each track on the network path too")



def add_camera_flags(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The camera's focal length and grounded motion (docs/ground.md)."""
    g = p.add_argument_group(prefix + "camera and ground (docs/ground.md)")
    foc = g.add_mutually_exclusive_group()
    foc.add_argument("--focal-length", type=float, default=None, metavar="PX",
                     help="the camera's focal length in pixels (default: the image diagonal, a guess: phones are "
                          "often 0.7-0.9 of it; every depth scales with it). Networks whose input carries no focal "
                          "(the released file) refuse it")
    foc.add_argument("--fov", type=float, default=None, metavar="DEG",
                     help="the camera's horizontal field of view in degrees, instead of --focal-length")
    g.add_argument("--no-ground", action="store_true",
                   help="no grounded motion: no floor, world-frame joints, contacts or foot lock (default: on for "
                        "videos and cameras: joints_3d_world, contacts and the floor in --save-json/--save-csv/"
                        "--save-npz and the viewer)")
    g.add_argument("--floor", default=None, metavar="NX,NY,NZ,H",
                   help="give the floor instead of estimating it: its up normal in the camera frame (x right, y "
                        "down, z forward; a level camera: 0,-1,0) and the camera's height above it in metres, "
                        "e.g. from a calibration")


def add_rig_flag(group) -> None:
    """``--rig`` (how BVH and glTF name their bones) and ``--in-place`` (their root motion): output options
    every output-writing command shares."""
    group.add_argument("--rig", default="mhr70", choices=RIGS,
                   help="bone names and rest pose of --save-bvh/--save-gltf: mhr70 (ours, the track's own rest "
                        "pose) or mixamo (mixamorig:Hips ..., T-pose rest, to retarget onto Mixamo-named rigs) "
                        "(default: mhr70)")
    group.add_argument("--in-place", action="store_true",
                   help="--save-bvh/--save-gltf/--stream vmc without the root's horizontal motion (its x, z set to 0 "
                        "every frame, its height kept), for game engines that move the character themselves "
                        "(default: root motion; in the grounded world frame unless --no-ground, docs/animation.md)")


def add_mesh_flags(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The MHR body-mesh flags."""
    mh = p.add_argument_group(prefix + "MHR body meshes (in the Rerun 3D view and, with --mhr-overlay, on the images)")
    mh.add_argument("--mhr-model", default=None, metavar="PATH",
                    help="converted MHR model .npz (tools/convert_mhr.py), or a folder holding mhr_lod<N>.npz; "
                         "draws each person's mesh from their predicted mhr_params/shape_params, placed with "
                         "cam_trans (metres, Y down). Missing or wrong file: one line, the demo goes on without "
                         "meshes (default: off; models/mhr_lod<N>.npz when only --mhr-lod/--mhr-overlay is given)")
    mh.add_argument("--mhr-lod", type=int, default=None, metavar="N",
                    help="mesh level of detail, 0 = finest .. 6 = coarsest (default: 3)")
    mh.add_argument("--mhr-overlay", action="store_true",
                    help="also paint the meshes over the camera image (Rerun image and --out-video)")


def pipeline_spec(args) -> PipelineSpec:
    """The models the flags ask for (``--random-init`` is made into a file by the command: training is a higher
    floor than the runtime)."""
    return PipelineSpec(model=args.model or "auto", device=args.device, detector=args.detector,
                        detector_variant=args.detector_variant, detector_weights=args.detector_weights,
                        detector_resolution=args.detector_resolution, det_confidence=args.det_confidence,
                        max_persons=args.max_persons, detector_stride=args.detector_stride,
                        keypoint_crops=args.keypoint_crops, hands=not args.no_hands,
                        mediapipe_precision=args.mediapipe_precision,
                        batch_persons=not args.no_batch_persons,
                        runtime=RuntimeOptions.resolve(args.preset, **speed_overrides(args)),
                        mhr_model=args.mhr_model, mhr_lod=args.mhr_lod)


def speed_overrides(args) -> dict:
    """The ``RuntimeOptions`` fields the speed flags set on top of ``--preset``: the switches turned on, and
    ``--threads`` / ``--frames-in-flight`` / ``--[no-]async-detector`` whenever given (``None`` when not), even
    at their plain values, so ``--preset cpu-live --frames-in-flight 1`` runs one frame at a time,
    ``--preset cpu-live --no-async-detector`` runs the detector in the frame and ``--preset cpu-fast --threads 0``
    leaves the threads to ONNX Runtime."""
    threads = 0 if args.threads is None else args.threads
    in_flight = 1 if args.frames_in_flight is None else args.frames_in_flight
    changes = RuntimeOptions.from_flags(threads, args.int8, args.fp16, args.io_binding, args.cuda_graph,
                                        bool(args.async_detector), in_flight).changes()
    given = {"threads": args.threads, "frames_in_flight": args.frames_in_flight,
             "async_detector": args.async_detector}
    return {**changes, **{k: v for k, v in given.items() if v is not None}}


def run_config(args, **fields) -> RunConfig:
    """The shared flags as a :class:`RunConfig`; ``fields``: the rest (source, outputs) as the command sets them.
    Raises ``ValueError`` for ``--threads`` below 0 (one line)."""
    if args.threads is not None and args.threads < 0:  # RuntimeOptions refuses it too, in its own words
        raise ValueError(f"--threads must be 0 (ONNX Runtime's choice) or more, got {args.threads}")
    if args.frames_in_flight is not None and args.frames_in_flight < 1:
        raise ValueError(f"--frames-in-flight must be 1 or more, got {args.frames_in_flight}")
    return RunConfig(frame_skip=args.frame_skip, max_frames=args.max_frames, smooth=args.smooth,
                     pipeline=pipeline_spec(args), rig=args.rig,
                     in_place=args.in_place, mhr_model=args.mhr_model, mhr_lod=args.mhr_lod,
                     mhr_overlay=args.mhr_overlay,
                     focal_length=args.focal_length, fov=args.fov,
                     body_fit=False if args.no_body_fit else True if args.body_fit else None, ground=not args.no_ground, floor=args.floor,
                     **fields)
