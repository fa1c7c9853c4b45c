"""Frame sources: a folder of photos (order, names, frame skip, max frames, unreadable files skipped), frames
decoded beforehand."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from instanthmr.video.sources import DecodedFrames, ImageFolderSource, ImageSource, SourceError, open_source


def _write(path, w, h, value):
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))


def test_folder_source_order_names_skip_and_limits(tmp_path, capsys):
    _write(tmp_path / "b.png", 40, 30, 20)
    _write(tmp_path / "a.jpg", 64, 48, 10)
    (tmp_path / "c.jpg").write_bytes(b"broken")
    _write(tmp_path / "d.bmp", 20, 10, 40)
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "e.png", 8, 8, 50)  # not directly in the folder: not read
    (tmp_path / "readme.txt").write_text("x")

    src = open_source(image=tmp_path)
    assert isinstance(src, ImageFolderSource) and src.kind == "images"
    assert src.total == 4 and src.size == (64, 48)  # a.jpg is first by name
    frames = list(src)
    assert [(f.index, f.name, f.image.shape) for f in frames] == [
        (0, "a.jpg", (48, 64, 3)), (1, "b.png", (30, 40, 3)), (3, "d.bmp", (10, 20, 3))]
    assert frames[0].image.dtype == np.uint8 and src.skipped == ["c.jpg"]
    assert "skipped c.jpg" in capsys.readouterr().err

    assert [f.name for f in ImageFolderSource(tmp_path, frame_skip=2)] == ["a.jpg"]  # 0, 2 (unreadable)
    assert [f.name for f in ImageFolderSource(tmp_path, max_frames=2)] == ["a.jpg", "b.png"]
    assert isinstance(open_source(image=tmp_path / "a.jpg"), ImageSource)


def test_folder_source_first_files_unreadable(tmp_path):
    (tmp_path / "0.jpg").write_bytes(b"broken")
    _write(tmp_path / "1.png", 16, 12, 5)
    src = ImageFolderSource(tmp_path)
    assert src.size == (16, 12) and src.skipped == ["0.jpg"]
    assert [f.index for f in src] == [1] and src.skipped == ["0.jpg"]  # counted once


def test_folder_source_errors(tmp_path):
    with pytest.raises(SourceError, match="no images in folder"):
        ImageFolderSource(tmp_path)
    (tmp_path / "x.jpg").write_bytes(b"broken")
    with pytest.raises(SourceError, match="no readable image in folder"):
        ImageFolderSource(tmp_path)


def test_damaged_images_are_called_damaged(tmp_path):
    """A file that starts like an image but does not decode is damaged or truncated, not a foreign format."""
    from instanthmr.video.sources import read_image_rgb

    img = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    for ext, kind in ((".jpg", "JPEG"), (".png", "PNG")):
        data = cv2.imencode(ext, img)[1].tobytes()
        (tmp_path / f"cut{ext}").write_bytes(data[: len(data) // 2])
        with pytest.raises(SourceError, match=f"the {kind} file is damaged or truncated"):
            read_image_rgb(tmp_path / f"cut{ext}")
    (tmp_path / "notes.jpg").write_text("plain text with a .jpg name")
    with pytest.raises(SourceError, match="not an image format OpenCV can read"):
        read_image_rgb(tmp_path / "notes.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(SourceError, match="the file is empty"):
        read_image_rgb(tmp_path / "empty.png")


def test_video_frames_that_do_not_decode_are_skipped(tmp_path):
    """A frame that fails to decode is counted and skipped; the frames after it keep their source index;
    frames that fail to the end of a file cut short end the source with the reason."""
    from instanthmr.video.sources import VideoSource, _CaptureSource

    class FakeCapture:  # frames 0-9; 3 and 4 fail to grab, 6 grabs but does not decode, 8 on fail (cut short)
        def __init__(self):
            self.pos = -1

        def grab(self):
            self.pos += 1
            return self.pos not in (3, 4) and self.pos < 8

        def retrieve(self):
            return (self.pos != 6), np.full((4, 4, 3), self.pos, np.uint8)

        def get(self, prop):
            return self.pos * 100.0 if prop == cv2.CAP_PROP_POS_MSEC else 0.0  # 10 fps: this frame's time

        def release(self):
            pass

    src = VideoSource.__new__(VideoSource)  # a VideoSource around the fake capture, opened as __init__ does
    _CaptureSource.__init__(src, 1, None)
    src.path, src.name, src.fps, src.total, src.cap = tmp_path / "v.mp4", "v.mp4", 10.0, 10, FakeCapture()
    src.log.frame_count = 10
    src._open_first()
    got = [(f.index, int(f.image[0, 0, 0])) for f in src]
    assert got == [(0, 0), (1, 1), (2, 2), (5, 5), (7, 7)]  # 5 keeps its index although 3 and 4 were lost
    assert src.damaged == 3 and "of 10" in src.stopped_early and "v.mp4" in src.stopped_early


def test_frames_decoded_beforehand_are_a_video_source():
    """The timing tools' source (bench_mediapipe's FrameFeed, frame_breakdown's ProbedFrames): the frames as
    given, frame i at i / fps seconds, the size (W, H) of the first; none at all is a one-line error."""
    images = [np.full((72, 128, 3), v, np.uint8) for v in (0, 50, 100)]
    src = DecodedFrames(images, fps=25.0, name="clip")
    assert src.kind == "video" and src.size == (128, 72) and src.expected_frames == 3 and src.name == "clip"
    frames = list(src)
    assert [f.index for f in frames] == [0, 1, 2] and [f.time_s for f in frames] == [0.0, 0.04, 0.08]
    assert all(f.image is im for f, im in zip(frames, images))
    with pytest.raises(SourceError, match="no frames"):
        DecodedFrames([])
