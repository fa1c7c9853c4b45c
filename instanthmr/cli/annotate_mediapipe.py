#!/usr/bin/env python3
"""Label images and videos with the offline MediaPipe teacher into the standard shard format.

    python tools/annotate_mediapipe.py PHOTOS_DIR clip.mp4 --out runs/labels/mediapipe
    python tools/annotate_mediapipe.py clip.mp4 --out labels --every 2 --shard 0/4   # part 0 of 4

Each input (an image, or one video frame: ``clip.mp4#000123``) is one resumable unit: a re-run skips what
the shards already hold, a killed run loses at most the inputs since the last shard. ``--shard i/N`` takes
every N-th input so N processes can share a job (each writes its own files into the same folder).
Per person it writes MHR70 2D/3D joints with masks, ``cam_trans``, COCO-WholeBody 2D and an embedded JPEG
context crop (so video frames need no image files later). Runs in the main environment (numpy, OpenCV,
``ai-edge-litert``); the models come from ``python tools/fetch_models.py mediapipe``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


@dataclass
class Counts:
    inputs: int = 0  # units this part owns
    done_before: int = 0  # already in the shards (resume)
    labelled: int = 0  # processed now
    no_person: int = 0
    unreadable: int = 0
    instances: int = 0
    unreadable_names: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.labelled} inputs labelled ({self.instances} people), {self.done_before} already done, "
                f"{self.no_person} with nobody, {self.unreadable} unreadable")


def parse_shard(spec: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in spec.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like i/N (e.g. 0/4), got {spec!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"--shard {spec}: need 0 <= i < N")
    return i, n


def expand_inputs(paths: list[Path]) -> list[tuple[str, Path]]:
    """``(kind, path)`` for each image/video, folders expanded (sorted, recursive); raises on a missing
    path or a file of unknown type."""
    out = []
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"input not found: {p}")
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            ext = f.suffix.lower()
            if ext in IMAGE_EXTS:
                out.append(("image", f))
            elif ext in VIDEO_EXTS:
                out.append(("video", f))
            elif not p.is_dir():
                raise ValueError(f"{f}: not an image or video file (extensions: "
                                 f"{sorted(IMAGE_EXTS | VIDEO_EXTS)})")
    return out


def iter_units(inputs, every: int, max_frames: int | None, part: int, parts: int, counts: Counts):
    """Yield ``(key, image_path, loader)`` for this part's units; ``loader()`` returns RGB or None."""
    import cv2

    unit = 0
    for kind, path in inputs:
        if kind == "image":
            mine = unit % parts == part
            unit += 1
            if mine:
                yield f"{path.parent.name}/{path.name}", str(path.resolve()), \
                    (lambda p=path: _read_image(p))
            continue
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            counts.unreadable += 1
            counts.unreadable_names.append(str(path))
            continue
        frame, taken = 0, 0
        try:
            while max_frames is None or taken < max_frames:
                use = frame % every == 0
                mine = use and unit % parts == part
                ok = cap.grab()
                if not ok:
                    break
                if use:
                    unit += 1
                    taken += 1
                if mine:
                    ok, bgr = cap.retrieve()
                    img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok and bgr is not None else None
                    yield f"{path.name}#{frame:06d}", "", (lambda im=img: im)
                frame += 1
        finally:
            cap.release()


def _read_image(path: Path):
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def annotate(inputs: list[Path], out: Path, every: int = 1, max_frames: int | None = None,
             shard: tuple[int, int] = (0, 1), hands: bool = True, tiles: bool = True, embed: bool = True,
             shard_size: int = 256, models_dir: Path | None = None, log_every: float = 10.0,
             teacher=None) -> Counts:
    """Label ``inputs`` into ``out`` (see the module docstring); returns the counts."""
    from instanthmr.teachers.mediapipe import TEACHER_NAME, TEACHER_VERSION, MediaPipeTeacher
    from instanthmr.training.data.shards import ShardWriter, encode_context_crop

    part, parts = shard
    items = expand_inputs(inputs)
    teacher = teacher or MediaPipeTeacher(models_dir, hands=hands, tiles=tiles)
    prefix = f"{TEACHER_NAME}-" if parts == 1 else f"{TEACHER_NAME}-part{part:02d}of{parts:02d}-"
    counts = Counts()
    t0 = last = time.time()
    with ShardWriter(out, teacher=TEACHER_NAME, teacher_version=TEACHER_VERSION, shard_size=shard_size,
                     prefix=prefix, extra_header={"hands": hands, "tiles": tiles}) as writer:
        for key, image_path, load in iter_units(items, every, max_frames, part, parts, counts):
            counts.inputs += 1
            if writer.is_done(key):
                counts.done_before += 1
                continue
            img = load()
            if img is None:
                counts.unreadable += 1
                counts.unreadable_names.append(key)
                continue
            labels = teacher(img)
            for lab in labels:
                inst = lab.instance(source=key, image_path=image_path)
                if embed or not image_path:
                    inst["image_jpeg"], inst["context_box"] = encode_context_crop(img, lab.box)
                writer.add(inst)
            writer.mark_done(key)
            counts.labelled += 1
            counts.instances += len(labels)
            counts.no_person += not labels
            if time.time() - last > log_every:
                last = time.time()
                rate = counts.labelled / max(last - t0, 1e-9)
                print(f"[annotate_mediapipe] {counts.inputs} inputs seen, {counts.line()} ({rate:.2f} inputs/s)",
                      flush=True)
    return counts


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
    args = ap.parse_args(argv)
    if args.every < 1:
        ap.error("--every must be >= 1")

    from instanthmr.runtime.mediapipe import MediaPipeModelError

    t0 = time.time()
    try:
        counts = annotate(args.inputs, args.out, args.every, args.max_frames, args.shard, hands=not args.no_hands,
                          tiles=not args.fast, embed=not args.no_embed, shard_size=args.shard_size,
                          models_dir=args.models_dir)
    except (FileNotFoundError, ValueError, MediaPipeModelError) as e:
        print(f"[annotate_mediapipe] error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("[annotate_mediapipe] interrupted: finished inputs are saved; re-run to resume", file=sys.stderr)
        return 130
    print(f"[annotate_mediapipe] part {args.shard[0]}/{args.shard[1]}: {counts.inputs} inputs, {counts.line()} "
          f"in {time.time() - t0:.0f} s -> {args.out}")
    if counts.unreadable_names:
        print(f"[annotate_mediapipe] unreadable: {', '.join(counts.unreadable_names[:10])}"
              + (" ..." if len(counts.unreadable_names) > 10 else ""))
    return 0
