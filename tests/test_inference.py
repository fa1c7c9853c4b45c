"""The ONNX runtime wrapper ``InstantHMR`` on a tiny random-init export: contract, batching, geometry, bad files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from instanthmr.core.geometry import (
    cliff_condition,
    crop_cam_to_full,
    crop_person,
    crop_to_image,
    default_focal,
    image_to_crop,
)
from instanthmr.runtime.hmr import HMRPrediction, InstantHMR, weak_cam_from_pixel_form
from instanthmr.runtime.session import ModelLoadError

BOXES = np.array([[100.0, 50.0, 300.0, 420.0], [400.0, 100.0, 480.0, 300.0], [-30.0, 200.0, 90.0, 470.0]])


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return img


@pytest.fixture(scope="module")
def hmr(random_onnx):
    return InstantHMR(random_onnx, device="cpu", max_persons=4)


def test_load_attributes_and_metadata(hmr):
    assert hmr.provider == "CPUExecutionProvider" and hmr.device == "cpu"
    assert hmr.cliff_form == "pixel" and hmr.has_wholebody is False and hmr.max_persons == 4
    assert hmr.model_info["input_size"] == 224 and hmr.model_info["model_name"] == "instanthmr_tiny_test"
    assert hmr.model_info["train_step"] == 0 and hmr.model_info["has_metadata"]
    assert "provider=CPUExecutionProvider" in repr(hmr)


def test_predict_contract(hmr, image):
    preds = hmr.predict(image, BOXES, scores=[0.9, 0.8, 0.7])
    assert len(preds) == 3 and all(isinstance(p, HMRPrediction) for p in preds)
    p = preds[1]
    assert p.joints_3d_local.shape == (70, 3) and p.joints_3d_cam.shape == (70, 3) and p.joints_2d.shape == (70, 2)
    assert p.cam_trans.shape == (3,) and p.mhr_params.shape == (204,) and p.shape_params.shape == (45,)
    assert p.joints_3d_wholebody is None and p.score == pytest.approx(0.8)
    np.testing.assert_allclose(p.joints_3d_cam, p.joints_3d_local + p.cam_trans, atol=1e-6)
    np.testing.assert_array_equal(p.box, BOXES[1].astype(np.float32))
    assert p.focal_length == pytest.approx(default_focal((640, 480)))
    np.testing.assert_allclose(p.principal_point, [320.0, 240.0])
    assert p.cam_trans[2] > 0
    # no scores -> 1.0; empty box list -> empty result
    assert hmr.predict(image, BOXES[:1])[0].score == 1.0
    assert hmr.predict(image, np.zeros((0, 4))) == [] and hmr.predict(image, []) == []


def test_preprocess_is_crop_person_normalised(hmr, image):
    crops, cliff = hmr.preprocess(image, BOXES)
    assert crops.shape == (3, 3, 224, 224) and crops.dtype == np.float32 and cliff.shape == (3, 3)
    crop, _ = crop_person(image, BOXES[2])
    mean, std = np.float32([0.485, 0.456, 0.406]), np.float32([0.229, 0.224, 0.225])
    expected = ((crop.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)
    np.testing.assert_allclose(crops[2], expected, atol=1e-5)
    np.testing.assert_allclose(cliff, cliff_condition(BOXES, (640, 480), form="pixel"), atol=1e-6)


def test_joints_2d_uncrop_consistency(hmr, image):
    crops, cliff = hmr.preprocess(image, BOXES)
    raw = hmr(crops, cliff)
    preds = hmr.predict(image, BOXES)
    for i, p in enumerate(preds):
        np.testing.assert_allclose(p.joints_2d, crop_to_image(raw["joints_2d"][i], BOXES[i]), atol=1e-3)
        # and back: full-image pixels -> the network's normalised crop coordinates
        np.testing.assert_allclose(image_to_crop(p.joints_2d, BOXES[i]), raw["joints_2d"][i], atol=1e-5)
    assert np.ptp(raw["joints_2d"]) > 0.5  # the random model spreads joints over the crop: a real check


def test_batch_padding_equivalence(random_onnx, hmr, image):
    """A person's result is the same alone, in a padded batch, in chunks, and one call per person."""
    alone = hmr.predict(image, BOXES[1:2])[0]
    together = hmr.predict(image, BOXES)[1]
    padded = InstantHMR(random_onnx, device="cpu", max_persons=4, padding="fixed", warmup=False)
    alone_in_4 = padded.predict(image, BOXES[1:2])[0]
    single = InstantHMR(random_onnx, device="cpu", batch_persons=False, warmup=False)
    one_by_one = single.predict(image, BOXES)[1]
    many = hmr.predict(image, np.concatenate([BOXES, BOXES, BOXES]))  # 9 persons > max_persons 4: chunked
    assert len(many) == 9
    for other in (together, alone_in_4, one_by_one, many[1], many[4], many[7]):
        for field in ("joints_3d_local", "joints_2d", "cam_trans", "mhr_params", "shape_params"):
            np.testing.assert_allclose(getattr(other, field), getattr(alone, field), atol=1e-4, rtol=1e-5)
    # different people really differ
    assert np.abs(together.joints_3d_local - hmr.predict(image, BOXES)[0].joints_3d_local).max() > 1e-3


@pytest.mark.parametrize("padding, persons, calls", [
    ("fixed", 6, [4, 4]), ("fixed", 1, [4]),
    ("buckets", 6, [4, 2]), ("buckets", 3, [4]), ("buckets", 1, [1]),
])
def test_call_pads_to_fixed_batches(random_onnx, image, monkeypatch, padding, persons, calls):
    hmr = InstantHMR(random_onnx, device="cpu", max_persons=4, padding=padding, warmup=False)
    seen = []
    real_run = hmr.run
    monkeypatch.setattr(hmr, "run", lambda feeds, outputs=None: seen.append(len(feeds["image"])) or
                        real_run(feeds, outputs))
    crops, cliff = hmr.preprocess(image, np.concatenate([BOXES, BOXES])[:persons])
    out = hmr(crops, cliff)
    assert seen == calls and out["joints_3d"].shape == (persons, 70, 3)
    assert hmr.batch_sizes() == ([4] if padding == "fixed" else [1, 2, 4])


def test_padding_defaults_to_buckets_on_cpu(hmr):
    assert hmr.padding == "buckets"  # the CPU provider runs these tests


def test_pixel_form_camera_is_retargeted_to_the_real_image(hmr, image):
    """The network assumes a 16:9 image with the default focal; on that image its cam_trans is used as is,
    on others (4:3 here, or a given focal) the weak-perspective camera is re-applied exactly."""
    wide = np.zeros((360, 640, 3), np.uint8)
    box = np.array([[200.0, 40.0, 330.0, 330.0]])
    crops, cliff = hmr.preprocess(wide, box)
    raw = hmr(crops, cliff)["cam_trans"]
    np.testing.assert_allclose(hmr.predict(wide, box)[0].cam_trans, raw[0], rtol=1e-4, atol=1e-5)

    crops, cliff = hmr.preprocess(image, box)
    raw = hmr(crops, cliff)["cam_trans"]
    weak = weak_cam_from_pixel_form(raw, cliff, 16 / 9)
    for focal in (None, 1500.0):
        got = hmr.predict(image, box, focal_length=focal)[0]
        f = default_focal((640, 480)) if focal is None else focal
        expected = crop_cam_to_full(weak[0], [265.0, 185.0], 290.0 * 1.2, (640, 480), f)
        np.testing.assert_allclose(got.cam_trans, expected, rtol=1e-4)
        assert got.focal_length == pytest.approx(f)
    assert hmr.predict(image, box, focal_length=1500.0)[0].cam_trans[2] > hmr.predict(image, box)[0].cam_trans[2]


def test_pixel_form_inversion_undoes_the_networks_camera_head():
    """``weak_cam_from_pixel_form`` inverts the torch head's formula (``cliff_cam_to_full``, an independent
    implementation) for networks trained on other aspects than the test export's 16:9, portrait included."""
    import torch

    from instanthmr.training.model import cliff_cam_to_full

    rng = np.random.default_rng(3)
    weak = np.stack([rng.uniform(0.5, 2.0, 6), rng.uniform(-0.3, 0.3, 6), rng.uniform(-0.3, 0.3, 6)], axis=1)
    for aspect in (16 / 9, 4 / 3, 0.5625):
        boxes = np.concatenate([rng.uniform(0, 300, (6, 2)), rng.uniform(350, 640, (6, 2))], axis=1)
        cliff = cliff_condition(boxes, (640, 480), form="pixel").astype(np.float64)
        t = cliff_cam_to_full(torch.from_numpy(weak), torch.from_numpy(cliff), "pixel", aspect).numpy()
        np.testing.assert_allclose(weak_cam_from_pixel_form(t, cliff, aspect), weak, rtol=1e-5, atol=1e-6)


def test_pixel_form_assumption_matches_the_network():
    from instanthmr.runtime.hmr import _pixel_form_image_wh
    from instanthmr.training.model import pixel_form_image_wh

    for a in (16 / 9, 4 / 3, 1.0, 0.5625):
        assert _pixel_form_image_wh(a) == pixel_form_image_wh(a)


def test_wholebody_model(random_onnx_wholebody, image):
    hmr = InstantHMR(random_onnx_wholebody, device="cpu", max_persons=2)
    assert hmr.has_wholebody
    preds = hmr.predict(image, BOXES)  # 3 people, max_persons 2: two calls
    raw = hmr(*hmr.preprocess(image, BOXES))["joints_3d_wholebody"]
    assert raw.shape == (3, 133, 3) and np.ptp(raw[0] - raw[2]) > 1e-3  # people differ: the next check means something
    for i, p in enumerate(preds):  # each person gets its own row of the whole-body output
        assert p.joints_3d_wholebody.shape == (133, 3)
        np.testing.assert_allclose(p.joints_3d_wholebody, raw[i], atol=1e-6)


def test_file_without_metadata_is_pixel_form(random_onnx, tmp_path):
    proto = onnx.load(str(random_onnx))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    hmr = InstantHMR(bare, device="cpu", warmup=False)
    assert hmr.cliff_form == "pixel" and not hmr.model_info["has_metadata"]
    assert hmr.model_info["mean"] == [0.485, 0.456, 0.406]


def test_device_request_falls_back_to_cpu(random_onnx, hmr, image):
    import onnxruntime as ort

    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    asked = InstantHMR(random_onnx, device="cuda", warmup=False)  # CPU fallback when the CUDA provider is absent
    assert (asked.provider, asked.device) == (("CUDAExecutionProvider", "cuda") if has_cuda
                                              else ("CPUExecutionProvider", "cpu"))
    assert asked.requested_device == "cuda"
    if not has_cuda:  # the fallback session is a working one: the CPU session's answer
        np.testing.assert_allclose(asked.predict(image, BOXES[:2])[1].joints_3d_cam,
                                   hmr.predict(image, BOXES[:2])[1].joints_3d_cam, atol=1e-5)
    with pytest.raises(ValueError, match="unknown device"):
        InstantHMR(random_onnx, device="tpu", warmup=False)


def _tiny_graph(path, inputs, outputs, meta=None):
    """An ONNX file whose outputs are all constants, with the given (name, shape) inputs and outputs."""
    nodes = [helper.make_node("ConstantOfShape", [], [name], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0]))
             for name, _ in outputs]
    for node, (_, shape) in zip(nodes, outputs):
        node.input.append(node.output[0] + "_shape")
    inits = [helper.make_tensor(name + "_shape", TensorProto.INT64, [len(shape)], [1 if isinstance(d, str) else d for d in shape])
             for name, shape in outputs]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what the exporter writes; the newest onnx IR can be ahead of ONNX Runtime
    for k, v in (meta or {}).items():
        model.metadata_props.add(key=k, value=str(v))
    onnx.save(model, str(path))
    return path


GOOD_IN = [("image", ["N", 3, 224, 224]), ("cliff_cond", ["N", 3])]
GOOD_OUT = [("mhr_params", ["N", 204]), ("shape_params", ["N", 45]), ("cam_trans", ["N", 3]),
            ("joints_2d", ["N", 70, 2]), ("joints_3d", ["N", 70, 3])]


def test_bad_files_raise_one_clear_error(random_onnx, tmp_path):
    cases = {}
    cases["missing"] = (tmp_path / "missing.onnx", "not found")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(random_onnx.read_bytes()[:5000])
    cases["truncated"] = (truncated, "not a loadable ONNX model")
    text = tmp_path / "text.onnx"
    text.write_text("this is not a model\n")
    cases["text"] = (text, "not a loadable ONNX model")
    wrong_names = _tiny_graph(tmp_path / "names.onnx", [("input", ["N", 3, 224, 224])], [("output", ["N", 10])])
    cases["names"] = (wrong_names, "missing inputs")
    wrong_shape = _tiny_graph(tmp_path / "shape.onnx", GOOD_IN, GOOD_OUT[:3] + [("joints_2d", ["N", 17, 2])] + GOOD_OUT[4:])
    cases["shape"] = (wrong_shape, r"joints_2d has shape .*17, 2\], expected \(N, 70, 2\)")
    # the input size comes from the metadata (ours: input_size, the public exporter's: image_size) or the graph;
    # a graph that disagrees with its metadata is refused
    wrong_input = _tiny_graph(tmp_path / "input.onnx", [("image", ["N", 3, 256, 256]), GOOD_IN[1]], GOOD_OUT,
                              meta={"input_size": 224})
    cases["input"] = (wrong_input, "image has shape")
    no_3d = _tiny_graph(tmp_path / "no3d.onnx", GOOD_IN, GOOD_OUT[:4])  # mhr_only layout, no MHR model given
    cases["mhr_only"] = (no_3d, "mhr_only graph")
    for name, (path, message) in cases.items():
        with pytest.raises(ModelLoadError, match=message) as err:
            InstantHMR(path, device="cpu")
        text_ = str(err.value)
        assert str(path) in text_ and "\n" not in text_, name
    # the well-formed constant graph is accepted (the checks are not simply rejecting everything)
    ok = InstantHMR(_tiny_graph(tmp_path / "ok.onnx", GOOD_IN, GOOD_OUT), device="cpu", warmup=False)
    assert ok.cliff_form == "pixel"
    big = InstantHMR(_tiny_graph(tmp_path / "256.onnx", [("image", ["N", 3, 256, 256]), GOOD_IN[1]], GOOD_OUT),
                     device="cpu", warmup=False)
    assert big.input_size == 256


def test_bad_inputs(hmr, image):
    with pytest.raises(ValueError, match="uint8"):
        hmr.predict(image.astype(np.float32), BOXES)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        hmr.predict(image, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="box 1"):
        hmr.predict(image, [[0, 0, 10, 10], [5, 5, 5, 5]])
    with pytest.raises(ValueError, match="scores"):
        hmr.predict(image, BOXES, scores=[0.5])


def test_fixed_batch_file_runs_in_its_own_batch(random_onnx, tmp_path, image):
    proto = onnx.load(str(random_onnx))
    for v in list(proto.graph.input) + list(proto.graph.output):
        d = v.type.tensor_type.shape.dim[0]
        d.ClearField("dim_param")
        d.dim_value = 1
    fixed = tmp_path / "fixed1.onnx"
    onnx.save(proto, str(fixed))
    hmr = InstantHMR(fixed, device="cpu", max_persons=8)
    assert hmr.max_persons == 1
    preds = hmr.predict(image, BOXES)
    assert len(preds) == 3
    ref = InstantHMR(random_onnx, device="cpu", warmup=False).predict(image, BOXES)
    np.testing.assert_allclose(preds[2].joints_3d_local, ref[2].joints_3d_local, atol=1e-4)


def test_runtime_does_not_import_torch(random_onnx):
    code = ("import sys, numpy as np; from instanthmr.runtime.hmr import InstantHMR; "
            f"h = InstantHMR(r'{random_onnx}', device='cpu', max_persons=2); "
            "h.predict(np.zeros((64, 96, 3), np.uint8), [[10, 5, 40, 60]]); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------------------------------------------
# The public InstantHMR API's spellings, providers, batch buckets on every device
# --------------------------------------------------------------------------------------------------------------

def test_anchor_api_spellings(hmr, image):
    dets = [{"bbox": BOXES[0].tolist(), "confidence": 0.9}, {"bbox": BOXES[1].tolist()}]
    preds = hmr.predict_batch(image, dets)
    assert [p.confidence for p in preds] == [pytest.approx(0.9), 1.0] and preds[0].score == pytest.approx(0.9)
    np.testing.assert_array_equal(preds[1].bbox, BOXES[1].astype(np.float32))
    ref = hmr.predict(image, BOXES[:2], [0.9, 1.0])
    for a, b in zip(preds, ref):
        np.testing.assert_allclose(a.joints_3d_cam, b.joints_3d_cam, atol=1e-5)
    assert hmr.predict_batch(image, []) == []
    assert hmr.active_provider == hmr.provider == "CPUExecutionProvider"
    with pytest.raises(ValueError, match="bbox"):
        hmr.predict_batch(image, [{"confidence": 0.5}])


def test_padded_to_pads_only_when_asked(random_onnx, image, monkeypatch):
    hmr = InstantHMR(random_onnx, device="cpu", max_persons=8, warmup=False)
    seen = []
    real_run = hmr.run
    monkeypatch.setattr(hmr, "run", lambda feeds, outputs=None: seen.append(len(feeds["image"])) or
                        real_run(feeds, outputs))
    alone = hmr.predict(image, BOXES[1:2])[0]
    padded = hmr.predict_batch(image, [{"bbox": BOXES[1]}], padded_to=8)[0]
    hmr.predict(image, np.concatenate([BOXES] * 4)[:12], padded_to=16)  # one call of 16 (more than max_persons)
    assert seen == [1, 8, 16]  # one person runs one crop unless padding is asked for
    np.testing.assert_allclose(padded.joints_3d_cam, alone.joints_3d_cam, atol=1e-4)


def test_buckets_are_the_default_whatever_the_device(random_onnx, monkeypatch):
    """padding "auto" means buckets on GPUs too (the choice no longer depends on the provider); "fixed" only
    when asked; warm-up runs every bucket (and the anchor's max_batch_size)."""
    import onnxruntime as ort

    real_session = ort.InferenceSession

    class CudaLooking:  # a CPU session that says it runs on the CUDA provider, as on a GPU machine
        def __init__(self, *args, **kwargs):
            self._s = real_session(*args, **{**kwargs, "providers": ["CPUExecutionProvider"]})

        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

        def __getattr__(self, name):
            return getattr(self._s, name)

    with monkeypatch.context() as m:
        m.setattr(ort, "InferenceSession", CudaLooking)
        gpu = InstantHMR(random_onnx, device="cuda", max_persons=8, warmup=False)
        assert gpu.provider == "CUDAExecutionProvider"
        assert gpu.padding == "buckets" and gpu.batch_sizes() == [1, 2, 4, 8]
        seen = []
        real_run = gpu.run
        m.setattr(gpu, "run", lambda feeds, outputs=None: seen.append(len(feeds["image"])) or real_run(feeds, outputs))
        gpu.predict(np.zeros((480, 640, 3), np.uint8), BOXES[:1])
        assert seen == [1]  # one person on a GPU runs one crop, not eight
        assert InstantHMR(random_onnx, device="cuda", max_persons=8, padding="fixed", warmup=False).batch_sizes() == [8]
    hmr = InstantHMR(random_onnx, device="cpu", max_persons=8, warmup=False)
    assert hmr.padding == "buckets" and hmr.batch_sizes() == [1, 2, 4, 8]
    seen = []
    monkeypatch.setattr(hmr, "run", lambda feeds, outputs=None: seen.append(len(feeds["image"])))
    hmr.warmup(max_batch_size=16)
    assert seen == [16, 8, 4, 2, 1]


def test_io_binding_keeps_one_binding_and_graph_id_per_bucket(random_onnx, image):
    """With a CUDA graph every bucket is captured under its own gpu_graph_id (ONNX Runtime replays one graph
    per id). The CPU provider ignores the id, so the bookkeeping is checked here and the results against the
    plain path."""
    hmr = InstantHMR(random_onnx, device="cpu", max_persons=4, io_binding=True, warmup=False)
    hmr.cuda_graph = True  # as on the CUDA provider (the CPU provider ignores the run option)
    hmr.warmup()
    ids = sorted(int(e[4].get_run_config_entry("gpu_graph_id")) for e in hmr._bound.values())
    assert ids == [1, 2, 3] and len(hmr._bound) == 3  # buckets 1, 2, 4
    plain = InstantHMR(random_onnx, device="cpu", max_persons=4, warmup=False)
    for n in (1, 3):
        a, b = hmr.predict(image, BOXES[:n]), plain.predict(image, BOXES[:n])
        np.testing.assert_allclose(a[-1].joints_3d_cam, b[-1].joints_3d_cam, atol=1e-4)


def test_providers_override(random_onnx, image):
    """An explicit provider list (TensorRT first, as on a GPU box): providers not installed are skipped and the
    CPU closes the list; what really runs is reported."""
    import onnxruntime as ort

    hmr = InstantHMR(random_onnx, providers=["TensorrtExecutionProvider", "CUDAExecutionProvider"], warmup=False)
    avail = ort.get_available_providers()
    expected = next((p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in avail),
                    "CPUExecutionProvider")
    assert hmr.active_provider == expected and hmr.session.get_providers()[-1] == "CPUExecutionProvider"
    assert len(hmr.predict(image, BOXES[:1])) == 1
    with pytest.raises(ValueError, match="providers"):
        InstantHMR(random_onnx, providers=[3], warmup=False)


def test_front_door_names_load_no_torch():
    code = ("import sys; from instanthmr import PosePipeline, InstantHMR, HMRPrediction, RFDETRDetector, FrameResult; "
            "from instanthmr.runtime.hmr import InstantHMR as I; assert InstantHMR is I; "
            "assert hasattr(HMRPrediction, 'bbox') and hasattr(InstantHMR, 'predict_batch') "
            "and hasattr(InstantHMR, 'active_provider'); assert 'torch' not in sys.modules, 'torch was imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
