"""The TFLite -> ONNX converter for MediaPipe's models and the shipped int8 landmark files
(instanthmr/training/mediapipe_onnx.py). Needs the fetched .tflite files (skips without them); the real-crop
tests also need the shared media."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from instanthmr.runtime.mediapipe.files import MediaPipeModelError  # noqa: E402
from instanthmr.training import mediapipe_onnx as mo  # noqa: E402

SHIPPED = Path(mo.__file__).parents[1] / "runtime" / "models" / "mediapipe"


@pytest.fixture(scope="module")
def crops(mp_models, shared_data) -> dict[str, np.ndarray]:
    """The crops the offline path feeds its landmark models on the 5 MPII photos (held out of the int8
    calibration), float32 in [0, 1]: 10 pose crops, 18 hand crops (12 with a hand)."""
    rec = mo.record_model_inputs(shared_data / "annotated_2d" / "mpii")
    return {k: v.astype(np.float32) / 255.0 for k, v in rec.items()}


def _convert(mp_models, tmp_path, name, drop=()):
    import onnx

    out = tmp_path / f"{name}.onnx"
    onnx.save(mo.convert_tflite(mp_models / f"{name}.tflite", drop), str(out))
    return out


def _io(path):
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return ([(i.name, i.shape) for i in s.get_inputs()], {o.name: o.shape for o in s.get_outputs()})


@pytest.mark.parametrize("name,drop", [("hand_landmark_full", ()), ("pose_landmark_full", ("Identity_2",))])
def test_converter_matches_litert_on_real_crops(mp_models, crops, tmp_path, name, drop):
    out = _convert(mp_models, tmp_path, name, drop)
    x = crops[name]
    assert len(x) >= 5
    ref, got = mo.run_litert(mp_models / f"{name}.tflite", x), mo.run_onnx(out, x)
    # the contract: the tflite's one NHWC input and its output names and shapes (minus what was dropped)
    inputs, outputs = _io(out)
    assert inputs == [("input_1", [1, *x.shape[1:]])]
    assert set(outputs) == set(ref) - set(drop)
    for k in outputs:
        assert got[k].shape == ref[k].shape, k
        scale = max(1.0, float(np.abs(ref[k]).max()))
        assert np.abs(got[k] - ref[k]).max() <= 1e-4 * scale, (k, float(np.abs(got[k] - ref[k]).max()))
    d = mo.landmark_drift(name, {k: ref[k] for k in outputs}, got)
    assert d["present"] > 0 and d["px_max"] < 0.01 and d["presence_agree"] == 1.0


def test_converter_pose_detector_with_sparse_weights(mp_models, tmp_path):
    """pose_detection has DENSIFY (sparse fp16 weights), DEPTH_TO_SPACE and CONCATENATION."""
    out = _convert(mp_models, tmp_path, "pose_detection")
    diffs = mo.litert_parity(mp_models / "pose_detection.tflite", out)
    assert set(diffs) == {"Identity", "Identity_1"}
    assert max(diffs.values()) < 5e-3  # outputs reach ~300 (box offsets in px, logits)


def test_shipped_int8_hand_stays_close_to_litert(mp_models, crops):
    path = SHIPPED / "hand_landmark_full.int8.onnx"
    assert path.is_file(), f"{path} missing from the package"
    inputs, outputs = _io(path)
    assert inputs == [("input_1", [1, 224, 224, 3])]
    assert outputs == {"Identity": [1, 63], "Identity_1": [1, 1], "Identity_2": [1, 1], "Identity_3": [1, 63]}
    x = crops["hand_landmark_full"]
    d = mo.landmark_drift("hand_landmark_full", mo.run_litert(mp_models / "hand_landmark_full.tflite", x),
                          mo.run_onnx(path, x))
    assert d["present"] >= 5
    # measured on these crops: median 0.53 px, p95 1.5 px, world median 3.8 mm (docs/offline.md)
    assert d["px_median"] < 2.0 and d["px_p95"] < 6.0, d
    assert d["world_mm_median"] < 10.0, d
    assert d["presence_agree"] >= 0.9 and d["handedness_agree_sure"] == 1.0, d


def test_unsupported_operator_is_refused_in_one_line(mp_models, tmp_path):
    """A model with an operator the converter does not know: one line naming the file and the operator."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray((mp_models / "hand_landmark_full.tflite").read_bytes()), 0)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.SOFTMAX
    m.operatorCodes.append(code)
    m.subgraphs[0].operators[-1].opcodeIndex = len(m.operatorCodes) - 1
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    bad = tmp_path / "odd.tflite"
    bad.write_bytes(bytes(b.Output()))
    with pytest.raises(MediaPipeModelError) as e:
        mo.convert_tflite(bad)
    msg = str(e.value)
    assert "\n" not in msg and "SOFTMAX" in msg and "odd.tflite" in msg


def test_densify_csr():
    """A 2x3 matrix stored dense x CSR: row 0 has columns 0 and 2, row 1 column 1."""
    from ai_edge_litert import schema_py_generated as schema

    def vec(values):
        v = schema.Int32VectorT()
        v.values = list(values)
        return v

    dense, csr = schema.DimensionMetadataT(), schema.DimensionMetadataT()
    dense.format, dense.denseSize = schema.DimensionType.DENSE, 2
    csr.format, csr.arraySegments, csr.arrayIndices = schema.DimensionType.SPARSE_CSR, vec([0, 2, 3]), vec([0, 2, 1])
    sp = schema.SparsityParametersT()
    sp.traversalOrder, sp.blockMap, sp.dimMetadata = [0, 1], None, [dense, csr]
    out = mo.densify(np.array([1.0, 2.0, 3.0], np.float32), (2, 3), sp)
    np.testing.assert_array_equal(out, [[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
