"""tools/bench.py: JSON fields present and consistent, stride table, random-init labelling, bad input."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from instanthmr.cli import bench


@pytest.fixture(scope="module")
def clip(shared_data) -> Path:
    return shared_data / "videos" / "mmpose_demo_5frames.mp4"


def test_strides_parse():
    assert bench.parse_strides("1,2, 4") == [1, 2, 4]
    for bad in ("0", "a,b", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.parse_strides(bad)


def test_bench_json_fields_and_consistency(tmp_path, clip, random_onnx, capsys):
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps({"frames": [{"frame_index": i, "boxes": [[300, 40, 620, 530]]} for i in range(5)]}))
    out = tmp_path / "bench.json"
    rc = bench.main(["--video", str(clip), "--model", str(random_onnx), "--detector", str(boxes), "--device", "cpu",
                     "--detector-stride", "1,3", "--warmup", "1", "--max-frames", "4", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| stride | detector ms | HMR ms | total ms | FPS |" in text
    assert "RANDOM" not in text  # a real model file is not labelled random
    rep = json.loads(out.read_text())
    for key in ("video", "model", "random_init", "provider", "detector", "warmup", "measured_frames", "date",
                "machine", "strides", "load_before", "load_after"):
        assert key in rep, key
    assert "load average before/after" in text
    assert rep["random_init"] is False and rep["measured_frames"] == 4 and rep["warmup"] == 1
    assert [r["stride"] for r in rep["strides"]] == [1, 3]
    for r in rep["strides"]:
        assert r["frames"] == 4
        assert r["detector_calls"] == math.ceil(4 / r["stride"])
        assert r["persons_per_frame"] == pytest.approx(1.0)
        for stage in ("detector_ms", "hmr_ms", "total_ms", "wall_ms"):
            st = r[stage]
            assert set(st) == {"mean", "median", "p95", "min", "max"}
            assert 0 <= st["min"] <= st["median"] <= st["max"] and st["min"] <= st["mean"] <= st["max"]
            assert st["p95"] <= st["max"] + 1e-9
        assert r["total_ms"]["mean"] >= r["hmr_ms"]["mean"] + r["detector_ms"]["mean"] - 1e-6
        assert r["wall_ms"]["mean"] >= r["total_ms"]["mean"] - 1e-6
        assert r["fps"] == pytest.approx(1000.0 / r["total_ms"]["mean"])
        assert f"| {r['stride']} | {r['detector_ms']['mean']:.1f} |" in text


def test_bench_random_init_says_so(tmp_path, clip, capsys):
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps([[[300, 40, 620, 530]]] * 5))
    out = tmp_path / "r.json"
    rc = bench.main(["--video", str(clip), "--random-init", "--random-init-config", "instanthmr_tiny_test",
                     "--detector", str(boxes), "--device", "cpu", "--warmup", "0", "--max-frames", "2",
                     "--json", str(out)])
    assert rc == 0
    assert "RANDOM-INIT WEIGHTS" in capsys.readouterr().out
    rep = json.loads(out.read_text())
    assert rep["random_init"] is True and "RANDOM" in rep["note"]
    assert rep["strides"][0]["detector_calls"] == 2


def test_bench_bad_input(tmp_path, clip, random_onnx, capsys):
    assert bench.main(["--video", str(tmp_path / "none.mp4"), "--model", str(random_onnx)]) == 1
    assert "video not found" in capsys.readouterr().err
    assert bench.main(["--video", str(clip), "--model", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "m.onnx" in err and "--random-init" in err


def test_bench_gpu_table_on_cpu(tmp_path, shared_data, random_onnx, capsys):
    """tools/bench_gpu.py end to end on the CPU provider: every lever row, the fp16 copy, the re-encoded video,
    decode speed, strides, and the published column (its CUDA-graph rows exist only on CUDA)."""
    import shutil

    import cv2
    import onnx

    from instanthmr.cli import bench_gpu

    model = tmp_path / "net.onnx"
    shutil.copy(random_onnx, model)
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps({"frames": [{"frame_index": i, "boxes": [[60, 10, 160, 140]]} for i in range(8)]}))
    out = tmp_path / "gpu.json"
    rc = bench_gpu.main(["--video", str(shared_data / "videos" / "mmpose_demo_5frames.mp4"), "--model", str(model),
                         "--device", "cpu", "--detector", str(boxes), "--height", "144", "--frames", "8",
                         "--warmup", "2", "--runs", "3", "--warmup-calls", "1", "--batches", "1", "2",
                         "--strides", "1,2", "--cache-dir", str(tmp_path / "cache"), "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "published RTX 4070 FPS" in text and "| 1 |" in text and "30.9" in text and "53.8" in text
    rep = json.loads(out.read_text())
    half = tmp_path / "net.fp16.onnx"
    assert {p.key: p.value for p in onnx.load(str(half)).metadata_props}["precision"] == "fp16"
    rows = {(r["precision"], r["lever"], r["batch"]): r for r in rep["hmr"]}
    assert set(rows) == {(p, lv, b) for p in ("fp32", "fp16") for lv in ("plain", "io_binding") for b in (1, 2)}
    for r in rows.values():
        assert r["provider"] == "CPUExecutionProvider" and 0 < r["min_ms"] <= r["median_ms"]
        assert math.isclose(r["ms_per_person"], r["median_ms"] / r["batch"])
    assert rep["best_hmr"]["median_ms"] == min(r["median_ms"] for k, r in rows.items() if k[2] == 1)
    assert rep["video_size"] == [256, 144] and rep["decode"]["frames"] == 8 and rep["decode"]["fps"] > 0
    cap = cv2.VideoCapture(str(tmp_path / "cache" / "bench_gpu_144p.mp4"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (256, 144)
    cap.release()
    strides = rep["end_to_end"]["strides"]
    assert [s["stride"] for s in strides] == [1, 2] and all(s["frames"] == 6 for s in strides)
    assert rep["end_to_end"]["model"].endswith(".fp16.onnx") == (rep["best_hmr"]["precision"] == "fp16")
    assert rep["device_name"].startswith("CPU: ") and not rep["random_init"]


def test_bench_gpu_bad_input(tmp_path, random_onnx, capsys):
    from instanthmr.cli import bench_gpu

    assert bench_gpu.main(["--video", str(tmp_path / "none.mp4"), "--model", str(random_onnx), "--device", "cpu",
                           "--cache-dir", str(tmp_path), "--batches", "1", "--runs", "1"]) == 1
    assert "cannot open video" in capsys.readouterr().err
    assert bench_gpu.main(["--video", "x.mp4", "--model", str(tmp_path / "missing.onnx")]) == 1
    assert "model not found" in capsys.readouterr().err


def test_blocked_round_robin_times_every_variant_in_blocks():
    from instanthmr.runner.speed import blocked_round_robin_ms

    order = []
    fns = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    times = blocked_round_robin_ms(fns, runs=25, warmup=2, block=10)
    assert {k: len(v) for k, v in times.items()} == {"a": 25, "b": 25}
    assert all(t >= 0 for v in times.values() for t in v)
    # 2 warm-up rounds (a, b), then per block one untimed call + the timed ones: 11 a, 11 b, 11 a, 11 b, 6 a, 6 b
    runs = [(k, len(list(g))) for k, g in __import__("itertools").groupby(order[4:])]
    assert order[:4] == ["a", "b", "a", "b"] and runs == [("a", 11), ("b", 11)] * 2 + [("a", 6), ("b", 6)]


def test_bench_e2e_variants_and_levers(tmp_path, shared_data, capsys):
    """tools/bench_e2e.py on a tiny network and a 128-px RF-DETR export: one row per variant, levers as
    declared, the int8 network quantised only when a variant asks for it, ratios against straightforward."""
    import torch

    from instanthmr.cli import bench_e2e
    from instanthmr.training.export_detector import export_detector

    torch.manual_seed(0)
    det = export_detector("nano", tmp_path / "rf-detr-nano-128.onnx", pretrained=False, resolution=128)
    variants = ["straightforward", "int8-detector", "optimised-sync-fp32-net"]
    out = tmp_path / "e2e.json"
    rc = bench_e2e.main(["--video", str(shared_data / "videos" / "mmpose_demo_5frames.mp4"), "--random-init",
                         "--random-init-config", "instanthmr_tiny_test", "--detector", str(det),
                         "--fast-detector", str(det), "--detector-resolution", "128", "--variants",
                         ",".join(variants), "--frames", "3", "--warmup", "1", "--rounds", "2",
                         "--cache-dir", str(tmp_path / "cache"), "--json", str(out)])
    assert rc == 0
    rep = json.loads(out.read_text())
    rows = {r["variant"]: r for r in rep["rows"]}
    assert list(rows) == variants
    for v in variants:
        assert rows[v]["levers"] == {k: k in bench_e2e.LEVERS[v] for k in bench_e2e.LEVER_NAMES}
        assert len(rows[v]["runs"]) == 2 and rows[v]["fps_median"] > 0
        assert rows[v]["persons_per_frame"] == 1.0 and math.isclose(rows[v]["detector_calls_per_frame"], 1 / 3)
    assert rows["straightforward"]["ratios"] == [1.0, 1.0]
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert cached == ["rf-detr-nano-128.dynamic.int8.onnx"]  # no variant asked for the int8 network
    printed = capsys.readouterr().out
    assert "| optimised-sync-fp32-net |" in printed
    assert "load average before/after" in printed and isinstance(rep["load_before"], float)
    assert bench_e2e.main(["--variants", "nope", "--cache-dir", str(tmp_path)]) == 1
    assert "unknown variant" in capsys.readouterr().err


@pytest.mark.parametrize("run_loop", [False, True])
def test_bench_e2e_keypoint_and_in_flight_variants(tmp_path, shared_data, run_loop):
    """The runner loop's tracking wrapper in bench_e2e: keypoint crops keep the (fixed) person between detector
    runs, two frames in flight return every frame, each model at 1 thread by the rule on 2 cores. With
    --run-loop the same pipelines run through the demo's run loop: the same frames timed, the same detector
    runs, each stream's first frame untimed."""
    import torch

    from instanthmr.cli import bench_e2e
    from instanthmr.training.export_detector import export_detector

    torch.manual_seed(0)
    det = export_detector("nano", tmp_path / "rf-detr-nano-128.onnx", pretrained=False, resolution=128)
    out = tmp_path / "e2e.json"
    rc = bench_e2e.main(["--video", str(shared_data / "videos" / "mmpose_demo_5frames.mp4"), "--random-init",
                         "--random-init-config", "instanthmr_tiny_test", "--detector", str(det),
                         "--fast-detector", str(det), "--detector-resolution", "128", "--variants",
                         "keypoint,in-flight", "--frames", "4", "--warmup", "1", "--rounds", "1",
                         "--keypoint-stride", "2", "--cache-dir", str(tmp_path / "cache"), "--json", str(out)]
                        + (["--run-loop"] if run_loop else []))
    assert rc == 0
    rows = {r["variant"]: r for r in json.loads(out.read_text())["rows"]}
    for v in ("keypoint", "in-flight"):
        assert rows[v]["persons_per_frame"] == 1.0 and len(rows[v]["runs"][0]["frame_ms"]) == 4
        assert all(ms > 0 for ms in rows[v]["runs"][0]["frame_ms"])
    # detector runs: two of the four timed frames (stride 2; the stream's first frame, detected, runs untimed)
    assert rows["keypoint"]["detector_calls_per_frame"] == 0.5
    assert rows["in-flight"]["detector_calls_per_frame"] == 0.5


def test_bench_gpu_fp16_end_to_end_with_an_exported_detector(tmp_path, shared_data, random_onnx):
    """--e2e-precision fp16 with an .onnx detector: the detector's fp16 copy is made and both fp16 files run."""
    import shutil

    import torch

    from instanthmr.cli import bench_gpu
    from instanthmr.training.export_detector import export_detector

    torch.manual_seed(0)
    det = export_detector("nano", tmp_path / "det.onnx", pretrained=False, resolution=128)
    model = tmp_path / "net.onnx"
    shutil.copy(random_onnx, model)
    out = tmp_path / "gpu.json"
    rc = bench_gpu.main(["--video", str(shared_data / "videos" / "mmpose_demo_5frames.mp4"), "--model", str(model),
                         "--device", "cpu", "--detector", str(det), "--height", "144", "--frames", "5",
                         "--warmup", "1", "--runs", "2", "--warmup-calls", "1", "--batches", "1", "--strides", "2",
                         "--e2e-precision", "fp16",
                         "--cache-dir", str(tmp_path / "cache"), "--json", str(out)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["best_hmr"]["precision"] == "fp16" and rep["end_to_end"]["model"].endswith("net.fp16.onnx")
    assert (tmp_path / "det.fp16.onnx").is_file()
    assert rep["end_to_end"]["detector"] == "rfdetr-onnx"
    assert rep["end_to_end"]["detector_file"] == str(tmp_path / "det.fp16.onnx")


def test_bench_gpu_a_refused_variant_becomes_a_row(tmp_path, random_onnx, monkeypatch, capsys):
    """A lever the runtime refuses (as ONNX Runtime does a CUDA graph with CPU-placed nodes) is reported in
    its row and on stderr; the other variants are still timed."""
    from instanthmr.cli import bench_gpu
    from instanthmr.runtime import hmr as inference

    real = inference.InstantHMR

    class Refusing(real):
        def __init__(self, *a, io_binding=False, **k):
            if io_binding:
                raise RuntimeError("CUDA graph capture failed: nodes assigned to CPU\nsecond line")
            super().__init__(*a, io_binding=io_binding, **k)

    monkeypatch.setattr(inference, "InstantHMR", Refusing)
    rows = bench_gpu.hmr_latency({"fp32": random_onnx}, [1, 2], "cpu", runs=2, warmup=1)
    bad = [r for r in rows if "error" in r]
    assert [(r["lever"], r["batch"]) for r in bad] == [("io_binding", 1), ("io_binding", 2)]
    assert bad[0]["error"] == "CUDA graph capture failed: nodes assigned to CPU"
    assert sorted((r["lever"], r["batch"]) for r in rows if "median_ms" in r) == [("plain", 1), ("plain", 2)]
    assert "io_binding at batch 1: not measured" in capsys.readouterr().err
    table = bench_gpu.format_report({"device_name": "CPU: x", "onnxruntime": "1", "provider": "CPUExecutionProvider",
                                     "date": "d", "hmr": rows, "best_hmr": rows[-1], "video_size": [2, 2],
                                     "decode": {"frames": 1, "fps": 1.0}, "end_to_end": {"strides": []}, "notes": []})
    assert "| fp32 | io_binding | 1 | not run: CUDA graph capture failed" in table


def test_bench_mediapipe_cpu_stats_and_slow_frames():
    """bench_mediapipe's CPU columns are frame_stats' median / p95 of the CPU ms (none when a side did not
    report any), and the stall list names the frames over twice the median with whether the detector ran."""
    from instanthmr.cli.bench_mediapipe import cpu_stats, slow_frames

    assert cpu_stats([]) == {}
    assert cpu_stats([1.0, 2.0, 3.0, 4.0, 100.0]) == pytest.approx({"cpu_median": 3.0, "cpu_p95": 80.8})
    timed = [(0, i, ms) for i, ms in enumerate((10.0, 11.0, 30.0, 10.0, 23.0))]
    assert slow_frames(timed, [False, False, True, False, False]) == [(0, 2, 30.0, True), (0, 4, 23.0, False)]
    assert slow_frames([], []) == []


def test_load_average_is_said_the_same_way_everywhere_and_unknown_without_one(monkeypatch):
    """The benchmarks' one reading of the machine's load: a number where the OS keeps one, 'unknown' on an OS
    without ``os.getloadavg`` (Windows) instead of a crash before the report."""
    from instanthmr.runner import speed as common

    monkeypatch.setattr(common.os, "getloadavg", lambda: (1.25, 2.0, 3.0))
    assert common.load_average() == 1.25
    assert common.describe_load(1.25) == "load average 1.2"
    assert common.describe_load(1.25, 2.0) == "load average before/after 1.2/2.0"
    monkeypatch.delattr(common.os, "getloadavg")
    assert common.load_average() is None
    assert common.describe_load(None, 2.0) == "load average unknown"


def test_bench_mediapipe_report_says_the_load_before_and_after(capsys):
    """bench_mediapipe's report reads the load the benchmarks' one way (cli.common.describe_load): before and
    after the rounds, 'unknown' where the OS keeps none, and the whole report prints from made-up figures."""
    from instanthmr.cli.bench_mediapipe import print_report

    row = {"median": 10.0, "mean": 11.0, "p90": 14.0, "p95": 15.0, "frames": 20, "ratio_to_mediapipe_pose": 0.5,
           "p95_ratio_to_mediapipe_pose": 0.75, "persons_per_frame": 1.0, "detector_frames": 0.1,
           "median_detector_frames": 20.0, "median_other_frames": 10.0, "finish_ms_per_frame": 0.5,
           "slow_frames": [(0, 3, 25.0, True)]}
    report = {"smooth": None, "size": [1280, 720], "load_before": 1.25, "load_after": 2.0,
              "mediapipe_pose": {**row, "found": 1.0}, **{k: dict(row) for k in ("default", "hands", "body", "demo")},
              "hands_extra_ms": 5.0, "body_fit_extra_ms": 2.0, "body_fit_paired_ms": 1.5,
              "body_fit_paired_cpu_ms": 2.5, "per_extra_person_ms": 8.0, "per_extra_person_ms_demo": None}
    print_report(report)
    out = capsys.readouterr().out
    assert "20 timed frames per row; load average before/after 1.2/2.0)" in out
    assert "body fit, frame by frame (median of default minus --no-body-fit on the same frame, one person): +1.5 ms, " \
           "CPU +2.5 ms" in out
    print_report({**report, "load_after": None})
    assert "load average unknown" in capsys.readouterr().out
