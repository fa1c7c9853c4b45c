"""``pip install`` is a product: the wheel built from this checkout, installed into a fresh virtual environment
outside any checkout, runs ``instanthmr-demo`` on a photo offline (the MediaPipe path, its models in the
per-user cache) and writes a person's joints; nothing is looked for or written inside site-packages.

The environment gets its dependencies from this interpreter's site-packages (one ``.pth`` line: nothing is
downloaded); the wheel is built with this interpreter's setuptools, or, when that is missing or too old, in
pip's build environment (setuptools from the package registry). Skips where pip cannot build a wheel or create
a virtual environment here, or the MediaPipe models / LiteRT are absent (``mp_models``).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from instanthmr.core import paths
from instanthmr.core.skeleton import MHR70_INDEX
from instanthmr.runtime.mediapipe.files import INT8_MODEL_FILES

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "instanthmr")  # what a wheel is built from


def _outside_env(**extra) -> dict:
    """This process's environment without what points into a checkout or its models (a user's shell)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "INSTANTHMR_MODELS", "INSTANTHMR_MEDIAPIPE", "VIRTUAL_ENV")}
    return {**env, **extra}


def _setuptools_major() -> int:
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return 0


def _last_line(text: str) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "no output"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of a copy of this checkout (a copy: the build leaves ``build/`` and ``*.egg-info`` behind)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    # with a new enough setuptools here, build with it (nothing downloaded); else pip's build environment
    # (setuptools from the package registry)
    here = ["--no-build-isolation", "--no-index"] if _setuptools_major() >= 77 else []
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *here, "-w", str(tmp / "dist"), str(src)],
                         capture_output=True, text=True, timeout=300)
    found = sorted((tmp / "dist").glob("instanthmr-*.whl"))
    if res.returncode != 0 or not found:
        pytest.skip(f"pip cannot build the wheel here: {_last_line(res.stderr or res.stdout)}")
    return found[0]


@pytest.fixture(scope="module")
def venv_bin(wheel, tmp_path_factory) -> Path:
    """``bin`` of a fresh virtual environment holding the wheel (not editable, no checkout on its path)."""
    venv = tmp_path_factory.mktemp("venv")
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=120,
                          env=_outside_env())
    if made.returncode != 0:  # e.g. Debian's python without python3-venv (no ensurepip)
        pytest.skip(f"cannot create a virtual environment here: {_last_line(made.stderr or made.stdout)}")
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    py = bin_dir / ("python.exe" if os.name == "nt" else "python")
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, env=_outside_env()).stdout.strip()
    res = subprocess.run([str(py), "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", str(wheel)],
                         capture_output=True, text=True, timeout=300, env=_outside_env())
    assert res.returncode == 0 and (bin_dir / "instanthmr-demo").exists(), res.stderr
    # then this interpreter's packages as plain path entries after the venv's own site-packages (their .pth files,
    # e.g. an editable instanthmr's, are not run): the dependencies without a download
    Path(purelib, "dev_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return bin_dir


def test_the_wheel_declares_huggingface_hub_and_ships_no_checkout_files(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    base = [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist:") and "extra ==" not in ln]
    assert any("huggingface_hub" in ln or "huggingface-hub" in ln for ln in base), base
    assert all(n.startswith(("instanthmr/", "instanthmr-")) for n in names), [n for n in names if "instanthmr" not in n]
    assert "instanthmr/runtime/models/instanthmr-starter.onnx" in names  # the offline fallback, as package data
    for name in INT8_MODEL_FILES:  # the offline default's landmark models, as package data
        assert f"instanthmr/runtime/models/mediapipe/{name}.int8.onnx" in names


def test_installed_demo_runs_the_offline_path_on_a_photo(venv_bin, mp_models, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(mp_models, cache / "models" / "mediapipe")  # as fetched on first use (test_first_use...)
    env = _outside_env(INSTANTHMR_CACHE=str(cache), HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))  # no Hub file
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    demo = venv_bin / ("instanthmr-demo.exe" if os.name == "nt" else "instanthmr-demo")
    res = subprocess.run([str(demo), "--image", "sample", "--no-spawn", "--save-json", "out.json", "--threads", "1"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    said = res.stdout + res.stderr
    assert "offline MediaPipe path" in said and str(cache / "models" / "mediapipe") in said, said
    where = subprocess.run([str(venv_bin / "python"), "-c", "import instanthmr; print(instanthmr.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True).stdout.strip()
    site_packages = Path(where).parent.parent
    assert str(site_packages).startswith(str(venv_bin.parent)) and ROOT not in Path(where).parents
    assert not (site_packages / "models").exists()  # nothing looked for or written inside site-packages

    out = json.loads((elsewhere / "out.json").read_text())
    person = out["frames"][0]["persons"][0]
    j3d = np.array([[np.nan if v is None else v for v in p] for p in person["joints_3d_cam"]])  # null: not predicted
    j2d = np.array([[np.nan if v is None else v for v in p] for p in person["joints_2d"]])
    assert j3d.shape == (70, 3) and j2d.shape == (70, 2)
    seen = [MHR70_INDEX[n] for n in ("nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder")]
    assert np.isfinite(j3d[seen]).all() and np.isfinite(j2d[seen]).all()  # a portrait: head and shoulders
    assert 0.2 < np.nanmean(j3d[seen, 2]) < 20  # metres in front of the camera

    # the starter network (the last fallback) ships inside the package
    res = subprocess.run([str(demo), "--image", "sample", "--model", "starter", "--no-spawn", "--save-json", "s.json",
                          "--threads", "1"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and str(site_packages / "instanthmr") in res.stdout + res.stderr, res.stderr[-3000:]
    assert json.loads((elsewhere / "s.json").read_text())["frames"][0]["persons"]


def test_models_live_in_the_checkout_or_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("INSTANTHMR_MODELS", raising=False)
    monkeypatch.delenv("INSTANTHMR_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.user_cache_dir() == tmp_path / "xdg" / "instanthmr"
    assert paths.models_dir() == ROOT / "models"  # this checkout's models/ comes first
    assert not paths.is_checkout(tmp_path)  # an installed package's parent: the user cache instead
    monkeypatch.setenv("INSTANTHMR_CACHE", str(tmp_path / "c"))
    assert paths.user_cache_dir() == tmp_path / "c"
    monkeypatch.setenv("INSTANTHMR_MODELS", str(tmp_path / "m"))
    assert paths.models_dir() == tmp_path / "m"


def test_first_use_fetches_the_mediapipe_models(monkeypatch, tmp_path, capsys):
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (TFLite interpreter) not installed")
    from instanthmr.runtime.mediapipe import files as mpm

    unavailable_reason = mpm.unavailable_reason

    asked = []

    def fake_fetch(dest=None, python=None, force=False):  # what the pip download would leave behind
        asked.append(Path(dest))
        for member, _ in mpm.MODEL_FILES.values():
            (Path(dest) / Path(member).name).parent.mkdir(parents=True, exist_ok=True)
            (Path(dest) / Path(member).name).write_bytes(b"tflite")
        return Path(dest)

    monkeypatch.setattr(mpm, "fetch_mediapipe_models", fake_fetch)
    assert "get them with" in unavailable_reason(tmp_path / "a", fetch=False)
    assert asked == []
    assert unavailable_reason(tmp_path / "b") is None and asked == [tmp_path / "b"]
    assert "fetching the MediaPipe models" in capsys.readouterr().err

    def failing(dest=None, python=None, force=False):
        raise mpm.MediaPipeModelError("pip could not download mediapipe==0.10.21: no network")

    monkeypatch.setattr(mpm, "fetch_mediapipe_models", failing)
    why = unavailable_reason(tmp_path / "c")
    assert why.startswith("the MediaPipe models are not in") and "no network" in why
