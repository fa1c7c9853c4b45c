"""Label images and videos with the offline MediaPipe teacher into the standard shard format
(``tools/annotate_mediapipe.py``): each input (an image, or one video frame ``clip.mp4#000123``) is one
resumable unit; per person MHR70 2D (pixels) / 3D (metres) joints with masks, ``cam_trans`` (metres), COCO-WholeBody
2D and an embedded JPEG context crop. :class:`AnnotateWorker` runs it on the batch engines
(``instanthmr.training.shard_job``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from instanthmr.video.sources import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, media_kind


@dataclass
class Counts:
    inputs: int = 0  # units this part owns
    done_before: int = 0  # already in the shards (resume)
    labelled: int = 0  # processed now
    no_person: int = 0
    unreadable: int = 0
    instances: int = 0
    damaged_frames: int = 0  # video frames that failed to decode (skipped; not units of any part)
    unreadable_names: list[str] = field(default_factory=list)
    video_notes: list[str] = field(default_factory=list)  # one line per damaged or cut-short video

    def line(self) -> str:
        damaged = f", {self.damaged_frames} damaged video frames skipped" if self.damaged_frames else ""
        return (f"{self.labelled} inputs labelled ({self.instances} people), {self.done_before} already done, "
                f"{self.no_person} with nobody, {self.unreadable} unreadable{damaged}")

    @property
    def faults(self) -> bool:
        """Something could not be read: the tool exits 1 (what could be read is labelled and saved)."""
        return bool(self.unreadable or self.damaged_frames or self.video_notes)


def expand_inputs(paths: list[Path]) -> list[tuple[str, Path]]:
    """``(kind, path)`` for each image/video, folders expanded (sorted, recursive); raises on a missing
    path or a file of unknown type."""
    out = []
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"input not found: {p}")
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            kind = media_kind(f)
            if kind is not None:
                out.append((kind, f))
            elif not p.is_dir():
                raise ValueError(f"{f}: not an image or video file (extensions: "
                                 f"{sorted(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)})")
    return out


def iter_units(inputs, every: int, max_frames: int | None, part: int, parts: int, counts: Counts):
    """Yield ``(key, image_path, loader)`` for this part's units; ``loader()`` returns RGB or None.

    Video frames are keyed by their position in the container; a frame that fails to decode is skipped
    (counted in ``counts.damaged_frames``; every part reads the same file the same way, so the split into
    parts stays exact) and reading goes on to the container's end."""
    import cv2

    from instanthmr.core.faults import FrameLog, readable_frames

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
        taken, log = 0, FrameLog()
        try:
            for frame in readable_frames(cap.grab, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), log=log):
                if max_frames is not None and taken >= max_frames:
                    break
                if frame % every:
                    continue
                mine = unit % parts == part
                unit += 1
                taken += 1
                if mine:
                    ok, bgr = cap.retrieve()
                    img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok and bgr is not None else None
                    yield f"{path.name}#{frame:06d}", "", (lambda im=img: im)
        finally:
            cap.release()
        counts.damaged_frames += log.unreadable
        note = log.message(str(path))
        if note:
            counts.video_notes.append(note)
            print(f"[annotate_mediapipe] warning: {note}", file=sys.stderr, flush=True)


def _read_image(path: Path):
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def annotate(inputs: list[Path], out: Path, every: int = 1, max_frames: int | None = None,
             shard: tuple[int, int] = (0, 1), hands: bool = True, tiles: bool = True, embed: bool = True,
             shard_size: int = 256, models_dir: Path | None = None, log_every: float = 10.0,
             teacher=None, skip: frozenset[str] = frozenset()) -> Counts:
    """Label ``inputs`` into ``out`` (see the module docstring); returns the counts. ``skip``: units already
    labelled elsewhere (another shard folder), counted as done before."""
    from instanthmr.teachers.mediapipe import (
        TEACHER_NAME,
        TEACHER_VERSION,
        MediaPipeTeacher,
    )
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
            if writer.is_done(key) or key in skip:
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


class AnnotateWorker:
    """A worker of the batch engine (instanthmr.runner.engines, ``--ray`` / ``--workers``): the teacher loaded once,
    then one task (a video, or a group of photos) labelled into the task's own shard folder."""

    def __init__(self, options: dict):
        self.options, self.teacher = options, None

    def load(self) -> dict:
        import os
        import socket

        from instanthmr.core.faults import quiet_video_decoder
        from instanthmr.teachers.mediapipe import MediaPipeTeacher

        quiet_video_decoder()
        o = self.options
        self.teacher = MediaPipeTeacher(o["models_dir"], hands=o["hands"], tiles=o["tiles"],
                                        num_threads=o.get("threads"))
        return {"pid": os.getpid(), "host": socket.gethostname()}

    def run(self, task: dict) -> dict:
        o, t0 = self.options, time.time()
        counts = annotate([Path(p) for p in task["paths"]], Path(o["out"]) / task["folder"], o["every"],
                          o["max_frames"], hands=o["hands"], tiles=o["tiles"], embed=o["embed"],
                          shard_size=o["shard_size"], log_every=float("inf"), teacher=self.teacher,
                          skip=frozenset(task["skip"]))
        figures = {"frames": counts.labelled, "people": counts.instances, "done_before": counts.done_before,
                   "seconds": round(time.time() - t0, 3)}
        if counts.unreadable and not counts.labelled:
            return {"state": "failed", "reason": f"unreadable: {', '.join(counts.unreadable_names[:3])}", **figures}
        return {"state": "done", **figures, **({"notes": counts.video_notes} if counts.video_notes else {})}


def task_skip(task: dict, done: set[str]) -> list[str]:
    """The units of a batch task (see :func:`iter_units` for the keys) already labelled somewhere in the
    shard folder."""
    if task["kind"] == "video":
        head = Path(task["paths"][0]).name + "#"
        return [k for k in done if k.startswith(head)]
    return [k for k in (f"{Path(p).parent.name}/{Path(p).name}" for p in task["paths"]) if k in done]
