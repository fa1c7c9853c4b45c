"""install.py plans, checked with --dry-run on faked platforms (nothing is installed)."""

import subprocess
import sys

import pytest

import install  # (the repository root is on the test path: pyproject [tool.pytest.ini_options])
from instanthmr.core.paths import REPO_ROOT


def _dry(*args) -> str:
    out = subprocess.run([sys.executable, str(REPO_ROOT / "install.py"), *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _install_line(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith("$ ") and " install " in ln and "--upgrade pip" not in ln
             and " -e " not in ln]
    assert len(lines) == 1, out
    # then the project itself, editable and without resolving again (which could bring back the other ORT build)
    assert any(ln.startswith("$ ") and "install --no-deps -e " in ln for ln in out.splitlines()), out
    return lines[0]


def test_cuda_plan_uses_onnxruntime_gpu_and_removes_cpu_ort():
    out = _dry("--platform", "cuda", "--compute-cap", "9.0")
    line = _install_line(out)
    assert "onnxruntime-gpu[cuda,cudnn]==1.31.1" in line and "torch==2.15.0" in line
    assert " onnxruntime==" not in line
    assert "uninstall -y onnxruntime" in out and "dry run" in out


def test_old_gpu_gets_cuda12_builds():
    line = _install_line(_dry("--platform", "cuda", "--compute-cap", "6.1"))
    assert "torch==2.7.1" in line and "onnxruntime-gpu==1.22.0" in line and "torch==2.15.0" not in line


@pytest.mark.parametrize("plat", ["cpu", "mac"])
def test_cpu_and_mac_plans_use_plain_onnxruntime(plat):
    out = _dry("--platform", plat)
    line = _install_line(out)
    assert "onnxruntime==1.31.1" in line and "onnxruntime-gpu" not in line
    assert "torch==2.15.0" in line and "torchvision==0.29.2" in line
    assert "uninstall -y onnxruntime-gpu" in out
    # every other requirement is carried over exactly once
    for req in ("timm==1.0.31", "rerun-sdk==0.41.0", "rfdetr==1.11.2", "pytest>=8.0"):
        assert line.count(req) == 1


def test_never_both_onnxruntime_packages_in_any_plan():
    for kind, cap in (("cuda", 8.0), ("cuda", 5.0), ("cpu", None), ("mac", None)):
        pkgs, remove, ort = install.plan({"kind": kind, "compute_cap": cap}, ["train"])
        names = {p.split("[")[0].split("=")[0] for p in pkgs}
        assert len(names & {"onnxruntime", "onnxruntime-gpu"}) == 1
        assert set(remove).isdisjoint(names)
        assert "tensorboard>=2.16" in pkgs


def test_extras_and_venv_in_dry_run(tmp_path):
    out = _dry("--platform", "cpu", "--extras", "train", "--venv", str(tmp_path / "v"))
    assert f"-m venv {tmp_path / 'v'}" in out
    assert str(tmp_path / "v" / "bin" / "python") in _install_line(out)
    assert "tensorboard" in _install_line(out)
    assert not (tmp_path / "v").exists()  # dry run created nothing
    bad = subprocess.run([sys.executable, str(REPO_ROOT / "install.py"), "--extras", "bogus", "--dry-run"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown extras" in bad.stderr


def test_force_cpu_detection_ignores_gpu():
    assert install.detect_platform(force_cpu=True)["kind"] == "cpu"


def test_doctor_reports_models_and_providers():
    out = subprocess.run([sys.executable, "-m", "instanthmr.cli.doctor"], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ONNX Runtime providers:" in out.stdout and "CPUExecutionProvider" in out.stdout
    assert "instanthmr.onnx" in out.stdout and "doctor: OK" in out.stdout
    if "[present] instanthmr-starter.onnx" in out.stdout:  # an .onnx model also lists its --fp16/--int8 copies
        assert "copies: fp16 " in out.stdout and "instanthmr-starter.onnx [--mode fp16]" in out.stdout
