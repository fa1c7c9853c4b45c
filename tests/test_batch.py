"""tools/batch.py: inputs, the job manifest, resuming, the local pool and Ray (the same outputs, a worker killed
mid-job), an object-store URL as --out, and MediaPipe teacher annotation on the same engine.

The pose jobs run the tiny random-init network on box files (fast, and the outputs are exact functions of the
inputs). Ray tests skip when ray is not installed (python install.py --extras scale).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from instanthmr.cli import batch
from instanthmr.runner import jobs
from instanthmr.runner.engines import EngineConfig
from instanthmr.runner.jobs import BatchError, JobManifest, collect_inputs, common_root, input_key
from instanthmr.training.shard_job import SHARD_MANIFEST_NAME, shard_job, shard_tasks

BOXES = {0: [[300, 40, 620, 530]], 2: [[300, 40, 620, 530], [650, 60, 900, 500]], 4: [[310, 40, 630, 530]]}
FRAMES = {"a.mp4": 5, "sub/b.mp4": 8, "sub/c.jpg": 1}  # --max-frames 8


@pytest.fixture(scope="module")
def clips(tmp_path_factory, shared_data) -> Path:
    """Two videos and a photo in a small tree (copied: a test may add files next to them)."""
    root = tmp_path_factory.mktemp("media") / "clips"
    (root / "sub").mkdir(parents=True)
    shutil.copy(shared_data / "videos" / "mmpose_demo_5frames.mp4", root / "a.mp4")
    shutil.copy(shared_data / "videos" / "mmhuman3d_single_person_demo.mp4", root / "sub" / "b.mp4")
    shutil.copy(shared_data / "images" / "romp_demo" / "Leo_Messi.jpg", root / "sub" / "c.jpg")
    return root


@pytest.fixture(scope="module")
def boxes(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("boxes") / "boxes.json"
    path.write_text(json.dumps({"frames": [{"frame_index": i, "boxes": b} for i, b in BOXES.items()]}))
    return path


def _argv(inputs, out, model, boxes, *extra) -> list[str]:
    inputs = [inputs] if isinstance(inputs, (str, Path)) else inputs
    return [*map(str, inputs), "--out", str(out), "--model", str(model), "--detector", str(boxes), "--device", "cpu",
            "--formats", "json,npz,csv,bvh", "--max-frames", "8", "--quiet", *extra]


@pytest.fixture(scope="module")
def local_run(clips, boxes, random_onnx, tmp_path_factory) -> Path:
    """The job on one in-process worker: the reference the other engines must reproduce."""
    out = tmp_path_factory.mktemp("local") / "out"
    assert batch.main(_argv(clips, out, random_onnx, boxes, "--workers", "1")) == 0
    return out


def _files(out: Path) -> dict[str, Path]:
    return {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file() and p.name != jobs.MANIFEST_NAME}


def _without_timings(doc: dict) -> dict:
    for f in doc["frames"]:
        f.pop("timings", None)
    doc.pop("summary", None)
    return doc


def assert_same_outputs(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    for name in fa:
        if name.endswith(".json"):  # per-frame timings differ run to run; everything else is exact
            assert _without_timings(json.loads(fa[name].read_text())) == _without_timings(json.loads(fb[name].read_text())), name
        else:
            assert fa[name].read_bytes() == fb[name].read_bytes(), name


def _records(out: Path) -> dict[str, dict]:
    return JobManifest(out / jobs.MANIFEST_NAME).records


def _kill_worker_of(nth: int, killed: list):
    """An ``on_event`` hook that SIGKILLs the worker process the ``nth`` input (1-based) was just handed to."""
    started = []

    def hook(kind, task, worker):
        if kind == "start":
            started.append(task["key"])
            if len(started) == nth and not killed:
                os.kill(int(worker["pid"]), signal.SIGKILL)
                killed.append(task["key"])

    return hook


# --------------------------------------------------------------------------------------------------
# inputs and manifest (no media needed)
# --------------------------------------------------------------------------------------------------

def test_inputs_from_folders_globs_and_csv_lists(tmp_path):
    v = tmp_path / "v"
    (v / "x").mkdir(parents=True)
    for name in ("a.mp4", "x/b.MOV", "x/c.png", "notes.txt"):
        (v / name).write_bytes(b"")
    (tmp_path / "list.csv").write_text("path,bytes,label\nv/a.mp4,123,1\nmissing.mp4,,2\nv/notes.txt,5,3\n")

    got = collect_inputs([str(v), str(tmp_path / "list.csv"), str(tmp_path / "v" / "**" / "*.png")])
    assert [p.relative_to(tmp_path).as_posix() for p in got.files] == ["v/a.mp4", "v/x/b.MOV", "v/x/c.png",
                                                                      "missing.mp4"]  # a.mp4 and c.png once
    assert [(p.name, why) for p, why in got.skipped] == [("notes.txt", "not an image or video file")]
    assert got.sizes[v / "a.mp4"] == 123 and tmp_path / "missing.mp4" not in got.sizes  # sizes from the list
    root = common_root(got.files)
    assert root == tmp_path and input_key(got.files[1], root) == "v/x/b.MOV"
    assert common_root([v / "a.mp4", v / "x" / "b.MOV"]) == v
    with pytest.raises(BatchError, match="outside"):
        input_key(tmp_path / "elsewhere.mp4", v)
    for bad, match in ((str(tmp_path / "nope.mp4"), "not found"), (str(v / "notes.txt"), "not an image"),
                       (str(tmp_path / "*.avi"), "no file matches")):
        with pytest.raises(BatchError, match=match):
            collect_inputs([bad])


def test_manifest_keeps_the_last_record_survives_a_torn_line_and_compacts(tmp_path):
    m = JobManifest(tmp_path / "m.jsonl")
    m.job = {"tool": "batch"}
    m.record({"input": "a.mp4", "state": "failed", "reason": "boom"})
    m.record({"input": "a.mp4", "state": "done", "frames": 3})
    m.record({"input": "b.mp4", "state": "done", "frames": 1})
    m.close()
    with open(tmp_path / "m.jsonl", "a") as f:
        f.write('{"input": "c.mp4", "sta')  # a crash in the middle of a line
    again = JobManifest(tmp_path / "m.jsonl")
    assert again.state("a.mp4") == "done" and again.records["a.mp4"]["frames"] == 3
    assert again.state("c.mp4") is None and again.counts() == {"done": 2, "failed": 0, "skipped": 0}
    again.record({"input": "d.mp4", "state": "done"})  # appended on a line of its own, after the torn one
    assert JobManifest(tmp_path / "m.jsonl").state("d.mp4") == "done"
    again.job = {"tool": "batch"}
    again.compact()
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0]) == {"job": {"tool": "batch"}}
    assert not list(tmp_path.glob("*.tmp"))


# --------------------------------------------------------------------------------------------------
# the local job
# --------------------------------------------------------------------------------------------------

def test_local_job_mirrors_inputs_records_figures_and_matches_the_demo(local_run, clips, boxes, random_onnx, tmp_path):
    names = set(_files(local_run))
    for key in FRAMES:
        assert {f"{key}.json", f"{key}.npz", f"{key}.csv"} <= names, key
    assert {"a.mp4_track1.bvh", "sub/b.mp4_track1.bvh"} <= names
    assert not (local_run / jobs.STAGING_DIR).exists()

    recs = _records(local_run)
    assert {k: (r["state"], r["frames"]) for k, r in recs.items()} == {k: ("done", n) for k, n in FRAMES.items()}
    assert recs["a.mp4"]["people"] == 2 and recs["sub/c.jpg"]["people"] == 1  # distinct tracks
    assert sorted(recs["a.mp4"]["outputs"]) == sorted(n for n in names if n.startswith("a.mp4"))

    # the same as the demo itself on that input: shared code, not a copy
    from instanthmr.cli import demo

    ref = tmp_path / "demo.json"
    assert demo.main(["--video", str(clips / "a.mp4"), "--model", str(random_onnx), "--detector", str(boxes),
                      "--device", "cpu", "--no-spawn", "--max-frames", "8", "--save-json", str(ref)]) == 0
    got, want = json.loads((local_run / "a.mp4.json").read_text()), json.loads(ref.read_text())
    assert [len(f["persons"]) for f in got["frames"]] == [1, 1, 2, 2, 1]
    assert _without_timings(got)["frames"] == _without_timings(want)["frames"]


def test_rerun_skips_done_records_failures_and_retries_them_on_request(clips, boxes, random_onnx, tmp_path, capsys):
    tree = tmp_path / "clips"
    shutil.copytree(clips, tree)
    out = tmp_path / "out"
    assert batch.main(_argv(tree, out, random_onnx, boxes, "--workers", "1")) == 0
    stamps = {n: p.stat().st_mtime_ns for n, p in _files(out).items()}
    capsys.readouterr()

    (tree / "sub" / "broken.mp4").write_bytes(b"not a video")
    assert batch.main(_argv(tree, out, random_onnx, boxes, "--workers", "1")) == 1
    cap = capsys.readouterr()
    assert "4 input(s) under" in cap.out and "1 to run, 3 done before" in cap.out
    rec = _records(out)["sub/broken.mp4"]
    assert rec["state"] == "failed" and "broken.mp4" in rec["reason"] and rec["attempts"] == 1
    assert "failed: sub/broken.mp4" in cap.err
    assert {n: p.stat().st_mtime_ns for n, p in _files(out).items()} == stamps  # nothing redone or added

    assert batch.main(_argv(tree, out, random_onnx, boxes, "--workers", "1")) == 1  # still failed, not retried
    assert "0 to run, 3 done before, 1 failed before" in capsys.readouterr().out
    (tree / "sub" / "broken.mp4").unlink()
    shutil.copy(tree / "a.mp4", tree / "sub" / "broken.mp4")  # fixed
    assert batch.main(_argv(tree, out, random_onnx, boxes, "--workers", "1", "--retry-failed")) == 0
    assert _records(out)["sub/broken.mp4"]["state"] == "done"
    assert (out / "sub" / "broken.mp4.json").is_file()

    # other options would mix two kinds of results in one folder
    assert batch.main(_argv(tree, out, random_onnx, boxes, "--det-confidence", "0.3")) == 2
    assert "other options" in capsys.readouterr().err


def test_bad_arguments_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:  # outputs are the job's: no such flag
        batch.main([str(tmp_path), "--out", str(tmp_path), "--save-json", "x.json"])
    assert e.value.code == 2
    capsys.readouterr()
    taken = tmp_path / "taken.txt"
    taken.write_text("a file")
    for argv, message in ((["x.mp4", "--out", str(tmp_path), "--formats", "json,gif"], "--formats: unknown ['gif']"),
                          ([str(tmp_path), "--out", str(tmp_path), "--det-confidence", "2"],
                           "--det-confidence is a detection score in [0, 1], got 2.0"),
                          ([str(tmp_path), "--out", str(tmp_path), "--workers", "0"], "--workers must be >= 1"),
                          ([str(tmp_path), "--out", str(taken)], f"--out {taken} is a file; give a folder")):
        assert batch.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err  # one line, no usage, no traceback
    assert taken.read_text() == "a file"
    assert batch.main([str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip().endswith(f"input not found: {tmp_path / 'none'}")


def test_an_object_store_url_is_an_output_folder(local_run, clips, boxes, random_onnx, tmp_path):
    fsspec = pytest.importorskip("fsspec")
    url = "memory://instanthmr-test/poses"
    argv = _argv(clips, url, random_onnx, boxes, "--workers", "1", "--manifest", str(tmp_path / "m.jsonl"))
    assert batch.main(argv) == 0
    fs = fsspec.filesystem("memory")
    for name in _files(local_run):
        assert fs.exists(f"/instanthmr-test/poses/{name}"), name
    with fs.open("/instanthmr-test/poses/a.mp4.npz", "rb") as f:
        assert f.read() == (local_run / "a.mp4.npz").read_bytes()
    uploaded = fs.cat("/instanthmr-test/poses/" + jobs.MANIFEST_NAME).decode().splitlines()
    assert len(uploaded) == 1 + len(FRAMES)  # the job line and one line per input
    fs.rm("/instanthmr-test", recursive=True)


def test_local_pool_survives_a_killed_worker(local_run, clips, boxes, random_onnx, tmp_path):
    out, killed = tmp_path / "pool", []
    assert batch.main(_argv(clips, out, random_onnx, boxes, "--workers", "2"), on_event=_kill_worker_of(3, killed)) == 0
    assert killed
    recs = _records(out)
    assert recs[killed[0]]["attempts"] == 2 and all(r["state"] == "done" for r in recs.values())
    assert_same_outputs(local_run, out)


# --------------------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------------------

@pytest.fixture
def ray_local(monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # no token written to ~/.ray for a throw-away local Ray
    yield


def test_ray_job_matches_the_local_one_and_survives_a_killed_worker(ray_local, local_run, clips, boxes, random_onnx,
                                                                    tmp_path, capsys):
    out, killed = tmp_path / "ray", []
    argv = _argv(clips, out, random_onnx, boxes, "--ray", "--workers", "2")
    assert batch.main(argv, on_event=_kill_worker_of(3, killed)) == 0
    text = capsys.readouterr()
    assert killed and "2 worker(s) (Ray)" in text.out and "1 worker death(s), 1 input(s) retried" in text.out
    recs = _records(out)
    assert recs[killed[0]]["attempts"] == 2 and all(r["state"] == "done" for r in recs.values())
    assert len({r["worker"] for r in recs.values()}) >= 2  # spread over the workers
    assert_same_outputs(local_run, out)
    assert batch.main(argv) == 0  # a re-run skips everything (and starts no Ray)
    assert "0 to run, 3 done before" in capsys.readouterr().out


def test_teacher_annotation_on_ray_resumes_a_dead_workers_task_without_duplicates(ray_local, clips, mp_models,
                                                                                  tmp_path):
    from instanthmr.training.annotate_mediapipe import AnnotateWorker, annotate, expand_inputs, task_skip
    from instanthmr.training.data.shards import ShardReader

    inputs = [clips / "a.mp4", clips / "sub"]
    annotate(inputs, tmp_path / "plain", max_frames=3, shard_size=2)  # the reference: one process, no engine
    plain = ShardReader(tmp_path / "plain")

    out = tmp_path / "ray"
    items = expand_inputs(inputs)
    # a worker died half-way through a.mp4: its task folder holds the first 2 frames
    folder = next(t["folder"] for t in shard_tasks(items) if t["paths"] == [str(clips / "a.mp4")])
    annotate([clips / "a.mp4"], out / folder, max_frames=2, shard_size=1)
    options = {"every": 1, "max_frames": 3, "hands": True, "tiles": True, "embed": True, "shard_size": 2,
               "models_dir": None, "threads": 1}
    killed = []
    res = shard_job(items, out, AnnotateWorker, options, task_skip, label="annotate",
                    engine=EngineConfig(ray=True, workers=2), quiet=True, on_event=_kill_worker_of(1, killed))
    assert killed and res.failed == 0 and res.worker_deaths == 1 and res.done == 3  # a.mp4, b.mp4, the photo

    got = ShardReader(out)
    assert Counter(got[i]["source"] for i in range(len(got))) == Counter(plain[i]["source"] for i in range(len(plain)))
    by_source = {}
    for i in range(len(plain)):
        by_source.setdefault(plain[i]["source"], []).append(plain[i]["joints_2d"])
    for i in range(len(got)):
        ref = by_source[got[i]["source"]]
        assert any(np.allclose(got[i]["joints_2d"], r, atol=0.05) for r in ref), got[i]["source"]
    manifest = JobManifest(out / SHARD_MANIFEST_NAME).records
    a = next(r for r in manifest.values() if r["input"].endswith("a.mp4"))
    assert a["done_before"] == 2 and a["frames"] == 1  # resumed: only frame 2 was labelled again

    again = shard_job(items, out, AnnotateWorker, options, task_skip, label="annotate", engine=EngineConfig(ray=True),
                      quiet=True)
    assert again.done_before == 3 and again.done == 0 and len(ShardReader(out)) == len(got)


class _CountingWorker:
    """A worker for the engine that labels nothing: each task is done with its input count as frames."""

    def __init__(self, options: dict):
        self.options = options

    def load(self) -> dict:
        return {"host": "here", "pid": os.getpid()}

    def run(self, task: dict) -> dict:
        return {"state": "done", "frames": len(task["paths"]), "people": 0}


def test_shard_job_on_one_in_process_worker_records_and_resumes(tmp_path):
    items = [("video", tmp_path / "a.mp4"), ("image", tmp_path / "p" / "x.jpg"), ("image", tmp_path / "p" / "y.jpg")]
    run = dict(label="test", engine=EngineConfig(workers=1), quiet=True)
    res = shard_job(items, tmp_path / "out", _CountingWorker, {}, lambda task, done: [], **run)
    assert (res.total, res.done, res.failed, res.frames) == (2, 2, 0, 3)  # the video, the photos' folder
    again = shard_job(items, tmp_path / "out", _CountingWorker, {}, lambda task, done: [], **run)
    assert (again.done_before, again.done) == (2, 0)
    assert set(JobManifest(tmp_path / "out" / SHARD_MANIFEST_NAME).records) == {t["key"] for t in shard_tasks(items)}
