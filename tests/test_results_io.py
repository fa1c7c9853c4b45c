"""Results out: CSV/NPZ/JSON schemas, and BVH written then parsed back (joint count, frame count, poses)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field

import numpy as np
import pytest

from instanthmr.core.skeleton import MHR70_INDEX, MHR70_NAMES
from instanthmr.outputs.bvh import bvh_skeleton, bvh_track_path, format_bvh, load_bvh, solve_bvh, write_bvh
from instanthmr.outputs.files import (
    CSV_COLUMNS,
    ResultsWriteError,
    read_npz_tracks,
    write_csv,
    write_json,
    write_npz,
)

FLIP = np.array([1.0, -1.0, -1.0])  # camera axes (y down, z forward) -> BVH axes (y up, z to camera)


def _rot(axis: int, a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _base_pose(seed=0) -> np.ndarray:
    """A person-sized MHR70 pose in camera axes (y down): a point cloud standing 1.7 m tall."""
    rng = np.random.default_rng(seed)
    p = rng.uniform([-0.25, -0.9, -0.1], [0.25, 0.8, 0.1], size=(70, 3))
    p[MHR70_INDEX["left_hip"]] = [0.1, 0.0, 0.0]
    p[MHR70_INDEX["right_hip"]] = [-0.1, 0.0, 0.0]
    p[MHR70_INDEX["neck"]] = [0.0, -0.55, 0.0]
    return p


def _motion(n=40) -> np.ndarray:
    """Rigid bones in motion: the whole body turns and sways, the left forearm and hand bend at the elbow."""
    base = _base_pose()
    forearm = [i for i, nm in enumerate(MHR70_NAMES) if nm.startswith("left_")
               and (nm.endswith("wrist") or any(f in nm for f in ("thumb", "index", "middle", "ring", "pinky")))]
    elbow = base[MHR70_INDEX["left_elbow"]]
    out = []
    for f in range(n):
        p = base.copy()
        p[forearm] = (p[forearm] - elbow) @ _rot(0, 0.8 * np.sin(f / 6)).T + elbow
        r = _rot(1, 0.12 * f) @ _rot(2, 0.3 * np.sin(f / 5))
        out.append(p @ r.T)
    return np.array(out)


@dataclass
class _Pred:
    box: np.ndarray
    joints_2d: np.ndarray
    joints_3d_local: np.ndarray
    joints_3d_cam: np.ndarray
    cam_trans: np.ndarray
    score: float = 0.9
    mhr_params: np.ndarray = field(default_factory=lambda: np.zeros(204, np.float32))
    shape_params: np.ndarray = field(default_factory=lambda: np.zeros(45, np.float32))


@dataclass
class _Person:
    track_id: int
    prediction: _Pred


@dataclass
class _Frame:
    frame_index: int
    persons: list
    time_s: float | None = None


def _frames(n=12, missing=(5,)):
    """Two tracks; track 2 is not seen in the ``missing`` frames."""
    local = _motion(n)
    frames = []
    for f in range(n):
        persons = []
        for tid, shift in ((1, 0.0), (2, 1.0)):
            if tid == 2 and f in missing:
                continue
            cam = np.array([shift + 0.02 * f, 0.0, 4.0])
            j3 = local[f].astype(np.float32)
            persons.append(_Person(tid, _Pred(np.array([10, 20, 110, 320], np.float32),
                                              np.full((70, 2), 50.0 + f, np.float32), j3,
                                              (j3 + cam).astype(np.float32), cam.astype(np.float32))))
        frames.append(_Frame(f, persons))
    return frames


def test_csv_schema_one_row_per_frame_person_joint(tmp_path):
    frames = _frames()
    rows_written = write_csv(tmp_path / "out.csv", frames, fps=30.0)
    with open(tmp_path / "out.csv") as fh:
        rows = list(csv.DictReader(fh))
    n_persons = sum(len(f.persons) for f in frames)
    assert rows_written == len(rows) == n_persons * 70
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    r = next(r for r in rows if r["frame_index"] == "3" and r["track_id"] == "2" and r["joint_name"] == "neck")
    assert int(r["joint_index"]) == MHR70_INDEX["neck"]
    assert float(r["time_s"]) == pytest.approx(0.1)
    assert float(r["cam_z_m"]) == pytest.approx(frames[3].persons[1].prediction.joints_3d_cam[69, 2], abs=1e-5)
    assert float(r["x_px"]) == pytest.approx(53.0)
    assert not any(r["frame_index"] == "5" and r["track_id"] == "2" for r in rows)


def test_npz_arrays_per_track(tmp_path):
    frames = _frames()
    write_npz(tmp_path / "out.npz", frames, fps=30.0)
    with np.load(tmp_path / "out.npz") as z:
        assert list(z["track_ids"]) == [1, 2]
        assert list(z["joint_names"]) == list(MHR70_NAMES)
        assert float(z["fps"]) == 30.0
    tracks = read_npz_tracks(tmp_path / "out.npz")
    assert set(tracks) == {1, 2}
    t2 = tracks[2]
    assert list(t2["frame_index"]) == [f for f in range(12) if f != 5]
    assert t2["joints_3d_cam"].shape == (11, 70, 3) and t2["joints_2d"].shape == (11, 70, 2)
    assert t2["cam_trans"].shape == (11, 3) and t2["mhr_params"].shape == (11, 204)
    assert t2["score"].shape == (11,)
    np.testing.assert_allclose(t2["joints_3d_local"][6], frames[7].persons[1].prediction.joints_3d_local)


def test_json_has_track_ids(tmp_path):
    write_json(tmp_path / "out.json", _frames(4, missing=()), fps=25.0)
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["meta"]["joint_names"][69] == "neck"
    assert [p["track_id"] for p in doc["frames"][2]["persons"]] == [1, 2]
    assert np.asarray(doc["frames"][2]["persons"][0]["joints_3d_cam"]).shape == (70, 3)
    assert doc["frames"][2]["time_s"] == pytest.approx(0.08)


def test_bvh_round_trip_recovers_the_motion():
    seq = _motion()
    sol = solve_bvh(seq)
    text = format_bvh(sol, fps=30.0)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.bvh"
        path.write_text(text)
        motion = load_bvh(path)
    skel = bvh_skeleton()
    joints = [n for n in motion.names if not n.endswith("_End")]
    assert joints == [s[0] for s in skel]
    assert motion.num_frames == len(seq)
    assert motion.frame_time == pytest.approx(1 / 30.0, rel=1e-6)
    pos = motion.joint_positions()
    pelvis = 0.5 * (seq[:, MHR70_INDEX["left_hip"]] + seq[:, MHR70_INDEX["right_hip"]]) * FLIP
    worst = 0.0
    for name, _, source, _ in skel:
        if source in ("", "pelvis"):
            continue
        got = pos[:, motion.index(name)] - pos[:, 0]
        want = seq[:, MHR70_INDEX[source]] * FLIP - pelvis
        worst = max(worst, float(np.abs(got - want).max()))
    assert worst < 1e-4  # rigid bones in, the same poses out (to the 5 decimals written)


def test_bvh_writer_per_track_and_gaps(tmp_path):
    frames = _frames()
    paths = write_bvh(tmp_path / "motion.bvh", frames, fps=30.0, hands=False)
    assert paths == [bvh_track_path(tmp_path / "motion.bvh", 1), bvh_track_path(tmp_path / "motion.bvh", 2)]
    assert paths[0].name == "motion_track1.bvh"
    m1, m2 = load_bvh(paths[0]), load_bvh(paths[1])
    n_body = len(bvh_skeleton(hands=False))
    assert sum(not n.endswith("_End") for n in m1.names) == n_body
    assert m1.num_frames == 12 and m2.num_frames == 12  # the missed frame is held, not dropped
    p = m1.joint_positions()
    # Root motion from the camera-frame pelvis: +0.02 m in x per frame, starting at x = 0.
    np.testing.assert_allclose(p[:, 0, 0], 0.02 * np.arange(12), atol=1e-4)
    feet = [m1.index(n) for n in m1.names if n.endswith(("heel", "toe_tip", "ankle"))]
    assert p[0, feet, 1].min() == pytest.approx(0.0, abs=1e-4)  # frame 0 stands on the floor


def test_bvh_errors(tmp_path):
    with pytest.raises(ResultsWriteError, match="frame rate"):
        write_bvh(tmp_path / "m.bvh", _frames(), fps=0)
    bad = _motion(3)
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        solve_bvh(bad)
