"""Frames in flight (TrackingPipeline.submit / drain, RuntimeOptions.frames_in_flight) and the threads-per-model
rule: results in order and equal to the one-frame-at-a-time path where the crops are the same, crops from the
latest finished frame otherwise."""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from instanthmr.core.faults import StopSignal
from instanthmr.core.geometry import box_iou
from instanthmr.runtime.detector import Detections, PersonDetector
from instanthmr.runtime.factory import PipelineSpec
from instanthmr.runtime.session import RUNTIME_PRESETS, RuntimeOptions, threads_per_model
from instanthmr.video.tracking import TrackingPipeline, box_from_keypoints

W, H = 320, 240


def _joints(f: int) -> np.ndarray:
    """One person walking right 3 px a frame: 10 joints (px) spread over a 40 x 120 px body."""
    base = np.stack([np.linspace(0, 40, 10), np.linspace(0, 120, 10)], axis=1)
    return base + [60 + 3 * f, 60]


def _image(f: int) -> np.ndarray:
    """A frame that says its own number (pixel (0, 0)): the fake models read it, never a shared counter."""
    img = np.zeros((H, W, 3), np.uint8)
    img[0, 0] = (f % 256, f // 256, 0)
    return img


def _frame_of(image) -> int:
    return int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])


@dataclass
class _P:
    box: np.ndarray
    joints_2d: np.ndarray
    track_id: int | None = None
    source: str = "detector"
    confidence: float | None = None


class _Scene:
    """A detector that finds the person of the frame it is given and an estimator that returns their joints
    when the crop covers them; both slow enough that two frames really overlap, and both record the crops."""

    def __init__(self, delay_s: float = 0.005):
        self.delay_s = delay_s
        self.crops: dict[int, np.ndarray] = {}
        self.running = self.most_running = 0
        self._lock = threading.Lock()

    def detector(self, image, frame_index):
        time.sleep(self.delay_s)
        return Detections(box_from_keypoints(_joints(_frame_of(image)), (W, H)).reshape(1, 4).astype(np.float32),
                          np.array([0.9], np.float32))

    def estimator(self, image, boxes, scores):
        f = _frame_of(image)
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        time.sleep(self.delay_s)
        self.crops[f] = np.asarray(boxes, np.float64).copy()
        j = _joints(f)
        out = [_P(np.asarray(b), j.copy() if box_iou(b, box_from_keypoints(j, (W, H)))[0, 0] > 0.2
                  else np.full((10, 2), np.nan)) for b in boxes]
        with self._lock:
            self.running -= 1
        return out


def _run(n: int, in_flight: int, **kw):
    scene = _Scene()
    tp = TrackingPipeline(scene.detector, scene.estimator, smooth="none", frames_in_flight=in_flight, **kw)
    out, lags = [], []
    for f in range(n):
        got = tp.submit(_image(f), f, tag=f)
        lags += [f - tag for tag, _ in got]
        out += got
    out += tp.drain()
    tp.close()
    return scene, tp, out, lags


def test_frames_in_flight_give_the_synchronous_results_when_every_frame_is_detected():
    sync_scene, _, sync, sync_lags = _run(12, 1, detect_every=1)
    scene, tp, piped, lags = _run(12, 2, detect_every=1)
    assert sync_lags == [0] * 12 and lags == [1] * 11  # one frame late, the last one from drain
    assert [tag for tag, _ in piped] == list(range(12)) == [r.frame_index for _, r in piped]
    for (_, a), (_, b) in zip(sync, piped):
        assert [p.track_id for p in a.persons] == [p.track_id for p in b.persons]
        np.testing.assert_array_equal(a.persons[0].joints_2d, b.persons[0].joints_2d)
        np.testing.assert_array_equal(a.detections.boxes, b.detections.boxes)
    assert scene.most_running == 2 and sync_scene.most_running == 1  # two frames really ran at once
    assert tp.detector_calls == 12


def test_frames_in_flight_crop_from_the_latest_finished_frame():
    scene, tp, piped, lags = _run(30, 2, detect_every=100, refresh_below=0.3)
    assert [r.frame_index for _, r in piped] == list(range(30))
    # frames 0 and 1 both start before anybody is tracked: both detected, then keypoint crops only
    assert [f for f, (_, r) in enumerate(piped) if r.detector_ran] == [0, 1]
    ids = {p.track_id for _, r in piped for p in r.persons}
    assert len(ids) == 1 and all(len(r.persons) == 1 for _, r in piped)
    # the crop of frame t is the box of frame t-2's joints moved two steps of the box velocity (3 px a frame)
    for t in range(10, 30):
        want = box_from_keypoints(_joints(t - 2), (W, H)) + [6, 0, 6, 0]
        np.testing.assert_allclose(scene.crops[t][0], want, atol=0.5)
        assert box_iou(scene.crops[t][0], box_from_keypoints(_joints(t), (W, H)))[0, 0] > 0.8


def test_one_frame_in_flight_is_the_plain_call():
    scene = _Scene(delay_s=0.0)
    tp = TrackingPipeline(scene.detector, scene.estimator, smooth="none", detect_every=5)
    got = tp.submit(_image(0), 0, tag="a")
    assert [t for t, _ in got] == ["a"] and tp.drain() == [] and not tp.pipelined
    assert isinstance(tp(_image(1), 1).persons[0].track_id, int)


def test_reset_drops_the_frames_in_flight():
    scene = _Scene()
    tp = TrackingPipeline(scene.detector, scene.estimator, smooth="none", frames_in_flight=2)
    assert tp.submit(_image(0), 0) == []
    tp.reset()
    assert tp.drain() == []
    tp.close()


def test_threads_per_model_rule_and_options():
    assert threads_per_model(1, cores=2) == 2 and threads_per_model(2, cores=2) == 1
    assert threads_per_model(3, cores=2) == 1 and threads_per_model(2, cores=8) == 4
    assert RuntimeOptions().session_threads(cores=2) == 0  # one frame: ONNX Runtime's own choice
    assert RuntimeOptions(frames_in_flight=2).session_threads(cores=2) == 1
    assert RuntimeOptions(threads=2, frames_in_flight=2).session_threads(cores=2) == 2  # an explicit count wins
    live = RUNTIME_PRESETS["cpu-live"]
    assert live.frames_in_flight == 2 and live.spinning is False and live.threads == 0 and live.async_detector
    flags = RuntimeOptions.from_flags(frames_in_flight=2)
    assert flags.frames_in_flight == 2 and flags.spinning is False
    with pytest.raises(ValueError, match="frames_in_flight"):
        RuntimeOptions(frames_in_flight=0)
    with pytest.raises(ValueError, match="io_binding"):
        RuntimeOptions(frames_in_flight=2, io_binding=True)
    with pytest.raises(ValueError, match="--frames-in-flight above 1 .also set by the cpu-live preset. needs --keypoint-crops"):
        PipelineSpec(runtime=live).validate(lambda f: "--" + f.replace("_", "-"))
    PipelineSpec(runtime=live, keypoint_crops=True).validate()


class _OneBox(PersonDetector):
    name = "one box"

    def detect(self, image_rgb, frame_index=None):
        return Detections(np.array([[100, 30, 220, 230]], np.float32), np.array([0.9], np.float32))


def test_frames_in_flight_with_a_tiny_random_network_match_the_plain_path(random_onnx):
    """Two frames in flight through the runner's tracking wrapper on a real (tiny, random) network, one ORT
    thread each: every frame detected, so the crops are the same and so are the outputs."""
    from instanthmr.runtime.pipeline import PosePipeline, load_hmr

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (H, W, 3), np.uint8) for _ in range(6)]
    results = {}
    for n in (1, 2):
        rt = RuntimeOptions(spinning=False, frames_in_flight=n)
        pose = PosePipeline(_OneBox(0.0, 1), load_hmr(random_onnx, "cpu", 1, True, rt), detector_stride=1,
                            max_persons=1, frames_in_flight=n)
        assert pose.estimator.threads == (1 if n == 2 else 0)
        tp = TrackingPipeline.from_pipeline(pose, smooth="none")
        assert tp.frames_in_flight == n
        out = [r for i, f in enumerate(frames) for _, r in tp.submit(f, i)] + [r for _, r in tp.drain()]
        tp.close()
        results[n] = out
    assert [r.frame_index for r in results[2]] == list(range(6))
    for a, b in zip(results[1], results[2]):
        np.testing.assert_allclose(a.persons[0].joints_3d_cam, b.persons[0].joints_3d_cam, atol=1e-5)
        np.testing.assert_allclose(a.persons[0].joints_2d, b.persons[0].joints_2d, atol=1e-3)


@pytest.mark.parametrize("in_flight", [1, 2])
def test_hidden_detector_never_blocks_a_frame_while_people_are_followed(in_flight):
    """The detector's look while somebody is followed is held on a gate: frames keep coming (keypoint crops)
    until it is let go, then one frame runs on its boxes, a few frames old."""
    scene = _Scene(delay_s=0.0)
    gate, calls = threading.Event(), []

    def detector(image, fi):
        calls.append(fi)
        if len(calls) > in_flight:  # after the start-up look(s), which nobody followed can wait for
            assert gate.wait(10.0)
        return scene.detector(image, fi)

    tp = TrackingPipeline(detector, scene.estimator, smooth="none", detect_every=5, async_detector=True,
                          frames_in_flight=in_flight)
    out = []
    for f in range(15):  # the hidden look is held all along: no frame waits for it
        out += [r for _, r in tp.submit(_image(f), f)]
    look = 4 + in_flight  # detect_every 5 frames after the last start-up look
    assert calls == list(range(in_flight)) + [look] and tp.detector_calls == in_flight + 1
    assert not any(r.detector_ran for r in out[in_flight:]) and all(len(r.persons) == 1 for r in out)
    gate.set()
    deadline = time.monotonic() + 10.0
    while tp._async.busy and time.monotonic() < deadline:  # let the look finish; its result waits for a frame
        time.sleep(0.001)
    out += [r for _, r in tp.submit(_image(15), 15)] + [r for _, r in tp.drain()]
    late = out[15]
    assert late.detector_ran and late.detector_lag == 15 - look  # its boxes, used on frame 15
    assert late.persons[0].source == "detector" and late.persons[0].track_id == out[0].persons[0].track_id
    tp.close()


class _Frames:
    """An in-memory video source (``runner.loop.run``'s ``source``): ``n`` random 320x240 frames at 30 fps."""

    kind, fps, name = "video", 30.0, "frames"

    def __init__(self, n: int):
        rng = np.random.default_rng(1)
        self.images = [rng.integers(0, 255, (H, W, 3), np.uint8) for _ in range(n)]
        self.size, self.expected_frames, self.output_fps, self.total = (W, H), n, 30.0, n
        self.closed = False

    def __iter__(self):
        from instanthmr.video.sources import Frame

        for i, img in enumerate(self.images):
            yield Frame(img, i, i / self.fps)

    def close(self):
        self.closed = True


class _SlowBox(_OneBox):
    """One box, slow enough (60 ms) that a hidden detection is still under way when the run is stopped."""

    def detect(self, image_rgb, frame_index=None):
        time.sleep(0.06)
        return super().detect(image_rgb, frame_index)


def _worker_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("instanthmr-frame", "instanthmr-detector"))]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_mid_run_with_frames_in_flight_keeps_the_frames_done_and_ends_every_thread(random_onnx, tmp_path,
                                                                                         signum):
    """Ctrl-C or SIGTERM (what StopSignals raises for them: KeyboardInterrupt, StopSignal) while two frames are
    in flight and the hidden detector looks: the run ends "stopped" with the frames written so far, promptly, and the
    frame workers and the detector's thread are joined (none left running into the next run or the exit)."""
    from instanthmr.runner.config import RunConfig
    from instanthmr.runner.loop import run
    from instanthmr.runtime.pipeline import PosePipeline, load_hmr

    assert _worker_threads() == []
    rt = RuntimeOptions(spinning=False, frames_in_flight=2, async_detector=True)
    pose = PosePipeline(_SlowBox(0.0, 1), load_hmr(random_onnx, "cpu", 1, True, rt), detector_stride=2,
                        max_persons=1, crops="keypoints", frames_in_flight=2, async_detector=True)
    seen = []

    def stage(frame, result):
        seen.append(frame.index)
        if len(seen) == 5:
            raise KeyboardInterrupt if signum == signal.SIGINT else StopSignal(signum)  # the demo's handler, mid-run
        return result

    source, out = _Frames(40), tmp_path / "run.json"
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(report=run(
        RunConfig(video="frames", smooth="none", save_json=str(out), stages=(stage,), quiet=True, verbose=False,
                  body_fit=False, viewer=False), pipeline=pose, source=source)), daemon=True)
    t.start()
    t.join(30.0)
    assert not t.is_alive(), "the run hung after Ctrl-C with frames in flight"
    report = box["report"]
    assert (report.status, report.frames) == ("stopped", 4) and seen == [0, 1, 2, 3, 4]
    assert [f["frame_index"] for f in json.loads(out.read_text())["frames"]] == [0, 1, 2, 3]
    assert source.closed and _worker_threads() == []


def test_a_source_that_fails_to_close_leaves_no_frame_thread_running(random_onnx):
    """The run's end closes the frames in flight before the source: a source whose ``close`` raises (a camera
    unplugged) still leaves no worker or detector thread behind."""
    from instanthmr.runner.config import RunConfig
    from instanthmr.runner.loop import run
    from instanthmr.runtime.pipeline import PosePipeline, load_hmr

    class Broken(_Frames):
        def close(self):
            raise RuntimeError("device gone")

    rt = RuntimeOptions(spinning=False, frames_in_flight=2, async_detector=True)
    pose = PosePipeline(_SlowBox(0.0, 1), load_hmr(random_onnx, "cpu", 1, True, rt), detector_stride=2,
                        max_persons=1, crops="keypoints", frames_in_flight=2, async_detector=True)
    with pytest.raises(RuntimeError, match="device gone"):
        run(RunConfig(video="frames", smooth="none", quiet=True, verbose=False, body_fit=False, viewer=False),
            pipeline=pose, source=Broken(6))
    assert _worker_threads() == []


def test_threads_per_model_counts_the_cores_this_process_may_use(monkeypatch):
    """A container or ``taskset`` limited to 2 of 16 cores: 2 frames in flight get 1 thread per model, not 8
    (os.cpu_count() counts the machine's cores, the affinity the ones this process may run on)."""
    import os

    from instanthmr.runtime.session import cpu_cores

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert cpu_cores() == 2 and threads_per_model(2) == 1
    assert RuntimeOptions(frames_in_flight=2).session_threads() == 1
