"""Fault injection for demo.py (issue 17): stop signals sent to real processes, damaged copies of real media,
bad arguments and unwritable outputs. Every output a run leaves must be readable, whatever stopped it.

The subprocess runs use the tiny random-init network and a box file as detector, so a frame costs tens of
milliseconds; each waits for the run's first published output before it sends a signal, so the signal lands
mid-run on any machine. Waits have generous deadlines and never measure speed.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from instanthmr.cli import demo
from instanthmr.outputs.files import read_npz_tracks
from instanthmr.video.sources import SourceError, count_video_frames, open_source

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 240.0  # a safety net for a hung run, not a speed check
LEFT = [300.0, 150.0, 520.0, 650.0]


@pytest.fixture(scope="module")
def football(shared_data) -> Path:
    return shared_data / "videos" / "romp_sample_video_football.mp4"  # 1280x720, 30 fps, 257 frames


@pytest.fixture(scope="module")
def boxes(tmp_path_factory) -> Path:
    """One person in every frame of the football clip."""
    path = tmp_path_factory.mktemp("boxes") / "boxes.json"
    path.write_text(json.dumps({"frames": [{"frame_index": i, "boxes": [LEFT]} for i in range(300)]}))
    return path


def _argv(video: Path, model: Path, boxes: Path) -> list[str]:
    return ["--video", str(video), "--model", str(model), "--detector", str(boxes), "--no-spawn", "--device", "cpu",
            "--threads", "1", "--quiet"]


def _outputs(d: Path, video: bool = True) -> list[str]:
    out = ["--save-json", str(d / "r.json"), "--save-csv", str(d / "r.csv"), "--save-npz", str(d / "r.npz"),
           "--save-bvh", str(d / "r.bvh")]
    return out + (["--out-video", str(d / "r.mp4")] if video else [])


def _start(argv: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as fh:
        return subprocess.Popen([sys.executable, str(ROOT / "demo.py"), *argv], cwd=ROOT, stdout=fh,
                                stderr=subprocess.STDOUT)


def _wait_for_new_json(proc: subprocess.Popen, path: Path, old: str | None = None) -> dict:
    """The first JSON the run publishes at ``path`` (a different file than ``old``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < DEADLINE_S:
        if path.exists():
            text = path.read_text()
            if text != old:
                return json.loads(text)  # published whole: always parses
        assert proc.poll() is None, "the run ended before publishing anything"
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no output at {path} after {DEADLINE_S} s")


def _finish(proc: subprocess.Popen, log: Path) -> tuple[int, str]:
    try:
        rc = proc.wait(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the run did not stop")
    return rc, log.read_text()


def _check_outputs(d: Path, video: bool = True) -> dict:
    """Every file readable and consistent with the JSON; no temporary left behind."""
    data = json.loads((d / "r.json").read_text())
    frames = data["frames"]
    assert frames and [f["frame_index"] for f in frames] == sorted(f["frame_index"] for f in frames)
    persons = sum(len(f["persons"]) for f in frames)
    with (d / "r.csv").open() as fh:
        assert len(list(csv.reader(fh))) - 1 == 70 * persons
    (tid, track), = read_npz_tracks(d / "r.npz").items()
    assert track["frame_index"].tolist() == [f["frame_index"] for f in frames]
    if video:
        assert count_video_frames(d / "r.mp4") == len(frames)
    assert not [p.name for p in d.iterdir() if p.name.startswith(".")], "temporary files left behind"
    return data


# --------------------------------------------------------------------------------------------------
# signals
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig, code, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")])
def test_stop_signal_keeps_every_output(tmp_path, football, random_onnx, boxes, sig, code, name):
    """``timeout -s TERM`` (or a closed terminal) mid-run: every file complete and readable, the video
    playable with exactly the frames in the JSON, and the exit status says which signal it was."""
    d = tmp_path / "o"
    proc = _start(_argv(football, random_onnx, boxes) + ["--smooth", "causal"] + _outputs(d), tmp_path / "log")
    _wait_for_new_json(proc, d / "r.json")
    proc.send_signal(sig)
    rc, log = _finish(proc, tmp_path / "log")
    assert rc == code, log[-2000:]
    assert f"stopped by {name} after" in log and "Traceback" not in log
    data = _check_outputs(d)
    assert 1 <= len(data["frames"]) < 257 and "partial" not in data["summary"]
    assert data["summary"]["frames"] == len(data["frames"])


def test_three_ctrl_c_within_a_tenth_of_a_second(tmp_path, football, random_onnx, boxes):
    """Impatient Ctrl-C: the second and third only make the run say it is still finishing its files."""
    d = tmp_path / "o"
    proc = _start(_argv(football, random_onnx, boxes) + ["--smooth", "causal", "--save-rrd", str(d / "r.rrd")]
                  + _outputs(d), tmp_path / "log")
    _wait_for_new_json(proc, d / "r.json")
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.03)
    rc, log = _finish(proc, tmp_path / "log")
    assert rc == 130, log[-2000:]
    assert "Traceback" not in log
    _check_outputs(d)
    exe = ROOT / ".venv" / "bin" / "rerun"
    exe = str(exe) if exe.exists() else shutil.which("rerun")
    if exe is not None:  # the recording is finished and readable too
        out = subprocess.run([exe, "rrd", "print", str(d / "r.rrd")], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "/world/camera/boxes" in out.stdout + out.stderr, out.stderr[-1000:]


def test_sigterm_with_offline_smoothing(tmp_path, football, random_onnx, boxes):
    """--smooth offline: the frames done are smoothed and written, and the video is drawn from them."""
    d = tmp_path / "o"
    proc = _start(_argv(football, random_onnx, boxes) + ["--smooth", "offline"] + _outputs(d), tmp_path / "log")
    first = _wait_for_new_json(proc, d / "r.json")
    assert first["summary"]["partial"] is True and first["meta"]["smooth"] == "offline"
    proc.send_signal(signal.SIGTERM)
    rc, log = _finish(proc, tmp_path / "log")
    assert rc == 143, log[-2000:]
    data = _check_outputs(d)
    assert "partial" not in data["summary"]


def test_sigkill_leaves_the_last_published_state(tmp_path, football, random_onnx, boxes):
    """Killed outright: each data file is the last complete publication (a valid file marked partial),
    and an older video at the output path is untouched (the new one was still under its temporary name)."""
    d = tmp_path / "o"
    d.mkdir()
    old_video = d / "r.mp4"
    shutil.copy(ROOT / "tests" / "golden" / "openpose12_boxes.json", old_video)  # any older file
    old_bytes = old_video.read_bytes()
    proc = _start(_argv(football, random_onnx, boxes) + ["--smooth", "causal"] + _outputs(d), tmp_path / "log")
    _wait_for_new_json(proc, d / "r.json")
    while not (d / "r.npz").exists() and proc.poll() is None:  # the NPZ is published last (after the CSV)
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=DEADLINE_S)
    data = json.loads((d / "r.json").read_text())
    assert data["summary"]["partial"] is True and data["summary"]["frames"] == len(data["frames"]) >= 1
    with (d / "r.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0][0] == "frame_index" and (len(rows) - 1) % 70 == 0
    assert read_npz_tracks(d / "r.npz")  # a loadable archive
    assert old_video.read_bytes() == old_bytes


def test_older_files_stay_until_the_first_frame_is_done(tmp_path, football, random_onnx, boxes, monkeypatch,
                                                        capsys):
    """Start-up does not empty an older output; a run that fails before its first frame leaves it intact."""
    from instanthmr.runtime import pipeline as pipeline_mod
    from instanthmr.runtime.detector import Detections, PersonDetector

    d = tmp_path / "o"
    d.mkdir()
    olds = {name: f"older {name}" for name in ("r.json", "r.csv", "r.npz", "r.mp4")}
    for name, text in olds.items():
        (d / name).write_text(text)
    seen = {}

    class Inspector(PersonDetector):
        name = "inspector"

        def detect(self, image_rgb, frame_index=None):
            if frame_index == 0:  # outputs are open, nothing published yet
                seen.update({p.name: p.read_text() for p in d.iterdir() if not p.name.startswith(".")})
                raise RuntimeError("detector failed")
            return Detections(np.array([LEFT]), np.array([0.9]))

    monkeypatch.setattr(pipeline_mod, "create_detector", lambda *a, **k: Inspector(0.0))
    argv = ["--video", str(football), "--model", str(random_onnx), "--no-spawn", "--device", "cpu", "--quiet",
            "--smooth", "causal"] + _outputs(d)
    with pytest.raises(RuntimeError, match="detector failed"):
        demo.main(argv)
    assert seen == olds
    assert {p.name: p.read_text() for p in d.iterdir()} == olds  # untouched, no temporary left


# --------------------------------------------------------------------------------------------------
# damaged media
# --------------------------------------------------------------------------------------------------

def _damaged_copy(src: Path, dst: Path, cut: bool = False) -> Path:
    """``src`` with 100 kB of random bytes in the middle, or (``cut``) its first half only."""
    data = bytearray(src.read_bytes())
    if cut:
        data = data[: len(data) // 2]
    else:
        mid = len(data) // 2
        data[mid:mid + 100_000] = np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def test_damaged_frames_are_skipped_and_the_run_reaches_the_end(tmp_path, football, random_onnx, boxes, capsys):
    bad = _damaged_copy(football, tmp_path / "damaged.mp4")
    src = open_source(video=bad)
    indices = [f.index for f in src]
    assert src.damaged > 0 and src.stopped_early is None
    assert indices[-1] == 256 and len(indices) == 257 - src.damaged  # to the container's end
    assert indices == sorted(set(indices))  # frames after the damage keep their source index

    out = tmp_path / "d.json"
    rc = demo.main(_argv(bad, random_onnx, boxes) + ["--smooth", "none", "--frame-skip", "4", "--save-json", str(out)])
    err = capsys.readouterr().err
    assert rc == 0
    data = json.loads(out.read_text())
    assert [f["frame_index"] for f in data["frames"]] == [i for i in indices if i % 4 == 0]
    assert data["summary"]["damaged_frames"] == src.damaged
    assert f"skipped {src.damaged} damaged frame(s) of damaged.mp4" in err


def test_video_cut_in_half(tmp_path, shared_data, random_onnx, capsys):
    """An MP4 cut short loses its index: one line saying so. An AVI cut short plays to the cut, and the run
    says where and why it stopped."""
    mp4 = _damaged_copy(shared_data / "videos" / "mmpose_demo_5frames.mp4", tmp_path / "half.mp4", cut=True)
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps({"frames": [{"frame_index": i, "boxes": [LEFT]} for i in range(300)]}))
    assert demo.main(_argv(mp4, random_onnx, boxes)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged or truncated" in err[0] and "half.mp4" in err[0]

    avi = _damaged_copy(shared_data / "videos" / "openpose_video.avi", tmp_path / "half.avi", cut=True)
    out = tmp_path / "h.json"
    assert demo.main(_argv(avi, random_onnx, boxes) + ["--smooth", "none", "--frame-skip", "10",
                                                       "--save-json", str(out)]) == 0
    err = capsys.readouterr().err
    data = json.loads(out.read_text())
    last = data["frames"][-1]["frame_index"]
    stopped = data["summary"]["stopped_early"]
    assert 50 < last < 205 and "half.avi" in stopped and "of 205" in stopped
    assert err.strip().splitlines() == [stopped]  # said once, on stderr and in the summary


def test_truncated_jpeg_is_called_damaged(tmp_path, shared_data, random_onnx, capsys):
    jpg = tmp_path / "cut.jpg"
    data = (shared_data / "images" / "romp_demo" / "Leo_Messi.jpg").read_bytes()
    jpg.write_bytes(data[: len(data) // 2])
    assert demo.main(["--image", str(jpg), "--model", str(random_onnx), "--no-spawn"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "JPEG file is damaged or truncated" in err[0] and "not an image format" not in err[0]


# --------------------------------------------------------------------------------------------------
# arguments and output paths, all checked before any work
# --------------------------------------------------------------------------------------------------

def test_negative_camera_index_is_one_line_not_a_crash(tmp_path):
    """OpenCV kills the process on a negative camera index: the demo refuses it first (a real process, so
    a crash would show as a signal, not a failed assert)."""
    out = subprocess.run([sys.executable, str(ROOT / "demo.py"), "--camera", "-1", "--no-spawn", "--max-frames", "5"],
                         cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE_S)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == ["error: --camera is a camera index, 0 or more (0 = the default "
                                               "camera), got -1"]
    with pytest.raises(SourceError, match="camera index must be 0 or more"):
        open_source(camera=-1)


BAD_ARGS = [
    (["--frame-skip", "0"], "--frame-skip must be 1 or more"),
    (["--max-persons", "0"], "--max-persons must be 1 or more"),
    (["--detector-stride", "0"], "--detector-stride must be 1 or more"),
    (["--max-frames", "0"], "--max-frames must be 1 or more"),
    (["--det-confidence", "2"], "--det-confidence is a detection score in [0, 1], got 2.0"),
    (["--det-confidence", "-0.1"], "--det-confidence is a detection score in [0, 1], got -0.1"),
    (["--det-confidence", "nan"], "--det-confidence is a detection score in [0, 1], got nan"),
    (["--threads", "-1"], "--threads must be 0"),
    (["--mhr-lod", "9"], "--mhr-lod is a level of detail from 0"),
    (["--out-video", "{d}/x.gif"], "give a file name ending in one of .avi, .m4v, .mkv, .mov, .mp4"),
    (["--save-json", "{d}/s.out", "--save-csv", "{d}/s.out"], "--save-csv {d}/s.out is also --save-json"),
    (["--out-video", "{video}"], "is also the input"),
]


@pytest.mark.parametrize("extra, message", BAD_ARGS, ids=[" ".join(a[:2]) for a, _ in BAD_ARGS])
def test_bad_arguments_exit_2_before_any_work(tmp_path, football, capsys, extra, message):
    """One line naming the argument, exit 2, and nothing loaded (the model path does not even exist)."""
    video = tmp_path / "in.mp4"
    shutil.copy(football, video)
    extra = [a.format(d=tmp_path, video=video) for a in extra]
    rc = demo.main(["--video", str(video), "--model", str(tmp_path / "missing.onnx"), "--no-spawn"] + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert message.format(d=tmp_path) in err[0] and "model" not in err[0].replace("--model", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]  # nothing created


@pytest.mark.parametrize("flag, path", [("--save-json", "/proc/x.json"), ("--save-bvh", "/proc/x.bvh"),
                                        ("--save-rrd", "/proc/x.rrd"), ("--out-video", "/proc/x.mp4"),
                                        ("--save-npz", "/proc/sys/x.npz")])
def test_unwritable_outputs_named_before_any_work(football, capsys, flag, path):
    if os.access("/proc", os.W_OK) and Path("/proc/x.json").exists():
        pytest.skip("/proc is not the virtual file system here")
    rc = demo.main(["--video", str(football), "--model", "/nonexistent/model.onnx", "--no-spawn", flag, path])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: cannot write {flag} {path}: ")
    for wrong in ("--no-spawn", "codec", "model"):  # the cause, not another one
        assert wrong not in err[0].split(": ", 2)[-1]


@pytest.mark.parametrize("box, what", [([500, 700, 900, 0], "inverted"), ([500, float("nan"), 900, 700], "not finite")])
def test_bad_box_in_a_box_file_names_the_file_and_frame(tmp_path, shared_data, random_onnx, capsys, box, what):
    boxes = tmp_path / "bad_boxes.json"
    boxes.write_text(json.dumps({"frames": [{"frame_index": 0, "boxes": [[1, 1, 50, 80]]},
                                            {"frame_index": 3, "boxes": [box]}]}))
    clip = shared_data / "videos" / "mmpose_demo_5frames.mp4"
    assert demo.main(_argv(clip, random_onnx, boxes)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad_boxes.json" in err[0] and "frame 3" in err[0] and what in err[0]
    assert "--det-confidence" not in err[0]


def test_nobody_in_a_box_file_does_not_blame_the_confidence(tmp_path, shared_data, random_onnx, capsys):
    boxes = tmp_path / "empty.json"
    boxes.write_text(json.dumps({"frames": []}))
    clip = shared_data / "videos" / "mmpose_demo_5frames.mp4"
    assert demo.main(_argv(clip, random_onnx, boxes) + ["--max-frames", "2"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert "no person found" in err[-1] and "empty.json" in err[-1] and "--det-confidence" not in err[-1]
