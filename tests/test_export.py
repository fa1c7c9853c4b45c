"""ONNX export: graph contract, metadata, parity, fp16 path and the CLI (tiny random-init model, CPU)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from instanthmr.core.skeleton import MHR70_NAMES
from instanthmr.training.export import FP16_TOLERANCE, check_parity, export_onnx
from instanthmr.training.model import OUTPUT_NAMES, WHOLEBODY_OUTPUT, build_model, save_checkpoint
from instanthmr.training.model.random_init import randomize_

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_graph_names_shapes_and_opset(random_onnx):
    proto = onnx.load(str(random_onnx))
    assert [i.name for i in proto.graph.input] == ["image", "cliff_cond"]
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES)
    assert _dims(proto.graph.input[0]) == ["batch", 3, 224, 224]
    assert _dims(proto.graph.input[1]) == ["batch", 3]
    assert [_dims(o) for o in proto.graph.output] == [["batch", 204], ["batch", 45], ["batch", 3],
                                                      ["batch", 70, 2], ["batch", 70, 3]]
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in proto.graph.input)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    # reparameterised: the exported RepViT has no BatchNormalization left
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)


def test_metadata_is_stamped(random_onnx):
    meta = {p.key: p.value for p in onnx.load(str(random_onnx)).metadata_props}
    assert meta["cliff_form"] == "pixel"
    assert meta["input_size"] == "224"
    assert json.loads(meta["mean"]) == [0.485, 0.456, 0.406] and json.loads(meta["std"]) == [0.229, 0.224, 0.225]
    assert json.loads(meta["joint_names"]) == list(MHR70_NAMES)
    assert meta["wholebody"] == "false" and meta["train_step"] == "0" and meta["precision"] == "fp32"
    assert meta["instanthmr_version"] and meta["model_name"] == "instanthmr_tiny_test"
    assert json.loads(meta["model_config"])["backbone"] == "repvit_m0_9"


def test_dynamic_batch_runs(random_onnx):
    sess = ort.InferenceSession(str(random_onnx), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    image = rng.normal(size=(5, 3, 224, 224)).astype(np.float32)
    cliff = np.stack([rng.uniform(-0.5, 0.5, 5), rng.uniform(-0.5, 0.5, 5), rng.uniform(0.2, 0.8, 5)], 1)
    outs = sess.run(None, {"image": image, "cliff_cond": cliff.astype(np.float32)})
    assert [o.shape[0] for o in outs] == [5] * 5
    # a batch of 5 (the export traced another size) gives each person the answer it gets alone
    for i in (0, 3):
        alone = sess.run(None, {"image": image[i:i + 1], "cliff_cond": cliff[i:i + 1].astype(np.float32)})
        for name, a, b in zip(OUTPUT_NAMES, outs, alone):
            np.testing.assert_allclose(a[i:i + 1], b, atol=1e-4, rtol=1e-4, err_msg=name)
    assert np.abs(outs[4][0] - outs[4][3]).max() > 1e-3  # and people differ (joints_3d)


def test_export_parity_and_wholebody(tmp_path):
    model = randomize_(build_model("instanthmr_tiny_test", wholebody_head=True, cliff_form="focal"), seed=4).eval()
    path = tmp_path / "wb.onnx"
    report = export_onnx(model, path, metadata={"train_step": 77, "note": "test"})
    assert report["ok"] and report["skipped"] is None
    assert set(report["max_abs_err"]) == set(OUTPUT_NAMES) | {WHOLEBODY_OUTPUT}
    assert max(report["max_abs_err"].values()) < 1e-4
    # parity is measured against outputs of realistic size, not near-zero ones
    assert report["scale"]["joints_2d"] > 0.5 and report["scale"]["cam_trans"] > 1.0
    assert not model.fused  # the caller's model is left as it was
    proto = onnx.load(str(path))
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES) + [WHOLEBODY_OUTPUT]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["wholebody"] == "true" and meta["cliff_form"] == "focal"
    assert meta["train_step"] == "77" and meta["note"] == "test"
    assert len(json.loads(meta["wholebody_joint_names"])) == 133


def test_export_leaves_a_training_model_training(tmp_path):
    model = randomize_(build_model("instanthmr_tiny_test"), seed=6).train()
    model.step = 5
    report = export_onnx(model, tmp_path / "t.onnx")
    assert report["ok"] and model.training and not model.fused
    assert {p.key: p.value for p in onnx.load(str(tmp_path / "t.onnx")).metadata_props}["train_step"] == "5"


def test_parity_check_detects_a_different_model(tmp_path, random_onnx):
    other = randomize_(build_model("instanthmr_tiny_test"), seed=99).eval()
    report = check_parity(other, random_onnx)
    assert report["ok"] is False and report["max_abs_err"]["joints_3d"] > 1e-2


def test_fp16_export(tmp_path):
    model = randomize_(build_model("instanthmr_tiny_test"), seed=5).eval()
    path = tmp_path / "fp16.onnx"
    report = export_onnx(model, path, fp16=True)
    proto = onnx.load(str(path))
    types = {t.data_type for t in proto.graph.initializer if len(t.dims) >= 2}  # conv / linear weights
    assert types == {onnx.TensorProto.FLOAT16}
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
               for v in list(proto.graph.input) + list(proto.graph.output))
    assert {p.key: p.value for p in proto.metadata_props}["precision"] == "fp16"
    if report["skipped"]:
        pytest.skip(report["skipped"])  # ORT CPU builds without fp16 kernels
    assert report["ok"], report
    assert report["tolerance"] == FP16_TOLERANCE
    assert 0 < report["max_abs_err"]["joints_3d"]  # really ran in reduced precision


def test_cli_random_init(tmp_path):
    out = tmp_path / "cli.onnx"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "export_onnx.py"), "--random-init", "--config",
                        "instanthmr_tiny_test", "--out", str(out)], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and "parity fp32" in r.stdout and ": OK" in r.stdout


def test_cli_from_checkpoint_and_bad_checkpoint(tmp_path, capsys):
    from instanthmr.cli.export_onnx import main

    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, randomize_(build_model("instanthmr_tiny_test")), step=321)
    out = tmp_path / "c.onnx"
    assert main(["--checkpoint", str(ckpt), "--out", str(out)]) == 0
    assert {p.key: p.value for p in onnx.load(str(out)).metadata_props}["train_step"] == "321"
    capsys.readouterr()
    bad = tmp_path / "bad.pt"
    bad.write_text("garbage")
    assert main(["--checkpoint", str(bad), "--out", str(tmp_path / "x.onnx")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "bad.pt" in lines[0] and lines[0].startswith("error:")
    assert not (tmp_path / "x.onnx").exists()
