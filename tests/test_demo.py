"""demo.py headless runs on real media (JSON, overlay video, .rrd) and every bad-input case.

The runs use a box file as detector so they stay fast; the RF-DETR path itself is covered in
test_pipeline.py / test_detector.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from instanthmr.cli import demo
from instanthmr.runtime import factory
from instanthmr.video.sources import count_video_frames

ROOT = Path(__file__).resolve().parent.parent
RERUN = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "rerun"


@pytest.fixture(scope="module")
def clip(shared_data) -> Path:
    return shared_data / "videos" / "mmpose_demo_5frames.mp4"  # 960x540, 5 frames


@pytest.fixture(scope="module")
def photo(shared_data) -> Path:
    return shared_data / "images" / "romp_demo" / "Leo_Messi.jpg"


def box_file(path: Path, frames: dict[int, list]) -> Path:
    path.write_text(json.dumps({"frames": [{"frame_index": i, "boxes": b} for i, b in frames.items()]}))
    return path


def rrd_entities(path: Path) -> str:
    import shutil

    exe = str(RERUN) if RERUN.exists() else shutil.which("rerun")
    if exe is None:
        pytest.skip("rerun CLI not found")
    out = subprocess.run([exe, "rrd", "print", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1000:]
    return out.stdout + out.stderr


def test_video_headless_writes_rrd_json_and_overlay(tmp_path, clip, random_onnx, capsys):
    boxes = box_file(tmp_path / "b.json", {0: [[300, 40, 620, 530]], 2: [[300, 40, 620, 530], [650, 60, 900, 500]],
                                           4: [[310, 40, 630, 530]]})
    out = tmp_path / "out"
    rc = demo.main(["--video", str(clip), "--model", str(random_onnx), "--detector", str(boxes), "--no-spawn",
                    "--device", "cpu", "--detector-stride", "2", "--save-rrd", str(out / "run.rrd"),
                    "--save-json", str(out / "run.json"), "--out-video", str(out / "run.mp4")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "5 frame(s)" in text and "3 detector run(s)" in text

    data = json.loads((out / "run.json").read_text())
    frames = data["frames"]
    assert [f["frame_index"] for f in frames] == [0, 1, 2, 3, 4]
    assert [f["detector_ran"] for f in frames] == [True, False, True, False, True]
    assert [len(f["persons"]) for f in frames] == [1, 1, 2, 2, 1]
    p = frames[1]["persons"][0]
    assert np.asarray(p["joints_2d"]).shape == (70, 2) and np.asarray(p["joints_3d_cam"]).shape == (70, 3)
    assert len(p["mhr_params"]) == 204 and len(p["shape_params"]) == 45 and len(p["cam_trans"]) == 3
    # reused box: the frame-0 box grown by 10% a side, clipped to the 960x540 image, score 1.0 x 0.9
    np.testing.assert_allclose(p["box"], [268, 0, 652, 540], atol=0.01)
    assert p["score"] == pytest.approx(0.9)
    assert set(frames[0]["timings"]) == {"detector_ms", "hmr_ms", "total_ms"}
    assert data["meta"]["image_size"] == [960, 540] and data["summary"]["frames"] == 5

    assert count_video_frames(out / "run.mp4") == 5
    import cv2

    cap = cv2.VideoCapture(str(out / "run.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FPS), rel=0.01)
    cap.release()

    ents = rrd_entities(out / "run.rrd")
    for entity in ("/world/camera", "/world/camera/boxes", "/world/camera/skeleton/left_arm",
                   "/world/skeleton/right_leg", "/world/joints", "/timings/ms/detector_ms", "/timings/ms/hmr_ms",
                   "/timings/ms/total_ms", "/timings/fps"):
        assert entity in ents, entity
    assert "Pinhole" in ents and "EncodedImage" in ents and "ViewCoordinates" in ents


def test_image_headless(tmp_path, photo, random_onnx):
    boxes = box_file(tmp_path / "b.json", {0: [[500, 0, 900, 700]]})
    rc = demo.main(["--image", str(photo), "--model", str(random_onnx), "--detector", str(boxes), "--no-spawn",
                    "--device", "cpu", "--save-rrd", str(tmp_path / "img.rrd"), "--save-json",
                    str(tmp_path / "img.json"), "--out-video", str(tmp_path / "img.mp4")])
    assert rc == 0
    data = json.loads((tmp_path / "img.json").read_text())
    assert len(data["frames"]) == 1 and len(data["frames"][0]["persons"]) == 1
    assert data["meta"]["joint_order"].startswith("MHR70") and data["meta"]["image_size"] == [1280, 720]
    # the JSON holds the network's answer for that photo and box (not, e.g., a blank or a resized frame's)
    from instanthmr.runtime.hmr import InstantHMR
    from instanthmr.video.sources import read_image_rgb

    person = data["frames"][0]["persons"][0]
    ref = InstantHMR(random_onnx, device="cpu", warmup=False).predict(read_image_rgb(photo), [[500, 0, 900, 700]])[0]
    assert person["box"] == [500, 0, 900, 700]
    np.testing.assert_allclose(person["joints_2d"], ref.joints_2d, atol=0.02)  # JSON rounds pixels to 0.01
    np.testing.assert_allclose(person["joints_3d_cam"], ref.joints_3d_cam, atol=2e-4)  # and metres to 0.1 mm
    assert person["focal_length"] == pytest.approx(np.hypot(1280, 720), abs=1e-3)
    assert count_video_frames(tmp_path / "img.mp4") == 1
    assert "/world/camera/boxes" in rrd_entities(tmp_path / "img.rrd")


def test_frame_skip_and_max_frames(tmp_path, clip, random_onnx):
    boxes = box_file(tmp_path / "b.json", {i: [[300, 40, 620, 530]] for i in range(5)})
    rc = demo.main(["--video", str(clip), "--model", str(random_onnx), "--detector", str(boxes), "--no-spawn",
                    "--device", "cpu", "--frame-skip", "2", "--max-frames", "2", "--save-json",
                    str(tmp_path / "s.json"), "--out-video", str(tmp_path / "s.avi")])
    assert rc == 0
    frames = json.loads((tmp_path / "s.json").read_text())["frames"]
    assert [f["frame_index"] for f in frames] == [0, 2]
    assert count_video_frames(tmp_path / "s.avi") == 2


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as e:
        demo.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--image", "--video", "--camera", "--model", "--device", "--detector-variant", "--det-confidence",
                 "--max-persons", "--detector-stride", "--frame-skip", "--no-batch-persons", "--save-rrd",
                 "--no-spawn", "--max-frames", "--save-json", "--out-video", "--random-init", "--detector",
                 "--detector-weights", "--smooth", "--keypoint-crops", "--save-csv", "--save-npz", "--save-bvh",
                 "--mhr-model", "--mhr-lod", "--mhr-overlay", "--random-init-config", "--quiet", "--threads",
                 "--int8", "--fp16", "--io-binding", "--cuda-graph", "--detector-resolution", "--async-detector",
                 "--frames-in-flight"):
        assert flag in text, flag
    for action in demo.build_parser()._actions:  # no flag without an explanation
        assert action.help and len(action.help) > 10, action.option_strings


def test_exactly_one_source(capsys):
    for argv in ([], ["--image", "a.jpg", "--video", "b.mp4"]):
        with pytest.raises(SystemExit) as e:
            demo.main(argv)
        assert e.value.code == 2


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no message"
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_bad_inputs_give_one_line_and_exit_1(tmp_path, random_onnx, capsys):
    m = ["--model", str(random_onnx), "--no-spawn", "--device", "cpu"]
    assert demo.main(["--image", str(tmp_path / "nope.jpg")] + m) == 1
    assert "image not found" in _error(capsys)

    fake = tmp_path / "fake.jpg"
    fake.write_text("this is not a picture")
    assert demo.main(["--image", str(fake)] + m) == 1
    assert "cannot decode image" in _error(capsys)

    assert demo.main(["--video", str(tmp_path / "nope.mp4")] + m) == 1
    assert "video not found" in _error(capsys)

    bad_video = tmp_path / "bad.mp4"
    bad_video.write_bytes(b"\x00" * 4096)
    assert demo.main(["--video", str(bad_video)] + m) == 1
    assert "bad.mp4" in _error(capsys)

    assert demo.main(["--camera", "57"] + m) == 1
    assert "cannot open camera 57" in _error(capsys)


def test_bad_models(tmp_path, photo, monkeypatch, capsys):
    from instanthmr.core import paths
    from instanthmr.runtime import factory
    from instanthmr.runtime.mediapipe import files as mediapipe_files

    # neither the released network, nor the offline MediaPipe path, nor the starter: the error names the file
    # to download
    monkeypatch.setattr(mediapipe_files, "unavailable_reason", lambda: "MediaPipe models absent (test)")
    monkeypatch.setattr(factory, "DEFAULT_MODEL", tmp_path / "models" / "instanthmr.onnx")
    monkeypatch.setattr(paths, "DEFAULT_MODEL", tmp_path / "models" / "instanthmr.onnx")
    monkeypatch.setattr(paths, "STARTER_MODEL", tmp_path / "models" / "instanthmr-starter.onnx")
    assert demo.main(["--image", str(photo), "--no-spawn"]) == 1
    msg = _error(capsys)
    assert "instanthmr.onnx" in msg and "models/README.md" in msg and "--random-init" in msg

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"garbage")
    assert demo.main(["--image", str(photo), "--no-spawn", "--model", str(junk)]) == 1
    assert "junk.onnx" in _error(capsys)

    assert demo.main(["--image", str(photo), "--no-spawn", "--model", str(tmp_path / "x.onnx")]) == 1
    assert "check the --model path" in _error(capsys)


def test_precision_and_gpu_lever_flags(tmp_path, photo, random_onnx, capsys):
    import shutil

    from instanthmr.training.quantize import quantize

    net = tmp_path / "net.onnx"
    shutil.copy(random_onnx, net)
    boxes = box_file(tmp_path / "b.json", {0: [[500, 0, 900, 700]]})
    m = ["--image", str(photo), "--model", str(net), "--detector", str(boxes), "--no-spawn", "--device", "cpu"]
    assert demo.main(m + ["--fp16"]) == 1  # no fp16 copy yet: one line that names the command making it
    msg = _error(capsys)
    assert "net.fp16.onnx" in msg and "quantize_onnx.py" in msg and "--mode fp16" in msg
    with pytest.raises(SystemExit) as e:
        demo.main(m + ["--fp16", "--int8"])
    assert e.value.code == 2
    quantize(net, mode="fp16")
    out = tmp_path / "h.json"
    # --cuda-graph is ignored off CUDA (the CPU provider has none) and must not break the run
    assert demo.main(m + ["--fp16", "--io-binding", "--cuda-graph", "--save-json", str(out)]) == 0
    assert "net.fp16.onnx (fp16, io binding) on CPUExecutionProvider" in capsys.readouterr().out
    assert len(json.loads(out.read_text())["frames"][0]["persons"]) == 1


def test_frames_in_flight_video_writes_every_frame_in_order(tmp_path, clip, random_onnx, capsys):
    """--frames-in-flight 2 with --keypoint-crops: the runner takes each result a frame late and writes all of
    them, in order, into the data file and the video; without --keypoint-crops it is refused in one line."""
    boxes = box_file(tmp_path / "b.json", {i: [[300, 40, 620, 530]] for i in range(5)})
    m = ["--video", str(clip), "--model", str(random_onnx), "--detector", str(boxes), "--no-spawn", "--device", "cpu",
         "--frames-in-flight", "2"]
    out = tmp_path / "f.json"
    assert demo.main(m + ["--keypoint-crops", "--detector-stride", "2", "--save-json", str(out), "--out-video",
                          str(tmp_path / "f.mp4")]) == 0
    frames = json.loads(out.read_text())["frames"]
    assert [f["frame_index"] for f in frames] == [0, 1, 2, 3, 4] and all(len(f["persons"]) == 1 for f in frames)
    assert count_video_frames(tmp_path / "f.mp4") == 5
    capsys.readouterr()
    assert demo.main(m) == 2
    assert "--frames-in-flight above 1 (also set by the cpu-live preset) needs --keypoint-crops" in _error(capsys)


def test_wrong_onnx_as_model(tmp_path, photo, capsys):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])
    g = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "g", [x], [y])
    path = tmp_path / "other.onnx"
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # loadable by any ONNX Runtime: the file is valid, just not InstantHMR
    onnx.save(model, str(path))
    assert demo.main(["--image", str(photo), "--no-spawn", "--model", str(path), "--device", "cpu"]) == 1
    msg = _error(capsys)
    assert "other.onnx" in msg and "cliff_cond" in msg


def test_no_people_exit_3_with_outputs(tmp_path, clip, random_onnx, capsys):
    boxes = box_file(tmp_path / "b.json", {})
    rc = demo.main(["--video", str(clip), "--model", str(random_onnx), "--detector", str(boxes), "--no-spawn",
                    "--device", "cpu", "--max-frames", "3", "--save-json", str(tmp_path / "n.json"),
                    "--out-video", str(tmp_path / "n.mp4")])
    assert rc == 3
    assert "no person found" in _error(capsys)
    frames = json.loads((tmp_path / "n.json").read_text())["frames"]
    assert len(frames) == 3 and all(f["persons"] == [] for f in frames)
    assert count_video_frames(tmp_path / "n.mp4") == 3


def test_interrupted_video_keeps_processed_frames(tmp_path, clip, random_onnx, monkeypatch, capsys):
    from instanthmr.runtime import pipeline as pipeline_mod
    from instanthmr.runtime.detector import Detections, PersonDetector

    class StopAtFrame3(PersonDetector):
        name = "stopper"

        def detect(self, image_rgb, frame_index=None):
            if frame_index == 3:
                raise KeyboardInterrupt
            return Detections(np.array([[300, 40, 620, 530]]), np.array([0.9]))

    monkeypatch.setattr(pipeline_mod, "create_detector", lambda *a, **k: StopAtFrame3(0.0))
    rc = demo.main(["--video", str(clip), "--model", str(random_onnx), "--no-spawn", "--device", "cpu",
                    "--save-json", str(tmp_path / "i.json"), "--out-video", str(tmp_path / "i.mp4"),
                    "--save-rrd", str(tmp_path / "i.rrd")])
    assert rc == 130
    data = json.loads((tmp_path / "i.json").read_text())  # still valid JSON
    assert [f["frame_index"] for f in data["frames"]] == [0, 1, 2]
    assert count_video_frames(tmp_path / "i.mp4") == 3
    assert "/world/camera/boxes" in rrd_entities(tmp_path / "i.rrd")


def test_draw_frame_colours_parts_and_leaves_input_alone():
    from types import SimpleNamespace as NS

    from instanthmr.core.skeleton import MHR70_INDEX
    from instanthmr.outputs.visualizer import GROUP_COLORS, draw_frame

    img = np.zeros((200, 300, 3), np.uint8)
    j2d = np.full((70, 2), np.nan)
    j2d[MHR70_INDEX["left_shoulder"]] = (50, 50)
    j2d[MHR70_INDEX["left_elbow"]] = (50, 150)  # one vertical left-arm segment, everything else missing
    person = NS(box=np.array([20, 20, 120, 180.0]), score=0.8, joints_2d=j2d)
    result = NS(persons=[person], detector_ms=1.0, hmr_ms=2.0, total_ms=3.5, detector_ran=True)
    out = draw_frame(img, result, text=False)
    assert img.sum() == 0  # drawn on a copy
    row = out[100, 47:54].astype(int)  # anti-aliased 1 px line: the closest pixel carries the part colour
    assert np.abs(row - GROUP_COLORS["left_arm"]).max(axis=1).min() < 40
    assert out[100, 200].sum() == 0  # nothing drawn outside the box and the skeleton


def _masked_person(valid):
    """A person with every joint at a real-looking position, and ``joints_valid`` = ``valid``."""
    from types import SimpleNamespace as NS

    from instanthmr.core.skeleton import MHR70_INDEX

    j2d = np.full((70, 2), 100.0)
    j2d[MHR70_INDEX["left_shoulder"]] = (50, 50)
    j2d[MHR70_INDEX["left_elbow"]] = (50, 150)
    j3d = np.tile([0.0, 0.0, 3.0], (70, 1)) + np.arange(70)[:, None] * 0.01
    return NS(box=np.array([20, 20, 120, 180.0]), score=0.8, joints_2d=j2d, joints_3d_cam=j3d, joints_valid=valid,
              focal_length=500.0, principal_point=np.array([150.0, 100.0]), track_id=1)


def test_absent_joints_are_not_drawn():
    """A joint the model does not have (joints_valid False) is not drawn, nor the bones ending at it, even
    when its numbers look real."""
    from types import SimpleNamespace as NS

    from instanthmr.core.skeleton import MHR70_INDEX
    from instanthmr.outputs.visualizer import GROUP_COLORS, draw_frame

    img = np.zeros((200, 300, 3), np.uint8)
    valid = np.ones(70, bool)
    result = NS(persons=[_masked_person(valid)], detector_ms=1.0, hmr_ms=2.0, total_ms=3.5, detector_ran=True)
    drawn = draw_frame(img, result, text=False, boxes=False)
    row = drawn[100, 47:54].astype(int)
    assert np.abs(row - GROUP_COLORS["left_arm"]).max(axis=1).min() < 40  # the bone, when both ends exist
    valid[MHR70_INDEX["left_elbow"]] = False
    result.persons[0].joints_valid = valid
    assert draw_frame(img, result, text=False, boxes=False)[60:140, 45:56].sum() == 0


def test_rerun_logs_only_present_joints():
    """The viewer gets no point, bone or head label for joints a person does not have."""
    import rerun as rr

    from instanthmr.core.skeleton import MHR70_NAMES
    from instanthmr.outputs.visualizer import RerunVisualizer

    class Rec:
        def __init__(self):
            self.logged = {}

        def set_time(self, *a, **k):
            pass

        def log(self, entity, arch, **k):
            self.logged[entity] = arch

    def logged(valid):
        viz = RerunVisualizer.__new__(RerunVisualizer)
        viz.rr, viz.rec, viz.jpeg_quality, viz.image_plane_distance, viz._camera_key = rr, Rec(), None, 1.0, None
        result = type("R", (), {"persons": [_masked_person(valid)], "frame_index": 0, "detector_ms": 1.0,
                                "hmr_ms": 2.0, "total_ms": 3.0})()
        viz.log_frame(np.zeros((200, 300, 3), np.uint8), result)
        got = viz.rec.logged
        return {name: len(getattr(got[name], attr).as_arrow_array()) for name, attr in (
            ("world/camera/joints", "positions"), ("world/joints", "positions"), ("world/tracks", "positions"),
            ("world/camera/skeleton/left_arm", "strips"), ("world/skeleton/left_arm", "strips"))}

    full = logged(np.ones(70, bool))
    valid = np.ones(70, bool)
    head = [i for i, n in enumerate(MHR70_NAMES) if n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
    valid[head + [MHR70_NAMES.index("left_elbow")]] = False
    part = logged(valid)
    assert full["world/camera/joints"] == full["world/joints"] == 70 and full["world/tracks"] == 1
    assert part["world/camera/joints"] == part["world/joints"] == 70 - 6
    assert part["world/tracks"] == 0  # no head joint: no label floating at a made-up place
    assert part["world/camera/skeleton/left_arm"] == full["world/camera/skeleton/left_arm"] - 2  # both elbow bones
    assert part["world/skeleton/left_arm"] == full["world/skeleton/left_arm"] - 2


def test_folder_of_photos(tmp_path, shared_data, random_onnx, capsys):
    """--image DIR: every photo in name order, each on its own (a fresh detection, no track carried over),
    the file name in the JSON; an unreadable file is skipped with a count and the others still run."""
    import shutil

    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(shared_data / "images" / "romp_demo" / "Leo_Messi.jpg", folder / "a_messi.jpg")
    (folder / "b_broken.jpg").write_text("not a picture")
    shutil.copy(shared_data / "images" / "hybrik_examples" / "000000581091.jpg", folder / "c_portrait.jpg")
    (folder / "notes.txt").write_text("ignored: not an image extension")
    boxes = box_file(tmp_path / "b.json", {0: [[500, 0, 900, 700]], 2: [[50, 50, 400, 600], [100, 80, 300, 500]]})
    out = tmp_path / "photos.json"
    rc = demo.main(["--image", str(folder), "--model", str(random_onnx), "--detector", str(boxes), "--no-spawn",
                    "--device", "cpu", "--detector-stride", "5", "--smooth", "causal", "--save-json", str(out),
                    "--save-rrd", str(tmp_path / "photos.rrd")])
    assert rc == 0
    captured = capsys.readouterr()
    assert "skipped b_broken.jpg" in captured.err and "skipped 1 unreadable file(s) of 3" in captured.err
    assert "--smooth causal ignored" in captured.err
    data = json.loads(out.read_text())
    frames = data["frames"]
    assert [(f["frame_index"], f["file"]) for f in frames] == [(0, "a_messi.jpg"), (2, "c_portrait.jpg")]
    # every photo runs the detector although --detector-stride is 5: boxes never carry over between photos
    assert all(f["detector_ran"] for f in frames)
    assert [len(f["persons"]) for f in frames] == [1, 2]
    assert data["meta"]["source_kind"] == "images" and data["summary"]["skipped_files"] == ["b_broken.jpg"]
    assert "/world/camera/boxes" in rrd_entities(tmp_path / "photos.rrd")


def test_folder_without_photos(tmp_path, random_onnx, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    m = ["--model", str(random_onnx), "--no-spawn", "--device", "cpu"]
    assert demo.main(["--image", str(empty)] + m) == 1
    assert "no images in folder" in _error(capsys)
    (empty / "x.png").write_bytes(b"\x89PNG broken")
    assert demo.main(["--image", str(empty)] + m) == 1
    assert "no readable image in folder" in _error(capsys)


def test_live_runs_keep_frame_stats_not_frames(tmp_path, clip, random_onnx, monkeypatch, capsys):
    """Without --smooth offline the run keeps only each frame's timings and track IDs (a camera may run for
    hours); offline smoothing needs the whole frames and keeps them."""
    from instanthmr.outputs.summary import FrameStats

    kept = []
    real_of = FrameStats.of

    def spy(result):
        stats = real_of(result)
        kept.append(stats)
        return stats

    monkeypatch.setattr(FrameStats, "of", staticmethod(spy))
    boxes = box_file(tmp_path / "b.json", {i: [[300, 40, 620, 530]] for i in range(5)})
    m = ["--video", str(clip), "--model", str(random_onnx), "--detector", str(boxes), "--no-spawn", "--device", "cpu"]
    assert demo.main(m + ["--smooth", "causal"]) == 0
    assert len(kept) == 5 and all(len(s.persons) == 1 and isinstance(s.persons[0], int) for s in kept)
    assert not any(isinstance(v, np.ndarray) for s in kept for v in s)  # no joints, boxes or images
    out = capsys.readouterr().out
    assert "5 frame(s)" in out and "1 track(s): IDs 1" in out  # the summary and track list still work
    kept.clear()
    assert demo.main(m + ["--smooth", "offline"]) == 0
    assert kept == []


def test_mhr_model_file_is_read_once_for_the_body_fit_and_the_meshes(photo, mp_models, tmp_path, monkeypatch):
    """``--mhr-model PATH`` with the body fit on and meshes drawn: the file is read once and the built model
    serves both (the fit and the recording's meshes)."""
    from instanthmr.body import mhr as mhr_module
    from instanthmr.body.mhr import SHIPPED_MHR_MODEL

    reads = []
    real = mhr_module.load_mhr_assets

    def counted(path, *a, **kw):
        reads.append(str(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(mhr_module, "load_mhr_assets", counted)
    rrd = tmp_path / "run.rrd"
    assert demo.main(["--model", "mediapipe", "--mhr-model", str(SHIPPED_MHR_MODEL), "--image", str(photo),
                      "--no-spawn", "--threads", "1", "--save-rrd", str(rrd)]) == 0
    assert rrd.is_file()
    assert reads == [str(SHIPPED_MHR_MODEL)]


def test_mediapipe_with_an_mhr_model_says_why_there_are_no_meshes(photo, mhr_dir, mp_models, tmp_path, capsys):
    """``--model mediapipe --mhr-model``: the body fit poses the MHR body on the MediaPipe path, so meshes are
    drawn (no "[mhr]" line); with ``--no-body-fit`` there are no MHR parameters to pose it with, so the run goes
    on without meshes and says so in one line (only where meshes would have been shown: without a viewer,
    .rrd, video or .glb the usual "meshes need ..." line comes instead)."""
    from test_mhr_layer import _converted

    m = ["--model", "mediapipe", "--mhr-model", str(_converted(6, mhr_dir)[0]), "--image", str(photo), "--no-spawn",
         "--threads", "1"]

    def mhr_lines() -> list[str]:
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return [line for line in err.splitlines() if line.startswith("[mhr]")]

    assert demo.main(m) == 0
    assert mhr_lines() == ["[mhr] meshes need the viewer, --save-rrd, --out-video or --save-gltf; none of them is on"]
    rrd = tmp_path / "run.rrd"
    assert demo.main(m + ["--save-rrd", str(rrd)]) == 0
    assert rrd.is_file() and mhr_lines() == []                      # the fitted body's meshes are drawn
    assert demo.main(m + ["--save-rrd", str(rrd), "--no-body-fit"]) == 0
    lines = mhr_lines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("[mhr] no meshes: without the body fit (--no-body-fit) the MediaPipe path has no MHR")
