"""Shared fixtures. Tests that need the shared media or MHR assets skip cleanly when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from instanthmr.core.paths import shared_data_dir, shared_mhr_dir

# Tests never touch the network: the Hugging Face Hub is offline for every test and the subprocesses they start
# (set before anything imports huggingface_hub); tests/test_hub.py serves a fake Hub on 127.0.0.1 where needed.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not (d / "SOURCES.tsv").exists():
        pytest.skip(f"shared media not found at {d} (set INSTANTHMR_DATA)")
    return d


@pytest.fixture(scope="session")
def mp_models() -> Path:
    """The folder of MediaPipe's TFLite models; skips without them (python tools/fetch_models.py mediapipe) or
    without the LiteRT interpreter that runs them."""
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (TFLite interpreter) not installed")
    from instanthmr.runtime import mediapipe as mpm

    if not mpm.mediapipe_models_present():
        pytest.skip(f"MediaPipe models not fetched into {mpm.mediapipe_models_dir()} "
                    "(python tools/fetch_models.py mediapipe)")
    return mpm.mediapipe_models_dir()


@pytest.fixture(scope="session")
def mhr_dir() -> Path:
    d = shared_mhr_dir()
    if not (d / "samples").exists():
        pytest.skip(f"MHR assets not found at {d} (set INSTANTHMR_MHR)")
    return d


# --- random-init InstantHMR ONNX files (owner: issue 3, network/export) -------------------------------------
def _export_random_onnx(path: Path, **overrides) -> Path:
    from instanthmr.training.export import export_onnx
    from instanthmr.training.model import build_model
    from instanthmr.training.model.random_init import randomize_

    model = randomize_(build_model("instanthmr_tiny_test", **overrides), seed=0).eval()
    report = export_onnx(model, path)
    assert report["ok"], report
    return path


@pytest.fixture(scope="session")
def random_onnx(tmp_path_factory) -> Path:
    """A tiny random-init InstantHMR network exported to fp32 ONNX (5 outputs, ``pixel`` CLIFF form).

    Its outputs have realistic spreads (joints across the crop, depths of a few metres) but mean nothing."""
    return _export_random_onnx(tmp_path_factory.mktemp("onnx") / "instanthmr_tiny.onnx")


@pytest.fixture(scope="session")
def random_onnx_wholebody(tmp_path_factory) -> Path:
    """Like ``random_onnx`` with the extra ``joints_3d_wholebody`` (N, 133, 3) output."""
    return _export_random_onnx(tmp_path_factory.mktemp("onnx") / "instanthmr_tiny_wb.onnx", wholebody_head=True)
