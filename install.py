#!/usr/bin/env python3
"""Install a consistent set of wheels for this machine (torch, torchvision, onnxruntime, the rest).

    python3 install.py                     # into the running Python
    python3 install.py --venv .venv        # create/reuse a virtual environment and install into it
    python3 install.py --dry-run           # print every pip command, run nothing
    python3 install.py --force-cpu         # CPU wheels even where a GPU is present
    python3 install.py --extras train      # + training tools (tensorboard); see --help for all extras

Choices (why):
* Linux + NVIDIA GPU (``nvidia-smi --query-gpu=compute_cap``): the registry's torch is a CUDA build;
  ``onnxruntime-gpu`` with its CUDA/cuDNN wheels. Compute capability >= 7.5 gets the CUDA 13 builds;
  older cards (CUDA 13 dropped them) get torch 2.7 / onnxruntime-gpu 1.22 (CUDA 12).
* macOS: stock torch and ``onnxruntime`` (its CoreML provider).
* Anything else, or ``--force-cpu``: the registry's default torch with the torchvision built for it. It
  carries CUDA libraries but runs on CPU-only machines; the smaller ``+cpu`` torch wheels do not pair with
  the registry's torchvision (a CUDA build that fails to import beside a CPU torch), and timm imports
  torchvision.
* ``onnxruntime`` and ``onnxruntime-gpu`` share one Python package name and break each other: the one not
  wanted is uninstalled first.
Re-running is harmless: pip leaves satisfied pins alone.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent

# Verified together on a CPU-only Linux machine (torch imports, torchvision.ops.nms runs, timm RepViT builds).
TORCH_CUDA13 = ["torch==2.15.0", "torchvision==0.29.2"]
ORT_GPU_CUDA13 = "onnxruntime-gpu[cuda,cudnn]==1.31.1"
TORCH_CUDA12_LEGACY = ["torch==2.7.1", "torchvision==0.22.1"]  # for GPUs older than compute capability 7.5
ORT_GPU_CUDA12_LEGACY = "onnxruntime-gpu==1.22.0"
ORT_CPU = "onnxruntime==1.31.1"

# Everything else comes from requirements.txt minus the lines this script chooses per platform.
PLATFORM_CHOSEN = ("torch", "torchvision", "onnxruntime")

EXTRAS = {
    "train": ["tensorboard>=2.16", "peft==0.21.2"],  # peft: LoRA adapters of the LLM lifter teacher
    "dev": [],  # pytest is already in requirements.txt
    # tools/batch.py --ray and annotate_mediapipe.py --ray (docs/scaling.md); ~280 MB, so not in requirements.txt:
    # the tests that need it skip without it
    "scale": ["ray[default]>=2.40"],
}
# Extras set up by a script of their own.
ENV_EXTRAS = {
    # The offline MediaPipe teacher: LiteRT + the TFLite files taken out of the mediapipe 0.10.21 wheel (that
    # wheel needs numpy<2, so it is only downloaded, never installed). Same environment; the default install
    # already does this unless --no-models.
    "teacher": "tools/teacher_env.sh",
    "mhr": "tools/mhr_env.sh",  # the official MHR package needs Python 3.12 and an older pinned torch
    # Blender as a Python module (bpy pins Python 3.11, numpy<2: own venv .venv-bpy) and the Khronos glTF
    # validator (npm): the tools that check the BVH/glTF exports (docs/animation.md)
    "animation": "tools/animation_env.sh",
}


def detect_platform(force_cpu: bool = False) -> dict:
    """``{"kind": "cuda"|"mac"|"cpu", "compute_cap": float|None, "reason": str}``."""
    if force_cpu:
        return {"kind": "cpu", "compute_cap": None, "reason": "--force-cpu"}
    system = platform.system()
    if system == "Darwin":
        return {"kind": "mac", "compute_cap": None, "reason": f"macOS {platform.mac_ver()[0]}"}
    if system == "Linux" and shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            caps = [float(x) for x in out.stdout.split() if x.strip()]
        except (OSError, ValueError, subprocess.TimeoutExpired):
            caps = []
        if caps:
            return {"kind": "cuda", "compute_cap": max(caps), "reason": f"NVIDIA GPU, compute capability {max(caps)}"}
    return {"kind": "cpu", "compute_cap": None, "reason": f"{system} {platform.machine()}, no NVIDIA GPU found"}


def requirement_lines() -> list[str]:
    lines = []
    for raw in (ROOT / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name = line.split("[")[0]
        for sep in "=<>!~; ":
            name = name.split(sep)[0]
        if name.lower() not in PLATFORM_CHOSEN:
            lines.append(line)
    return lines


def plan(plat: dict, extras: list[str]) -> tuple[list[str], list[str], str]:
    """``(packages, uninstall_first, ort_package)`` for a platform."""
    if plat["kind"] == "cuda":
        legacy = plat["compute_cap"] is not None and plat["compute_cap"] < 7.5
        torch_pkgs = TORCH_CUDA12_LEGACY if legacy else TORCH_CUDA13
        ort = ORT_GPU_CUDA12_LEGACY if legacy else ORT_GPU_CUDA13
        remove = ["onnxruntime"]
    else:
        torch_pkgs = TORCH_CUDA13  # on macOS the same pins resolve to the stock (MPS/CPU) wheels
        ort, remove = ORT_CPU, ["onnxruntime-gpu"]
    pkgs = list(torch_pkgs) + [ort] + requirement_lines()
    for e in extras:
        pkgs += EXTRAS.get(e, [])
    return pkgs, remove, ort


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--venv", type=Path, help="create (or reuse) this virtual environment and install into it")
    ap.add_argument("--force-cpu", action="store_true", help="CPU wheels even when a GPU is present")
    ap.add_argument("--dry-run", action="store_true", help="print every command without running it")
    ap.add_argument("--extras", default="", help="comma list: train, dev, teacher, mhr (own Python 3.12 env), "
                    "animation (Blender + glTF validator, own env)")
    ap.add_argument("--no-models", action="store_true",
                    help="skip fetching the offline MediaPipe models (from the mediapipe wheel on PyPI)")
    ap.add_argument("--platform", choices=["cuda", "mac", "cpu"],
                    help="pretend to be this platform (testing the plan; implies --dry-run)")
    ap.add_argument("--compute-cap", type=float, default=8.9, help="with --platform cuda: the GPU's capability")
    args = ap.parse_args(argv)
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    unknown = [e for e in extras if e not in EXTRAS and e not in ENV_EXTRAS]
    if unknown:
        ap.error(f"unknown extras {unknown}; known: {sorted(EXTRAS) + sorted(ENV_EXTRAS)}")

    if args.platform:
        args.dry_run = True
        plat = {"kind": args.platform, "compute_cap": args.compute_cap if args.platform == "cuda" else None,
                "reason": f"--platform {args.platform} (simulated)"}
    else:
        plat = detect_platform(args.force_cpu)
    print(f"[install] platform: {plat['kind']} ({plat['reason']})")

    python = sys.executable
    if args.venv:
        py_in_venv = args.venv / ("Scripts/python.exe" if platform.system() == "Windows" else "bin/python")
        if not py_in_venv.exists():
            print(f"$ {sys.executable} -m venv {args.venv}")
            if not args.dry_run:
                venv.EnvBuilder(with_pip=True).create(args.venv)
        python = str(py_in_venv)

    pkgs, remove, ort = plan(plat, extras)
    pip = [python, "-m", "pip"]
    # The project itself, editable and without dependency resolution (the line above chose them, and letting
    # pip resolve again could pull the ONNX Runtime build that was just removed): `import instanthmr` and the
    # console scripts work from anywhere, and tools/*.py need no sys.path edits.
    commands = [pip + ["uninstall", "-y", *remove], pip + ["install", "--upgrade", "pip"],
                pip + ["install", *pkgs], pip + ["install", "--no-deps", "-e", str(ROOT)]]
    for cmd in commands:
        print("$ " + " ".join(_quote(c) for c in cmd), flush=True)
        if args.dry_run:
            continue
        quiet = ["-q"] if cmd[3] in ("install", "uninstall") else []
        res = subprocess.run(cmd[:4] + quiet + cmd[4:])
        if res.returncode != 0 and cmd[3] != "uninstall":  # uninstalling something absent is fine
            print(f"[install] FAILED: {' '.join(cmd[3:5])} (exit {res.returncode})", file=sys.stderr)
            return res.returncode
    if not args.no_models:
        # Offline detector/teacher weights that ship inside a registry package; no model hub involved.
        fetch = [python, str(ROOT / "tools" / "fetch_models.py"), "mediapipe"]
        print("$ " + " ".join(fetch))
        if not args.dry_run and subprocess.run(fetch, cwd=ROOT).returncode != 0:
            print("[install] could not fetch the MediaPipe models; the offline detector will be unavailable",
                  file=sys.stderr)
    for e in extras:
        if e in ENV_EXTRAS:
            script = ROOT / ENV_EXTRAS[e]
            print(f"$ bash {script.relative_to(ROOT)}")
            if not args.dry_run:
                if not script.exists():
                    print(f"[install] extra {e!r}: {script.relative_to(ROOT)} is not in this checkout", file=sys.stderr)
                    return 1
                if subprocess.run(["bash", str(script)], cwd=ROOT).returncode != 0:
                    print(f"[install] extra {e!r} failed", file=sys.stderr)
                    return 1
    if args.dry_run:
        print("[install] dry run: nothing was installed")
        return 0
    report = ("import importlib.metadata as m, onnxruntime as ort\n"
              "for n in ('torch','torchvision','timm','onnxruntime','onnxruntime-gpu','rfdetr','rerun-sdk','numpy',"
              "'opencv-python-headless'):\n"
              "    try: print(f'[install]   {n}=={m.version(n)}')\n"
              "    except m.PackageNotFoundError: pass\n"
              "print('[install] ONNX Runtime providers:', ', '.join(ort.get_available_providers()))\n")
    print("[install] installed:")
    return subprocess.run([python, "-c", report]).returncode


def _quote(s: str) -> str:
    return f"'{s}'" if any(c in s for c in " <>[]*?;&|") else s


if __name__ == "__main__":
    sys.exit(main())
