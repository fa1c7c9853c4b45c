"""Frame sources (image, folder of images, video file, camera) and the overlay video writer, with one-line errors.

Every source is an iterable of :class:`Frame` (RGB uint8, source frame index, timestamp in seconds) with
``fps``, ``total`` (frame count, ``None`` for a camera) and ``size`` ``(W, H)``. Anything that cannot be
opened or decoded raises :class:`SourceError` naming the path or the camera index, except a bad file inside a
folder of images: that one is skipped, named in ``skipped`` and reported, and the other photos still run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class SourceError(RuntimeError):
    """An input (image, video, camera) or output video that cannot be opened, read or written."""


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
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise SourceError(f"cannot decode image {p}: not an image format OpenCV can read")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


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
    def __init__(self, frame_skip: int = 1, max_frames: int | None = None):
        super().__init__(frame_skip, max_frames)
        self.cap = None
        self._first = None  # read at open time to prove the source decodes; yielded as frame 0

    def _read_frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """(index, BGR frame) of kept frames; skipped frames are grabbed without decoding. Single pass."""
        index = 0
        first, self._first = self._first, None
        if first is not None:
            yield 0, first
            index = 1
        while True:
            if index % self.frame_skip:
                if not self.cap.grab():
                    return
            else:
                ok, bgr = self.cap.read()
                if not ok or bgr is None:
                    return
                yield index, bgr
            index += 1

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class VideoSource(_CaptureSource):
    """A video file decoded by OpenCV. ``fps`` falls back to 30 when the container does not say."""

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
        self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            self.close()
            raise SourceError(f"cannot open video {self.path}: not a format OpenCV can decode")
        ok, first = self.cap.read()
        if not ok or first is None:
            self.close()
            raise SourceError(f"cannot decode video {self.path}: no readable frame")
        self._first = first
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else 30.0
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total = n if n > 0 else None
        self.size = (first.shape[1], first.shape[0])

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        if self.cap is None:
            raise SourceError(f"video {self.path} is closed")
        count = 0
        for index, bgr in self._read_frames():
            if self.max_frames is not None and count >= self.max_frames:
                return
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), index, index / self.fps)
            count += 1


class CameraSource(_CaptureSource):
    """A live camera by index. Stops when the camera stops delivering frames (unplugged, closed)."""

    kind = "camera"

    def __init__(self, index: int, frame_skip: int = 1, max_frames: int | None = None):
        import cv2

        super().__init__(frame_skip, max_frames)
        self.index = int(index)
        self.name = f"camera {self.index}"
        self.cap = cv2.VideoCapture(self.index)
        ok, first = (self.cap.read() if self.cap.isOpened() else (False, None))
        if not ok or first is None:
            self.close()
            raise SourceError(f"cannot open camera {self.index}: no such device, or it is in use or gives no "
                              "frames (try another --camera index)")
        self._first = first
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else 30.0
        self.size = (first.shape[1], first.shape[0])

    def __iter__(self) -> Iterator[Frame]:
        import time

        import cv2

        if self.cap is None:
            raise SourceError(f"camera {self.index} is closed")
        t0 = time.monotonic()
        count = 0
        for index, bgr in self._read_frames():
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


_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class VideoWriter:
    """Writes RGB frames to a video file (codec chosen from the extension: mp4v for .mp4/.mov, MJPG for
    .avi/.mkv). Frames of another size are resized to the first frame's size."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]):
        import cv2

        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in _FOURCC:
            raise SourceError(f"cannot write video {self.path}: use one of {sorted(_FOURCC)}")
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*_FOURCC[ext]), self.fps, self.size)
        if not self.writer.isOpened():
            raise SourceError(f"cannot open {self.path} for writing (codec {_FOURCC[ext]} unavailable?)")
        self.frames = 0

    def write(self, image_rgb: np.ndarray) -> None:
        import cv2

        if (image_rgb.shape[1], image_rgb.shape[0]) != self.size:
            image_rgb = cv2.resize(image_rgb, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def count_video_frames(path: str | Path) -> int:
    """Frames actually decodable in a video file (reads them all; for tests and checks)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n
