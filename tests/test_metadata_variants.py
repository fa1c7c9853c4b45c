"""Every file layout the public InstantHMR exporter (and the released Hub file) can have, read right.

Each test builds a tiny ONNX graph whose outputs echo its inputs: ``cam_trans`` is the CLIFF vector fed,
``mhr_params`` / ``shape_params`` / ``joints_2d`` / ``joints_3d`` are rows of the crop's normalised pixels. So a
test sees exactly what the runtime fed the network, and checks it against formulas written out here (not
the library's own helpers): the anchor's pixel form, its angular (``cliff_focal``) form with f = 1.05 x the
image diagonal, the 1.2 x square crop at 224 or 288, ImageNet normalisation, MHR keypoints for ``mhr_only``.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from instanthmr.runtime.hmr import InstantHMR, network_path, onnx_weight_stats
from instanthmr.runtime.session import ModelLoadError

W, H = 640, 480
BOXES = np.array([[100.0, 50.0, 300.0, 420.0], [400.0, 100.0, 480.0, 300.0], [-30.0, 200.0, 90.0, 470.0]])
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
# which crop rows each output echoes: (output, channels, row, values per row, per-person shape)
ECHO = {"mhr_params": (3, 0, 68, (204,)), "shape_params": (1, 1, 45, (45,)), "joints_2d": (1, 2, 140, (70, 2)),
        "joints_3d": (1, 3, 210, (70, 3))}


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def echo_graph(path, size=224, outputs=tuple(ECHO) + ("cam_trans",), meta=None, weights="fp32", batch="N"):
    """An InstantHMR-shaped graph that echoes its inputs (see the module docstring). ``weights``: the dtype of
    a 3000-element zero weight added into ``cam_trans`` (``fp16`` ones sit in a Constant node, as the fp16
    converter leaves some)."""
    nodes, inits = [], []

    def ints(name, vals):
        inits.append(helper.make_tensor(name, TensorProto.INT64, [len(vals)], vals))
        return name

    for name, (ch, row, k, shape) in ECHO.items():
        if name not in outputs:
            continue
        nodes.append(helper.make_node("Slice", ["image", ints(f"{name}_s", [0, row, 0]), ints(f"{name}_e", [ch, row + 1, k]),
                                                ints(f"{name}_a", [1, 2, 3])], [f"{name}_raw"]))
        nodes.append(helper.make_node("Reshape", [f"{name}_raw", ints(f"{name}_shape", [0, *shape])], [name]))
    zeros = np.zeros((1000, 3), np.float16 if weights == "fp16" else np.float32)
    if weights == "fp16":
        nodes.append(helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(zeros, "w_value")))
        nodes.append(helper.make_node("Cast", ["w"], ["w32"], to=TensorProto.FLOAT))
    else:
        inits.append(numpy_helper.from_array(zeros, "w32"))
    nodes.append(helper.make_node("ReduceSum", ["w32", ints("axis0", [0])], ["w_sum"], keepdims=0))
    nodes.append(helper.make_node("Add", ["cliff_cond", "w_sum"], ["cam_trans"]))
    shapes = {"mhr_params": [204], "shape_params": [45], "cam_trans": [3], "joints_2d": [70, 2], "joints_3d": [70, 3]}
    graph = helper.make_graph(
        nodes, "echo",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, size, size]),
         helper.make_tensor_value_info("cliff_cond", TensorProto.FLOAT, [batch, 3])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch] + shapes[n]) for n in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (meta or {}).items():
        model.metadata_props.add(key=k, value=str(v))
    onnx.save(model, str(path))
    return path


def expected_crops(image, boxes, size):
    """The anchor's crop, written out: square of side 1.2 x max(w, h) on the box centre, black past the
    border, bilinear to size x size, /255, ImageNet mean/std, channels first."""
    out = []
    for x1, y1, x2, y2 in boxes:
        side = 1.2 * max(x2 - x1, y2 - y1)
        cx, cy, s = (x1 + x2) / 2, (y1 + y2) / 2, size / side
        m = np.array([[s, 0, -(cx - side / 2) * s], [0, s, -(cy - side / 2) * s]])
        crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        out.append(((crop / 255.0 - MEAN) / STD).transpose(2, 0, 1))
    return np.array(out)


def pixel_cliff(box, w=W, h=H):
    x1, y1, x2, y2 = box
    return [2 * ((x1 + x2) / 2) / w - 1, 2 * ((y1 + y2) / 2) / h - 1, max(x2 - x1, y2 - y1) / max(w, h)]


def angular_cliff(box, f, w=W, h=H):
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return [math.atan((cx - w / 2) / f), math.atan((cy - h / 2) / f), max(x2 - x1, y2 - y1) / f]


def check_echo(preds, image, boxes, size):
    """The crop pixels the network saw are the anchor's crop at ``size``; joints map back through the square."""
    crops = expected_crops(image, boxes, size)
    for p, c, box in zip(preds, crops, boxes):
        np.testing.assert_allclose(p.mhr_params, c[:3, 0, :68].reshape(-1), atol=1e-4)
        np.testing.assert_allclose(p.shape_params, c[0, 1, :45], atol=1e-4)
        np.testing.assert_allclose(p.joints_3d_local, c[0, 3, :210].reshape(70, 3), atol=1e-4)
        side = 1.2 * max(box[2] - box[0], box[3] - box[1])
        centre = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]
        np.testing.assert_allclose(p.joints_2d, centre + c[0, 2, :140].reshape(70, 2) * side / 2, atol=1e-3)
        np.testing.assert_allclose(p.joints_3d_cam, p.joints_3d_local + p.cam_trans, atol=1e-5)


def test_released_layout_without_metadata(tmp_path, image):
    """The Hub's instanthmr.onnx: no metadata, fp16 weights, float32 I/O -> pixel form, image diagonal, fp16."""
    hmr = InstantHMR(echo_graph(tmp_path / "released.onnx", weights="fp16"), device="cpu", max_persons=4)
    info = hmr.model_info
    assert (hmr.cliff_form, hmr.input_size, info["has_metadata"], info["arch"]) == ("pixel", 224, False, None)
    assert info["weights"] == "fp16" and info["precision"] == "fp16" and info["params"] == 3000
    preds = hmr.predict(image, BOXES, scores=[0.9, 0.8, 0.7])
    for p, box in zip(preds, BOXES):
        np.testing.assert_allclose(p.cam_trans, pixel_cliff(box), atol=1e-6)
        assert p.focal_length == pytest.approx(math.hypot(W, H))
        np.testing.assert_allclose(p.principal_point, [W / 2, H / 2])
    check_echo(preds, image, BOXES, 224)
    assert preds[1].confidence == pytest.approx(0.8) and preds[1].bbox is preds[1].box
    # a focal the file cannot take is refused in one line, never reported beside a diagonal-focal cam_trans
    with pytest.raises(ValueError, match="cannot use focal_length=1500") as e:
        hmr.predict(image, BOXES, focal_length=1500.0)
    assert "\n" not in str(e.value) and "no metadata" in str(e.value)
    assert not hmr.accepts_focal


def test_anchor_cliff_focal_file_gets_the_angular_form(tmp_path, image):
    meta = {"cliff_focal": "true", "bound_scales": "true", "arch": "optimized", "image_size": "224"}
    hmr = InstantHMR(echo_graph(tmp_path / "focal.onnx", meta=meta), device="cpu", max_persons=4)
    assert hmr.cliff_form == "angular" and hmr.accepts_focal
    assert hmr.model_info["arch"] == "optimized" and hmr.model_info["bound_scales"] is True
    assert hmr.model_info["weights"] == "fp32"
    f_default = 1.05 * math.hypot(W, H)
    for focal, f in ((None, f_default), (1500.0, 1500.0)):
        preds = hmr.predict(image, BOXES, focal_length=focal)
        for p, box in zip(preds, BOXES):
            np.testing.assert_allclose(p.cam_trans, angular_cliff(box, f), atol=1e-6)
            assert p.focal_length == pytest.approx(f)  # cam_trans is reported in the camera the condition used
        check_echo(preds, image, BOXES, 224)
    # the atan matters: far off-centre the plain ratio differs
    far = np.array([[560.0, 10.0, 640.0, 200.0]])
    c = hmr.predict(image, far, focal_length=300.0)[0].cam_trans
    assert abs(c[0] - (600 - 320) / 300) > 0.1 and c[0] == pytest.approx(math.atan((600 - 320) / 300), abs=1e-6)


def test_anchor_focal_file_through_the_pipeline(tmp_path, image):
    """What PosePipeline feeds (boxes from a detector, the pipeline's focal) is the anchor's angular vector."""
    from instanthmr.runtime.pipeline import PosePipeline

    path = echo_graph(tmp_path / "focal.onnx", meta={"cliff_focal": "true", "arch": "legacy"})
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"frames": [{"frame_index": 0, "boxes": BOXES[:2].tolist(), "scores": [0.9, 0.8]}]}))
    pipe = PosePipeline.from_files(path, device="cpu", detector=str(boxes), det_confidence=0.1)
    pipe.focal_length = 900.0
    res = pipe.predict(image, frame_index=0)
    assert len(res.persons) == 2
    for p, box in zip(res.persons, BOXES):
        np.testing.assert_allclose(p.cam_trans, angular_cliff(box, 900.0), atol=1e-6)
        assert p.focal_length == pytest.approx(900.0)


def test_our_focal_form_has_no_atan_and_the_diagonal(tmp_path, image):
    hmr = InstantHMR(echo_graph(tmp_path / "ours.onnx", meta={"cliff_form": "focal", "input_size": 224}),
                     device="cpu")
    f = math.hypot(W, H)
    for p, box in zip(hmr.predict(image, BOXES), BOXES):
        x1, y1, x2, y2 = box
        expected = [((x1 + x2) / 2 - W / 2) / f, ((y1 + y2) / 2 - H / 2) / f, max(x2 - x1, y2 - y1) / f]
        np.testing.assert_allclose(p.cam_trans, expected, atol=1e-6)
        assert p.focal_length == pytest.approx(f)


@pytest.mark.parametrize("meta", [{"image_size": "288", "cliff_focal": "false", "arch": "legacy"}, {}])
def test_288_input_from_metadata_or_graph(tmp_path, image, meta):
    hmr = InstantHMR(echo_graph(tmp_path / "big.onnx", size=288, meta=meta), device="cpu", max_persons=2)
    assert hmr.input_size == 288 and hmr.cliff_form == "pixel"
    preds = hmr.predict(image, BOXES)  # 3 persons, batches of 2: chunked too
    assert len(preds) == 3
    check_echo(preds, image, BOXES, 288)
    for p, box in zip(preds, BOXES):
        np.testing.assert_allclose(p.cam_trans, pixel_cliff(box), atol=1e-6)


@pytest.mark.parametrize("meta, message", [
    ({"image_size": "224"}, "image has shape"),                            # says 224, graph is 288
    ({"image_size": "224", "input_size": "288"}, "metadata disagree"),
    ({"cliff_focal": "maybe"}, "bad metadata cliff_focal"),
    ({"cliff_focal": "true", "cliff_form": "pixel"}, "metadata disagree"),
    ({"cliff_form": "tangent"}, "unknown cliff_form"),
    ({"image_size": "big"}, "bad metadata image_size"),
])
def test_contradictory_or_bad_metadata_is_one_clear_error(tmp_path, meta, message):
    path = echo_graph(tmp_path / "bad.onnx", size=288, meta=meta)
    with pytest.raises(ModelLoadError, match=message) as e:
        InstantHMR(path, device="cpu", warmup=False)
    assert "\n" not in str(e.value) and "bad.onnx" in str(e.value)


def toy_mhr(tmp_path=None):
    """A 127-joint chain rig (tests/test_mhr_layer.py) with a keypoint regressor: keypoint k = joint k."""
    from test_mhr_layer import toy_assets

    from instanthmr.body.mhr import MHRNumpy

    assets = toy_assets()
    reg = np.zeros((70, len(assets.rest_vertices) + 127), np.float32)
    reg[np.arange(70), len(assets.rest_vertices) + np.arange(70)] = 1.0
    assets.keypoint_regressor = reg
    if tmp_path is None:
        return MHRNumpy(assets, frame="product")
    path = tmp_path / "toy_mhr.npz"
    np.savez(path, **{k: getattr(assets, k) for k in (
        "rest_vertices", "faces", "identity_blendshapes", "expression_blendshapes", "skin_indices", "skin_weights",
        "joint_parents", "joint_offsets", "joint_prerotations", "inverse_bind_pose", "parameter_transform",
        "keypoint_regressor")})
    return path


def test_mhr_only_graph_takes_its_keypoints_from_the_mhr_layer(tmp_path, image):
    outputs = ("mhr_params", "shape_params", "cam_trans", "joints_2d")
    path = echo_graph(tmp_path / "mhr_only.onnx", outputs=outputs, meta={"arch": "mhr_only", "cliff_focal": "true"})
    with pytest.raises(ModelLoadError, match="mhr_only graph.*--mhr-model") as e:
        InstantHMR(path, device="cpu")
    assert "\n" not in str(e.value)
    from test_mhr_layer import toy_assets

    from instanthmr.body.mhr import MHRNumpy

    with pytest.raises(ModelLoadError, match="no keypoint regressor"):
        InstantHMR(path, device="cpu", mhr=MHRNumpy(toy_assets()))
    mhr = toy_mhr()
    for given in (mhr, toy_mhr(tmp_path)):  # an MHRNumpy or the path of a converted .npz
        hmr = InstantHMR(path, device="cpu", mhr=given, max_persons=2)
        assert not hmr.has_joints_3d and hmr.cliff_form == "angular"
        preds = hmr.predict(image, BOXES)
        for p in preds:
            kps = mhr(p.shape_params[None], p.mhr_params[None]).keypoints[0]  # (70, 3) product frame, metres
            np.testing.assert_allclose(p.joints_3d_local, kps, atol=1e-5)
            np.testing.assert_allclose(p.joints_3d_cam, kps + p.cam_trans, atol=1e-5)
        assert np.abs(preds[0].joints_3d_local - preds[1].joints_3d_local).max() > 1e-3  # params differ per person


def test_weight_stats_count_initializers_and_constants(tmp_path):
    s16 = onnx_weight_stats(echo_graph(tmp_path / "a.onnx", weights="fp16"))
    s32 = onnx_weight_stats(echo_graph(tmp_path / "b.onnx", weights="fp32"))
    assert s16["by_dtype"] == {"float16": 3000} and s16["dtype"] == "fp16"
    assert s32["by_dtype"] == {"float32": 3000} and s32["dtype"] == "fp32"
    with pytest.raises(FileNotFoundError):
        onnx_weight_stats(tmp_path / "missing.onnx")


def test_fp16_file_is_never_converted_again(tmp_path):
    fp16 = echo_graph(tmp_path / "released.onnx", weights="fp16")
    assert network_path(fp16, "fp16") == fp16  # no released.fp16.onnx needed
    with pytest.raises(ModelLoadError, match="fp16 weights already") as e:
        network_path(fp16, "int8")
    assert "\n" not in str(e.value)
    conv_only = echo_graph(tmp_path / "released.int8.onnx")  # a Conv-only int8 copy the user made
    assert network_path(fp16, "int8") == conv_only
    fp32 = echo_graph(tmp_path / "ours.onnx")
    with pytest.raises(ModelLoadError, match="quantize_onnx"):  # an fp32 file still needs its copy
        network_path(fp32, "fp16")
    assert network_path(fp32, "fp32") == fp32


# --------------------------------------------------------------------------------------------------------------
# RF-DETR ONNX files from other exporters load as detectors
# --------------------------------------------------------------------------------------------------------------

def rfdetr_graph(path, outputs=("pred_boxes", "pred_logits"), input_name="images", side=(320, 320), meta=None):
    """An RF-DETR-shaped graph: 3 queries with fixed boxes (normalised cxcywh) and logits over 91 COCO ids;
    query 0 a person at 0.9, query 1 a person at 0.6, query 2 a dog. The input must have the graph's shape,
    so a wrongly sized input fails the run."""
    boxes = np.array([[[0.5, 0.5, 0.2, 0.6], [0.25, 0.4, 0.1, 0.3], [0.8, 0.8, 0.1, 0.1]]], np.float32)
    logits = np.full((1, 3, 91), -9.0, np.float32)
    logits[0, 0, 1], logits[0, 1, 1], logits[0, 2, 18] = math.log(9.0), math.log(1.5), 5.0  # sigmoid 0.9, 0.6
    nodes = [helper.make_node("ReduceMean", [input_name], ["m"], keepdims=1),  # (1,1,1,1): uses the input
             helper.make_node("Mul", ["m", "zero"], ["m0"]),
             helper.make_node("Reshape", ["m0", "shape3"], ["m3"]),
             helper.make_node("Add", ["boxes_c", "m3"], [outputs[0]]),
             helper.make_node("Add", ["logits_c", "m3"], [outputs[1]])]
    inits = [numpy_helper.from_array(boxes, "boxes_c"), numpy_helper.from_array(logits, "logits_c"),
             numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
             numpy_helper.from_array(np.array([1, 1, 1], np.int64), "shape3")]
    graph = helper.make_graph(nodes, "rfdetr", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT,
                                                                              [1, 3, *side])],
                              [helper.make_tensor_value_info(outputs[0], TensorProto.FLOAT, [1, 3, 4]),
                               helper.make_tensor_value_info(outputs[1], TensorProto.FLOAT, [1, 3, 91])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (meta or {}).items():
        model.metadata_props.add(key=k, value=str(v))
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("outputs, input_name, side", [
    (("pred_boxes", "pred_logits"), "images", 320),   # e.g. the Hub's rf-detr-onnx exports
    (("dets", "labels"), "input", 384),               # the rfdetr package's own export / tools/export_detector.py
])
def test_third_party_rfdetr_onnx_files_detect_persons(tmp_path, image, outputs, input_name, side):
    from instanthmr.runtime.detector import OnnxDetector, create_detector

    path = rfdetr_graph(tmp_path / "det.onnx", outputs, input_name, (side, side))
    det = OnnxDetector(path, confidence=0.5, device="cpu")
    assert det.resolution == side
    found = det(image)
    np.testing.assert_allclose(found.scores, [0.9, 0.6], atol=1e-5)  # persons only, best first; the dog is out
    np.testing.assert_allclose(found.boxes, [[0.4 * W, 0.2 * H, 0.6 * W, 0.8 * H],
                                             [0.2 * W, 0.25 * H, 0.3 * W, 0.55 * H]], atol=1e-3)
    assert len(OnnxDetector(path, confidence=0.7, device="cpu")(image)) == 1
    assert isinstance(create_detector(str(path)), OnnxDetector)


def test_rfdetr_onnx_input_size_and_wrong_files(tmp_path, image):
    from instanthmr.runtime.detector import OnnxDetector

    dynamic = rfdetr_graph(tmp_path / "dyn.onnx", side=("H", "W"), meta={"resolution": 256})
    assert OnnxDetector(dynamic, device="cpu").resolution == 256
    for path, message in (
            (rfdetr_graph(tmp_path / "nores.onnx", side=("H", "W")), "cannot tell the detector input resolution"),
            (rfdetr_graph(tmp_path / "rect.onnx", side=(320, 480)), r"must be \(1, 3, R, R\)"),
            (rfdetr_graph(tmp_path / "names.onnx", outputs=("boxes", "scores")), "not an RF-DETR export")):
        with pytest.raises(ModelLoadError, match=message) as e:
            OnnxDetector(path, device="cpu")
        assert "\n" not in str(e.value)
