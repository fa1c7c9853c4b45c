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
from instanthmr.cli.run_flags import (
    add_camera_flags,
    add_mesh_flags,
    add_model_flags,
    add_rig_flag,
    add_speed_flags,
    add_tracking_flags,
    run_config,
)
from instanthmr.core.paths import SAMPLE_IMAGE_NAME, sample_image
from instanthmr.outputs.atomic import ResultsWriteError
from instanthmr.outputs.signals import StopSignals
from instanthmr.runner.loop import EXIT_ERROR, EXIT_USAGE, run
from instanthmr.runtime.session import ModelLoadError
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

    add_model_flags(p)
    add_speed_flags(p)
    add_tracking_flags(p)
    add_camera_flags(p)
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
    add_rig_flag(o)
    o.add_argument("--stream", default=None, metavar="vmc[:HOST:PORT]",
                   help="send one person's bone rotations and root position live over the VMC protocol (OSC/UDP; "
                        "VSeeFace-style receivers, Blender/Unity VMC plug-ins) to HOST:PORT (default "
                        "127.0.0.1:39539); frames the receiver cannot take are dropped, never waited for")
    o.add_argument("--out-video", default=None, metavar="PATH",
                   help="write the frames with skeletons, boxes and track IDs drawn (.mp4/.avi; source fps / "
                        "--frame-skip)")
    o.add_argument("--quiet", action="store_true", help="no progress lines")

    add_mesh_flags(p)
    return p


def config_from_flags(args):
    """The run the flags ask for."""
    return run_config(args, image=args.image, video=args.video, camera=args.camera, save_json=args.save_json,
                      save_csv=args.save_csv, save_npz=args.save_npz, save_bvh=args.save_bvh,
                      save_gltf=args.save_gltf, out_video=args.out_video, save_rrd=args.save_rrd,
                      viewer=not args.no_spawn, stream=args.stream, quiet=args.quiet)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.image == SAMPLE_IMAGE_NAME and not Path(SAMPLE_IMAGE_NAME).exists():
        args.image = str(sample_image())
        print(f"image: the bundled sample photo {args.image}")
    try:
        config = config_from_flags(args)
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
