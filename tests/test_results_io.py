"""Results out: CSV/NPZ/JSON schemas, BVH written then parsed back (joint count, frame count, poses), joints a
model does not have (``joints_valid``) left out by every writer, and files replaced whole (never half-written)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass

import numpy as np
import pytest

from instanthmr.core.skeleton import MHR70_INDEX, MHR70_NAMES
from instanthmr.core.mocap import load_bvh
from instanthmr.core.rotations import axis_rotation as _rot
from instanthmr.outputs.bvh import bvh_track_path, format_bvh, write_bvh
from instanthmr.outputs.rig import bvh_skeleton, solve_bvh
from instanthmr.outputs.files import (
    CSV_COLUMNS,
    ResultsWriteError,
    read_npz_tracks,
    write_csv,
    write_json,
    write_npz,
)
from instanthmr.runtime.hmr import HMRPrediction

FLIP = np.array([1.0, -1.0, -1.0])  # camera axes (y down, z forward) -> BVH axes (y up, z to camera)


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


def _person(track_id, box, joints_2d, local, cam, cam_trans, valid=None) -> HMRPrediction:
    if valid is not None:  # what a model without those joints returns: NaN there, and the mask
        joints_2d, local, cam = (np.where(valid[:, None], a, np.nan).astype(np.float32)
                                 for a in (joints_2d, local, cam))
    return HMRPrediction(box=box, score=0.9, joints_3d_local=local, joints_3d_cam=cam, joints_2d=joints_2d,
                         cam_trans=cam_trans, focal_length=1000.0, principal_point=np.array([640.0, 360.0]),
                         mhr_params=np.zeros(204, np.float32), shape_params=np.zeros(45, np.float32),
                         joints_valid=valid, track_id=track_id)


@dataclass
class _Frame:
    frame_index: int
    persons: list
    time_s: float | None = None


def _frames(n=12, missing=(5,), invalid=None):
    """Two tracks; track 2 is not seen in the ``missing`` frames. ``invalid(frame, track_id)`` -> joint
    indices the model does not have there (``joints_valid`` False)."""
    local = _motion(n)
    frames = []
    for f in range(n):
        persons = []
        for tid, shift in ((1, 0.0), (2, 1.0)):
            if tid == 2 and f in missing:
                continue
            cam = np.array([shift + 0.02 * f, 0.0, 4.0])
            j3 = local[f].astype(np.float32)
            valid = None
            if invalid is not None and len(invalid(f, tid)):
                valid = np.ones(70, bool)
                valid[list(invalid(f, tid))] = False
            box = np.array([10, 20, 110, 320], np.float32)
            persons.append(_person(tid, box, np.full((70, 2), 50.0 + f, np.float32), j3,
                                   (j3 + cam).astype(np.float32), cam.astype(np.float32), valid))
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
    assert float(r["cam_z_m"]) == pytest.approx(frames[3].persons[1].joints_3d_cam[69, 2], abs=1e-5)
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
    np.testing.assert_allclose(t2["joints_3d_local"][6], frames[7].persons[1].joints_3d_local)


def test_json_has_track_ids(tmp_path):
    write_json(tmp_path / "out.json", _frames(4, missing=()), fps=25.0, summary={"frames": 4})
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["meta"]["joint_order"].startswith("MHR70") and doc["meta"]["fps"] == 25.0
    assert doc["meta"]["units"]["joints_3d_cam"].startswith("m, camera frame") and doc["summary"] == {"frames": 4}
    assert [p["track_id"] for p in doc["frames"][2]["persons"]] == [1, 2]
    assert np.asarray(doc["frames"][2]["persons"][0]["joints_3d_cam"]).shape == (70, 3)
    assert doc["frames"][2]["time_s"] == pytest.approx(0.08)


def test_json_is_the_demo_schema(tmp_path):
    """write_json and demo.py --save-json write one schema (outputs.records): the same keys, in order."""
    from instanthmr.outputs.records import frame_record

    f = _frames(1, missing=())[0]
    p = f.persons[0]
    write_json(tmp_path / "one.json", [f], fps=30.0)
    person = json.loads((tmp_path / "one.json").read_text())["frames"][0]["persons"][0]
    assert list(person) == ["track_id", "source", "confidence", "box", "score", "joints_2d", "joints_3d_cam",
                            "cam_trans", "focal_length", "mhr_params", "shape_params"]
    assert person["confidence"] == person["score"] == 0.9  # no keypoint-crop confidence: the detection score
    assert frame_record(0, 0.0, f)["persons"][0] == person
    np.testing.assert_allclose(person["joints_3d_cam"], p.joints_3d_cam, atol=6e-5)  # metres to 0.1 mm


# --------------------------------------------------------------------------------------------------
# joints a model does not have: left out by every writer, never shown as numbers
# --------------------------------------------------------------------------------------------------

HAND = [i for i, n in enumerate(MHR70_NAMES) if n.startswith("right_") and any(
    f in n for f in ("thumb", "index", "middle", "ring", "pinky"))]
NOSE, LWRIST = MHR70_INDEX["nose"], MHR70_INDEX["left_wrist"]


def _masked(f, tid):
    """Track 1 never has its right hand; in frames 4-6 it also loses the left wrist. Track 2 is complete."""
    if tid != 1:
        return []
    return HAND + ([LWRIST] if 4 <= f <= 6 else [])


def test_json_writes_absent_joints_as_null(tmp_path):
    frames = _frames(invalid=_masked)
    write_json(tmp_path / "m.json", frames, fps=30.0)
    doc = json.loads((tmp_path / "m.json").read_text())
    p1, p2 = doc["frames"][4]["persons"]
    assert all(p1["joints_2d"][j] == [None, None] and p1["joints_3d_cam"][j] == [None, None, None]
               for j in HAND + [LWRIST])
    assert p1["joints_2d"][NOSE] == [54.0, 54.0] and None not in p1["joints_3d_cam"][NOSE]
    assert doc["frames"][3]["persons"][0]["joints_3d_cam"][LWRIST][0] is not None  # seen there
    assert set(p1) == set(p2)  # no extra key: the nulls say it
    assert all(None not in row for row in p2["joints_3d_cam"])
    assert np.isnan(np.asarray(p1["joints_2d"], float)[HAND]).all()  # reads back as NaN with numpy


def test_csv_leaves_absent_joints_empty(tmp_path):
    write_csv(tmp_path / "m.csv", _frames(invalid=_masked), fps=30.0)
    with open(tmp_path / "m.csv") as fh:
        rows = list(csv.DictReader(fh))
    coords = CSV_COLUMNS[5:-1]  # the coordinates (the last column, observed, is empty without a body fit)
    hand = [r for r in rows if r["track_id"] == "1" and int(r["joint_index"]) in HAND]
    assert len(hand) == 12 * len(HAND) and all(r[c] == "" for r in hand for c in coords)  # the rows stay
    wrist = {int(r["frame_index"]): r for r in rows if r["track_id"] == "1" and int(r["joint_index"]) == LWRIST}
    assert all(wrist[f]["cam_z_m"] == "" for f in (4, 5, 6)) and all(wrist[f]["cam_z_m"] != "" for f in (3, 7))
    other = [r for r in rows if r["track_id"] == "2"]
    assert all(r[c] != "" for r in other for c in coords)


def test_npz_masks_absent_joints(tmp_path):
    write_npz(tmp_path / "m.npz", _frames(invalid=_masked), fps=30.0)
    t1, t2 = (read_npz_tracks(tmp_path / "m.npz")[t] for t in (1, 2))
    assert t1["joints_valid"].dtype == bool and t1["joints_valid"].shape == (12, 70)
    assert not t1["joints_valid"][:, HAND].any() and t1["joints_valid"][:, NOSE].all()
    assert t1["joints_valid"][:, LWRIST].tolist() == [not 4 <= f <= 6 for f in range(12)]
    for field in ("joints_2d", "joints_3d_local", "joints_3d_cam"):
        assert np.isnan(t1[field][~t1["joints_valid"]]).all() and np.isfinite(t1[field][t1["joints_valid"]]).all()
    assert t2["joints_valid"].all() and np.isfinite(t2["joints_3d_cam"]).all()


def test_bvh_holds_the_last_valid_joint_and_drops_missing_hands(tmp_path):
    frames = _frames(invalid=_masked)
    p1, p2 = write_bvh(tmp_path / "m.bvh", frames, fps=30.0)
    m1, m2 = load_bvh(p1), load_bvh(p2)
    assert m1.num_frames == 12
    assert not any("right_index" in n for n in m1.names) and any("right_index" in n for n in m2.names)
    pos = m1.joint_positions()
    wrist = pos[:, m1.index("left_wrist")] - pos[:, 0]
    assert np.isfinite(pos).all()
    # frames 4-6 have no left wrist: its position relative to the pelvis is held from frame 3, where the
    # complete body (same rigid motion, see _motion) is solved exactly
    ref = load_bvh(write_bvh(tmp_path / "ref.bvh", _frames(), fps=30.0, hands=False)[0]).joint_positions()
    ref_wrist = ref[:, m1.index("left_wrist")] - ref[:, 0]
    np.testing.assert_allclose(wrist[[0, 1, 2, 3, 7, 8]], ref_wrist[[0, 1, 2, 3, 7, 8]], atol=1e-4)
    assert np.abs(wrist[4:7] - ref_wrist[4:7]).max() > 1e-3  # not the true (unseen) wrist: nothing invented


def test_bvh_starts_at_the_first_complete_frame(tmp_path):
    """Before a joint is first seen there is nothing to hold: the track's file starts where the body is whole."""
    frames = _frames(invalid=lambda f, tid: [LWRIST] if tid == 1 and f < 3 else [])
    p1, p2 = write_bvh(tmp_path / "s.bvh", frames, fps=30.0)
    assert load_bvh(p1).num_frames == 9 and load_bvh(p2).num_frames == 12


def test_writers_replace_files_whole(tmp_path):
    """An older file at the path stays until the new one is complete; a failed write leaves it as it was."""
    out = tmp_path / "keep.json"
    out.write_text('{"old": true}')

    class Boom:
        frame_index, time_s = 0, 0.0

        @property
        def persons(self):
            raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        write_json(out, [Boom()], fps=30.0)
    assert json.loads(out.read_text()) == {"old": True} and sorted(p.name for p in tmp_path.iterdir()) == ["keep.json"]
    write_json(out, _frames(2), fps=30.0)
    assert len(json.loads(out.read_text())["frames"]) == 2
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ResultsWriteError, match="cannot write NPZ"):
        write_npz(tmp_path / "file.txt" / "x.npz", _frames(2), fps=30.0)


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


def test_growing_file_publishes_complete_copies(tmp_path):
    """A file built by appending: each publication is a complete file at the path (text so far + closing
    tail) while appending goes on in a hidden file; commit finishes it, discard leaves the path as it was."""
    from instanthmr.outputs.atomic import GrowingFile

    path = tmp_path / "g.json"
    path.write_text("older run")
    g = GrowingFile(path)
    g.write("[1")
    assert path.read_text() == "older run"  # nothing replaced before the first publication
    g.publish("]")
    assert json.loads(path.read_text()) == [1]
    mark = g.tell()
    g.write(", 2, 3")
    g.rewind(mark)  # offline smoothing rewrites everything after the header
    g.write(", 4")
    g.publish("]")
    assert json.loads(path.read_text()) == [1, 4]
    g.commit("]")
    assert json.loads(path.read_text()) == [1, 4] and [p.name for p in tmp_path.iterdir()] == ["g.json"]

    g = GrowingFile(path)
    g.write("[5]")
    g.discard()
    assert json.loads(path.read_text()) == [1, 4] and [p.name for p in tmp_path.iterdir()] == ["g.json"]
