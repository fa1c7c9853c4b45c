"""The run loop and the model-choice policy as library calls: RunConfig.validate, run() with a pipeline built by
the caller and a stop event, create_pipeline's choice and its lines."""

from __future__ import annotations

import json
import threading
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from instanthmr.core import paths
from instanthmr.core.paths import STARTER_MODEL
from instanthmr.runner.config import RunConfig
from instanthmr.runtime import factory, hub
from instanthmr.runtime.factory import PipelineSpec, create_pipeline

GOLDEN = Path(__file__).parent / "golden"
BOXES = GOLDEN / "openpose12_boxes.json"


@pytest.fixture
def clip(shared_data) -> Path:
    path = shared_data / "videos" / "openpose_video.avi"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture
def starter():
    if not STARTER_MODEL.is_file():
        pytest.skip(f"{STARTER_MODEL} not found")
    return STARTER_MODEL


@pytest.mark.parametrize("fields, message", [
    ({}, "give exactly one source: image, video or camera"),
    ({"image": "a.jpg", "video": "b.mp4"}, "(got image, video)"),
    ({"video": "a.mp4", "frame_skip": 0}, "frame_skip must be 1 or more, got 0"),
    ({"video": "a.mp4", "max_frames": 0}, "max_frames must be 1 or more"),
    ({"camera": -1}, "camera is a camera index, 0 or more"),
    ({"camera": 0, "smooth": "offline"}, "smooth offline needs the whole video"),
    ({"video": "a.mp4", "smooth": "sometimes"}, "smooth is one of none, causal, offline"),
    ({"video": "a.mp4", "rig": "unreal"}, "rig is one of mhr70, mixamo"),
    ({"video": "a.mp4", "mhr_lod": 9}, "mhr_lod is a level of detail from 0"),
    ({"video": "a.mp4", "focal_length": 0.0}, "focal_length is a focal length in pixels"),
    ({"video": "a.mp4", "out_video": "x.gif"}, "give a file name ending in one of"),
    ({"video": "a.mp4", "save_json": "s.out", "save_csv": "s.out"}, "save_csv s.out is also save_json"),
    ({"video": "a.mp4", "pipeline": PipelineSpec(max_persons=0)}, "max_persons must be 1 or more"),
    ({"video": "a.mp4", "pipeline": PipelineSpec(det_confidence=float("nan"))}, "det_confidence is a detection score"),
])
def test_validate_names_the_field_in_one_line(tmp_path, monkeypatch, fields, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as e:
        RunConfig(**fields).validate()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_validate_labels_fields_as_the_caller_names_them(tmp_path):
    with pytest.raises(ValueError, match="^--frame-skip must be 1 or more, got 0$"):
        RunConfig(video="a.mp4", frame_skip=0).validate(lambda f: "--" + f.replace("_", "-"))
    RunConfig(video="a.mp4", save_json=str(tmp_path / "o.json")).validate()  # a good one passes
    with pytest.raises(FrozenInstanceError):
        RunConfig(video="a.mp4").frame_skip = 2


def test_default_smoothing_follows_the_source():
    assert RunConfig(image="a.jpg").smoothing() == "none"
    assert RunConfig(video="a.mp4").smoothing() == "offline"  # no viewer: the lower error
    assert RunConfig(video="a.mp4", viewer=True).smoothing() == "causal"
    assert RunConfig(camera=0).smoothing() == "causal"


def test_speed_presets_say_whether_the_body_fit_runs_and_the_flags_override():
    from instanthmr.cli import demo
    from instanthmr.runtime.session import RUNTIME_PRESETS, RuntimeOptions

    def spec(preset):
        return PipelineSpec(runtime=RUNTIME_PRESETS[preset])

    # no preset choice: the path's default (on for the MediaPipe path, off for a network)
    assert RunConfig(video="a.mp4").fits_body(mediapipe=True)
    assert not RunConfig(video="a.mp4").fits_body(mediapipe=False)
    assert RunConfig(video="a.mp4", pipeline=spec("gpu")).fits_body(mediapipe=True)
    # the fastest preset turns it off; body_fit given to the run overrides the preset both ways
    assert not RunConfig(video="a.mp4", pipeline=spec("cpu-fast")).fits_body(mediapipe=True)
    assert RunConfig(video="a.mp4", pipeline=spec("cpu-fast"), body_fit=True).fits_body(mediapipe=True)
    on = PipelineSpec(runtime=RuntimeOptions(body_fit=True))
    assert RunConfig(video="a.mp4", pipeline=on).fits_body(mediapipe=False)
    assert not RunConfig(video="a.mp4", pipeline=on, body_fit=False).fits_body(mediapipe=False)
    # the command line: --preset, the levers given on top of it, --body-fit / --no-body-fit
    parser = demo.build_parser()

    def config(*flags):
        return demo.config_from_flags(parser.parse_args(["--video", "a.mp4", *flags]))

    fast = config("--preset", "cpu-fast")
    assert fast.pipeline.runtime == RUNTIME_PRESETS["cpu-fast"] and not fast.fits_body(mediapipe=True)
    assert config("--preset", "cpu-fast", "--body-fit").fits_body(mediapipe=True)
    assert config("--preset", "cpu-fast", "--threads", "2").pipeline.runtime.threads == 2
    # a lever given at its plain value still overrides the preset's (it is given, not left out)
    assert config("--preset", "cpu-fast", "--threads", "0").pipeline.runtime.threads == 0
    one = config("--preset", "cpu-live", "--keypoint-crops", "--frames-in-flight", "1").pipeline.runtime
    assert one.frames_in_flight == 1 and one.async_detector and one.session_threads(cores=2) == 0
    assert config("--preset", "cpu-live", "--keypoint-crops").pipeline.runtime == RUNTIME_PRESETS["cpu-live"]
    # the preset's hidden detector turned off on top of it, the rest of the preset kept
    off = config("--preset", "cpu-live", "--keypoint-crops", "--no-async-detector").pipeline.runtime
    assert not off.async_detector and off.frames_in_flight == RUNTIME_PRESETS["cpu-live"].frames_in_flight
    assert config("--async-detector").pipeline.runtime.async_detector
    assert config("--frames-in-flight", "2", "--keypoint-crops").pipeline.runtime.spinning is False
    assert config().pipeline.runtime == RuntimeOptions() and config().fits_body(mediapipe=True)
    assert not config("--no-body-fit").fits_body(mediapipe=True)


def test_run_as_a_library_call_with_a_pipeline_stages_and_a_stop_event(clip, starter, tmp_path, capsys):
    """The caller builds the pipeline; a stage sees every tracked frame and sets the stop event after 3: the run
    ends there with the 3 frames in a valid JSON, and the pipeline stays usable for a second run."""
    from instanthmr.runner.loop import run

    pipe = create_pipeline(str(starter), detector=str(BOXES), detector_stride=3,
                           runtime=factory.RuntimeOptions(threads=1))
    assert pipe.model_source == starter and "given" in pipe.why
    stop, seen = threading.Event(), []

    def stage(frame, result):
        seen.append(frame.index)
        if len(seen) == 3:
            stop.set()
        return result

    out = tmp_path / "run.json"
    report = run(RunConfig(video=str(clip), max_frames=8, smooth="causal", save_json=str(out), stages=(stage,),
                           quiet=True), pipeline=pipe, stop=stop)
    assert (report.frames, report.status, report.stopped_by, report.exit_code) == (3, "stopped", "stop event", 130)
    assert seen == [0, 1, 2] and report.files["json"] == [out]
    data = json.loads(out.read_text())
    assert len(data["frames"]) == 3 and data["meta"]["model"] == str(starter) and data["meta"]["detector_stride"] == 3
    assert report.people == len(report.tracks) >= 1
    assert "stopped by stop event after 3 frame(s)" in capsys.readouterr().err

    focal = pipe.focal_length
    again = run(RunConfig(video=str(clip), max_frames=2, smooth="none", quiet=True, verbose=False,
                          focal_length=900.0), pipeline=pipe)
    assert pipe.focal_length == focal  # the run's focal length was for that run only
    assert (again.frames, again.status, again.exit_code, again.files) == (2, "done", 0, {})  # reset and reused
    assert capsys.readouterr() == ("", "")  # verbose off: not a line
    pipe.close()


def _no_released_network(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "DEFAULT_MODEL", tmp_path / "models" / "instanthmr.onnx")
    monkeypatch.setattr(factory, "DEFAULT_MODEL", tmp_path / "models" / "instanthmr.onnx")
    monkeypatch.setattr(hub, "released_model", lambda **k: hub.Released(None, None, "offline (test)"))


def test_policy_falls_back_to_the_starter_with_one_line_that_says_why(starter, tmp_path, monkeypatch):
    from instanthmr.runtime.mediapipe import files as mediapipe_hmr

    _no_released_network(monkeypatch, tmp_path)
    monkeypatch.setattr(mediapipe_hmr, "unavailable_reason", lambda: "MediaPipe models absent (test)")
    lines: list[str] = []
    pipe = create_pipeline(detector=str(BOXES), log=lines.append)
    assert pipe.model_source == starter and pipe.released is None and len(lines) == 1
    assert lines[0] == pipe.why
    assert lines[0].startswith("note: released model not used: offline (test); ")
    assert "the offline MediaPipe path cannot run either (MediaPipe models absent (test))" in lines[0]
    assert "running the offline starter model" in lines[0]
    pipe.close()


def test_policy_prefers_the_offline_mediapipe_path(tmp_path, monkeypatch):
    from instanthmr.runtime.mediapipe import files as mediapipe_hmr

    _no_released_network(monkeypatch, tmp_path)
    monkeypatch.setattr(mediapipe_hmr, "unavailable_reason", lambda: None)
    choice = factory.choose_model(PipelineSpec(), log=(lines := []).append)
    assert choice.model == "mediapipe" and lines == [choice.why] and "running the offline MediaPipe path" in lines[0]


def test_policy_errors_are_one_line(tmp_path, monkeypatch):
    from instanthmr.runtime.session import ModelLoadError

    with pytest.raises(ModelLoadError, match="InstantHMR model not found: .*check the --model path"):
        create_pipeline(str(tmp_path / "nope.onnx"))
    with pytest.raises(ModelLoadError, match="random_init needs the random-init export as model"):
        create_pipeline(random_init=True)
    with pytest.raises(TypeError, match="unknown field"):
        create_pipeline(detectr="boxes.json")
    with pytest.raises(ValueError, match="max_persons must be 1 or more"):
        create_pipeline("starter", max_persons=0)


def test_front_door_names_the_library_calls():
    import instanthmr
    from instanthmr.runner.loop import run

    assert instanthmr.run is run and instanthmr.create_pipeline is create_pipeline
    assert instanthmr.RunConfig is RunConfig and instanthmr.PipelineSpec is PipelineSpec
