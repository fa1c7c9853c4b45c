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
import time
from pathlib import Path

from instanthmr.core.paths import (
    DEFAULT_MODEL,
    MEDIAPIPE_MODEL_NAME,
    RELEASED_CHECKPOINT_NAME,
    RELEASED_ONNX_NAME,
    RELEASED_REPO_ID,
    RELEASED_WEIGHTS_LICENSE,
    REPO_ROOT,
    SAMPLE_IMAGE_NAME,
    STARTER_MODEL,
    STARTER_MODEL_NAME,
    default_model,
    sample_image,
)
from instanthmr.outputs.atomic import ResultsWriteError
from instanthmr.outputs.records import JOINT_ORDER, UNITS
from instanthmr.outputs.signals import StopSignals
from instanthmr.outputs.sinks import (
    CsvSink,
    JsonSink,
    Outputs,
    RerunSink,
    TrackFileSink,
    VideoSink,
    check_output_paths,
)
from instanthmr.outputs.summary import Progress, print_run, source_summary
from instanthmr.outputs.video import check_video_extension
from instanthmr.runtime.detector import RFDETR_VARIANTS
from instanthmr.runtime.session import DEVICES, ModelLoadError, RuntimeOptions
from instanthmr.video.smoothing import SMOOTH_MODES
from instanthmr.video.sources import SourceError, open_source

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NO_PERSONS = 0, 1, 2, 3
#: --detector-stride default with --keypoint-crops: the detector still runs at least this often to find
#: newcomers (docs/temporal.md: 10 frames kept the crops as good as detecting every frame, 10x fewer calls).
KEYPOINT_DETECT_EVERY = 10
RANDOM_BANNER = ("WARNING: RANDOM WEIGHTS (--random-init): the network is untrained, its poses mean nothing. "
                 "This run only exercises the plumbing and measures speed.")
#: The output options, in the order the end of a run reports them.
OUTPUT_FLAGS = {"json": "--save-json", "csv": "--save-csv", "npz": "--save-npz", "video": "--out-video",
                "rrd": "--save-rrd", "bvh": "--save-bvh", "gltf": "--save-gltf"}


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
    t.add_argument("--no-body-fit", action="store_true",
                   help="do not fit the MHR body model to each track (on by default on the MediaPipe path: every "
                        "person then gets mhr_params, shape_params, all 70 joints from the body, left and right kept "
                        "when people turn; see docs/body_fit.md)")
    t.add_argument("--body-fit", action="store_true",
                   help="fit the MHR body model to each track on the network path too (its mhr_params start each "
                        "track and give its shape)")
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


# --------------------------------------------------------------------------------------------------
# model resolution
# --------------------------------------------------------------------------------------------------

def resolve_model(args) -> Path | str:
    """The InstantHMR .onnx to run: ``--model PATH`` or ``--model hf:OWNER/REPO[/FILE][@REV]``, a random-init
    export, or by default ``models/instanthmr.onnx``, else the Hub copy (downloaded once), else the offline
    MediaPipe path (``"mediapipe"``; the starter when its models cannot run either) with one line that says why
    the released network was not used. ``--model mediapipe`` / ``--model starter`` pick an offline path."""
    from instanthmr.runtime import hub

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

    def downloading(f):
        print(f"downloading {f} into {hub.hub_cache_dir()} (once; the released network is ~77 MB) ...",
              file=sys.stderr, flush=True)

    if args.model in (MEDIAPIPE_MODEL_NAME, STARTER_MODEL_NAME):
        return MEDIAPIPE_MODEL_NAME if args.model == MEDIAPIPE_MODEL_NAME else STARTER_MODEL
    if args.model and hub.is_hub_spec(args.model):
        got = hub.fetch(hub.parse_hub_spec(args.model), on_download=downloading)
        if got.note:
            print(f"note: {got.note}", file=sys.stderr)
        return got.path
    if args.model:
        path = Path(args.model)
        if not path.is_file():
            raise ModelLoadError(f"InstantHMR model not found: {path}. check the --model path; for a plumbing run "
                                 "without weights use --random-init")
        return path
    found = hub.released_model(on_download=downloading)
    if found.path is not None:
        if found.note:
            print(f"note: {found.note}", file=sys.stderr)
        return found.path
    from instanthmr.runtime.mediapipe_hmr import unavailable_reason

    offline = unavailable_reason()
    if offline is None:  # the offline default: as accurate as MediaPipe Pose (docs/offline.md)
        print(f"note: released model not used: {found.note}; {hub.unavailable_hint()}; running the offline "
              "MediaPipe path: BlazePose (+ hand) landmarks as MHR70 2D and metric 3D, no MHR body-model "
              f"parameters (docs/offline.md; --model {STARTER_MODEL_NAME} runs the small starter network)",
              file=sys.stderr)
        return MEDIAPIPE_MODEL_NAME
    path = default_model()
    if not path.is_file():
        raise ModelLoadError(f"InstantHMR model not found: {DEFAULT_MODEL} ({found.note}). Download the released "
                             f"instanthmr.onnx (see models/README.md): {hub.unavailable_hint()}; for a plumbing run "
                             "without weights use --random-init")
    print(f"note: released model not used: {found.note}; {hub.unavailable_hint()}; the offline MediaPipe path "
          f"cannot run either ({offline}); running the offline starter model {_display(path)} (much less "
          "accurate; see models/README.md)", file=sys.stderr)
    return path


def released_weights(model: Path) -> str | None:
    """One line when ``model`` is the released network (``models/instanthmr.onnx`` or its Hub copy): which
    file runs and that its weights are under the SAM License; ``None`` for any other file."""
    from instanthmr.runtime.hub import released_origin

    origin = released_origin(model)
    if origin is None:
        return None
    where = "models/" if origin == "local" else f"Hugging Face Hub, {RELEASED_REPO_ID}"
    return f"weights: the released InstantHMR network ({where}), under the {RELEASED_WEIGHTS_LICENSE}"


def detector_stride(args, model=None) -> int:
    """``--detector-stride``, or its default: 1, KEYPOINT_DETECT_EVERY with --keypoint-crops, or for the
    MediaPipe path (``model`` "mediapipe") how often its detector looks for newcomers."""
    if args.detector_stride is not None:
        return args.detector_stride
    if model == MEDIAPIPE_MODEL_NAME:
        from instanthmr.runtime.mediapipe_hmr import DETECT_EVERY

        return DETECT_EVERY
    return KEYPOINT_DETECT_EVERY if args.keypoint_crops else 1


def load_pipeline(args) -> tuple:
    """The models ``args`` ask for, as ``(network .onnx path, PosePipeline)``, or ``("mediapipe",
    MediaPipePipeline)`` for the MediaPipe path (a PosePipeline too). :func:`run` loads them itself
    when not given them; tools/batch.py loads them once per worker and hands them to :func:`run` per input."""
    from instanthmr.runtime.pipeline import PosePipeline

    model = resolve_model(args)
    if model == MEDIAPIPE_MODEL_NAME:
        from instanthmr.runtime.mediapipe_hmr import MediaPipePipeline

        pipeline = MediaPipePipeline(detector=args.detector or "mediapipe", hands=not args.no_hands,
                                     detect_every=detector_stride(args, model), max_persons=args.max_persons,
                                     det_confidence=args.det_confidence, device=args.device,
                                     detector_variant=args.detector_variant, detector_weights=args.detector_weights,
                                     detector_resolution=args.detector_resolution)
        return model, pipeline
    pipeline = PosePipeline(model, device=args.device, detector=args.detector or "rfdetr",
                            detector_variant=args.detector_variant, det_confidence=args.det_confidence,
                            max_persons=args.max_persons, detector_stride=detector_stride(args),
                            batch_persons=not args.no_batch_persons, detector_weights=args.detector_weights,
                            detector_resolution=args.detector_resolution,
                            runtime=RuntimeOptions.from_flags(args.threads, args.int8, args.fp16, args.io_binding,
                                                              args.cuda_graph,
                                                              args.async_detector and not args.keypoint_crops),
                            mhr=mhr_for_network(args))
    return model, pipeline


def mhr_for_network(args) -> Path | None:
    """The MHR model file for networks that take their 3D keypoints from it (``mhr_only`` graphs): the
    ``--mhr-model`` / ``--mhr-lod`` file when one is given (loaded only if the network needs it)."""
    if args.mhr_model is None:
        return None
    from instanthmr.body.mesh import resolve_mhr_model

    return resolve_mhr_model(args.mhr_model, args.mhr_lod)


# --------------------------------------------------------------------------------------------------
# checks before any work
# --------------------------------------------------------------------------------------------------

def output_paths(args) -> dict[str, str | None]:
    """``{option: path}`` of every output file asked for."""
    return {flag: getattr(args, flag[2:].replace("-", "_")) for flag in OUTPUT_FLAGS.values()}


def check_args(args) -> None:
    """Every argument and output path, before the models load: ``ValueError`` with one line (exit 2)."""
    for flag in ("--frame-skip", "--max-persons", "--detector-stride", "--max-frames", "--detector-resolution"):
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be 1 or more, got {value}")
    if not 0.0 <= args.det_confidence <= 1.0:  # NaN fails both comparisons
        raise ValueError(f"--det-confidence is a detection score in [0, 1], got {args.det_confidence}")
    if args.threads < 0:
        raise ValueError(f"--threads must be 0 (ONNX Runtime's choice) or more, got {args.threads}")
    if args.camera is not None and args.camera < 0:
        raise ValueError(f"--camera is a camera index, 0 or more (0 = the default camera), got {args.camera}")
    if args.mhr_lod is not None and not 0 <= args.mhr_lod <= 6:
        raise ValueError(f"--mhr-lod is a level of detail from 0 (finest) to 6 (coarsest), got {args.mhr_lod}")
    if args.model and args.model.startswith("hf:"):
        from instanthmr.runtime.hub import parse_hub_spec

        parse_hub_spec(args.model)  # a malformed hf: spec is a bad argument
    if args.out_video:
        check_video_extension(args.out_video)
    if args.stream:
        from instanthmr.outputs.vmc import parse_target

        parse_target(args.stream)  # a malformed target is a bad argument
    check_output_paths(output_paths(args), inputs=(args.image, args.video))


# --------------------------------------------------------------------------------------------------
# the run
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


def open_outputs(args, meta: dict, source, smooth: str, stop: StopSignals) -> Outputs:
    """The sinks the arguments ask for (older files at their paths stay until new ones replace them)."""
    data, images = [], []
    try:
        if args.save_json:
            data.append(JsonSink(args.save_json, meta))
        if args.save_csv:
            data.append(CsvSink(args.save_csv))
        if args.save_npz:
            data.append(TrackFileSink("npz", args.save_npz, source.fps))
        if args.save_bvh:
            data.append(TrackFileSink("bvh", args.save_bvh, source.fps, rig=args.rig))
        if args.save_gltf:
            data.append(TrackFileSink("gltf", args.save_gltf, source.fps, rig=args.rig, image_size=source.size))
        if args.out_video:
            images.append(VideoSink(args.out_video, source.output_fps, source.size, args.mhr_overlay))
        if args.save_rrd or not args.no_spawn:
            images.append(RerunSink(spawn=not args.no_spawn, save_path=args.save_rrd, mesh_overlay=args.mhr_overlay))
    except BaseException:
        for sink in data + images:
            sink.discard()
        raise
    mesh = open_meshes(args) if images or args.save_gltf else None
    for sink in data:
        if sink.kind == "gltf" and mesh is not None:
            sink.options["mhr_model"] = mesh.model  # the skinned MHR body in the .glb
    if not images and not args.save_gltf and (args.mhr_model or args.mhr_lod is not None or args.mhr_overlay):
        print("[mhr] meshes need the viewer, --save-rrd, --out-video or --save-gltf; none of them is on",
              file=sys.stderr)
    # source.fps, not the output fps: frame indices count source frames (--frame-skip leaves gaps).
    return Outputs(data, images, mesh, offline_fps=source.fps if smooth == "offline" else None, stop=stop,
                   extra=lambda: source_summary(source))


def open_body_fit(args, mediapipe: bool, smooth: str):
    """The per-track MHR body fit (:mod:`instanthmr.video.body_fit`), or None: on for the MediaPipe path unless
    ``--no-body-fit``, on the network path with ``--body-fit``; ``--mhr-model`` picks the body model (default:
    the shipped LOD 6). Offline smoothing keeps
    each track's frames for the whole-track left/right decision."""
    if args.no_body_fit or not (mediapipe or args.body_fit):
        return None
    from instanthmr.body.mesh import resolve_mhr_model
    from instanthmr.body.mhr import MHRAssetError, MHRNumpy
    from instanthmr.video.body_fit import BodyFitStage

    try:
        model = MHRNumpy.from_npz(resolve_mhr_model(args.mhr_model, args.mhr_lod))
        return BodyFitStage(model, keep_history=smooth == "offline")
    except (MHRAssetError, ValueError) as exc:
        print(f"[body fit] off: {exc}", file=sys.stderr)
        return None


def open_stream(args, source):
    """``--stream vmc[:HOST:PORT]``: the live VMC sender (its own thread; never blocks the run), or None. A video
    file is streamed on its own clock (real time, however fast it is processed)."""
    if not args.stream:
        return None
    from instanthmr.outputs.vmc import VMCStreamer, parse_target

    host, port = parse_target(args.stream)
    print(f"streaming: VMC to {host}:{port}")
    return VMCStreamer(host, port, realtime=source.kind == "video")


def draw_offline(args, outputs: Outputs, quiet: bool) -> None:
    """``--smooth offline``: decode the source again and draw the image outputs from the smoothed results
    (frames are not kept in memory)."""
    n = outputs.frames
    again = open_source(args.image, args.video, args.camera, frame_skip=args.frame_skip, max_frames=n)
    progress = Progress(n, "offline outputs", quiet=quiet)
    try:
        outputs.replay(again, progress)
    finally:
        progress.finish()
        again.close()


def run(args, stop: StopSignals, loaded: tuple | None = None, figures: dict | None = None) -> int:
    """One source through the pipeline into the outputs; the exit status. ``loaded``: models already loaded
    by :func:`load_pipeline` (reset here: nothing carries over from an earlier source); ``figures`` is
    filled with ``frames`` and ``people`` (distinct track IDs)."""
    from instanthmr.video.tracking import TrackingPipeline

    smooth = resolve_smooth(args)
    source = open_source(args.image, args.video, args.camera, frame_skip=args.frame_skip,
                         max_frames=args.max_frames)
    photos = source.kind == "images"  # unrelated photos: no boxes, tracks or smoothing carried between them
    if photos and smooth != "none":
        print(f"smoothing: none for a folder of photos (--smooth {smooth} ignored)", file=sys.stderr)
        smooth = "none"
    outputs: Outputs | None = None
    stream = None
    interrupted = False
    t_start = time.monotonic()
    try:
        if loaded is None:
            loaded = load_pipeline(args)
        else:
            loaded[1].reset()
        model, pipeline = loaded
        mediapipe = model == MEDIAPIPE_MODEL_NAME  # the MediaPipe path follows people with its own landmarks
        stride = detector_stride(args, model)
        # source.fps, not the output fps: frame indices count source frames (--frame-skip leaves gaps).
        tracking = TrackingPipeline.from_pipeline(pipeline, keypoint_crops=args.keypoint_crops and not mediapipe,
                                                  smooth="causal" if smooth == "causal" else "none", fps=source.fps)
        det_desc = getattr(pipeline.detector, "variant", "")
        crops = (f"each person's next region from their landmarks (MediaPipe's rule), detector every {stride} "
                 "frame(s) for newcomers" if mediapipe else
                 f"keypoint crops, detector at least every {stride} frame(s)" if args.keypoint_crops
                 else f"detector every {stride} frame(s), boxes reused between")
        print(f"source: {source.kind} {source.name} ({source.size[0]}x{source.size[1]}, "
              f"{source.expected_frames if source.expected_frames is not None else '?'} frame(s) to process)")
        levers = [n for n, on in (("io binding", pipeline.hmr.io_binding), ("CUDA graph", pipeline.hmr.cuda_graph)) if on]
        what = (pipeline.hmr.describe() if mediapipe else
                f"{pipeline.hmr.path} ({pipeline.hmr.model_info['precision']}"
                f"{', ' + ', '.join(levers) if levers else ''}) on {pipeline.hmr.provider}")
        print(f"model: {what}; detector: {pipeline.detector.name} {det_desc} "
              f"(stride {stride}, confidence {args.det_confidence})")
        released = released_weights(model)
        if released:
            print(released)
        print(f"tracking: {crops}; smoothing: {smooth}"
              + (" (outputs are written after the whole video)" if smooth == "offline" else ""))
        meta = {"source": str(args.image or args.video or f"camera:{args.camera}"), "source_kind": source.kind,
                "image_size": list(source.size), "fps": source.output_fps, "source_fps": source.fps,
                "frame_skip": args.frame_skip,
                "model": str(model), "random_init": bool(args.random_init), "provider": pipeline.hmr.provider,
                "detector": pipeline.detector.name, "detector_variant": det_desc,
                "detector_stride": stride, "det_confidence": args.det_confidence,
                "keypoint_crops": bool(args.keypoint_crops), "smooth": smooth, "units": UNITS,
                "joint_order": JOINT_ORDER}
        outputs = open_outputs(args, meta, source, smooth, stop)
        body_fit = open_body_fit(args, mediapipe, smooth)   # the run-loop hook: one stage after tracking
        if body_fit is not None:
            outputs.refine = body_fit.finish if smooth == "offline" else None
            for sink in outputs.data_sinks:     # the .glb gets the skinned body even without --mhr-model
                if sink.kind == "gltf":
                    sink.options.setdefault("mhr_model", body_fit.model)
        if mediapipe and outputs.mesh is not None and body_fit is None:  # meshes asked for, nothing to draw
            print(f"[mhr] no meshes: the MediaPipe path predicts no MHR body-model parameters (--model "
                  f"{STARTER_MODEL_NAME} or the released network does)", file=sys.stderr)
        stream = open_stream(args, source)
        quiet = args.quiet or source.kind == "image"
        progress = Progress(source.expected_frames, source.kind, quiet=quiet)
        try:
            for frame in source:
                if photos:
                    tracking.reset()
                    if body_fit is not None:
                        body_fit.reset()
                result = tracking(frame.image, frame.index, frame.time_s)
                if body_fit is not None:
                    result = body_fit(result)
                outputs.add(frame, result)
                if stream is not None:
                    stream.write(frame, result)
                progress.update(result)
        except KeyboardInterrupt:
            interrupted = True
        progress.finish()
        if outputs.offline and outputs.frames:
            try:
                stop.arm()  # after a stop signal, a second one ends the drawing pass (the data files come first)
                outputs.finish()
                if outputs.image_sinks:
                    draw_offline(args, outputs, quiet)
            except KeyboardInterrupt:
                interrupted = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stop.disarm()  # from here on nothing interrupts the outputs being finished
        try:
            summary, written = outputs.close() if outputs is not None else ({}, {})
        finally:
            source.close()
            if stream is not None:
                stream.close()
    if args.random_init:
        print(RANDOM_BANNER, file=sys.stderr)
    frames = outputs.frames if outputs is not None else 0
    if figures is not None:
        figures.update(frames=frames, people=len(outputs.track_ids()) if outputs is not None else 0)
    if frames:
        requested = {kind: output_paths(args)[flag] for kind, flag in OUTPUT_FLAGS.items()}
        print_run(summary, time.monotonic() - t_start, outputs.track_ids(), requested, written, source)
    if stream is not None:
        print(stream.summary_line())
    if len(stop.received) > 1:
        print(f"{len(stop.received) - 1} more stop signal(s) ignored while the outputs were finished", file=sys.stderr)
    if interrupted:
        why = f"stopped by {stop.stopped_by}" if stop.received else "interrupted"
        print(f"{why} after {frames} frame(s); " + ("outputs keep them" if frames else
              "no output written (files already at the output paths are unchanged)"), file=sys.stderr)
        return stop.exit_code
    if frames and summary["frames_with_persons"] == 0:
        det = pipeline.detector
        hint = (f"the box file {det.path} has no box for these frames" if det.name == "boxes" else
                f"detector {det.name}, confidence > {args.det_confidence}; try a lower --det-confidence")
        print(f"no person found in {source.kind} {source.name} ({hint})", file=sys.stderr)
        return EXIT_NO_PERSONS
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smooth == "offline" and args.camera is not None:
        parser.error("--smooth offline needs the whole video before any output; use causal or none with --camera")
    if args.image == SAMPLE_IMAGE_NAME and not Path(SAMPLE_IMAGE_NAME).exists():
        args.image = str(sample_image())
        print(f"image: the bundled sample photo {args.image}")
    try:
        check_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    # Damaged video frames are counted and reported once at the end, not by libav for every broken packet.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    with StopSignals(ignore_after_stop=True) as stop:
        try:
            return run(args, stop)
        except (SourceError, ModelLoadError, ResultsWriteError, ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print(f"stopped by {stop.stopped_by}" if stop.received else "interrupted", file=sys.stderr)
            return stop.exit_code
