"""Frame sources: a folder of photos (order, names, frame skip, max frames, unreadable files skipped)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from instanthmr.video.sources import ImageFolderSource, ImageSource, SourceError, open_source


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
