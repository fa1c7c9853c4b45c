"""MHR layer: hand-checked kinematics on a toy rig, and the real model against the official package and
against real SAM 3D Body outputs (``../shared/mhr``; converted models come from a cache outside git, made
by tools/convert_mhr.py in the official MHR environment; tests skip when neither exists)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from instanthmr.body import mhr_torch
from instanthmr.body.mhr import (
    MHRAssetError,
    MHRAssets,
    MHRNumpy,
    joint_levels,
    load_mhr_assets,
    mhr_to_product,
    product_to_mhr,
)
from instanthmr.body.mhr_torch import MHRModel, export_onnx
from instanthmr.cli.convert_mhr import ConvertError, ensure_cached, random_parameters


# ---------------------------------------------------------------------------------------------- toy rig
def toy_assets(num_joints: int = 127) -> MHRAssets:
    """A chain rig: joint 0 at the origin, each next joint 10 cm further along +X. One vertex rigidly
    bound to each joint (at the joint), so skinned vertices must follow the joints exactly."""
    j = num_joints
    parents = np.arange(-1, j - 1)
    offsets = np.zeros((j, 3), np.float32)
    offsets[1:, 0] = 10.0
    rest_joints = np.cumsum(offsets, 0)
    ibp = np.tile(np.eye(4, dtype=np.float32), (j, 1, 1))
    ibp[:, :3, 3] = -rest_joints
    pt = np.zeros((j * 7, 204), np.float32)
    # model params 0..5 drive the root translation/rotation, 6..8 joint 1's rotation, 9 joint 1's scale
    for k in range(6):
        pt[k, k] = 1.0
    pt[7 + 3, 6], pt[7 + 4, 7], pt[7 + 5, 8], pt[7 + 6, 9] = 1.0, 1.0, 1.0, 1.0
    return MHRAssets(
        rest_vertices=rest_joints.copy(),
        faces=np.array([[0, 1, 2]]),
        identity_blendshapes=np.zeros((45, j, 3), np.float32),
        expression_blendshapes=np.zeros((72, j, 3), np.float32),
        skin_indices=np.arange(j)[:, None].repeat(2, 1),
        skin_weights=np.tile(np.array([[1.0, 0.0]], np.float32), (j, 1)),
        joint_parents=parents,
        joint_offsets=offsets,
        joint_prerotations=np.tile(np.array([[0, 0, 0, 1]], np.float32), (j, 1)),
        inverse_bind_pose=ibp,
        parameter_transform=pt,
    )


def test_toy_rig_forward_kinematics_by_hand():
    m = MHRNumpy(toy_assets(), frame="mhr")
    p = np.zeros((1, 204), np.float32)
    p[0, 0:3] = [1.0, 2.0, 3.0]       # root translation (cm)
    p[0, 5] = np.pi / 2               # root rotation about Z: the chain now points along +Y
    p[0, 9] = 1.0                     # joint 1 scale 2**1: everything below it twice as long
    out = m(np.zeros(45), p)
    j = out.joints[0]
    np.testing.assert_allclose(j[0], [1, 2, 3], atol=1e-5)
    np.testing.assert_allclose(j[1], [1, 12, 3], atol=1e-5)
    np.testing.assert_allclose(j[2], [1, 32, 3], atol=1e-4)
    np.testing.assert_allclose(j[3], [1, 52, 3], atol=1e-4)
    np.testing.assert_allclose(out.vertices[0], out.joints[0], atol=1e-4)   # rigidly bound vertices
    assert out.keypoints is None


def test_euler_convention_matches_scipy_extrinsic_xyz():
    from scipy.spatial.transform import Rotation

    m = MHRNumpy(toy_assets(), frame="mhr")
    angles = np.array([0.3, -0.7, 1.1])
    p = np.zeros((1, 204), np.float32)
    p[0, 6:9] = angles                 # joint 1 rotation -> moves joint 2 about joint 1
    j = m(np.zeros(45), p).joints[0]
    expected = j[1] + Rotation.from_euler("xyz", angles).apply([10.0, 0, 0])   # extrinsic = Rz Ry Rx
    np.testing.assert_allclose(j[2], expected, atol=1e-4)


def test_torch_matches_numpy_and_gradients_flow_on_toy_rig():
    a = toy_assets()
    rng = np.random.default_rng(1)
    p = (0.5 * rng.standard_normal((3, 204))).astype(np.float32)
    ref = MHRNumpy(a)(np.zeros(45), p)
    params = torch.from_numpy(p).requires_grad_(True)
    out = MHRModel(a)(torch.zeros(1, 45), params)
    np.testing.assert_allclose(out.joints.detach().numpy(), ref.joints, atol=1e-4)   # m: 0.1 mm over a 12 m chain
    np.testing.assert_allclose(out.vertices.detach().numpy(), ref.vertices, atol=1e-4)
    out.joints.sum().backward()
    assert torch.isfinite(params.grad).all() and params.grad[:, :10].abs().sum() > 0


def test_joint_levels_group_by_depth():
    levels = joint_levels(np.array([-1, 0, 0, 1, 3, 2]))
    assert [lv.tolist() for lv in levels] == [[0], [1, 2], [3, 5], [4]]


def test_frame_helpers_round_trip_and_axes():
    pts = np.array([[10.0, 170.0, -5.0]], np.float32)       # cm, Y up
    prod = mhr_to_product(pts)
    np.testing.assert_allclose(prod, [[0.1, -1.7, 0.05]], rtol=1e-6)
    np.testing.assert_allclose(product_to_mhr(prod), pts, rtol=1e-6)
    np.testing.assert_allclose(mhr_torch.mhr_to_product(torch.from_numpy(pts)).numpy(), prod)


# ---------------------------------------------------------------------------------------------- bad files
def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(MHRAssetError, match="not found.*convert_mhr"):
        load_mhr_assets(tmp_path / "nope.npz")


def test_corrupt_and_foreign_files_are_rejected(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(MHRAssetError, match="bad.npz: not a readable"):
        load_mhr_assets(bad)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, W=np.zeros((70, 10)))
    with pytest.raises(MHRAssetError, match="missing arrays .*rest_vertices"):
        load_mhr_assets(foreign)


def test_inconsistent_arrays_are_rejected(tmp_path):
    a = toy_assets()
    arrays = {k: getattr(a, k) for k in ("rest_vertices", "faces", "identity_blendshapes",
                                         "expression_blendshapes", "skin_indices", "skin_weights",
                                         "joint_parents", "joint_offsets", "joint_prerotations",
                                         "inverse_bind_pose", "parameter_transform")}
    np.savez(tmp_path / "ok.npz", **arrays)
    assert load_mhr_assets(tmp_path / "ok.npz").num_vertices == 127
    arrays["parameter_transform"] = arrays["parameter_transform"][:, :200]
    np.savez(tmp_path / "pt.npz", **arrays)
    with pytest.raises(MHRAssetError, match="pt.npz: parameter_transform"):
        load_mhr_assets(tmp_path / "pt.npz")


# ---------------------------------------------------------------------------------------------- real model
def _converted(lod: int, mhr_dir: Path) -> tuple[Path, Path]:
    try:
        return ensure_cached(lod, mhr_dir)
    except ConvertError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def lod3(mhr_dir):
    return _converted(3, mhr_dir)


@pytest.fixture(scope="module")
def lod6(mhr_dir):
    return _converted(6, mhr_dir)


@pytest.mark.parametrize("lod_name", ["lod3", "lod6"])
def test_matches_official_package(lod_name, request):
    """Official mhr 1.0.1 outputs on 8 random bodies (made by tools/convert_mhr.py --reference)."""
    model_path, ref_path = request.getfixturevalue(lod_name)
    ref = np.load(ref_path)
    out = MHRNumpy.from_npz(model_path, frame="mhr")(ref["shape"], ref["model_params"], ref["expr"])
    dj = np.linalg.norm(out.joints - ref["joints"], axis=-1) * 10.0        # cm -> mm
    dv = np.linalg.norm(out.vertices - ref["vertices"], axis=-1) * 10.0
    assert dj.max() < 0.1, f"joints differ by up to {dj.max():.4f} mm"
    assert dv.max() < 1.0, f"vertices differ by up to {dv.max():.4f} mm"
    with torch.no_grad():
        tout = MHRModel.from_npz(model_path, frame="mhr")(
            *(torch.from_numpy(ref[k]) for k in ("shape", "model_params", "expr")))
    assert np.linalg.norm(tout.vertices.numpy() - ref["vertices"], axis=-1).max() * 10 < 1.0
    assert np.linalg.norm(tout.joints.numpy() - ref["joints"], axis=-1).max() * 10 < 0.1


def test_matches_real_sam3d_body_outputs(lod3, mhr_dir):
    """Product frame (m, Y down) vs SAM 3D Body's own joints / keypoints / LOD 1 mesh for 4 real images."""
    from scipy.spatial import cKDTree

    model = MHRModel.from_npz(lod3[0])
    for f in sorted((mhr_dir / "samples").glob("*.npz")):
        d = np.load(f)
        args = [torch.from_numpy(d[k][None]) for k in ("shape_params", "mhr_model_params", "expr_params")]
        with torch.no_grad():
            out = model(*args)
        joints_mm = np.linalg.norm(out.joints[0].numpy() - d["pred_joint_coords"], axis=-1) * 1000
        assert joints_mm.max() < 0.1, f"{f.name}: joints differ by {joints_mm.max():.4f} mm"
        # the 70-keypoint regressor is derived (fitted), not Meta's own mapping: a few mm
        kp_mm = np.linalg.norm(out.keypoints[0].numpy() - d["pred_keypoints_3d"], axis=-1) * 1000
        assert kp_mm.mean() < 2.0 and kp_mm.max() < 15.0, f"{f.name}: keypoints {kp_mm.mean():.2f} mm mean"
        # LOD 3 vs LOD 1 mesh (with Meta's pose correctives): nearest-vertex distances stay small
        nn_mm = cKDTree(d["pred_vertices"]).query(out.vertices[0].numpy())[0] * 1000
        assert np.median(nn_mm) < 5.0 and nn_mm.mean() < 8.0, f"{f.name}: mesh {nn_mm.mean():.2f} mm"


def test_rest_body_is_upright_in_product_frame(lod6):
    out = MHRNumpy.from_npz(lod6[0])(np.zeros(45), np.zeros(204))
    v = out.vertices[0]
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.4 < height < 2.1, height
    head, feet = out.keypoints[0, 0], out.keypoints[0, 15:21]       # nose vs feet
    assert (head[1] < feet[:, 1]).all(), "Y must point down in the product frame"


def test_onnx_export_matches_torch(lod6, tmp_path):
    import onnxruntime as ort

    model = MHRModel.from_npz(lod6[0])
    path = export_onnx(model, tmp_path / "mhr_lod6.onnx", opset=17)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["vertices", "joints", "keypoints"]
    shape, params, expr = random_parameters(3, seed=5)          # batch size differs from the export's 2
    got = sess.run(None, {"shape": shape, "model_params": params, "expr": expr})
    with torch.no_grad():
        ref = model(torch.from_numpy(shape), torch.from_numpy(params), torch.from_numpy(expr))
    for g, r in zip(got, (ref.vertices, ref.joints, ref.keypoints)):
        assert g.shape == tuple(r.shape)
        assert np.abs(g - r.numpy()).max() < 1e-5        # metres: 0.01 mm


# ---------------------------------------------------------------------------------------------- meshes
def test_mesh_renderer_missing_file_is_one_line_and_none(tmp_path, capsys):
    from instanthmr.body.mesh import MeshRenderer, resolve_mhr_model

    assert resolve_mhr_model(tmp_path, 5) == tmp_path / "mhr_lod5.npz"
    assert resolve_mhr_model(tmp_path / "x.npz", 5) == tmp_path / "x.npz"
    assert MeshRenderer.open(tmp_path, lod=4) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "meshes off" in err[0] and "mhr_lod4.npz" in err[0]


def test_meshes_logged_and_overlaid(lod6, capsys):
    from types import SimpleNamespace

    from instanthmr.body.mesh import MeshRenderer, log_mhr_meshes, overlay_meshes

    assert MeshRenderer.open(lod6[0], lod=3) is None                   # wrong LOD for that file
    assert "not the requested --mhr-lod 3" in capsys.readouterr().err
    mesh = MeshRenderer.open(lod6[0], lod=6)
    persons = [SimpleNamespace(mhr_params=np.zeros(204), shape_params=np.zeros(45), cam_trans=np.array([x, 0.0, 4.0]))
               for x in (-0.6, 0.6)]
    verts = mesh.vertices_cam(persons)
    local = mesh.vertices_local(np.zeros((1, 204)), np.zeros((1, 45)))
    np.testing.assert_allclose(verts[1] - verts[0], np.tile([1.2, 0, 0], (len(local[0]), 1)), atol=1e-5)

    logged = []
    rec = SimpleNamespace(log=lambda entity, arch: logged.append((entity, arch)))
    log_mhr_meshes(rec, "world/meshes", verts, mesh.faces)
    entity, arch = logged[-1]
    assert entity == "world/meshes"
    assert len(arch.vertex_positions.as_arrow_array()) == 2 * verts.shape[1]
    assert len(arch.triangle_indices.as_arrow_array()) == 2 * len(mesh.faces)
    log_mhr_meshes(rec, "world/meshes", np.zeros((0, verts.shape[1], 3)), mesh.faces)   # nobody: cleared
    assert type(logged[-1][1]).__name__ == "Clear"

    image = np.zeros((480, 640, 3), np.uint8)
    out = overlay_meshes(image, verts, mesh.faces, focal=800.0, principal_point=(320, 240))
    assert image.max() == 0 and out.shape == image.shape
    painted = out.max(-1) > 0
    # the two bodies stand left and right of the centre; the top corners stay untouched
    u = np.flatnonzero(painted.any(0))
    assert painted.mean() > 0.05 and not painted[:20, :20].any() and not painted[:20, -20:].any()
    assert painted[:, 320 - 150].any() and painted[:, 320 + 150].any()
    assert u.min() > 320 - 800 * 1.2 / 4 - 60 and u.max() < 320 + 800 * 1.2 / 4 + 60


# ---------------------------------------------------------------------------------------------- converter
def test_converter_reports_missing_inputs_in_one_line(tmp_path, capsys):
    from instanthmr.cli.convert_mhr import main as convert_main

    assert convert_main(["--assets", str(tmp_path / "nowhere"), "--lod", "3"]) == 2
    assert "nowhere: asset folder not found" in capsys.readouterr().err
    (tmp_path / "lod5.fbx").write_bytes(b"")
    assert convert_main(["--assets", str(tmp_path), "--lod", "3", "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "lod3.fbx: not found (this folder has: lod5.fbx)" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.npz").exists()


def test_converter_rejects_a_regressor_of_another_lod(tmp_path):
    from instanthmr.cli.convert_mhr import regressor_arrays

    np.savez(tmp_path / "reg.npz", W=np.zeros((70, 595 + 127), np.float32))
    assert regressor_arrays(tmp_path / "reg.npz", 595)["keypoint_regressor"].shape == (70, 722)
    with pytest.raises(ConvertError, match="wrong LOD"):
        regressor_arrays(tmp_path / "reg.npz", 4899)
