#!/usr/bin/env python3
"""Label images and videos with the offline MediaPipe teacher into the standard shard format.

    python tools/annotate_mediapipe.py PHOTOS_DIR clip.mp4 --out runs/labels/mediapipe
    python tools/annotate_mediapipe.py clip.mp4 --out labels --every 2 --shard 0/4   # part 0 of 4

Each input (an image, or one video frame: ``clip.mp4#000123``) is one resumable unit: a re-run skips what
the shards already hold, a killed run loses at most the inputs since the last shard. ``--shard i/N`` takes
every N-th input so N processes can share a job (each writes its own files into the same folder).
Ctrl-C, SIGTERM and SIGHUP stop it the same way: finished inputs are in the shards, a re-run resumes (exit
130 / 143 / 129). A video frame that fails to decode is skipped and counted, and the video is read to its
end (it is given up only after 50 undecodable frames in a row, with a message). Exit 1 when any input,
frame or video could not be read (the rest is labelled and saved), 2 for bad arguments.
Per person it writes MHR70 2D/3D joints with masks, ``cam_trans``, COCO-WholeBody 2D and an embedded JPEG
context crop (so video frames need no image files later). Runs in the main environment (numpy, OpenCV,
``ai-edge-litert``); the models come from ``python tools/fetch_models.py mediapipe``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from instanthmr.training.annotate_mediapipe import AnnotateWorker, annotate, expand_inputs, task_skip


def parse_shard(spec: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in spec.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like i/N (e.g. 0/4), got {spec!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"--shard {spec}: need 0 <= i < N")
    return i, n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", type=Path, help="images, videos, or folders of them")
    ap.add_argument("--out", type=Path, required=True, help="shard folder (created; resumed when it exists)")
    ap.add_argument("--every", type=int, default=1, help="label every k-th video frame (default 1)")
    ap.add_argument("--max-frames", type=int, default=None, help="at most this many labelled frames per video")
    ap.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/N", help="do part i of N")
    ap.add_argument("--no-hands", action="store_true", help="skip the hand model (hands stay unlabelled)")
    ap.add_argument("--fast", action="store_true", help="whole-image detection only (one prominent person)")
    ap.add_argument("--no-embed", action="store_true",
                    help="for image files, store the path instead of an embedded context crop")
    ap.add_argument("--shard-size", type=int, default=256, help="people per shard file")
    ap.add_argument("--models-dir", type=Path, default=None, help="folder of the MediaPipe .tflite files")
    ap.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                    help="run on Ray (a local Ray without ADDRESS; 'auto' or ray://HOST:10001 for a cluster whose "
                         "workers see --out): one teacher per worker, one video or --images-per-task photos per "
                         "task, each task into its own shard folder OUT/tasks/<id>; a dead worker's task is resumed "
                         "elsewhere from its shards (docs/scaling.md)")
    ap.add_argument("--workers", type=int, default=None, metavar="N",
                    help="the same job on N local processes (default with --ray: what the cluster fits)")
    ap.add_argument("--images-per-task", type=int, default=256, metavar="N", help="photos per --ray/--workers task")
    ap.add_argument("--retry-failed", action="store_true", help="--ray/--workers: retry tasks that failed before")
    args = ap.parse_args(argv)
    if args.every < 1:
        ap.error("--every must be >= 1")
    if args.max_frames is not None and args.max_frames < 1:
        ap.error("--max-frames must be >= 1")
    if args.shard_size < 1:
        ap.error("--shard-size must be >= 1")
    if (args.ray is not None or args.workers) and args.shard != (0, 1):
        ap.error("--shard splits a job by hand; --ray / --workers split it themselves: give one or the other")
    if args.ray is not None or args.workers:
        return _engine_main(args)

    from instanthmr.core.faults import (
        interrupt_exit_code,
        quiet_video_decoder,
        stop_reason,
        stop_signals,
    )
    from instanthmr.runtime.mediapipe import MediaPipeModelError
    from instanthmr.training.data.shards import ShardFormatError

    quiet_video_decoder()  # damaged frames: our one line per video instead of FFmpeg's dozens per frame
    t0 = time.time()
    try:
        with stop_signals():  # SIGTERM / SIGHUP like Ctrl-C: the shard writer keeps every finished input
            counts = annotate(args.inputs, args.out, args.every, args.max_frames, args.shard,
                              hands=not args.no_hands, tiles=not args.fast, embed=not args.no_embed,
                              shard_size=args.shard_size, models_dir=args.models_dir)
    except (FileNotFoundError, ValueError, MediaPipeModelError, ShardFormatError) as e:
        print(f"[annotate_mediapipe] error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"[annotate_mediapipe] {stop_reason(e)}: finished inputs are saved in {args.out}; run the same "
              "command to resume", file=sys.stderr)
        return interrupt_exit_code(e)
    print(f"[annotate_mediapipe] part {args.shard[0]}/{args.shard[1]}: {counts.inputs} inputs, {counts.line()} "
          f"in {time.time() - t0:.0f} s -> {args.out}")
    if counts.unreadable_names:
        print(f"[annotate_mediapipe] unreadable: {', '.join(counts.unreadable_names[:10])}"
              + (" ..." if len(counts.unreadable_names) > 10 else ""), file=sys.stderr)
    return 1 if counts.faults else 0


def _engine_main(args) -> int:
    """``--ray`` / ``--workers``: the job on the batch engine (instanthmr.training.shard_job)."""
    from instanthmr.cli.common import looks_like_address
    from instanthmr.runner.engines import BatchError, EngineConfig, WorkerLoadError
    from instanthmr.training.shard_job import shard_job

    if args.ray is not None and not looks_like_address(args.ray):  # `--ray clips/`: an input, not an address
        args.inputs.append(Path(args.ray))
        args.ray = "local"
    try:
        items = expand_inputs(args.inputs)
        options = {"every": args.every, "max_frames": args.max_frames, "hands": not args.no_hands,
                   "tiles": not args.fast, "embed": not args.no_embed, "shard_size": args.shard_size,
                   "models_dir": args.models_dir, "threads": 1}
        engine = EngineConfig(workers=args.workers, ray=args.ray is not None,
                              address=None if args.ray in (None, "local") else args.ray)
        res = shard_job(items, args.out, AnnotateWorker, options, task_skip, label="annotate_mediapipe",
                        engine=engine, images_per_task=args.images_per_task, retry_failed=args.retry_failed)
    except WorkerLoadError as e:
        print(f"[annotate_mediapipe] error: {e}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, BatchError) as e:
        print(f"[annotate_mediapipe] error: {e}", file=sys.stderr)
        return 2
    if res.interrupted:
        print(f"[annotate_mediapipe] stopped: finished inputs are saved in the shards in {args.out}; run the same "
              "command to resume", file=sys.stderr)
        return res.exit_code or 130
    return 1 if res.failed else 0
