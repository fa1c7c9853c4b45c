"""tools/eval_offline.py (the accuracy table of the offline paths) and tools/bench_mediapipe.py (the side-by-side
speed tool): their scoring and statistics on made-up predictions, the ground-truth loaders on the shared data.
Nothing here is timed and nothing builds the MediaPipe venv."""

from __future__ import annotations

import numpy as np
import pytest

from instanthmr.core.rotations import axis_rotation
from instanthmr.core.skeleton import MHR70_INDEX
from instanthmr.teachers.mediapipe_pose import per_person_ms
from instanthmr.training import eval_offline as ev


def _sample_3d(rng) -> ev.Sample:
    j = rng.normal(0, 0.3, (len(ev.LIMBS), 3)) + [0, 0, 4]
    return ev.Sample("h36m", None, ev.LIMBS, j, np.ones(len(ev.LIMBS), bool), np.array([0, 0, 100, 200.0]), 1000.0,
                     "3d")


def _as_mhr70(sample, joints) -> np.ndarray:
    out = np.full((70, joints.shape[1]), np.nan)
    for n, p in zip(sample.names, joints):
        out[MHR70_INDEX[n]] = p
    return out


class Fixed:
    def __init__(self, name):
        self.name = name


def test_3d_scores_are_zero_for_the_truth_and_count_missing_joints():
    rng = np.random.default_rng(0)
    samples = [_sample_3d(rng) for _ in range(3)]
    truth, partial, none = Fixed("truth"), Fixed("partial"), Fixed("none")
    for s in samples:
        j3 = _as_mhr70(s, s.joints + [0.5, -0.2, 1.0])  # anywhere in the camera: pelvis-aligned anyway
        valid = np.isfinite(j3).all(1)
        s.results["truth"] = (np.zeros((70, 2)), j3, valid)
        v2 = valid.copy()
        v2[MHR70_INDEX["left_wrist"]] = False
        s.results["partial"] = (np.zeros((70, 2)), np.where(v2[:, None], j3, np.nan), v2)
        s.results["none"] = None
    r = ev.score_3d(samples, truth)
    assert r["mpjpe_mm"] == pytest.approx(0.0, abs=1e-6) and r["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-6)
    assert r["joints"] == r["of_joints"] == 36 and r["missed"] == 0
    p = ev.score_3d(samples, partial)
    assert p["joints"] == 33 and p["mpjpe_mm"] == pytest.approx(0.0, abs=1e-6)  # NaN wrist left out, not scored
    n = ev.score_3d(samples, none)
    assert n["missed"] == 3 and n["joints"] == 0 and np.isnan(n["mpjpe_mm"])
    # a pose that is off by a rotation: PA-MPJPE forgives it, MPJPE does not
    rot = axis_rotation(1, 0.5)
    for s in samples:
        hips = (s.joints[0] + s.joints[1]) / 2
        s.results["turned"] = (np.zeros((70, 2)), _as_mhr70(s, (s.joints - hips) @ rot.T), np.isfinite(
            _as_mhr70(s, s.joints)).all(1))
    t = ev.score_3d(samples, Fixed("turned"))
    assert t["pa_mpjpe_mm"] < 1e-3 < 50 < t["mpjpe_mm"]


def test_pck_counts_absent_joints_as_wrong():
    names = ("left_wrist", "right_wrist", "nose", "left_knee")
    s = ev.Sample("coco", None, names, np.array([[10, 10], [50, 10], [30, 0], [30, 80.0]]), np.array([1, 1, 1, 0], bool),
                  np.array([0, 0, 60, 100.0]))
    j2 = _as_mhr70(s, s.joints + [[5, 0], [11, 0], [0, 0], [0, 0]])  # threshold: 0.1 x 100 px = 10 px
    valid = np.isfinite(j2).all(1)
    valid[MHR70_INDEX["nose"]] = False  # not predicted
    s.results["m"] = (j2, None, valid)
    r = ev.score_2d([s], Fixed("m"))
    assert r["joints"] == 3 and r["pck"] == pytest.approx(1 / 3)  # wrist ok, wrist 11 px off, nose absent


def test_average_pose_faces_the_camera():
    j = np.zeros((70, 3))
    j[MHR70_INDEX["left_hip"]], j[MHR70_INDEX["right_hip"]] = [0, 0, 0.1], [0, 0, -0.1]  # side-on
    out = ev.facing_camera(j)
    np.testing.assert_allclose(out[MHR70_INDEX["left_hip"]], [0.1, 0, 0], atol=1e-9)
    back = np.zeros((70, 3))
    back[MHR70_INDEX["left_hip"]], back[MHR70_INDEX["right_hip"]] = [-0.1, 0, 0], [0.1, 0, 0]  # seen from behind
    np.testing.assert_allclose(ev.facing_camera(back)[MHR70_INDEX["left_hip"]], [0.1, 0, 0], atol=1e-9)


def test_ground_truth_loaders_read_the_shared_data(shared_data):
    s3 = ev.load_gt3d(shared_data / "gt3d")
    assert len(s3) == 4 and {s.dataset for s in s3} == {"h36m", "mpi_inf_3dhp"}
    for s in s3:
        assert s.joints.shape == (12, 3) and 1.0 < np.median(s.joints[:, 2]) < 10.0 and s.focal > 500  # metres
        hip_width = np.linalg.norm(s.joints[0] - s.joints[1])
        assert 0.15 < hip_width < 0.4
    s2 = ev.load_annotated_2d(shared_data / "annotated_2d")
    assert {s.dataset for s in s2} == {"coco", "mpii"} and len(s2) >= 7
    for s in s2:
        inside, tol = s.joints[s.visible], 0.1 * (s.box[2:] - s.box[:2])  # (COCO's boxes miss a foot at times)
        assert ((inside >= s.box[:2] - tol) & (inside <= s.box[2:] + tol)).all()  # labels lie in the person's box


def test_per_person_cost_is_the_slope_without_detector_frames():
    persons = [1, 2, 3, 1, 2, 3, 2]
    ms = [20 + 15 * (n - 1) for n in persons]
    detected = [False] * 7
    ms[6], detected[6] = 500, True  # a detector frame: left out
    assert per_person_ms(ms, persons, detected) == pytest.approx(15.0)
    assert per_person_ms([20, 21, 22], [1, 1, 1], [False] * 3) is None


def test_our_side_is_the_demo_loop_taking_turns_with_decoding_left_out(mp_models):
    """bench_mediapipe's side is ``runner.loop.run`` over frames decoded beforehand: frames go through only in
    the turns it is given (between turns the loop waits), each turn's per-frame times come back, the last turn
    ends the run (its end, the offline passes, timed apart)."""
    import time

    from instanthmr.teachers.mediapipe_pose import Ours

    frames = [np.full((72, 128, 3), 40 * i, np.uint8) for i in range(7)]  # nobody in them: the detector runs
    side = Ours(frames, max_persons=1, hands=False)
    try:
        t0 = time.perf_counter()
        ms, cpu, persons, detected = side.next(3)
        wall = (time.perf_counter() - t0) * 1e3
        assert len(ms) == len(cpu) == len(persons) == len(detected) == 3 and all(m > 0 for m in ms)
        assert 0.5 * wall < sum(ms) <= wall  # a turn's frames add up to the turn: finished frames, no spill
        assert persons == [0, 0, 0] and all(detected)  # the run's own results, one per frame
        time.sleep(0.05)
        assert len(side.feed.handed) == 3  # between turns the loop waits: no frame went through
        assert len(side.next(3)[0]) == 3 and side.finish_ms is None
        assert len(side.next(3)[0]) == 1  # the 7th frame; the run ended and its end was timed
        assert side.finish_ms is not None and side.finish_ms >= 0 and side.error is None
        side.thread.join(timeout=10)
        assert side.next(3) == ([], [], [], [])  # the run is over: nothing more, and no wait
    finally:
        side.close()


def test_the_fit_s_extra_cost_is_paired_frame_by_frame():
    """bench_mediapipe's "body fit, frame by frame": with frame times bimodal (one or two hand passes a frame)
    each median is the one frame that falls between the modes, so that frame's noise is the difference of the
    medians (6 ms for a 2 ms stage here); the median of the per-frame differences is the stage's own cost.
    Unaligned lists give None."""
    from instanthmr.teachers.mediapipe_pose import paired_extra_ms

    without = [13.0] * 50 + [16.0] + [24.0] * 50      # one or two hand passes a frame, one frame between
    with_fit = [m + 2.0 for m in without]
    with_fit[50] += 4.0                                # that frame's noise (another job, a cache miss)
    assert np.median(with_fit) - np.median(without) == pytest.approx(6.0)
    assert paired_extra_ms(with_fit, without) == pytest.approx(2.0)
    assert paired_extra_ms(with_fit, without[:-1]) is None and paired_extra_ms([], []) is None


def test_a_turn_returns_when_the_run_fails_mid_turn():
    """FrameFeed.run_ended: a run that stops inside a turn (an error on its 2nd frame) hands the turn back, so
    the side waiting in turn() goes on with the frames done instead of waiting forever."""
    import threading

    from instanthmr.teachers.mediapipe_pose import FrameFeed

    feed = FrameFeed([np.zeros((4, 4, 3), np.uint8)] * 5)

    def run():
        try:
            for frame in feed:
                if frame.index == 1:
                    raise RuntimeError("the run fails")
        except RuntimeError:
            pass
        finally:
            feed.run_ended()

    threading.Thread(target=run, daemon=True).start()
    feed.wait()  # the run asks for its first frame
    returned = threading.Event()
    threading.Thread(target=lambda: (feed.turn(5), returned.set()), daemon=True).start()
    assert returned.wait(10), "turn() still waiting after its run ended"
    assert len(feed.handed) == 2  # frames 0 and 1 handed over; the run failed on frame 1, nothing after
