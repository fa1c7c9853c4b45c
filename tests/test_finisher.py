"""runner/finisher.py: each frame's finishing work on one worker thread, in order, overlapping the next frame's
models; errors and stops reach the caller's thread as the inline loop had them."""

from __future__ import annotations

import threading
import time

import pytest

from instanthmr.runner.finisher import FrameFinisher


def test_frames_are_finished_in_order_on_another_thread():
    done, threads = [], set()

    def finish(frame, result):
        time.sleep(0.002 * (frame % 3))  # uneven work: the order must not depend on it
        done.append((frame, result))
        threads.add(threading.get_ident())

    f = FrameFinisher(finish)
    for i in range(20):
        f.put(i, i * 10)
    f.join()
    assert done == [(i, i * 10) for i in range(20)]
    assert threads and threading.get_ident() not in threads


def test_the_next_frames_models_overlap_the_last_frames_finishing():
    started, release = threading.Event(), threading.Event()

    def finish(frame, result):
        started.set()
        assert release.wait(5)

    f = FrameFinisher(finish)
    f.put(0, None)
    assert started.wait(5)
    t0 = time.perf_counter()
    f.put(1, None)  # queued while frame 0 is still being finished: the caller goes on at once
    assert time.perf_counter() - t0 < 0.5
    release.set()
    f.join()


def test_a_worker_error_is_raised_in_the_callers_thread_and_later_frames_dropped():
    done = []

    def finish(frame, result):
        if frame == 2:
            raise OSError("disk full")
        done.append(frame)

    f = FrameFinisher(finish)
    with pytest.raises(OSError, match="disk full"):
        for i in range(50):
            f.put(i, None)
            time.sleep(0.005)
        f.join()
    assert done == [0, 1]
    f.close()  # after an error: returns, raises nothing


def test_join_raises_an_error_from_the_last_frame():
    f = FrameFinisher(lambda frame, result: 1 / 0)
    f.put(0, None)
    with pytest.raises(ZeroDivisionError):
        f.join()


def test_a_stop_set_by_a_stage_drops_the_frames_still_queued():
    stop, done = threading.Event(), []

    def finish(frame, result):
        done.append(frame)
        if frame == 1:
            stop.set()  # a stage sets the run's stop event while frame 2 may already wait in the queue

    f = FrameFinisher(finish, stop=stop.is_set)
    for i in range(4):
        f.put(i, None)
    f.join()
    assert done == [0, 1]


def test_close_drops_queued_frames_and_waits_for_the_current_one():
    busy, done = threading.Event(), []

    def finish(frame, result):
        busy.set()
        time.sleep(0.05)
        done.append(frame)

    f = FrameFinisher(finish, depth=3)
    for i in range(4):
        f.put(i, None)
    assert busy.wait(5)
    f.close()
    assert done[:1] == [0] and len(done) < 4  # the frame being finished completes; the queued ones do not
    f.close()  # idempotent


def test_depth_zero_finishes_inside_put_on_the_callers_thread():
    stop, done = threading.Event(), []
    f = FrameFinisher(lambda frame, result: done.append((frame, threading.get_ident())), depth=0, stop=stop.is_set)
    f.put(0, None)
    assert done == [(0, threading.get_ident())]  # already finished when put returns
    stop.set()
    f.put(1, None)
    f.join()
    f.close()
    assert len(done) == 1 and not f._thread.is_alive()
