"""core.probe (the opt-in per-frame breakdown) and tools/frame_breakdown.py (issue 23, item 3)."""

from __future__ import annotations

import gc
import json
import time

import numpy as np
import pytest

from instanthmr.core import probe
from instanthmr.core.probe import FrameProbe


def test_off_by_default_nothing_recorded():
    assert not probe.enabled()
    with probe.span("x"):  # no probe: a shared do-nothing context, counts dropped
        probe.count("y")
    p = FrameProbe()
    assert p.frames == [] and not p.spans and not p.counts


def test_spans_and_counts_go_to_the_current_frame():
    p = FrameProbe()
    with p.active():
        assert probe.enabled()
        with p.frame(7):
            with probe.span("a"):
                time.sleep(0.01)
            with probe.span("a"):
                pass
            probe.count("hand:search-found")
            probe.count("hand:search-found", 2)
        with p.frame(8):
            probe.count("other")
    assert not probe.enabled()
    f, g = p.frames
    assert f["index"] == 7 and f["calls"] == {"a": 2} and f["counts"] == {"hand:search-found": 3}
    assert 10.0 <= f["spans"]["a"] <= f["ms"] and f["spans_cpu"]["a"] >= 0.0  # ms, the sleep inside
    assert g["index"] == 8 and g["spans"] == {} and g["counts"] == {"other": 1}  # nothing carried over


def test_garbage_collections_are_timed_and_one_probe_at_a_time():
    p = FrameProbe()
    with p.active():
        with pytest.raises(RuntimeError):
            with FrameProbe().active():
                pass
        with p.frame(0):
            gc.collect(0)
    assert p.frames[0]["counts"].get("gc:gen0") == 1 and p.frames[0]["calls"]["gc"] == 1
    assert p._gc not in gc.callbacks  # removed when the block ends


def test_breakdown_causes_and_slowest():
    from instanthmr.cli.frame_breakdown import causes, slowest, step_table

    def frame(i, ms, hand_cpu, counts=None):
        return {"index": i, "round": 1, "ms": ms, "cpu_ms": ms, "spans": {"invoke:hand": hand_cpu},
                "spans_cpu": {"invoke:hand": hand_cpu}, "calls": {"invoke:hand": 1 if hand_cpu < 15 else 3},
                "counts": counts or {}}

    frames = [frame(i, 30.0 + i * 0.1, 10.0) for i in range(19)] + [frame(19, 60.0, 30.0, {"hand:search-found": 1})]
    table = step_table(frames)
    assert table["invoke:hand"][0] == 10.0 and table["invoke:hand cpu"][1] == pytest.approx(11.0)
    assert table["#hand:search-found"] == (0.0, 0.05)
    (worst,) = slowest(frames)  # 5 % of 20
    assert worst["index"] == 19
    assert causes(worst, {"invoke:hand": 10.0}) == ["invoke:hand +20 (3x)", "hand:search-found 1"]
    assert causes(frames[0], {"invoke:hand": 10.0}) == []  # a median frame has nothing beyond itself


def test_breakdown_runs_the_demo_loop(mp_models, tmp_path, capsys):
    """The tool on a short synthetic clip: every frame recorded, the models' invokes named, a report."""
    import cv2

    from instanthmr.cli.frame_breakdown import main

    path = tmp_path / "clip.avi"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (128, 72))
    for i in range(6):
        out.write(np.full((72, 128, 3), 30 * i, np.uint8))
    out.release()
    rc = main([str(path), "--frames", "6", "--rounds", "1", "--json", str(tmp_path / "b.json")])
    assert rc == 0
    rep = json.loads((tmp_path / "b.json").read_text())["clips"]["clip.avi"]
    assert len(rep["per_frame"]) == 6
    assert 0 < rep["median"] <= rep["p95"] and 0 < rep["cpu_median"] <= rep["cpu_p95"]
    assert all(f["spans"].get("invoke:pose_detection", 0) > 0 for f in rep["per_frame"])  # nobody: detector
    # the loop's own steps, each inside the frame's time
    assert all(0 < f["spans"]["tracking"] <= f["ms"] and "outputs" in f["spans"] for f in rep["per_frame"])
    printed = capsys.readouterr().out
    assert "slowest 5 % by CPU" in printed and "load average " in printed


def test_breakdown_keeps_one_demo_json_per_clip():
    """--save-json with several clips: each clip's JSON beside PATH under its own name (the last clip no longer
    overwrites the others); one clip: PATH itself."""
    from pathlib import Path

    from instanthmr.cli.frame_breakdown import _per_clip

    assert _per_clip("/tmp/x/run.json", Path("a/openpose_video.avi"), 1) == "/tmp/x/run.json"
    assert _per_clip("/tmp/x/run.json", Path("a/openpose_video.avi"), 2) == "/tmp/x/run.openpose_video.json"
    assert _per_clip(None, Path("a.mp4"), 3) is None
