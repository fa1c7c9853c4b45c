"""The overlay video file: RGB frames in, a playable .mp4/.avi out (written under a temporary name, renamed
into place when finished, so an older video at the path stays until the new one is complete)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from instanthmr.core.faults import temp_path_for
from instanthmr.outputs.atomic import ResultsWriteError

#: Codec per extension: mp4v for .mp4/.m4v/.mov, MJPG for .avi/.mkv.
VIDEO_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def check_video_extension(path: str | Path) -> None:
    """``ValueError`` (an argument error) unless ``path`` has a video extension this writer knows."""
    ext = Path(path).suffix.lower()
    if ext not in VIDEO_FOURCC:
        raise ValueError(f"cannot write video {path}: give a file name ending in one of "
                         f"{', '.join(sorted(VIDEO_FOURCC))}")


class VideoWriter:
    """Writes RGB frames to a video file (codec from the extension, :data:`VIDEO_FOURCC`). Frames of another
    size are resized to the first one's. :meth:`close` finishes the file and moves it to ``path``; a video
    that got no frame is dropped (``path`` keeps whatever it held)."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]):
        import cv2

        self.path = Path(path)
        check_video_extension(self.path)
        ext = self.path.suffix.lower()
        self.tmp = temp_path_for(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ResultsWriteError(f"cannot write video {self.path}: {e.strerror or e}") from None
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*VIDEO_FOURCC[ext]), self.fps, self.size)
        if not self.writer.isOpened():
            self.writer = None
            self.tmp.unlink(missing_ok=True)
            raise ResultsWriteError(f"cannot open video {self.path} for writing: OpenCV has no {VIDEO_FOURCC[ext]} "
                                    f"encoder for {ext} here (try .avi)")
        self.frames = 0

    def write(self, image_rgb: np.ndarray) -> None:
        import cv2

        if (image_rgb.shape[1], image_rgb.shape[0]) != self.size:
            image_rgb = cv2.resize(image_rgb, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> bool:
        """Finish the file; True when it was moved to ``path`` (False: no frame, nothing written)."""
        if self.writer is None:
            return False
        self.writer.release()
        self.writer = None
        if self.frames == 0:
            self.tmp.unlink(missing_ok=True)
            return False
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            raise ResultsWriteError(f"cannot write video {self.path}: {e.strerror or e}") from None
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
