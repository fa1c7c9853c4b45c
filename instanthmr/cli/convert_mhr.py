#!/usr/bin/env python3
"""Convert Meta's official MHR assets into one portable ``.npz`` that ``instanthmr.body.mhr`` runs.

Runs ONCE, in the separate MHR environment (pymomentum reads the FBX; see tools/mhr_env.sh):

    tools/mhr_env.sh                                   # creates .venv-mhr (Python 3.12, mhr, pymomentum-cpu)
    tools/mhr_env.sh --run tools/convert_mhr.py --assets DIR --lod 3 \
        [--regressor mhr70_regressor_lod3.npz] [--out models/mhr_lod3.npz] [--verify]

DIR holds the official files from the MHR release (https://github.com/facebookresearch/MHR, "assets"):
``lod{N}.fbx`` and ``compact_v6_1.model`` (needed), ``corrective_blendshapes_lod{N}.npz`` and
``corrective_activation.npz`` (pose correctives, stored when both are present and real).

``--verify`` runs the official ``mhr`` package on random parameters and prints the largest difference to
InstantHMR's numpy forward on the converted file (joints, vertices, in mm). ``--reference PATH`` also
writes those official outputs (used by tests/test_mhr_layer.py from a cache outside git).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from instanthmr.core.paths import REPO_ROOT as REPO
from instanthmr.core.paths import user_cache_dir

NUM_SHAPE, NUM_EXPR = 45, 72


class ConvertError(RuntimeError):
    """Inputs missing or not MHR assets; the message is printed as one line."""


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ConvertError(f"{path}: {what} not found")
    return path


def _import_pymomentum():
    try:
        import pymomentum.geometry as pym_geometry  # noqa: F401
    except ImportError as exc:
        raise ConvertError(
            f"pymomentum is not importable ({exc}); run this tool in the MHR environment: "
            "tools/mhr_env.sh --run tools/convert_mhr.py ...") from None
    return pym_geometry


def load_character(assets: Path, lod: int):
    """The rig exactly as ``mhr.MHR.from_files`` loads it (FBX + parameter transform + blendshapes)."""
    fbx = assets / f"lod{lod}.fbx"
    if not fbx.is_file():
        have = sorted(p.name for p in assets.glob("lod*.fbx"))
        raise ConvertError(f"{fbx}: not found (this folder has: {', '.join(have) or 'no lod*.fbx'})")
    model = _need(assets / "compact_v6_1.model", "MHR parameter-transform file compact_v6_1.model")
    pym_geometry = _import_pymomentum()   # after the file checks: those errors need no MHR environment
    character = pym_geometry.Character.load_fbx(str(fbx), str(model), load_blendshapes=True)
    if character.blend_shape is None or character.blend_shape.shape_vectors.shape[0] != NUM_SHAPE + NUM_EXPR:
        raise ConvertError(f"{fbx}: expected {NUM_SHAPE}+{NUM_EXPR} blendshapes in the FBX")
    return character


def character_arrays(character, lod: int) -> dict[str, np.ndarray]:
    """The arrays of ``instanthmr.body.mhr.MHRAssets`` (MHR native frame: cm, Y up)."""
    skel = character.skeleton
    bs = character.blend_shape
    shape_vectors = np.asarray(bs.shape_vectors, dtype=np.float32)          # (117, V, 3)
    pt = np.asarray(character.parameter_transform.transform, dtype=np.float32)
    n_joints = len(skel.joint_names)
    if pt.shape[0] != n_joints * 7:
        raise ConvertError(f"parameter transform has {pt.shape[0]} rows, expected {n_joints * 7}")
    names = list(character.parameter_transform.names)
    ibp = np.asarray(character.inverse_bind_pose, dtype=np.float32)
    lo_hi, weight = parameter_limits(character, len(names))
    if ibp.shape == (n_joints, 3, 4):
        ibp = np.concatenate([ibp, np.tile([[[0, 0, 0, 1]]], (n_joints, 1, 1)).astype(np.float32)], 1)
    return {
        "format_version": np.asarray(1),
        "lod": np.asarray(lod),
        "rest_vertices": np.asarray(bs.base_shape, dtype=np.float32),
        "faces": np.asarray(character.mesh.faces, dtype=np.int32),
        "identity_blendshapes": shape_vectors[:NUM_SHAPE],
        "expression_blendshapes": shape_vectors[NUM_SHAPE:],
        "skin_indices": np.asarray(character.skin_weights.index, dtype=np.int32),
        "skin_weights": np.asarray(character.skin_weights.weight, dtype=np.float32),
        "joint_names": np.asarray(skel.joint_names),
        "joint_parents": np.asarray(skel.joint_parents, dtype=np.int32),
        "joint_offsets": np.asarray(skel.offsets, dtype=np.float32),
        "joint_prerotations": np.asarray(skel.pre_rotations, dtype=np.float32),
        "inverse_bind_pose": ibp,
        "parameter_transform": pt,
        "parameter_names": np.asarray(names),
        "parameter_limits": lo_hi,
        "parameter_limit_weights": weight,
    }


def parameter_limits(character, num_params: int) -> tuple[np.ndarray, np.ndarray]:
    """The rig's min/max limits per model parameter (radians for angles, the parameter's own unit otherwise)
    as ``(P,2)`` ``[min, max]`` (``-inf, inf`` where none) and ``(P,)`` weights (0 where none). MHR v1's
    ``compact_v6_1.model`` holds only MinMax limits; other kinds are not stored."""
    lo_hi = np.tile(np.asarray([[-np.inf, np.inf]], np.float32), (num_params, 1))
    weight = np.zeros(num_params, np.float32)
    for limit in getattr(character, "parameter_limits", None) or []:
        if "MinMax" not in str(limit.type) or "Joint" in str(limit.type):
            continue
        mm = limit.data.minmax
        lo_hi[mm.model_parameter_index] = (mm.min, mm.max)
        weight[mm.model_parameter_index] = limit.weight
    return lo_hi, weight


def regressor_arrays(path: Path, num_vertices: int) -> dict[str, np.ndarray]:
    _need(path, "keypoint regressor")
    with np.load(path, allow_pickle=False) as z:
        if "W" not in z.files:
            raise ConvertError(f"{path}: no array 'W' (70 x (vertices + 127) keypoint regressor)")
        w = np.asarray(z["W"], dtype=np.float32)
        names = np.asarray(z["names"]) if "names" in z.files else np.asarray([], dtype="<U1")
    if w.shape[1] != num_vertices + 127:
        raise ConvertError(f"{path}: regressor has {w.shape[1]} columns but this LOD needs "
                           f"{num_vertices} vertices + 127 joints = {num_vertices + 127} (wrong LOD?)")
    return {"keypoint_regressor": w, "keypoint_names": names}


def corrective_arrays(assets: Path, lod: int, num_vertices: int) -> dict[str, np.ndarray]:
    """Pose correctives when the real files are there (empty stand-ins are skipped, as the mhr package does)."""
    bs_path, act_path = assets / f"corrective_blendshapes_lod{lod}.npz", assets / "corrective_activation.npz"
    if not (bs_path.is_file() and act_path.is_file()):
        return {}
    with np.load(bs_path) as z:
        if "corrective_blendshapes" not in z.files:
            return {}
        comps = np.asarray(z["corrective_blendshapes"], dtype=np.float32)
    with np.load(act_path) as z:
        idx = np.asarray(z["0.sparse_indices"], dtype=np.int64)
        val = np.asarray(z["0.sparse_weight"], dtype=np.float32)
        mask_shape = np.asarray(z["posedirs_sparse_mask"].shape)
    if comps.reshape(comps.shape[0], -1).shape[1] != num_vertices * 3:
        raise ConvertError(f"{bs_path}: corrective blendshapes do not have {num_vertices} vertices")
    return {"corrective_blendshapes": comps.reshape(comps.shape[0], num_vertices, 3),
            "corrective_hidden_indices": idx, "corrective_hidden_weights": val,
            "corrective_hidden_shape": mask_shape}


def official_model(assets: Path, lod: int):
    """``mhr.MHR`` from a scratch folder: the package insists on a corrective file; an empty stand-in makes
    it skip pose correctives when the real one is absent."""
    import torch
    from mhr.mhr import MHR

    scratch = Path(tempfile.mkdtemp(prefix="mhr_assets_"))
    for name in [f"lod{lod}.fbx", "compact_v6_1.model", "corrective_activation.npz",
                 f"corrective_blendshapes_lod{lod}.npz"]:
        if (assets / name).is_file():
            os.symlink((assets / name).resolve(), scratch / name)
    if not (scratch / f"corrective_blendshapes_lod{lod}.npz").exists():
        np.savez(scratch / f"corrective_blendshapes_lod{lod}.npz", empty=np.zeros(0))
    try:
        return MHR.from_files(scratch, torch.device("cpu"), lod=lod,
                              wants_pose_correctives=(scratch / "corrective_activation.npz").exists())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def random_parameters(n: int, seed: int = 0):
    """Plausible random bodies: shape ~N(0,0.8), joint angles +-0.4 rad, small global rotation and
    translation, small bone scales, expressions ~N(0,0.3). Row 0 is the all-zero rest body."""
    rng = np.random.default_rng(seed)
    shape = (0.8 * rng.standard_normal((n, NUM_SHAPE))).astype(np.float32)
    params = np.zeros((n, 204), np.float32)
    params[:, 0:3] = 0.5 * rng.standard_normal((n, 3))
    params[:, 3:6] = 0.6 * (rng.random((n, 3)) - 0.5)
    params[:, 6:130] = 0.8 * (rng.random((n, 124)) - 0.5)
    params[:, 130:204] = 0.1 * rng.standard_normal((n, 74))
    expr = (0.3 * rng.standard_normal((n, NUM_EXPR))).astype(np.float32)
    shape[0], params[0], expr[0] = 0, 0, 0
    return shape, params, expr


def verify(assets: Path, lod: int, out_npz: Path, n: int, reference_out: Path | None) -> None:
    import torch

    from instanthmr.body.mhr import MHRNumpy

    model = official_model(assets, lod)
    shape, params, expr = random_parameters(n)
    t0 = time.perf_counter()
    with torch.no_grad():
        verts, skel = model(torch.from_numpy(shape), torch.from_numpy(params), torch.from_numpy(expr))
    ms = (time.perf_counter() - t0) * 1000
    verts, joints = verts.numpy(), skel[..., :3].numpy()
    ours = MHRNumpy.from_npz(out_npz, frame="mhr")(shape, params, expr)
    dj = np.linalg.norm(ours.joints - joints, axis=-1) * 10.0     # cm -> mm
    dv = np.linalg.norm(ours.vertices - verts, axis=-1) * 10.0
    print(f"[verify] LOD{lod}, {n} random bodies vs official mhr ({ms:.0f} ms): joints max {dj.max():.5f} mm, "
          f"vertices max {dv.max():.5f} mm, mean {dv.mean():.5f} mm; pose correctives in official model: "
          f"{model.pose_correctives_model is not None}")
    if reference_out is not None:
        reference_out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(reference_out, shape=shape, model_params=params, expr=expr, vertices=verts, joints=joints,
                 lod=np.asarray(lod))
        print(f"[verify] wrote official reference outputs to {reference_out}")


def cache_dir() -> Path:
    """Where converted models for tests and tools are cached, outside git
    (``$INSTANTHMR_MHR_CACHE``, default ``mhr`` in :func:`~instanthmr.core.paths.user_cache_dir`)."""
    return Path(os.environ.get("INSTANTHMR_MHR_CACHE", user_cache_dir() / "mhr"))


def mhr_env_python() -> Path:
    return Path(os.environ.get("MHR_ENV", REPO / ".venv-mhr")) / "bin" / "python"


def ensure_cached(lod: int, assets: Path, timeout: float = 300.0) -> tuple[Path, Path]:
    """Return (converted model, official reference outputs) for ``lod`` from the cache, converting them
    with the official MHR environment when missing. Raises :class:`ConvertError` saying why when neither
    the cache nor the environment is there (tests turn that into a skip)."""
    import subprocess

    out, ref = cache_dir() / f"mhr_lod{lod}.npz", cache_dir() / f"mhr_lod{lod}_official_reference.npz"
    if out.is_file() and ref.is_file():
        return out, ref
    if not (assets / f"lod{lod}.fbx").is_file():
        raise ConvertError(f"{assets / f'lod{lod}.fbx'}: MHR assets not found")
    if not mhr_env_python().is_file():
        raise ConvertError(f"no converted model in {cache_dir()} and no MHR environment at "
                           f"{mhr_env_python().parent.parent} to make one (run tools/mhr_env.sh)")
    cmd = [str(REPO / "tools" / "mhr_env.sh"), "--run", str(REPO / "tools" / "convert_mhr.py"),
           "--assets", str(assets), "--lod", str(lod), "--out", str(out), "--reference", str(ref)]
    reg = assets / f"mhr70_regressor_lod{lod}.npz"
    if reg.is_file():
        cmd += ["--regressor", str(reg)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not (out.is_file() and ref.is_file()):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConvertError(f"conversion in the MHR environment failed: {tail[0]}")
    return out, ref


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assets", required=True, type=Path, help="folder with lod{N}.fbx and compact_v6_1.model")
    ap.add_argument("--lod", type=int, default=3, help="level of detail (0 = finest ... 6 = coarsest)")
    ap.add_argument("--regressor", type=Path, default=None, help="(70, V+127) keypoint regressor .npz (key W)")
    ap.add_argument("--out", type=Path, default=None, help="output .npz (default models/mhr_lod{N}.npz)")
    ap.add_argument("--no-correctives", action="store_true", help="do not store pose correctives")
    ap.add_argument("--compress", action="store_true",
                    help="zip-compress the arrays (LOD 6: 1.9 MB -> 0.16 MB; loads a little slower)")
    ap.add_argument("--verify", action="store_true", help="compare with the official package")
    ap.add_argument("--verify-n", type=int, default=8, help="random bodies used by --verify")
    ap.add_argument("--reference", type=Path, default=None, help="with --verify: save the official outputs")
    args = ap.parse_args(argv)
    out = args.out or REPO / "models" / f"mhr_lod{args.lod}.npz"
    try:
        if not args.assets.is_dir():
            raise ConvertError(f"{args.assets}: asset folder not found")
        t0 = time.perf_counter()
        character = load_character(args.assets, args.lod)
        arrays = character_arrays(character, args.lod)
        nv = arrays["rest_vertices"].shape[0]
        if args.regressor is not None:
            arrays.update(regressor_arrays(args.regressor, nv))
        if not args.no_correctives:
            arrays.update(corrective_arrays(args.assets, args.lod, nv))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.stem + ".tmp.npz")   # never leave a half-written model behind
        (np.savez_compressed if args.compress else np.savez)(tmp, **arrays)
        os.replace(tmp, out)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s: LOD{args.lod}, "
              f"{nv} vertices, {arrays['faces'].shape[0]} faces, {len(arrays['joint_parents'])} joints, "
              f"keypoint regressor: {'keypoint_regressor' in arrays}, "
              f"pose correctives: {'corrective_blendshapes' in arrays}")
        if args.verify or args.reference:
            verify(args.assets, args.lod, out, args.verify_n, args.reference)
    except ConvertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
