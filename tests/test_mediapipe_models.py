"""Which runtime runs a MediaPipe model file (runtime/mediapipe/models.py, files.py): the ONNX copies behind the
LiteRT runner's interface, the precision choice, and its one-line errors. Tiny ONNX graphs built here; the real
files only where present (else skip)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from instanthmr.runtime.factory import PipelineSpec  # noqa: E402
from instanthmr.runtime.mediapipe import files  # noqa: E402
from instanthmr.runtime.mediapipe.models import OnnxMediaPipeModel, open_model  # noqa: E402
from instanthmr.runtime.session import ModelLoadError  # noqa: E402


def _save(tmp_path, name, inputs, nodes, outputs):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _nhwc_model(tmp_path, side=8):
    """An NHWC image in, outputs named like a converted .tflite's, created out of name order: ``Identity_10``
    (the mean), ``Identity`` (the input doubled), ``Identity_2`` (the max)."""
    x = helper.make_tensor_value_info("input_1", TensorProto.FLOAT, [1, side, side, 3])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("Identity_10", "Identity", "Identity_2")]
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [helper.make_node("ReduceMean", ["input_1"], ["Identity_10"], keepdims=0),
             helper.make_node("Constant", [], ["c2"], value=two),
             helper.make_node("Mul", ["input_1", "c2"], ["Identity"]),
             helper.make_node("ReduceMax", ["input_1"], ["Identity_2"], keepdims=0)]
    return _save(tmp_path, "toy.onnx", [x], nodes, outs)


def test_onnx_copy_runs_behind_the_tflite_interface(tmp_path):
    path = _nhwc_model(tmp_path)
    model = open_model(path)
    assert isinstance(model, OnnxMediaPipeModel)
    assert model.input_size == 8 and model.threads == 1  # one thread per model (measured: docs/offline.md)
    assert model.outputs == ["Identity", "Identity_2", "Identity_10"]  # MediaPipe's order, not the file's
    x = np.random.default_rng(0).random((1, 8, 8, 3)).astype(np.float64)  # any float input is cast
    doubled, top, mean = model(x)
    np.testing.assert_allclose(doubled, 2 * x, rtol=1e-6)
    assert float(top) == pytest.approx(x.max(), rel=1e-6) and float(mean) == pytest.approx(x.mean(), rel=1e-5)
    only = open_model(path, drop_outputs=("Identity_2",))
    assert only.outputs == ["Identity", "Identity_10"] and len(only(x)) == 2


def test_onnx_model_not_an_image_model_is_refused_in_one_line(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])  # NCHW: not the tflite's layout
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    path = _save(tmp_path, "nchw.onnx", [x], [helper.make_node("Relu", ["x"], ["y"])], [y])
    with pytest.raises(ModelLoadError) as e:
        open_model(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "NHWC" in msg


def test_tflite_files_still_go_to_litert(tmp_path):
    bad = tmp_path / "pose_landmark_full.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelLoadError) as e:  # LiteRT's loader (or its absence) answers, not ONNX Runtime's
        open_model(bad)
    assert "onnx" not in str(e.value).lower()


def test_landmark_model_path_per_precision(tmp_path):
    assert files.landmark_model_path("hand_landmark_full", "int8").parent == files.INT8_MODELS_DIR
    assert files.landmark_model_path("hand_landmark_full", "int8").name == "hand_landmark_full.int8.onnx"
    for precision in ("int8", "float"):  # no int8 copy (the pose model's drifts too far): MediaPipe's own file
        with pytest.raises(files.MediaPipeModelError, match="fetch_models.py mediapipe"):
            files.landmark_model_path("pose_landmark_full", precision, models_dir=tmp_path)  # not fetched there
    with pytest.raises(files.MediaPipeModelError, match="fetch_models.py mediapipe"):
        files.landmark_model_path("hand_landmark_full", "float", models_dir=tmp_path)
    with pytest.raises(ValueError, match="int8, float"):
        files.landmark_model_path("hand_landmark_full", "fp16")


def test_missing_int8_copy_says_how_to_go_on(monkeypatch, tmp_path):
    monkeypatch.setattr(files, "INT8_MODELS_DIR", tmp_path)
    with pytest.raises(files.MediaPipeModelError) as e:
        files.landmark_model_path("hand_landmark_full", "int8")
    assert "--mediapipe-precision float" in str(e.value) and str(tmp_path) in str(e.value)


def test_pipeline_spec_checks_the_precision_before_loading():
    PipelineSpec(model="mediapipe", mediapipe_precision="float").validate()
    with pytest.raises(ValueError, match="mediapipe_precision must be one of int8, float"):
        PipelineSpec(model="mediapipe", mediapipe_precision="fp16").validate()


def test_demo_flag_reaches_the_spec():
    from instanthmr.cli import demo
    from instanthmr.cli.run_flags import pipeline_spec

    p = demo.build_parser()
    for argv, want in (([], "int8"), (["--mediapipe-precision", "float"], "float")):
        assert pipeline_spec(p.parse_args(["--video", "clip.mp4", *argv])).mediapipe_precision == want
    with pytest.raises(SystemExit):
        p.parse_args(["--video", "clip.mp4", "--mediapipe-precision", "fp16"])


@pytest.mark.parametrize("name", sorted(files.INT8_MODEL_FILES))
def test_shipped_int8_files_match_their_checksums(name):
    file_name, digest = files.INT8_MODEL_FILES[name]
    path = files.INT8_MODELS_DIR / file_name
    assert path.is_file(), f"{path} must ship with the package"
    assert files._sha256(path) == digest


def test_run_loop_threads_leave_a_core_to_the_finishing_thread_when_hands_run():
    from instanthmr.runtime.mediapipe.models import run_loop_threads

    assert run_loop_threads(True, 2) == 1 and run_loop_threads(False, 2) == 2   # this machine's two cores
    assert run_loop_threads(True, 1) == 1 and run_loop_threads(False, 1) == 1
    assert run_loop_threads(True, 16) == 4 and run_loop_threads(True, 4) == 3


def test_the_run_loop_pipeline_takes_the_run_loop_threads_unless_told(mp_models, monkeypatch):
    """LiteRT's threads: the run loop's pipeline leaves a core to its finishing thread when hands run; any other
    pipeline keeps LiteRT's default; --threads wins. The int8 hand model on ONNX Runtime stays at one thread."""
    import os

    from instanthmr.runtime.factory import create_pipeline
    from instanthmr.runtime.mediapipe.models import ONNX_THREADS
    from instanthmr.runtime.session import RuntimeOptions

    for cores in (2, 8):
        monkeypatch.setattr(os, "cpu_count", lambda: cores)
        cases = ((True, 0, True, min(4, cores - 1)), (False, 0, True, min(4, cores)), (True, 2, True, 2),
                 (True, 0, False, min(4, cores)), (True, 3, False, 3))
        for hands, threads, loop, want in cases:
            spec = PipelineSpec(model="mediapipe", hands=hands, runtime=RuntimeOptions(threads=threads))
            pipe = create_pipeline(spec, run_loop=loop)
            assert pipe.estimator.landmarker.model.num_threads == want, (cores, hands, threads, loop)
            if hands and pipe.estimator.hand_int8:
                assert pipe.estimator.hand.model.threads == ONNX_THREADS == 1
