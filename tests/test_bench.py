"""tools/bench.py: JSON fields present and consistent, stride table, random-init labelling, bad input."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from tools import bench


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
                "machine", "strides"):
        assert key in rep, key
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
