"""demo.py with tracking, smoothing, CSV/NPZ/BVH outputs and MHR meshes, on real clips (headless).

Box files stand in for the detector and a tiny random-init network for the model (fixtures from conftest),
so the runs take seconds; the poses mean nothing but every path (IDs, smoothing, writers, Rerun, meshes) is
the real one.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from instanthmr.cli import demo
from instanthmr.core.mocap import load_bvh
from instanthmr.runtime.factory import KEYPOINT_DETECT_EVERY
from instanthmr.outputs.files import CSV_COLUMNS, GROUND_CSV_COLUMNS, read_npz_tracks
from instanthmr.runtime.detector import Detections, PersonDetector
from instanthmr.video.sources import count_video_frames

ROOT = Path(__file__).resolve().parent.parent
FRAMES = 12  # of the 30 fps football clip: enough for the 0.1 s offline smoother to act


@pytest.fixture(scope="module")
def football(shared_data) -> Path:
    return shared_data / "videos" / "romp_sample_video_football.mp4"  # 1280x720, 30 fps


@pytest.fixture(scope="module")
def clip(shared_data) -> Path:
    return shared_data / "videos" / "mmpose_demo_5frames.mp4"  # 960x540, 5 fps, 5 frames


@pytest.fixture(scope="module")
def photo(shared_data) -> Path:
    return shared_data / "images" / "romp_demo" / "Leo_Messi.jpg"


LEFT, RIGHT = np.array([300.0, 150, 520, 650]), np.array([760.0, 160, 960, 640])


def jittery_boxes(path: Path, n: int, seed: int = 0) -> Path:
    """Two persons per frame whose boxes shake by a few pixels (a detector's noise), in swapped order on odd
    frames (detector order means nothing)."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        a, b = (LEFT + rng.normal(0, 6, 4)).tolist(), (RIGHT + rng.normal(0, 6, 4)).tolist()
        frames.append({"frame_index": i, "boxes": [a, b] if i % 2 == 0 else [b, a]})
    path.write_text(json.dumps({"frames": frames}))
    return path


def rrd_dump(path: Path) -> str:
    """``rerun rrd print -vvv``: chunk summaries with their data (labels included)."""
    exe = ROOT / ".venv" / "bin" / "rerun"
    exe = str(exe) if exe.exists() else shutil.which("rerun")
    if exe is None:
        pytest.skip("rerun CLI not found")
    out = subprocess.run([exe, "rrd", "print", "-vvv", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1000:]
    return out.stdout


def base_args(source: list[str], model: Path, boxes: Path) -> list[str]:
    return source + ["--model", str(model), "--detector", str(boxes), "--no-spawn", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, football, random_onnx) -> dict[str, Path]:
    """The same 12 frames with each --smooth mode, every data output on; offline also writes rrd + video."""
    root = tmp_path_factory.mktemp("runs")
    boxes = jittery_boxes(root / "boxes.json", FRAMES)
    out = {}
    for mode in ("none", "causal", "offline"):
        d = root / mode
        argv = base_args(["--video", str(football)], random_onnx, boxes) + [
            "--max-frames", str(FRAMES), "--smooth", mode, "--save-json", str(d / "r.json"),
            "--save-csv", str(d / "r.csv"), "--save-npz", str(d / "r.npz"), "--save-bvh", str(d / "r.bvh")]
        if mode == "offline":
            argv += ["--save-rrd", str(d / "r.rrd"), "--out-video", str(d / "r.mp4")]
        assert demo.main(argv) == 0, mode
        out[mode] = d
    return out


def _json(d: Path) -> dict:
    return json.loads((d / "r.json").read_text())


def _left_id(frame: dict) -> int:
    """Track ID of the person whose box is the left one."""
    return min(frame["persons"], key=lambda p: p["box"][0])["track_id"]


@pytest.mark.parametrize("mode", ["none", "causal", "offline"])
def test_json_has_stable_track_ids(runs, mode):
    data = _json(runs[mode])
    assert data["meta"]["smooth"] == mode and data["meta"]["keypoint_crops"] is False
    frames = data["frames"]
    assert [f["frame_index"] for f in frames] == list(range(FRAMES))
    assert all(len(f["persons"]) == 2 for f in frames)
    assert all(p["source"] == "detector" and isinstance(p["track_id"], int) for f in frames for p in f["persons"])
    # the left person keeps one ID and the right one another, although the detector order alternates
    left = {_left_id(f) for f in frames}
    both = {p["track_id"] for f in frames for p in f["persons"]}
    assert len(left) == 1 and len(both) == 2


def test_track_ids_and_boxes_do_not_depend_on_smoothing(runs):
    ref = _json(runs["none"])["frames"]
    for mode in ("causal", "offline"):
        for fa, fb in zip(ref, _json(runs[mode])["frames"]):
            assert [p["track_id"] for p in fa["persons"]] == [p["track_id"] for p in fb["persons"]]
            assert [p["box"] for p in fa["persons"]] == [p["box"] for p in fb["persons"]]


def _accel(tracks: dict, field: str) -> float:
    return float(np.mean([np.abs(np.diff(t[field], 2, axis=0)).mean() for t in tracks.values()]))


def test_smoothing_modes_cut_jitter(runs):
    tracks = {m: read_npz_tracks(runs[m] / "r.npz") for m in runs}
    for field in ("joints_3d_cam", "joints_2d", "cam_trans"):
        raw = _accel(tracks["none"], field)
        assert raw > 0
        assert _accel(tracks["causal"], field) < 0.8 * raw, field
        assert _accel(tracks["offline"], field) < 0.5 * raw, field


@pytest.mark.parametrize("mode", ["causal", "offline"])
def test_csv_npz_bvh_agree_with_json(runs, mode):
    d = runs[mode]
    frames = _json(d)["frames"]
    tracks = read_npz_tracks(d / "r.npz")
    ids = sorted({p["track_id"] for f in frames for p in f["persons"]})
    assert sorted(tracks) == ids

    for tid, t in tracks.items():
        assert t["frame_index"].tolist() == list(range(FRAMES))
        assert t["joints_3d_cam"].shape == (FRAMES, 70, 3) and t["joints_2d"].shape == (FRAMES, 70, 2)
        assert t["mhr_params"].shape == (FRAMES, 204) and t["shape_params"].shape == (FRAMES, 45)
        assert t["cam_trans"].shape == (FRAMES, 3) and t["box"].shape == (FRAMES, 4)
        np.testing.assert_allclose(t["time_s"], np.arange(FRAMES) / 30.0, atol=1e-3)
        from_json = np.array([[p["joints_3d_cam"] for p in f["persons"] if p["track_id"] == tid][0] for f in frames])
        np.testing.assert_allclose(t["joints_3d_cam"], from_json, atol=2e-4)  # JSON keeps 0.1 mm

    with (d / "r.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS + GROUND_CSV_COLUMNS and len(rows) - 1 == FRAMES * 2 * 70  # ground: on
    col = {c: i for i, c in enumerate(CSV_COLUMNS)}
    r = next(r for r in rows[1:] if r[col["frame_index"]] == "5" and r[col["joint_name"]] == "left_wrist")
    t = tracks[int(r[col["track_id"]])]
    j = 5, int(r[col["joint_index"]])
    np.testing.assert_allclose([float(r[col[c]]) for c in ("cam_x_m", "cam_y_m", "cam_z_m")],
                               t["joints_3d_cam"][j], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([float(r[col[c]]) for c in ("x_px", "y_px")], t["joints_2d"][j], rtol=1e-4)

    bvhs = sorted(d.glob("r_track*.bvh"))
    assert [p.name for p in bvhs] == [f"r_track{tid}.bvh" for tid in ids]
    for p in bvhs:
        motion = load_bvh(p)
        assert motion.num_frames == FRAMES and motion.fps == pytest.approx(30.0)


def test_offline_video_and_rrd_show_every_track(runs):
    d = runs["offline"]
    assert count_video_frames(d / "r.mp4") == FRAMES
    dump = rrd_dump(d / "r.rrd")
    assert "/world/tracks" in dump and "Points3D:labels" in dump
    ids = sorted(read_npz_tracks(d / "r.npz"))
    for tid in ids:
        assert f"ID {tid}" in dump  # 2D box labels and 3D labels carry the track ID
    assert "/world/meshes" not in dump  # meshes only with --mhr-model


def test_keypoint_crops_follow_tracks_between_detector_runs(tmp_path, clip, random_onnx):
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps({"frames": [{"frame_index": i, "boxes": [LEFT.tolist()]} for i in range(5)]}))
    rc = demo.main(base_args(["--video", str(clip)], random_onnx, boxes) + [
        "--keypoint-crops", "--smooth", "causal", "--save-json", str(tmp_path / "k.json")])
    assert rc == 0
    data = json.loads((tmp_path / "k.json").read_text())
    assert data["meta"]["keypoint_crops"] is True and data["meta"]["detector_stride"] == KEYPOINT_DETECT_EVERY
    frames = data["frames"]
    assert frames[0]["detector_ran"] and frames[0]["persons"][0]["source"] == "detector"
    between = [i for i, f in enumerate(frames) if not f["detector_ran"]]
    assert between, "the detector ran on every frame"
    for i in between:  # crops cut from the previous joints keep the previous frame's IDs
        assert frames[i]["persons"] and all(p["source"] == "keypoints" for p in frames[i]["persons"])
        assert {p["track_id"] for p in frames[i]["persons"]} <= {p["track_id"] for p in frames[i - 1]["persons"]}
        assert all(0.0 <= p["confidence"] <= 1.0 for p in frames[i]["persons"])


def test_offline_smoothing_is_refused_for_a_camera(capsys):
    assert demo.main(["--camera", "0", "--smooth", "offline", "--no-spawn"]) == 2
    assert "--smooth offline" in capsys.readouterr().err


def test_default_smoothing_per_source():
    p = demo.build_parser()

    def smoothing(argv):
        return demo.config_from_flags(p.parse_args(argv)).smoothing()

    assert smoothing(["--camera", "0"]) == "causal"
    assert smoothing(["--video", "a.mp4", "--no-spawn"]) == "offline"
    assert smoothing(["--video", "a.mp4"]) == "causal"  # a live viewer never waits
    assert smoothing(["--image", "a.jpg"]) == "none"
    assert smoothing(["--video", "a.mp4", "--smooth", "none"]) == "none"


def test_interrupted_offline_run_writes_every_output_for_the_frames_done(tmp_path, clip, random_onnx, monkeypatch,
                                                                         capsys):
    from instanthmr.runtime import pipeline as pipeline_mod

    class StopAtFrame3(PersonDetector):
        name = "stopper"

        def detect(self, image_rgb, frame_index=None):
            if frame_index == 3:
                raise KeyboardInterrupt
            return Detections(np.array([LEFT]), np.array([0.9]))

    monkeypatch.setattr(pipeline_mod, "create_detector", lambda *a, **k: StopAtFrame3(0.0))
    out = tmp_path / "o"
    rc = demo.main(["--video", str(clip), "--model", str(random_onnx), "--no-spawn", "--device", "cpu",
                    "--smooth", "offline", "--save-json", str(out / "i.json"), "--save-csv", str(out / "i.csv"),
                    "--save-npz", str(out / "i.npz"), "--save-bvh", str(out / "i.bvh"),
                    "--out-video", str(out / "i.mp4")])
    assert rc == 130
    assert "interrupted after 3 frame(s)" in capsys.readouterr().err
    assert [f["frame_index"] for f in json.loads((out / "i.json").read_text())["frames"]] == [0, 1, 2]
    with (out / "i.csv").open() as fh:
        assert len(list(csv.reader(fh))) - 1 == 3 * 70
    (tid, track), = read_npz_tracks(out / "i.npz").items()
    assert track["frame_index"].tolist() == [0, 1, 2]
    assert load_bvh(out / f"i_track{tid}.bvh").num_frames == 3
    assert count_video_frames(out / "i.mp4") == 3


def test_unwritable_output_is_one_line_before_any_work(tmp_path, photo, random_onnx, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps({"frames": [{"frame_index": 0, "boxes": [[500, 0, 900, 700]]}]}))
    for flag in ("--save-csv", "--save-npz", "--save-bvh"):
        rc = demo.main(base_args(["--image", str(photo)], random_onnx, boxes) + [flag, str(blocker / "x" / "o.out")])
        assert rc == 2, flag  # an output path that cannot be written is a bad argument (checked first)
        err = capsys.readouterr().err.strip().splitlines()
        assert "Traceback" not in "\n".join(err) and "cannot write" in err[-1] and str(blocker) in err[-1]


def test_tracking_pipeline_wraps_the_real_pose_pipeline(random_onnx):
    from instanthmr.runtime.hmr import HMRPrediction
    from instanthmr.runtime.pipeline import FrameResult, PosePipeline, enlarge_boxes
    from instanthmr.video.tracking import TrackingPipeline

    class Fixed(PersonDetector):
        name = "fixed"

        def __init__(self):
            super().__init__(0.0)
            self.calls = 0

        def detect(self, image_rgb, frame_index=None):
            self.calls += 1
            # a real person, and a degenerate box a detector can return at an image border
            return Detections(np.array([[40, 20, 140, 230], [0, 50, 0.5, 90]]), np.array([0.9, 0.8]))

    img = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)

    # plain stride: the PosePipeline's own schedule (detect on 0, 2, 4; enlarged box reuse between)
    pose = PosePipeline.from_files(random_onnx, device="cpu", detector=Fixed(), detector_stride=2)
    tp = TrackingPipeline.from_pipeline(pose, crops="boxes", smooth="none")
    assert tp.detect_every == 2  # one stride, the pipeline's
    frames = [tp(img, i, i / 30.0) for i in range(5)]
    assert all(isinstance(f, FrameResult) for f in frames)
    assert [f.time_s for f in frames] == [i / 30.0 for i in range(5)] and frames[0].ended_tracks == []
    assert all(type(p) is HMRPrediction and p.track_id is not None for f in frames for p in f.persons)
    assert [f.detector_ran for f in frames] == [True, False, True, False, True] and tp.detector_calls == 3
    assert [f.reused for f in frames] == [False, True, False, True, False]
    assert [len(f.persons) for f in frames] == [1] * 5  # the degenerate box never reaches the network
    assert len({p.track_id for f in frames for p in f.persons}) == 1
    np.testing.assert_allclose(frames[1].persons[0].box, enlarge_boxes([[40, 20, 140, 230]], image_wh=(320, 240))[0])
    assert frames[1].persons[0].source == "reused_box" and frames[1].persons[0].joints_3d_cam.shape == (70, 3)

    # keypoint crops with the same network: no crash when a track's joints leave the image
    det = Fixed()
    pose = PosePipeline.from_files(random_onnx, device="cpu", detector=det, detector_stride=50)
    tp = TrackingPipeline.from_pipeline(pose, crops="keypoints", smooth="causal")
    assert tp.detect_every == 50
    first = tp(img, 0)
    assert [p.source for p in first.persons] == ["detector"]
    track = tp.tracker.track(first.persons[0].track_id)
    track.keypoints = np.full_like(track.keypoints, -500.0)  # its keypoint box clips to nothing
    second = tp(img, 1)
    assert second.persons == [] and not second.detector_ran
    third = tp(img, 2)  # the lost crop makes the detector look again at once
    assert third.detector_ran and det.calls == 2 and len(third.persons) == 1


# --------------------------------------------------------------------------------------------------
# MHR meshes
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mhr_lod6() -> Path:
    from instanthmr.cli.convert_mhr import ConvertError, cache_dir, ensure_cached

    path = cache_dir() / "mhr_lod6.npz"
    if path.is_file():
        return path
    from instanthmr.core.paths import shared_mhr_dir

    try:
        return ensure_cached(6, shared_mhr_dir())[0]
    except ConvertError as exc:
        pytest.skip(str(exc))


def _photo_run(tmp_path, photo, random_onnx, name: str, extra: list[str]) -> int:
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps({"frames": [{"frame_index": 0, "boxes": [[500, 0, 900, 700]]}]}))
    return demo.main(base_args(["--image", str(photo)], random_onnx, boxes) + [
        "--save-rrd", str(tmp_path / f"{name}.rrd"), "--out-video", str(tmp_path / f"{name}.avi")] + extra)


def _first_frame(path: Path) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


def test_missing_mhr_model_is_one_line_and_the_demo_goes_on(tmp_path, photo, random_onnx, capsys):
    rc = _photo_run(tmp_path, photo, random_onnx, "m", ["--mhr-model", str(tmp_path / "nope.npz"), "--mhr-overlay"])
    assert rc == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "[mhr]" in line]
    assert len(err) == 1 and "meshes off" in err[0] and "nope.npz" in err[0]
    dump = rrd_dump(tmp_path / "m.rrd")
    assert "/world/camera/boxes" in dump and "/world/meshes" not in dump
    assert count_video_frames(tmp_path / "m.avi") == 1


def test_mhr_meshes_in_rerun_and_on_the_image(tmp_path, photo, random_onnx, mhr_lod6):
    assert _photo_run(tmp_path, photo, random_onnx, "plain", []) == 0
    assert _photo_run(tmp_path, photo, random_onnx, "mesh", ["--mhr-model", str(mhr_lod6), "--mhr-lod", "6",
                                                              "--mhr-overlay"]) == 0
    dump = rrd_dump(tmp_path / "mesh.rrd")
    assert "/world/meshes" in dump and "Mesh3D:vertex_positions" in dump and "Mesh3D:triangle_indices" in dump
    changed = np.abs(_first_frame(tmp_path / "mesh.avi").astype(int) - _first_frame(tmp_path / "plain.avi")).max(-1)
    assert (changed > 30).mean() > 0.002  # the mesh is painted somewhere on the image
    # a folder holding mhr_lod6.npz works as --mhr-model too; a LOD the file is not is refused (one line)
    assert _photo_run(tmp_path, photo, random_onnx, "dir", ["--mhr-model", str(mhr_lod6.parent), "--mhr-lod",
                                                             "6"]) == 0
    assert "/world/meshes" in rrd_dump(tmp_path / "dir.rrd")
