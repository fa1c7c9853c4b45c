"""Frame sources (image, folder of images, video file, camera), with one-line errors.

Every source is an iterable of :class:`Frame` (RGB uint8, source frame index, timestamp in seconds) with
``fps``, ``total`` (frame count, ``None`` for a camera) and ``size`` ``(W, H)``. Anything that cannot be
opened raises :class:`SourceError` naming the path or the camera index. Damage met later is skipped and
counted, never silently fatal: a bad file inside a folder of images is named in ``skipped`` and the other
photos still run; a video frame that does not decode is skipped (``damaged`` counts them) and decoding goes
on to the container's end, unless ``core.faults.MAX_CONSECUTIVE_FAILURES`` fail in a row (a file cut
short), which ends the source with the reason in ``stopped_early``. (The overlay video writer is an output:
:mod:`instanthmr.outputs.video`.)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Iterator

import numpy as np

from instanthmr.core.faults import MAX_CONSECUTIVE_FAILURES, FrameLog

#: The media kinds by file extension (lower case): every photo and video reader in the package uses these.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def media_kind(path: str | Path) -> str | None:
    """``"image"``, ``"video"`` or None, from the file extension alone (no file access)."""
    ext = Path(path).suffix.lower()
    return "image" if ext in IMAGE_EXTENSIONS else "video" if ext in VIDEO_EXTENSIONS else None


#: A camera ends after this many failed reads in a row (a video after ``MAX_CONSECUTIVE_FAILURES`` frames
#: in a row that fail to decode before its announced end).
MAX_BAD_CAMERA_READS = 10
# File signatures: a file that starts like an image/video but does not decode is damaged, not foreign.
_IMAGE_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG": "PNG", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
                b"GIF8": "GIF"}


class SourceError(RuntimeError):
    """An input (image, video, camera) that cannot be opened or read."""


@contextlib.contextmanager
def _quiet_opencv():
    """OpenCV's own warnings off (our error says it once, in one line)."""
    import cv2

    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def _image_kind(data: np.ndarray) -> str | None:
    head = data[:12].tobytes()
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _IMAGE_MAGIC.items() if head.startswith(magic)), None)


def _looks_like_video(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp" or head[:4] in (b"RIFF", b"\x1aE\xdf\xa3")  # MP4/MOV, AVI, MKV/WebM


@dataclass
class Frame:
    """One decoded frame: ``image`` (H, W, 3) uint8 RGB; ``index``: frame number in the source (counting
    skipped frames); ``time_s``: seconds from the start of the source (``index / fps``; wall-clock seconds
    since opening for a camera)."""

    image: np.ndarray
    index: int
    time_s: float
    name: str = ""  # the file name, for the photos of a folder


class FrameSource:
    """Base of the sources. ``frame_skip = k`` yields frames 0, k, 2k, ... (the others are decoded-and-dropped
    or grabbed, never returned); ``max_frames`` caps the number yielded."""

    kind = "source"

    def __init__(self, frame_skip: int = 1, max_frames: int | None = None):
        if frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1, got {frame_skip}")
        self.frame_skip = int(frame_skip)
        self.max_frames = max_frames
        self.fps: float = 30.0
        self.total: int | None = None
        self.size: tuple[int, int] = (0, 0)
        self.name = ""

    @property
    def expected_frames(self) -> int | None:
        """How many frames iteration will yield, when known."""
        if self.total is None:
            return self.max_frames
        n = -(-self.total // self.frame_skip)
        return n if self.max_frames is None else min(n, self.max_frames)

    @property
    def output_fps(self) -> float:
        """Frame rate of the yielded frames (source fps / frame_skip)."""
        return self.fps / self.frame_skip

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_image_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB (grey and alpha images converted)."""
    import cv2

    p = Path(path)
    if not p.exists():
        raise SourceError(f"image not found: {p}")
    if not p.is_file():
        raise SourceError(f"not a file: {p}")
    data = np.fromfile(str(p), dtype=np.uint8)  # fromfile + imdecode also handles non-ASCII paths
    if not data.size:
        raise SourceError(f"cannot decode image {p}: the file is empty")
    with _quiet_opencv():
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        kind = _image_kind(data)
        if kind:
            raise SourceError(f"cannot decode image {p}: the {kind} file is damaged or truncated")
        raise SourceError(f"cannot decode image {p}: not an image format OpenCV can read")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class DecodedFrames(FrameSource):
    """Frames decoded beforehand (each (H, W, 3) uint8 RGB, one size) as a video source: frame ``i`` at ``i /
    fps`` seconds. The timing tools feed the run loop from it so that decoding is left out of their times
    (``teachers.mediapipe_pose.FrameFeed``, ``cli.frame_breakdown``)."""

    kind = "video"

    def __init__(self, frames: list[np.ndarray], fps: float = 30.0, name: str = "frames"):
        super().__init__()
        if not len(frames):
            raise SourceError(f"{name}: no frames (decode at least one before running on them)")
        self.frames, self.fps, self.name = frames, float(fps), name
        h, w = frames[0].shape[:2]
        self.size, self.total = (w, h), len(frames)

    def __iter__(self) -> Iterator[Frame]:
        for i, image in enumerate(self.frames):
            yield Frame(image, i, i / self.fps)


class ImageSource(FrameSource):
    """A single photo, yielded once as frame 0."""

    kind = "image"

    def __init__(self, path: str | Path, max_frames: int | None = None):
        super().__init__(1, max_frames)
        self.path = Path(path)
        self.name = self.path.name
        self.image = read_image_rgb(self.path)
        self.size = (self.image.shape[1], self.image.shape[0])
        self.total = 1
        self.fps = 1.0

    def __iter__(self) -> Iterator[Frame]:
        if self.max_frames is None or self.max_frames > 0:
            yield Frame(self.image, 0, 0.0)


class ImageFolderSource(FrameSource):
    """Every photo directly inside a folder (:data:`IMAGE_EXTENSIONS`, sorted by name), one frame each:
    ``index`` = the file's position in that list, ``name`` = its file name. The photos are unrelated
    (``kind = "images"``): callers must not carry boxes or tracks from one to the next. A file that cannot be
    decoded is skipped (a stderr line; its name is appended to ``skipped``); ``size`` is the first readable
    photo's."""

    kind = "images"

    def __init__(self, folder: str | Path, frame_skip: int = 1, max_frames: int | None = None):
        super().__init__(frame_skip, max_frames)
        self.path = Path(folder)
        self.name = self.path.name or str(self.path)
        self.files = sorted((f for f in self.path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS),
                            key=lambda f: f.name)
        if not self.files:
            raise SourceError(f"no images in folder {self.path} (looked for {', '.join(IMAGE_EXTENSIONS)})")
        self.total = len(self.files)
        self.fps = 1.0
        self.skipped: list[str] = []
        self._first = None
        for i, f in enumerate(self.files):  # the first readable photo gives the size (and proves the folder)
            try:
                self._first = (i, read_image_rgb(f))
                break
            except SourceError as e:
                self._skip(f, e)
        if self._first is None:
            raise SourceError(f"no readable image in folder {self.path} ({len(self.skipped)} file(s) failed to decode)")
        self.size = (self._first[1].shape[1], self._first[1].shape[0])

    def _skip(self, f: Path, err: Exception) -> None:
        import sys

        self.skipped.append(f.name)
        print(f"skipped {f.name}: {err}", file=sys.stderr)

    def __iter__(self) -> Iterator[Frame]:
        yielded = 0
        for i in range(0, len(self.files), self.frame_skip):
            if self.max_frames is not None and yielded >= self.max_frames:
                return
            if i < self._first[0]:
                continue  # already skipped (undecodable) while opening
            if i == self._first[0]:
                image = self._first[1]
            else:
                try:
                    image = read_image_rgb(self.files[i])
                except SourceError as e:
                    self._skip(self.files[i], e)
                    continue
            yielded += 1
            yield Frame(image, i, float(i), self.files[i].name)


class _CaptureSource(FrameSource):
    """A cv2.VideoCapture, decoded in one pass by :meth:`_decode`. ``log`` (a ``core.faults.FrameLog``)
    counts the frames that failed to decode and were skipped (``damaged``) and where decoding gave up
    (``stopped_early``: the reason, None when it did not)."""

    max_bad = MAX_CONSECUTIVE_FAILURES

    def __init__(self, frame_skip: int = 1, max_frames: int | None = None):
        super().__init__(frame_skip, max_frames)
        self.cap = None
        self.log = FrameLog(consecutive_limit=self.max_bad)
        self._decoder: Iterator[tuple[int, np.ndarray]] | None = None
        self._first = None  # decoded at open time to prove the source works; yielded first

    @property
    def damaged(self) -> int:
        """Frames that failed to decode and were skipped (decoding went on after them)."""
        return self.log.unreadable

    @property
    def stopped_early(self) -> str | None:
        return self.log.message(self.name) if self.log.stopped_at is not None else None

    def _open_first(self) -> bool:
        """Start decoding and keep the first frame; False when there is none."""
        self._decoder = self._decode()
        self._first = next(self._decoder, None)
        return self._first is not None

    def _ended(self, index: int) -> bool:
        """A failed grab after frame ``index``: the normal end?"""
        return False

    def _index_after(self, index: int, lost: int) -> int:
        """Source index of a frame just grabbed after ``index``, ``lost`` failed grabs later."""
        return index + 1 + lost

    def _decode(self) -> Iterator[tuple[int, np.ndarray]]:
        """(source index, BGR frame) of the kept frames; frames dropped by ``frame_skip`` are grabbed without
        decoding. A frame that fails is skipped and counted; :attr:`max_bad` failures in a row end it."""
        index, bad, lost = -1, 0, 0  # bad: failures in a row; lost: failed grabs since the last good one
        while True:
            if self.cap.grab():
                index, lost = self._index_after(index, lost), 0
                if index % self.frame_skip:
                    bad = 0
                    continue
                ok, bgr = self.cap.retrieve()
                ok = ok and bgr is not None
            elif self._ended(index):
                return
            else:
                ok, lost = False, lost + 1
            if not ok:
                bad += 1
                self.log.unreadable += 1
                if bad >= self.max_bad:
                    self.log.unreadable -= bad  # not skipped over: the source ends here
                    self.log.stopped_at = index + 1
                    return
                continue
            bad = 0
            yield index, bgr

    def _frames(self) -> Iterator[tuple[int, np.ndarray]]:
        if self.cap is None or self._decoder is None:
            raise SourceError(f"{self.kind} {self.name} is closed")
        first, self._first = self._first, None
        return chain([first], self._decoder) if first is not None else self._decoder

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class VideoSource(_CaptureSource):
    """A video file decoded by OpenCV. ``fps`` falls back to 30 when the container does not say. A frame
    that fails to decode before the container's announced end is skipped (``damaged``); the index of the
    next good frame comes from its timestamp, so ``index`` and ``time_s`` stay those of the source."""

    kind = "video"

    def __init__(self, path: str | Path, frame_skip: int = 1, max_frames: int | None = None):
        import cv2

        super().__init__(frame_skip, max_frames)
        self.path = Path(path)
        self.name = self.path.name
        if not self.path.exists():
            raise SourceError(f"video not found: {self.path}")
        if not self.path.is_file():
            raise SourceError(f"not a file: {self.path}")
        with _quiet_opencv():
            self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            self.close()
            if _looks_like_video(self.path):
                raise SourceError(f"cannot open video {self.path}: the file is damaged or truncated (a video cut "
                                  "short loses the index at its end)")
            raise SourceError(f"cannot open video {self.path}: not a format OpenCV can decode")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else 30.0
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total = n if n > 0 else None
        self.log.frame_count = self.total or 0
        if not self._open_first():
            self.close()
            raise SourceError(f"cannot decode video {self.path}: no readable frame")
        self.size = (self._first[1].shape[1], self._first[1].shape[0])

    def _ended(self, index: int) -> bool:
        return self.total is None or index + 1 >= self.total

    def _index_after(self, index: int, lost: int) -> int:
        if self.damaged or lost:
            # Frames were lost, and the decoder reports its failures ahead of the frames it drops: from the
            # first failure on, each frame's timestamp says which frame it is.
            import cv2

            at = round(float(self.cap.get(cv2.CAP_PROP_POS_MSEC)) * self.fps / 1000.0)
            if index < at and (self.total is None or at < self.total):
                return at
        return index + 1 + lost

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        count = 0
        for index, bgr in self._frames():
            if self.max_frames is not None and count >= self.max_frames:
                return
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), index, index / self.fps)
            count += 1


class CameraSource(_CaptureSource):
    """A live camera by index (0 or more). Stops when the camera stops delivering frames (unplugged, closed:
    :data:`MAX_BAD_CAMERA_READS` failed reads in a row, said in ``stopped_early``)."""

    kind = "camera"
    max_bad = MAX_BAD_CAMERA_READS

    def __init__(self, index: int, frame_skip: int = 1, max_frames: int | None = None):
        import cv2

        super().__init__(frame_skip, max_frames)
        self.index = int(index)
        self.name = f"camera {self.index}"
        if self.index < 0:  # OpenCV crashes the process on a negative index
            raise SourceError(f"camera index must be 0 or more, got {self.index}")
        try:
            with _quiet_opencv():
                self.cap = cv2.VideoCapture(self.index)
        except (cv2.error, OverflowError):  # an index beyond a C int
            self.cap = None
        if self.cap is None or not self.cap.isOpened() or not self._open_first():
            self.close()
            raise SourceError(f"cannot open camera {self.index}: no such device, or it is in use or gives no "
                              "frames (try another --camera index)")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else 30.0
        self.size = (self._first[1].shape[1], self._first[1].shape[0])

    @property
    def stopped_early(self) -> str | None:
        if self.log.stopped_at is None:
            return None
        return (f"camera {self.index} stopped delivering frames at frame {self.log.stopped_at} "
                f"({self.max_bad} failed reads in a row)")

    def __iter__(self) -> Iterator[Frame]:
        import time

        import cv2

        t0 = time.monotonic()
        count = 0
        for index, bgr in self._frames():
            if self.max_frames is not None and count >= self.max_frames:
                return
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), index, time.monotonic() - t0)
            count += 1


def open_source(image: str | Path | None = None, video: str | Path | None = None, camera: int | None = None,
                frame_skip: int = 1, max_frames: int | None = None) -> FrameSource:
    """Exactly one of ``image`` (a file, or a folder of photos) / ``video`` / ``camera`` -> an opened
    :class:`FrameSource`."""
    given = [x is not None for x in (image, video, camera)]
    if sum(given) != 1:
        raise ValueError("give exactly one source: an image, a video or a camera index")
    if image is not None:
        if Path(image).is_dir():
            return ImageFolderSource(image, frame_skip, max_frames)
        return ImageSource(image, max_frames)
    if video is not None:
        return VideoSource(video, frame_skip, max_frames)
    return CameraSource(int(camera), frame_skip, max_frames)


def count_video_frames(path: str | Path) -> int:
    """Frames actually decodable in a video file (reads them all; for tests and checks)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n
