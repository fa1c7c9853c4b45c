"""tools/annotate_mediapipe.py: inputs -> shards, resume, --shard i/N, bad inputs. A stub teacher keeps most
tests model-free; one test runs the real MediaPipe teacher on a real video when its models are fetched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from instanthmr.cli.annotate_mediapipe import main
from instanthmr.training.annotate_mediapipe import annotate
from instanthmr.teachers.mediapipe import MediaPipeLabel
from instanthmr.training.data.shards import ShardReader

ROOT = Path(__file__).resolve().parent.parent


class StubTeacher:
    """One fake person per image whose mean brightness is > 10 (black images hold nobody)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, img):
        self.calls += 1
        if img.mean() <= 10:
            return []
        h, w = img.shape[:2]
        j2 = np.tile([[w / 2, h / 2]], (70, 1)).astype(np.float32)
        valid = np.zeros(70, bool)
        valid[:21] = True
        return [MediaPipeLabel(
            box=np.array([w * 0.25, h * 0.1, w * 0.75, h * 0.9], np.float32), score=1.0, joints_2d=j2,
            joints_2d_valid=valid, joints_3d=np.zeros((70, 3), np.float32), joints_3d_valid=valid,
            cam_trans=np.array([0, 0, 3], np.float32), cam_trans_valid=True,
            joints_2d_wholebody=np.zeros((133, 2), np.float32), joints_2d_wholebody_valid=np.zeros(133, bool),
            intrinsics=np.eye(3, dtype=np.float32), image_size=(w, h), person=None, hands={})]


@pytest.fixture()
def media(tmp_path) -> dict:
    """Two photos (one black = nobody), one corrupt image and a 6-frame video, all made here."""
    d = tmp_path / "in"
    (d / "photos").mkdir(parents=True)
    cv2.imwrite(str(d / "photos" / "a.png"), np.full((48, 64, 3), 120, np.uint8))
    cv2.imwrite(str(d / "photos" / "b.png"), np.zeros((48, 64, 3), np.uint8))
    (d / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    (d / "photos" / "notes.txt").write_text("ignored inside folders")
    video = d / "clip.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(6):
        vw.write(np.full((48, 64, 3), 60 + 20 * i, np.uint8))
    vw.release()
    return {"photos": d / "photos", "video": video}


def test_labels_images_and_video_frames_then_resumes(media, tmp_path):
    out = tmp_path / "labels"
    t = StubTeacher()
    c = annotate([media["photos"], media["video"]], out, teacher=t, shard_size=2)
    assert (c.inputs, c.labelled, c.no_person, c.unreadable, c.instances) == (9, 8, 1, 1, 7)
    r = ShardReader(out)
    assert len(r) == 7
    assert set(r.inputs) == {"photos/a.png", "photos/b.png"} | {f"clip.avi#{i:06d}" for i in range(6)}
    inst = r[0]
    assert inst["teacher"] == "mediapipe" and inst["image_jpeg"] and inst["context_box"][2] > 0
    assert inst["joints_2d_valid"].sum() == 21 and inst["cam_trans_valid"]
    # Resume: nothing is labelled twice, the corrupt image is retried (and still unreadable).
    t2 = StubTeacher()
    c2 = annotate([media["photos"], media["video"]], out, teacher=t2)
    assert (c2.done_before, c2.labelled, c2.unreadable, t2.calls) == (8, 0, 1, 0)
    assert len(ShardReader(out)) == 7


def test_every_and_max_frames(media, tmp_path):
    c = annotate([media["video"]], tmp_path / "o", every=2, max_frames=2, teacher=StubTeacher())
    assert c.labelled == 2
    assert set(ShardReader(tmp_path / "o").inputs) == {"clip.avi#000000", "clip.avi#000002"}


def test_parts_split_the_work_without_overlap(media, tmp_path):
    out = tmp_path / "labels"
    c0 = annotate([media["photos"], media["video"]], out, shard=(0, 2), teacher=StubTeacher())
    c1 = annotate([media["photos"], media["video"]], out, shard=(1, 2), teacher=StubTeacher())
    assert c0.inputs + c1.inputs == 9 and abs(c0.inputs - c1.inputs) <= 1
    names = sorted(p.name for p in out.glob("*.npz"))
    assert any("part00of02" in n for n in names) and any("part01of02" in n for n in names)
    r = ShardReader(out)
    assert len(r.inputs) == 8 and len(r) == 7  # every readable input exactly once


def test_cli_reports_bad_inputs_in_one_line(tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "annotate_mediapipe.py"), str(tmp_path / "nope.mp4"),
                          "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("[annotate_mediapipe] error: input not found")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "x.txt"), "--out", str(tmp_path / "o"), "--shard", "3/2"])
    assert main([str(tmp_path / "x.txt"), "--out", str(tmp_path / "o")]) == 2  # not an image or video


def test_real_teacher_on_a_real_video(shared_data, mp_models, tmp_path):
    rc = main([str(shared_data / "videos" / "mmpose_demo_5frames.mp4"), "--out", str(tmp_path / "o"),
               "--max-frames", "2", "--no-hands"])
    assert rc == 0
    r = ShardReader(tmp_path / "o")
    assert len(r.inputs) == 2 and len(r) >= 2
    inst = r[0]
    assert inst["joints_2d_valid"].sum() >= 10 and inst["joints_3d_valid"].sum() >= 10
    w, h = inst["image_size"]
    x1, y1, x2, y2 = inst["box"]
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    v = inst["joints_2d_valid"]
    assert ((inst["joints_2d"][v] >= 0) & (inst["joints_2d"][v] <= [w, h])).all()
    img = cv2.imdecode(np.frombuffer(inst["image_jpeg"], np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[0] == img.shape[1]
