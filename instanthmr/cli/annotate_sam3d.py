"""Label people in an image folder or a video with SAM 3D Body, writing InstantHMR teacher shards.

Boxes come from our own detector (RF-DETR, an exported .onnx, or a .json box file), the camera is the one
the runtime assumes (focal = image diagonal unless --focal), and every finished input is recorded in the
shards, so an interrupted run picks up where it stopped. ``--shard i/N`` takes every N-th input starting at
i, for N processes or machines writing into the same folder. Ctrl-C, SIGTERM and SIGHUP stop it the same way
(finished inputs saved; exit 130 / 143 / 129). A video frame that fails to decode is skipped and the video is
read to its end. Exit 1 when any input or frame could not be read or gave a bad teacher output (the rest is
labelled and saved), 2 for bad arguments or a teacher/detector that cannot load.

Examples::

    python tools/annotate_sam3d.py --images data/coco/val2017 --out labels/sam3d_coco \\
        --checkpoint checkpoints/sam-3d-body-dinov3
    # 4 GPUs, one process each
    for i in 0 1 2 3; do CUDA_VISIBLE_DEVICES=$i python tools/annotate_sam3d.py --video clip.mp4 --every 2 \\
        --out labels/clip --checkpoint checkpoints/sam-3d-body-dinov3 --shard $i/4 & done; wait
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from instanthmr.video.sources import media_kind


def parse_part(text: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)`` with ``0 <= i < N``."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= i < N")
    return i, n


def list_inputs(images: Path | None, video: Path | None, every: int) -> list[tuple[str, int, Path]]:
    """All inputs as ``(key, frame_index, file)``; keys are stable across runs (resume and sharding)."""
    import cv2

    if images is not None:
        if not images.is_dir():
            raise FileNotFoundError(f"image folder not found: {images}")
        files = sorted(p for p in images.rglob("*") if media_kind(p) == "image")
        return [(str(p.relative_to(images)), i, p) for i, p in enumerate(files)]
    if not video.is_file():
        raise FileNotFoundError(f"video not found: {video}")
    cap = cv2.VideoCapture(str(video))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()
    if n <= 0:
        raise ValueError(f"{video}: not a readable video (no frames)")
    return [(f"{video.name}#{i:06d}", i, video) for i in range(0, n, max(1, every))]


def iter_frames(todo: list[tuple[str, int, Path]], video: bool, log=None):
    """``(key, frame_index, image_rgb or None)`` for the inputs to do, reading a video sequentially.

    A video frame that fails to decode is skipped and reading goes on to the container's end (see
    :func:`instanthmr.core.faults.readable_frames`; ``log``, a ``FrameLog``, collects what happened); wanted
    frames that were never decoded come last, with None."""
    import cv2

    from instanthmr.core.faults import FrameLog, readable_frames

    if not video:
        for key, idx, path in todo:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            yield key, idx, None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return
    if not todo:
        return
    cap = cv2.VideoCapture(str(todo[0][2]))
    wanted = {idx: key for key, idx, _ in todo}
    last = max(wanted)
    log = log if log is not None else FrameLog()
    try:
        for frame in readable_frames(cap.grab, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), log=log):
            if frame in wanted:
                ok, img = cap.retrieve()
                yield wanted.pop(frame), frame, cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if ok else None
            if frame >= last:
                break
    finally:
        cap.release()
    for frame, key in sorted(wanted.items()):  # damaged, or past where the file could be read
        yield key, frame, None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", type=Path, help="folder of images (searched recursively)")
    src.add_argument("--video", type=Path, help="a video file")
    p.add_argument("--out", type=Path, required=True, help="shard folder (created; resumed when it exists)")
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="SAM 3D Body checkpoint file or downloaded model folder")
    p.add_argument("--mhr-path", type=Path, default=None, help="MHR model asset (default: found next to it)")
    p.add_argument("--detector", default="rfdetr", help="rfdetr | path/to/detector.onnx | path/to/boxes.json")
    p.add_argument("--det-conf", type=float, default=0.5)
    p.add_argument("--max-persons", type=int, default=8)
    p.add_argument("--min-box", type=float, default=32.0, help="skip boxes smaller than this (pixels)")
    p.add_argument("--every", type=int, default=1, help="video: label every k-th frame")
    p.add_argument("--shard", type=parse_part, default=(0, 1), metavar="i/N", help="this process's part")
    p.add_argument("--focal", type=float, default=None, help="focal length in pixels (default: diagonal)")
    p.add_argument("--no-embed", action="store_true",
                   help="images only: store the image path instead of an embedded context crop")
    p.add_argument("--shard-size", type=int, default=512)
    p.add_argument("--device", default=None, help="teacher device (default: cuda when available)")
    args = p.parse_args(argv)
    if args.no_embed and args.video:
        p.error("--no-embed needs --images (video frames have no file to point to)")
    if min(args.every, args.shard_size, args.max_persons) < 1:
        p.error("--every, --shard-size and --max-persons must be >= 1")
    if not (0.0 <= args.det_conf <= 1.0 and args.min_box >= 0 and (args.focal is None or args.focal > 0)):
        p.error("--det-conf must be within [0, 1], --min-box >= 0 and --focal > 0")

    from instanthmr.core.faults import quiet_video_decoder
    from instanthmr.core.geometry import default_focal
    from instanthmr.teachers.sam3d import (
        TEACHER_NAME,
        SAM3DBodyTeacher,
        TeacherOutputError,
        TeacherUnavailableError,
        sam3d_output_to_instance,
    )
    from instanthmr.training.data.shards import (
        ShardFormatError,
        ShardWriter,
        encode_context_crop,
    )

    quiet_video_decoder()  # damaged frames: one line per video below instead of FFmpeg's dozens per frame
    part, nparts = args.shard
    try:
        inputs = list_inputs(args.images, args.video, args.every)
        mine = inputs[part::nparts]
        writer = ShardWriter(args.out, teacher=TEACHER_NAME, shard_size=args.shard_size,
                             prefix=f"{TEACHER_NAME}-part{part:03d}of{nparts:03d}-")
    except (FileNotFoundError, ValueError, ShardFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    todo = [t for t in mine if not writer.is_done(t[0])]
    print(f"{len(inputs)} inputs, {len(mine)} in part {part}/{nparts}, {len(mine) - len(todo)} already done",
          file=sys.stderr)
    if not todo:
        return 0
    from instanthmr.core.errors import first_line
    from instanthmr.runtime.detector import create_detector
    from instanthmr.runtime.session import ModelLoadError

    try:  # (imported above: the except clauses below name ModelLoadError whatever fails first)
        teacher = SAM3DBodyTeacher(args.checkpoint, args.mhr_path, args.device)
        detector = create_detector(args.detector, confidence=args.det_conf, max_persons=args.max_persons)
    except TeacherUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ModelLoadError, ValueError, RuntimeError) as e:
        print(f"error: detector: {first_line(e, None)}", file=sys.stderr)
        return 2
    writer.teacher_version = teacher.version

    from tqdm import tqdm

    from instanthmr.core.faults import (
        FrameLog,
        interrupt_exit_code,
        stop_reason,
        stop_signals,
    )

    skipped = people = 0
    root = args.images
    log = FrameLog()
    try:
        with writer, stop_signals():  # SIGTERM / SIGHUP like Ctrl-C: the writer keeps every finished input
            for key, idx, img in tqdm(iter_frames(todo, args.video is not None, log), total=len(todo), unit="img"):
                if img is None:
                    skipped += 1
                    if args.video is None:  # a video's damaged frames get one line below
                        print(f"warning: cannot read {key}; skipped", file=sys.stderr)
                    continue
                h, w = img.shape[:2]
                focal = args.focal or default_focal((w, h))
                det = detector(img, frame_index=idx)
                boxes = np.asarray(det.boxes, np.float64).reshape(-1, 4)
                sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) if len(boxes) else boxes[:, 0]
                boxes = boxes[sizes >= args.min_box]
                try:
                    outs = teacher(img, boxes, focal) if len(boxes) else []
                    if len(outs) != len(boxes):
                        raise TeacherOutputError(f"{len(boxes)} boxes in, {len(outs)} people out")
                    insts = [sam3d_output_to_instance(o, (w, h), box=b, focal=focal, source=key,
                                                      image_path=str(root / key) if args.no_embed else "")
                             for o, b in zip(outs, boxes)]
                except TeacherOutputError as e:
                    skipped += 1
                    print(f"warning: {key}: bad teacher output ({e}); skipped", file=sys.stderr)
                    continue
                for inst, b in zip(insts, boxes):
                    if not args.no_embed:
                        inst["image_jpeg"], inst["context_box"] = encode_context_crop(img, b)
                    writer.add(inst)
                writer.mark_done(key)
                people += len(insts)
    except KeyboardInterrupt as e:  # the writer kept every finished input; a rerun continues from there
        print(f"{stop_reason(e)}: finished inputs are saved in {args.out}; run the same command to continue",
              file=sys.stderr)
        return interrupt_exit_code(e)
    note = log.message(str(args.video)) if args.video is not None else None
    if note:
        print(f"warning: {note}", file=sys.stderr)
    print(f"labelled {len(todo) - skipped} inputs ({people} people) into {args.out}; skipped {skipped}",
          file=sys.stderr)
    return 0 if skipped == 0 and not note else 1
