"""Fault injection (issue 17): hostile inputs, damaged media made here from real media, signals sent to real
subprocesses, unwritable outputs. Each test reproduces one fault of the issue and checks that it is met with
one line, the documented exit code, and nothing lost.

Time bounds here catch hangs and quadratic blow-ups only; they are an order of magnitude above the normal
time (speed itself is measured by the benchmarks).
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from instanthmr.core.faults import (
    FrameLog,
    OutputPathError,
    StopSignal,
    atomic_path,
    check_output_path,
    interrupt_exit_code,
    readable_frames,
    stop_signals,
    write_text_atomic,
)
from instanthmr.core.paths import STARTER_MODEL
from instanthmr.training.data.shards import ShardReader

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
FOOTBALL = "videos/romp_sample_video_football.mp4"


@contextlib.contextmanager
def time_limit(seconds: int):
    """Fail (TimeoutError) when the block runs longer than ``seconds``: a hang must not hang the suite."""
    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s: a hang or a blow-up")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def unwritable(tmp_path: Path, name: str) -> Path:
    """A path no file can be created at: under /proc on Linux (the issue's case), else under a regular file."""
    if Path("/proc/self").exists():
        return Path("/proc") / name
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    return blocker / name


def run_tool(*args, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([PY, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def damaged_copy(src: Path, dst: Path, nbytes: int = 100_000, seed: int = 0) -> Path:
    """``src`` copied with ``nbytes`` random bytes written over its middle (the issue's damaged video)."""
    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid:mid + nbytes] = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def mediapipe_ready():
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (TFLite interpreter) not installed")
    from instanthmr.runtime import mediapipe as mpm

    if not mpm.mediapipe_models_present():
        pytest.skip("MediaPipe models not fetched (python tools/fetch_models.py mediapipe)")


# ------------------------------------------------------------------------------------------------
# The shared helpers (instanthmr.core.faults)
# ------------------------------------------------------------------------------------------------


def test_atomic_path_keeps_the_old_file_on_any_exception(tmp_path):
    out = tmp_path / "sub" / "report.json"
    write_text_atomic(out, "good")
    for exc in (RuntimeError("disk"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with atomic_path(out) as tmp:
                assert tmp.parent == out.parent and tmp.suffix == ".json"
                tmp.write_text("half")
                raise exc
        assert out.read_text() == "good"
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.json"]  # no temporary left behind
    with atomic_path(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new"


def test_check_output_path(tmp_path):
    ok = check_output_path(tmp_path / "new" / "deeper" / "x.json", "--json")
    assert ok.parent.is_dir() and not ok.exists() and list(ok.parent.iterdir()) == []  # probe removed
    for bad in (unwritable(tmp_path, "x.json"), tmp_path):
        with pytest.raises(OutputPathError, match=r"cannot write --json .*choose a writable location"):
            check_output_path(bad, "--json")


def test_stop_signals_turn_sigterm_and_sighup_into_keyboard_interrupt():
    before = signal.getsignal(signal.SIGTERM)
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGHUP, 129)):
        with pytest.raises(KeyboardInterrupt) as info:
            with stop_signals():
                os.kill(os.getpid(), sig)
                time.sleep(5)  # the handler raises before this ends
        assert isinstance(info.value, StopSignal) and interrupt_exit_code(info.value) == code
    assert interrupt_exit_code(KeyboardInterrupt()) == 130
    assert signal.getsignal(signal.SIGTERM) == before  # restored


def _grabs(pattern: str):
    """A fake ``grab()`` following ``pattern`` ('1' decoded, '0' failed), then failing forever (the end)."""
    it = iter(pattern)
    return lambda: next(it, "0") == "1"


@pytest.mark.parametrize("pattern, count, frames, unreadable, stopped_at, gave_up", [
    ("111111", 6, [0, 1, 2, 3, 4, 5], 0, None, False),
    ("1100111", 7, [0, 1, 4, 5, 6], 2, None, False),  # damage in the middle: read on to the end
    ("1100", 4, [0, 1], 2, 2, False),  # the file's last frames never decode: cut short
    ("1" + "0" * 80 + "1", 90, [0], 50, 1, True),  # 50 failures in a row: given up, not looped on
    ("10011", 0, [0, 3, 4], 2, None, False),  # unknown length: failures followed by a frame are damage
])
def test_readable_frames(pattern, count, frames, unreadable, stopped_at, gave_up):
    log = FrameLog()
    assert list(readable_frames(_grabs(pattern), count, 50, log)) == frames
    assert (log.unreadable, log.stopped_at, log.gave_up) == (unreadable, stopped_at, gave_up)
    assert (log.message("v.mp4") is None) == (unreadable == 0)


# ------------------------------------------------------------------------------------------------
# 1. MediaPipe weighted NMS: terminates for any input
# ------------------------------------------------------------------------------------------------


def test_weighted_nms_terminates_on_hostile_inputs():
    from instanthmr.runtime.mediapipe import weighted_nms

    rng = np.random.default_rng(0)
    n = 300
    boxes = rng.uniform(0, 224, (n, 4))
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(-20, 40, (n, 2))  # many degenerate (zero, negative) boxes
    boxes[:20, 2:] = boxes[:20, :2]  # exactly zero-size
    kps = rng.uniform(0, 224, (n, 4, 2))
    scores = rng.uniform(0, 1, n)
    hostile = {
        "degenerate boxes": (boxes, kps, scores),
        "zero scores": (boxes, kps, np.zeros(n)),
        "negative scores": (boxes, kps, -scores),
        "nan scores": (boxes, kps, np.where(rng.uniform(size=n) < 0.3, np.nan, scores)),
        "inf boxes": (np.where(rng.uniform(size=(n, 4)) < 0.1, np.inf, boxes), kps, scores),
        "nan keypoints": (boxes, np.where(rng.uniform(size=(n, 4, 2)) < 0.1, np.nan, kps), scores),
        "huge coordinates": (boxes * 1e36, kps * 1e36, scores),
        "beyond float32": (boxes * 1e300, kps, scores),
        "all nan": (np.full((n, 4), np.nan), kps, np.full(n, np.nan)),
        "empty": (np.zeros((0, 4)), np.zeros((0, 4, 2)), np.zeros(0)),
    }
    with time_limit(60):
        for name, (b, k, s) in hostile.items():
            ob, ok, os_ = weighted_nms(b, k, s, 0.3)
            assert len(ob) == len(ok) == len(os_) <= len(s), name
            assert np.isfinite(ob).all() and np.isfinite(ok).all() and np.isfinite(os_).all(), name
    assert len(weighted_nms(*hostile["all nan"], 0.3)[0]) == 0
    # a well-formed cluster still merges to its score-weighted mean
    b = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [100, 100, 110, 110]], float)
    ob, _, os_ = weighted_nms(b, np.zeros((3, 4, 2)), np.array([0.9, 0.3, 0.8]), 0.3)
    np.testing.assert_allclose(ob[0], (0.9 * b[0] + 0.3 * b[1]) / 1.2, rtol=1e-6)
    assert os_.tolist() == pytest.approx([0.9, 0.8])


@pytest.mark.parametrize("threshold", [0.0, 1e-9, -0.1])
def test_mediapipe_detector_with_threshold_zero_on_a_real_image(shared_data, threshold):
    """The issue's hang: a detection threshold of 0 (or below) keeps every anchor, zero-size boxes included."""
    import cv2

    mediapipe_ready()
    from instanthmr.runtime.mediapipe import BlazePoseDetector, BlazePosePeople

    img = cv2.cvtColor(cv2.imread(str(shared_data / "images" / "romp_demo" / "3dpw_sit_on_street.jpg")),
                       cv2.COLOR_BGR2RGB)
    with time_limit(120):
        dets = BlazePoseDetector(score_threshold=threshold)(img)
        assert dets and all(np.isfinite(d.box).all() and np.isfinite(d.keypoints).all() for d in dets)
        if threshold == 0.0:  # the whole multi-person path (detector -> landmarks) on top of it
            people = BlazePosePeople(det_threshold=threshold, max_people=3)(img)
            assert 1 <= len(people) <= 3


# ------------------------------------------------------------------------------------------------
# 5. Lifter parser: hostile text
# ------------------------------------------------------------------------------------------------


def test_lifter_parser_on_hostile_text():
    """Run in a child with a timeout: the old parser raised on a 5000-digit number and took ~18 s on a 32k
    digit run (quadratic, so ~70 s on the 64k run here); the bound is generous and still catches that."""
    code = """
from instanthmr.teachers.lifter.protocol import parse_output
hostile = ['nose: ' + '0' * 5000 + '1 5 5', 'nose: ' + '1' * 64000, 'nose: 1 ' + '9' * 64000 + ' 1',
           'nose:' + ' ' * 64000 + 'x', 'nose: 1 1 ' + '1.' * 32000, ('left_eye: 1 2 ' + '3' * 200 + '\\n') * 2000,
           '-' * 200000 + 'nose: 1 2 3']
for fmt in ('bins', 'decimal'):
    for text in hostile:
        _, mask, _ = parse_output(text, fmt)
        assert not mask.any(), text[:40]
print('ok')
"""
    r = run_tool("-c", code, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_lifter_parser_decimal_range():
    from instanthmr.teachers.lifter.protocol import COCO_WHOLEBODY_INDEX, parse_output

    text = ("nose: 300 0.5 0.1\nleft_eye: 1e6 0 0\nright_eye: 0.5 -1.5 1.5\nleft_ear: 1.6 0 0\n"
            "right_ear: 0.25 -0.125 1\nleft_shoulder: 1000000 0 0\n")
    parsed, mask, _ = parse_output(text, "decimal")
    found = {n for n, i in COCO_WHOLEBODY_INDEX.items() if mask[i]}
    assert found == {"right_eye", "right_ear"}  # the protocol's range is [-1, 1] plus a 0.5 margin
    np.testing.assert_allclose(parsed[COCO_WHOLEBODY_INDEX["right_ear"]], [0.25, -0.125, 1.0])


# ------------------------------------------------------------------------------------------------
# 6. Unwritable outputs: refused before the work, one line, exit 2; outputs written atomically
# ------------------------------------------------------------------------------------------------


def test_export_onnx_refuses_an_unwritable_out_before_exporting(tmp_path):
    r = run_tool("tools/export_onnx.py", "--random-init", "--config", "instanthmr_tiny_test",
                 "--out", unwritable(tmp_path, "x.onnx"))
    assert r.returncode == 2 and r.stdout == ""
    assert one_error_line(r.stderr).startswith("error: cannot write --out ")


def test_export_failing_parity_leaves_no_file(tmp_path, monkeypatch):
    from instanthmr.training import export
    from instanthmr.training.model import build_model
    from instanthmr.training.model.random_init import randomize_

    out = tmp_path / "m.onnx"
    out.write_bytes(b"the previous good file")
    monkeypatch.setattr(export, "check_parity", lambda *a, **k: {"ok": False, "precision": "fp32", "provider": "x",
                                                                  "batch": 1, "tolerance": 1e-4, "skipped": None,
                                                                  "max_abs_err": {"joints_3d": 1.0}})
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)  # two shared cores: one thread is much faster than two contended ones
    try:
        with pytest.raises(export.ExportError, match=r"m\.onnx: .*nothing was written"):
            export.export_onnx(randomize_(build_model("instanthmr_tiny_test")), out)
    finally:
        torch.set_num_threads(n)
    assert out.read_bytes() == b"the previous good file"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_quantize_refuses_an_unwritable_out(tmp_path):
    r = run_tool("tools/quantize_onnx.py", str(STARTER_MODEL), "--out", unwritable(tmp_path, "q.onnx"),
                 "--mode", "dynamic")
    assert r.returncode == 2 and r.stdout == ""
    assert one_error_line(r.stderr).startswith("error: cannot write --out ")


def test_quantize_calib_dir_with_only_unreadable_images(tmp_path):
    """Issue item 8: it used to calibrate on other media and exit 0."""
    calib = tmp_path / "photos"
    calib.mkdir()
    for i in range(3):
        (calib / f"p{i}.jpg").write_bytes(np.random.default_rng(i).integers(0, 256, 2000, np.uint8).tobytes())
    out = tmp_path / "q.onnx"
    r = run_tool("tools/quantize_onnx.py", str(STARTER_MODEL), "--out", out, "--calib-dir", calib)
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert "--calib-dir" in line and "none of its 3 images could be read" in line
    assert not out.exists()


def test_bench_refuses_an_unwritable_json_before_the_benchmark(tmp_path, shared_data):
    r = run_tool("tools/bench.py", "--video", shared_data / "videos" / "mmpose_demo_5frames.mp4", "--random-init",
                 "--detector", "mediapipe", "--max-frames", "2", "--warmup", "0",
                 "--json", unwritable(tmp_path, "x.json"))
    assert r.returncode == 2 and r.stdout == ""  # nothing ran: no table, no "wrote"
    assert one_error_line(r.stderr).startswith("error: cannot write --json ")


# ------------------------------------------------------------------------------------------------
# 2. Training: SIGTERM saves like Ctrl-C; --resume auto says where; metrics.csv holds one history
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def syn_shards(tmp_path_factory) -> Path:
    from instanthmr.training.data.synthetic import write_synthetic_shards

    return write_synthetic_shards(tmp_path_factory.mktemp("syn"), 48, seed=0, shard_size=16)


def _train_cmd(shards: Path, out: Path, steps: int, *extra) -> list:
    return ["tools/train.py", "--config", "configs/train_smoke.yaml", "--threads", "1",
            "--set", f"data.train=[{shards}]", "--set", f"run.out_dir={out}", "--set", "run.progress=false",
            "--set", "run.log_every=1", "--set", "run.ckpt_every=5", "--set", f"optim.steps={steps}", *extra]


def _metric_steps(out: Path) -> list[int]:
    path = out / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [int(float(r["step"])) for r in csv.DictReader(f) if r.get("step")]


def _start(cmd: list, log: Path) -> subprocess.Popen:
    return subprocess.Popen([PY, *map(str, cmd)], cwd=ROOT, stdout=open(log.with_suffix(".out"), "w"),
                            stderr=open(log, "w"), text=True)


def _wait_until(proc: subprocess.Popen, ready, what: str, timeout: float = 240.0) -> None:
    t0 = time.time()
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended (rc {proc.returncode}) before {what}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"no {what} after {timeout} s")
        time.sleep(0.2)


def _ckpt_step(path: Path) -> int:
    from instanthmr.training.model import read_checkpoint

    return int(read_checkpoint(path)["step"])


def test_train_sigkill_sigterm_resume_keep_one_history(syn_shards, tmp_path):
    """The issue: a kill left no checkpoint, ``--resume auto`` restarted at 0 silently and metrics.csv then
    held steps 5-40 followed by 5-20. Now: SIGKILL -> resume from the last periodic checkpoint with the
    metrics after it cut away; SIGTERM -> a checkpoint at the current step, exit 143; the final log has
    every step exactly once."""
    out = tmp_path / "run"
    # 1. killed hard after step 7: last.pt is the periodic one of step 5, metrics.csv runs further
    p = _start(_train_cmd(syn_shards, out, 1000), tmp_path / "a.err")
    _wait_until(p, lambda: max(_metric_steps(out), default=0) >= 7, "step 7")
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    s_ckpt = _ckpt_step(out / "last.pt")
    assert s_ckpt % 5 == 0 and s_ckpt >= 5 and max(_metric_steps(out)) >= 7
    # 2. resumed, then stopped by SIGTERM: it saves where it is
    p = _start(_train_cmd(syn_shards, out, 1000, "--resume", "auto"), tmp_path / "b.err")
    _wait_until(p, lambda: max(_metric_steps(out), default=0) >= s_ckpt + 3
                and (tmp_path / "b.err").read_text().count("resume:") == 1, "3 resumed steps")
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=120) == 143
    err = (tmp_path / "b.err").read_text()
    assert f"resume: continuing from {out / 'last.pt'} at step {s_ckpt} of 1000" in err
    stop = [ln for ln in err.splitlines() if ln.startswith("stopped by SIGTERM")]
    assert len(stop) == 1 and "saved" in stop[0] and "Traceback" not in err
    t = _ckpt_step(out / "last.pt")
    assert t >= s_ckpt + 3 and f"at step {t};" in stop[0]
    # 3. resumed to the end: one history, every step once
    r = run_tool(*_train_cmd(syn_shards, out, t + 2, "--resume", "auto"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resume: continuing from {out / 'last.pt'} at step {t} of {t + 2}" in r.stderr
    assert _metric_steps(out) == list(range(1, t + 3))


def test_train_resume_auto_says_when_it_starts_fresh(syn_shards, tmp_path, capfd):
    from instanthmr.training.config import load_config
    from instanthmr.training.trainer import Trainer

    cfg = load_config("configs/train_smoke.yaml", [f"data.train=[{syn_shards}]", f"run.out_dir={tmp_path}",
                                                   "run.progress=false"])
    Trainer(cfg, resume="auto")
    assert f"resume: no checkpoint at {tmp_path / 'last.pt'}; starting fresh at step 0" in capfd.readouterr().err


def test_a_corrupt_shard_gives_one_line_and_a_summary(syn_shards, tmp_path, capfd):
    """Issue item 9: a shard damaged in the middle (header intact, arrays not) printed a warning per instance
    (680 lines); now one line for the file and a summary."""
    import shutil

    from instanthmr.training.config import load_config
    from instanthmr.training.trainer import Trainer

    data = tmp_path / "shards"
    shutil.copytree(syn_shards, data)
    bad = sorted(data.glob("*.npz"))[1]
    damaged_copy(bad, bad, nbytes=2000)
    cfg = load_config("configs/train_smoke.yaml", [f"data.train=[{data}]", f"run.out_dir={tmp_path / 'run'}",
                                                   "run.progress=false", "optim.steps=6"])
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Trainer(cfg).fit()  # 6 steps x 8 = one epoch of 48: every shard is read
    finally:
        torch.set_num_threads(n)
    warnings = [ln for ln in capfd.readouterr().err.splitlines()
                if ln.startswith("warning:") and "tensorboard" not in ln]
    assert len(warnings) == 2, warnings
    assert bad.name in warnings[0] and "unreadable shard" in warnings[0]
    assert "training samples were replaced" in warnings[1]


# ------------------------------------------------------------------------------------------------
# 2, 3, 9. Annotators: signals, damaged video, exit codes
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def damaged_clip(shared_data, tmp_path_factory) -> Path:
    return damaged_copy(shared_data / FOOTBALL, tmp_path_factory.mktemp("dmg") / "football_damaged.mp4")


def test_annotate_mediapipe_reads_a_damaged_video_to_the_end(damaged_clip, shared_data, tmp_path):
    """Issue item 3: 100 kB of random bytes in the middle of a real clip stopped the annotator at frame 131
    of 257 although OpenCV decodes 251 of them."""
    import cv2
    from test_annotate_mediapipe import StubTeacher

    from instanthmr.training.annotate_mediapipe import annotate

    cap = cv2.VideoCapture(str(damaged_clip))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    c = annotate([damaged_clip], tmp_path / "o", teacher=StubTeacher(), embed=False, shard_size=64)
    assert c.damaged_frames > 0 and c.faults
    assert c.labelled + c.damaged_frames == total  # every frame of the container accounted for
    assert c.labelled > total * 0.9  # ... and read to the end, not stopped at the damage
    frames = sorted(int(k.split("#")[1]) for k in ShardReader(tmp_path / "o").inputs)
    assert frames[-1] == total - 1 and len(c.video_notes) == 1 and "damaged frames" in c.video_notes[0]


def test_annotate_sam3d_frame_reader_skips_damaged_frames(damaged_clip):
    from instanthmr.cli.annotate_sam3d import iter_frames, list_inputs

    todo = list_inputs(None, damaged_clip, every=1)
    log = FrameLog()
    got = list(iter_frames(todo, True, log))
    assert sorted(k for k, _, _ in got) == sorted(k for k, _, _ in todo)  # every key exactly once
    bad = [k for k, _, img in got if img is None]
    assert len(bad) == log.unreadable > 0 and len(got) - len(bad) > 0.9 * len(todo)


def test_annotate_mediapipe_cli_damaged_and_unreadable_inputs_exit_1(damaged_clip, tmp_path):
    """Issue item 9: annotate_mediapipe exited 0 with unreadable inputs while annotate_sam3d exited 1."""
    mediapipe_ready()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    r = run_tool("tools/annotate_mediapipe.py", damaged_clip, broken, "--out", tmp_path / "o", "--every", "50",
                 "--fast", "--no-hands")
    assert r.returncode == 1, r.stderr[-2000:]
    assert "h264" not in r.stderr  # FFmpeg's per-packet lines are silenced: our one line per video instead
    notes = [ln for ln in r.stderr.splitlines() if "damaged frame" in ln]
    assert len(notes) == 1 and str(damaged_clip) in notes[0]
    assert "1 unreadable" in r.stdout and "broken.jpg" in r.stderr
    assert max(int(k.split("#")[1]) for k in ShardReader(tmp_path / "o").inputs) == 250  # past the damage


def test_annotate_mediapipe_exit_code_says_whether_everything_was_read(tmp_path, monkeypatch, capsys):
    """Model-free (a stub teacher): 0 when every input was read, 1 when one was not (as annotate_sam3d)."""
    import cv2
    from test_annotate_mediapipe import StubTeacher

    from instanthmr.cli.annotate_mediapipe import main
    from instanthmr.teachers import mediapipe as teacher_module

    monkeypatch.setattr(teacher_module, "MediaPipeTeacher", lambda *a, **k: StubTeacher())
    good = tmp_path / "in" / "good.png"
    good.parent.mkdir()
    cv2.imwrite(str(good), np.full((48, 64, 3), 120, np.uint8))
    assert main([str(good), "--out", str(tmp_path / "o1")]) == 0
    (good.parent / "broken.jpg").write_bytes(b"not a jpeg")
    capsys.readouterr()
    assert main([str(good.parent), "--out", str(tmp_path / "o2")]) == 1
    assert "broken.jpg" in capsys.readouterr().err
    assert ShardReader(tmp_path / "o2").inputs == {"in/good.png"}


def test_annotate_mediapipe_sighup_keeps_finished_inputs_and_resumes(shared_data, tmp_path):
    mediapipe_ready()
    out = tmp_path / "o"
    cmd = ["tools/annotate_mediapipe.py", shared_data / FOOTBALL, "--out", out, "--every", "10", "--fast",
           "--no-hands", "--shard-size", "1"]
    p = _start(cmd, tmp_path / "a.err")
    _wait_until(p, lambda: len(list(out.glob("*.npz"))) >= 3, "3 shards")
    p.send_signal(signal.SIGHUP)
    assert p.wait(timeout=120) == 129
    err = (tmp_path / "a.err").read_text()
    assert "Traceback" not in err
    assert one_error_line(err).startswith("[annotate_mediapipe] stopped by SIGHUP: finished inputs are saved")
    done = ShardReader(out).inputs  # every shard on disk is whole
    assert len(done) >= 3
    r = run_tool(*cmd)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{len(done)} already done" in r.stdout
    assert len(ShardReader(out).inputs) == 26  # 257 frames, every 10th: nothing lost, nothing twice
    assert len(ShardReader(out)) == sum(1 for _ in ShardReader(out))


def test_annotate_llm_sigterm_keeps_finished_people(tmp_path, monkeypatch, capsys):
    """A real SIGTERM to this process in the middle of the second batch: the first batch stays labelled."""
    from test_annotate_llm import people_npz

    from instanthmr.cli import annotate_llm
    from instanthmr.teachers.lifter import format_target
    from instanthmr.teachers.lifter.llm import Generation, LifterLM

    inp, kp3d = people_npz(tmp_path / "people.npz", 4)

    class StoppedLM:
        batches = 0

        def generate(self, batch):
            self.batches += 1
            if self.batches == 2:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(10)  # the handler raises before this ends
            return [Generation(format_target(kp3d[0]), 100, False) for _ in batch]

    monkeypatch.setattr(LifterLM, "load", classmethod(lambda cls, *a, **k: StoppedLM()))
    out = tmp_path / "labels"
    before = signal.getsignal(signal.SIGTERM)
    rc = annotate_llm.main(["--input", str(inp), "--out", str(out), "--base-model", "unused", "--batch-size", "2"])
    assert rc == 143
    assert one_error_line(capsys.readouterr().err).startswith("stopped by SIGTERM: finished people are saved")
    assert ShardReader(out).inputs == {"p0", "p1"} and len(ShardReader(out)) == 2
    assert signal.getsignal(signal.SIGTERM) == before  # the tool restored the handler


# ------------------------------------------------------------------------------------------------
# 8, 9. Messages
# ------------------------------------------------------------------------------------------------


def test_annotate_llm_missing_base_model_folder(tmp_path, capsys):
    from instanthmr.cli import annotate_llm

    np.savez(tmp_path / "p.npz", kp2d=np.random.default_rng(0).uniform(0, 100, (2, 133, 2)))
    for missing in ("/missing/folder", str(tmp_path / "nope"), "./not/here/either"):
        rc = annotate_llm.main(["--input", str(tmp_path / "p.npz"), "--out", str(tmp_path / "o"),
                                "--base-model", missing])
        assert rc == 2
        assert one_error_line(capsys.readouterr().err) == f"error: base model folder not found: {missing}"


def test_not_an_instanthmr_model(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from instanthmr.runtime.hmr import InstantHMR
    from instanthmr.runtime.session import ModelLoadError

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what every ONNX Runtime reads
    onnx.save(model, str(tmp_path / "other.onnx"))
    with pytest.raises(ModelLoadError, match="not an InstantHMR model"):
        InstantHMR(tmp_path / "other.onnx", device="cpu")
