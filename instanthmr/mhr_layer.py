"""Meta's Momentum Human Rig (MHR) body model as a plain torch / numpy layer.

The official ``mhr`` package needs ``pymomentum`` (Python 3.12+, its own torch, a libstdc++ preload) and
ships TorchScript that does not export to ONNX. This module runs the same linear model from one portable
``.npz`` written once by ``tools/convert_mhr.py``:

1. rest shape: ``base + identity_blendshapes . shape (45) + expression_blendshapes . expr (72)``
2. joint parameters: ``parameter_transform (127*7 x 204) . model_params``; per joint 7 numbers
   ``(tx, ty, tz, rx, ry, rz, log2 scale)``
3. forward kinematics: local ``t = offset + (tx,ty,tz)``, ``R = prerotation . Rz(rz) Ry(ry) Rx(rx)``,
   ``s = 2**scale``; global ``t = t_p + s_p R_p t``, ``R = R_p R``, ``s = s_p s`` (momentum's rules)
4. linear blend skinning of the rest shape by ``global . inverse_bind_pose``
5. optional 70 MHR70 keypoints: a linear regressor over ``[vertices; joints]``.

Pose correctives (the official package's small MLP: 6D rotations of 125 joints -> sparse linear -> ReLU ->
corrective blendshapes, added to the rest shape before skinning) run when the converted file carries them;
the LOD 3-6 assets found so far do not include them, and the official package skips them too in that case.

Frames and units. MHR itself works in centimetres, Y up, Z toward the viewer (``frame="mhr"``). The
product (and SAM 3D Body's outputs) use metres with Y down and Z away from the camera: ``x/100, -y/100,
-z/100`` (``frame="product"``, the default). With the root translation of ``model_params[0:3]`` left at 0
(as SAM 3D Body does), product-frame outputs are body-centred; add ``cam_trans`` to place them in the camera.

Importing this module needs only numpy; :class:`MHRModel` (torch, differentiable, ONNX-exportable) is
defined when torch is installed, :class:`MHRNumpy` always.
"""

from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:  # torch is a training / export dependency, not a runtime one
    import torch
except ImportError:  # pragma: no cover - exercised only in runtime-only installs
    torch = None

NPZ_FORMAT_VERSION = 1
NUM_SHAPE = 45
NUM_EXPR = 72
NUM_MODEL_PARAMS = 204
NUM_JOINTS = 127
FRAMES = ("product", "mhr")
_LN2 = 0.6931471805599453

# Arrays every converted file must hold, with their expected rank.
_REQUIRED = {
    "rest_vertices": 2,
    "faces": 2,
    "identity_blendshapes": 3,
    "expression_blendshapes": 3,
    "skin_indices": 2,
    "skin_weights": 2,
    "joint_parents": 1,
    "joint_offsets": 2,
    "joint_prerotations": 2,
    "inverse_bind_pose": 3,
    "parameter_transform": 2,
}


class MHRAssetError(RuntimeError):
    """A converted MHR ``.npz`` is missing, unreadable, or not what ``tools/convert_mhr.py`` writes."""


@dataclass
class MHROutput:
    """Result of one MHR forward pass for ``N`` bodies.

    vertices:  (N, V, 3) mesh vertices.
    joints:    (N, 127, 3) skeleton joint positions (MHR joint order).
    keypoints: (N, 70, 3) MHR70 keypoints, or None when the model has no keypoint regressor.
    frame:     ``"product"``: metres, X right, Y down, Z forward (SAM 3D Body / InstantHMR convention);
               ``"mhr"``: centimetres, Y up (MHR's native frame).
    Arrays are torch tensors from :class:`MHRModel` and numpy arrays from :class:`MHRNumpy`.
    """

    vertices: Any
    joints: Any
    keypoints: Any | None
    frame: str


def mhr_to_product(points):
    """MHR native (cm, Y up) -> product frame (m, Y down, Z forward). Works on numpy arrays and tensors."""
    if torch is not None and isinstance(points, torch.Tensor):  # no constant tensors: trace/export-friendly
        return torch.stack([points[..., 0] * 0.01, points[..., 1] * -0.01, points[..., 2] * -0.01], -1)
    points = np.asarray(points)
    return points * np.asarray([0.01, -0.01, -0.01], dtype=points.dtype)


def product_to_mhr(points):
    """Product frame (m, Y down) -> MHR native (cm, Y up); the inverse of :func:`mhr_to_product`."""
    if torch is not None and isinstance(points, torch.Tensor):
        return torch.stack([points[..., 0] * 100.0, points[..., 1] * -100.0, points[..., 2] * -100.0], -1)
    points = np.asarray(points)
    return points * np.asarray([100.0, -100.0, -100.0], dtype=points.dtype)


# ----------------------------------------------------------------------------------------------------------
# Assets
# ----------------------------------------------------------------------------------------------------------
@dataclass
class MHRAssets:
    """Everything the forward pass needs, as numpy arrays in MHR's native frame (cm, Y up).

    rest_vertices (V,3); faces (F,3) int; identity_blendshapes (45,V,3); expression_blendshapes (72,V,3);
    skin_indices / skin_weights (V,K) (padding has weight 0); joint_parents (127,) int (-1 for the root);
    joint_offsets (127,3); joint_prerotations (127,4) quaternions (x,y,z,w); inverse_bind_pose (127,4,4);
    parameter_transform (127*7, 204); keypoint_regressor (70, V+127) or None;
    corrective_hidden (H, 125*6) dense first layer and corrective_blendshapes (H, V, 3) of the pose
    correctives, or None.
    """

    rest_vertices: np.ndarray
    faces: np.ndarray
    identity_blendshapes: np.ndarray
    expression_blendshapes: np.ndarray
    skin_indices: np.ndarray
    skin_weights: np.ndarray
    joint_parents: np.ndarray
    joint_offsets: np.ndarray
    joint_prerotations: np.ndarray
    inverse_bind_pose: np.ndarray
    parameter_transform: np.ndarray
    keypoint_regressor: np.ndarray | None = None
    corrective_hidden: np.ndarray | None = None
    corrective_blendshapes: np.ndarray | None = None
    joint_names: tuple[str, ...] = ()
    parameter_names: tuple[str, ...] = ()
    keypoint_names: tuple[str, ...] = ()
    lod: int = -1
    path: str = ""

    @property
    def num_vertices(self) -> int:
        return int(self.rest_vertices.shape[0])

    def validate(self) -> None:
        """Raise :class:`MHRAssetError` naming the file and the first inconsistency found."""
        v = self.num_vertices
        j = int(self.joint_parents.shape[0])
        checks = [
            (self.rest_vertices.shape == (v, 3), f"rest_vertices {self.rest_vertices.shape} is not (V,3)"),
            (self.identity_blendshapes.shape == (NUM_SHAPE, v, 3),
             f"identity_blendshapes {self.identity_blendshapes.shape} is not ({NUM_SHAPE},{v},3)"),
            (self.expression_blendshapes.shape == (NUM_EXPR, v, 3),
             f"expression_blendshapes {self.expression_blendshapes.shape} is not ({NUM_EXPR},{v},3)"),
            (self.skin_indices.shape == self.skin_weights.shape and self.skin_indices.shape[0] == v,
             f"skin_indices {self.skin_indices.shape} / skin_weights {self.skin_weights.shape} do not match V={v}"),
            (j == NUM_JOINTS, f"{j} joints, expected {NUM_JOINTS}"),
            (self.joint_offsets.shape == (j, 3), f"joint_offsets {self.joint_offsets.shape} is not ({j},3)"),
            (self.joint_prerotations.shape == (j, 4),
             f"joint_prerotations {self.joint_prerotations.shape} is not ({j},4)"),
            (self.inverse_bind_pose.shape == (j, 4, 4),
             f"inverse_bind_pose {self.inverse_bind_pose.shape} is not ({j},4,4)"),
            (self.parameter_transform.shape == (j * 7, NUM_MODEL_PARAMS),
             f"parameter_transform {self.parameter_transform.shape} is not ({j * 7},{NUM_MODEL_PARAMS})"),
            (self.faces.ndim == 2 and self.faces.shape[1] == 3 and int(self.faces.max()) < v
             and int(self.faces.min()) >= 0, f"faces {self.faces.shape} do not index V={v} vertices"),
            (int(self.skin_indices.max()) < j and int(self.skin_indices.min()) >= 0,
             "skin_indices out of joint range"),
            (all(p < i for i, p in enumerate(self.joint_parents.tolist())),
             "joint_parents are not in topological order (each parent must precede its child)"),
        ]
        if self.keypoint_regressor is not None:
            checks.append((self.keypoint_regressor.shape[1] == v + j,
                           f"keypoint_regressor {self.keypoint_regressor.shape} does not have V+127={v + j} columns"))
        if self.corrective_blendshapes is not None:
            h = self.corrective_blendshapes.shape[0]
            checks.append((self.corrective_blendshapes.shape == (h, v, 3)
                           and self.corrective_hidden is not None
                           and self.corrective_hidden.shape == (h, (j - 2) * 6),
                           f"pose correctives {self.corrective_blendshapes.shape} / "
                           f"{None if self.corrective_hidden is None else self.corrective_hidden.shape} "
                           f"are not (H,V,3) / (H,{(j - 2) * 6})"))
        for ok, msg in checks:
            if not ok:
                raise MHRAssetError(f"{self.path or 'MHR assets'}: {msg}")


def load_mhr_assets(path: str | Path) -> MHRAssets:
    """Read a file written by ``tools/convert_mhr.py``; one-line :class:`MHRAssetError` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise MHRAssetError(
            f"{path}: MHR model file not found (convert the official MHR assets with "
            f"tools/convert_mhr.py; see docs/mhr.md)")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise MHRAssetError(f"{path}: not a readable .npz file ({exc.__class__.__name__}: {exc})") from None
    missing = [k for k, rank in _REQUIRED.items() if k not in data]
    if missing:
        raise MHRAssetError(f"{path}: not a converted MHR model, missing arrays {', '.join(missing)}")
    bad = [k for k, rank in _REQUIRED.items() if data[k].ndim != rank]
    if bad:
        raise MHRAssetError(f"{path}: arrays with the wrong number of dimensions: {', '.join(bad)}")
    version = int(data.get("format_version", np.asarray(NPZ_FORMAT_VERSION)))
    if version > NPZ_FORMAT_VERSION:
        raise MHRAssetError(f"{path}: format_version {version} is newer than this InstantHMR understands "
                            f"({NPZ_FORMAT_VERSION})")
    f32 = lambda k: np.ascontiguousarray(data[k], dtype=np.float32)  # noqa: E731
    names = lambda k: tuple(str(s) for s in data[k]) if k in data else ()  # noqa: E731
    # FBX rigs pad influences to 8 per vertex; MHR uses at most 4: drop the all-zero columns (2x faster)
    order = np.argsort(-data["skin_weights"], axis=1, kind="stable")
    weights = np.take_along_axis(data["skin_weights"], order, 1)
    keep = max(1, int((weights > 0).sum(1).max())) if weights.size else 1
    data["skin_weights"] = weights[:, :keep]
    data["skin_indices"] = np.take_along_axis(data["skin_indices"], order, 1)[:, :keep]
    hidden = comps = None
    if "corrective_blendshapes" in data:
        try:  # the first layer is stored sparse (as Meta ships it); the forward uses it dense
            rows, cols = data["corrective_hidden_indices"]
            hidden = np.zeros(tuple(int(x) for x in data["corrective_hidden_shape"]), np.float32)
            hidden[rows, cols] = data["corrective_hidden_weights"]
        except (KeyError, ValueError, IndexError) as exc:
            raise MHRAssetError(f"{path}: malformed pose-corrective arrays ({exc})") from None
        comps = f32("corrective_blendshapes")
    assets = MHRAssets(
        rest_vertices=f32("rest_vertices"),
        faces=np.ascontiguousarray(data["faces"], dtype=np.int64),
        identity_blendshapes=f32("identity_blendshapes"),
        expression_blendshapes=f32("expression_blendshapes"),
        skin_indices=np.ascontiguousarray(data["skin_indices"], dtype=np.int64),
        skin_weights=f32("skin_weights"),
        joint_parents=np.ascontiguousarray(data["joint_parents"], dtype=np.int64),
        joint_offsets=f32("joint_offsets"),
        joint_prerotations=f32("joint_prerotations"),
        inverse_bind_pose=f32("inverse_bind_pose"),
        parameter_transform=f32("parameter_transform"),
        keypoint_regressor=f32("keypoint_regressor") if "keypoint_regressor" in data else None,
        corrective_hidden=hidden,
        corrective_blendshapes=comps,
        joint_names=names("joint_names"),
        parameter_names=names("parameter_names"),
        keypoint_names=names("keypoint_names"),
        lod=int(data["lod"]) if "lod" in data else -1,
        path=str(path),
    )
    assets.validate()
    return assets


def quaternion_to_matrix_np(q: np.ndarray) -> np.ndarray:
    """(...,4) quaternions (x, y, z, w), normalised here -> (...,3,3) rotation matrices."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def joint_levels(parents: np.ndarray) -> list[np.ndarray]:
    """Joint indices grouped by depth in the tree (level 0 = roots). FK runs one batched step per level,
    so an exported graph has ~depth steps instead of 127."""
    depth = np.zeros(len(parents), dtype=np.int64)
    for i, p in enumerate(parents):
        depth[i] = 0 if p < 0 else depth[p] + 1
    return [np.flatnonzero(depth == d) for d in range(int(depth.max()) + 1)]


def _euler_xyz_matrix_np(e: np.ndarray) -> np.ndarray:
    """(...,3) angles (rx, ry, rz) -> Rz(rz) @ Ry(ry) @ Rx(rx), momentum's 'Euler XYZ' convention."""
    cx, cy, cz = np.cos(e[..., 0]), np.cos(e[..., 1]), np.cos(e[..., 2])
    sx, sy, sz = np.sin(e[..., 0]), np.sin(e[..., 1]), np.sin(e[..., 2])
    return np.stack([
        np.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], -1),
        np.stack([sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], -1),
        np.stack([-sy, cy * sx, cy * cx], -1),
    ], -2)


# ----------------------------------------------------------------------------------------------------------
# numpy forward (runtime: demo, synthetic data; no torch)
# ----------------------------------------------------------------------------------------------------------
class MHRNumpy:
    """MHR forward in numpy (float64 kinematics, float32 skinning).
    ``MHRNumpy.from_npz(path)(shape, model_params, expr)``; outputs as :class:`MHROutput` (float32)."""

    def __init__(self, assets: MHRAssets, frame: str = "product"):
        if frame not in FRAMES:
            raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")
        self.assets = assets
        self.frame = frame
        self.faces = assets.faces
        self._levels = joint_levels(assets.joint_parents)
        self._prerot = quaternion_to_matrix_np(assets.joint_prerotations)
        self._ibp = assets.inverse_bind_pose.astype(np.float64)
        self._shape_dirs = assets.identity_blendshapes.reshape(NUM_SHAPE, -1).astype(np.float64)
        self._expr_dirs = assets.expression_blendshapes.reshape(NUM_EXPR, -1).astype(np.float64)
        reg = assets.keypoint_regressor
        # the regressor is sparse (<= ~13 of V+127 columns per row): keep only the columns it uses
        self._reg_cols = None if reg is None else np.flatnonzero(np.abs(reg).sum(0) > 0)
        self._regressor = None if reg is None else reg[:, self._reg_cols].astype(np.float64)

    @classmethod
    def from_npz(cls, path: str | Path, frame: str = "product") -> "MHRNumpy":
        return cls(load_mhr_assets(path), frame=frame)

    @property
    def has_keypoints(self) -> bool:
        return self.assets.keypoint_regressor is not None

    @property
    def has_correctives(self) -> bool:
        return self.assets.corrective_blendshapes is not None

    def __call__(self, shape, model_params, expr=None, apply_correctives: bool = True) -> MHROutput:
        a = self.assets
        params = np.atleast_2d(np.asarray(model_params, dtype=np.float64))
        n = params.shape[0]
        # contiguous copies: matmul on a broadcast (stride-0) view skips BLAS and is ~50x slower
        shape = np.ascontiguousarray(np.broadcast_to(np.atleast_2d(np.asarray(shape, np.float64)), (n, NUM_SHAPE)))
        rest = a.rest_vertices[None].astype(np.float64) + (shape @ self._shape_dirs).reshape(n, -1, 3)
        if expr is not None:
            expr = np.ascontiguousarray(np.broadcast_to(np.atleast_2d(np.asarray(expr, np.float64)), (n, NUM_EXPR)))
            rest = rest + (expr @ self._expr_dirs).reshape(n, -1, 3)

        jp = (params @ a.parameter_transform.T.astype(np.float64)).reshape(n, -1, 7)
        loc_t = jp[..., :3] + a.joint_offsets
        euler_r = _euler_xyz_matrix_np(jp[..., 3:6])
        loc_r = self._prerot[None] @ euler_r
        if apply_correctives and self.has_correctives:
            # features: first two columns of each non-root joint's Euler rotation, minus identity
            feat = np.concatenate([euler_r[:, 2:, :, 0], euler_r[:, 2:, :, 1]], -1)
            feat[..., 0] -= 1.0
            feat[..., 4] -= 1.0
            hidden = np.maximum(feat.reshape(n, -1) @ a.corrective_hidden.T.astype(np.float64), 0.0)
            rest = rest + (hidden @ a.corrective_blendshapes.reshape(len(hidden[0]), -1)).reshape(n, -1, 3)
        loc_s = np.exp(_LN2 * jp[..., 6])
        g_t, g_r, g_s = np.empty_like(loc_t), np.empty_like(loc_r), np.empty_like(loc_s)
        parents = a.joint_parents
        for lvl in self._levels:
            p = parents[lvl]
            if p[0] < 0:  # the root level (all roots share depth 0)
                g_t[:, lvl], g_r[:, lvl], g_s[:, lvl] = loc_t[:, lvl], loc_r[:, lvl], loc_s[:, lvl]
                continue
            g_t[:, lvl] = g_t[:, p] + g_s[:, p, None] * (g_r[:, p] @ loc_t[:, lvl, :, None])[..., 0]
            g_r[:, lvl] = g_r[:, p] @ loc_r[:, lvl]
            g_s[:, lvl] = g_s[:, p] * loc_s[:, lvl]

        # skinning matrices: global (s R | t) composed with the inverse bind pose, as (N,J,12) rows
        lin = g_s[..., None, None] * g_r @ self._ibp[None, :, :3, :3]
        off = g_s[..., None] * (g_r @ self._ibp[None, :, :3, 3, None])[..., 0] + g_t
        mats = np.concatenate([lin.reshape(n, -1, 9), off], -1).astype(np.float32)
        blend = (mats[:, a.skin_indices] * a.skin_weights[None, :, :, None]).sum(2)      # (N,V,12)
        rest32 = rest.astype(np.float32)
        verts = (blend[..., :9].reshape(n, -1, 3, 3) * rest32[:, :, None, :]).sum(-1) + blend[..., 9:]
        return self._finish(verts.astype(np.float64), g_t)

    def _finish(self, verts: np.ndarray, joints: np.ndarray) -> MHROutput:
        kps = None
        if self.assets.keypoint_regressor is not None:
            kps = self._regressor @ np.concatenate([verts, joints], 1)[:, self._reg_cols]
        out = [verts, joints, kps]
        if self.frame == "product":
            out = [None if x is None else mhr_to_product(x) for x in out]
        out = [None if x is None else x.astype(np.float32) for x in out]
        return MHROutput(out[0], out[1], out[2], self.frame)


# ----------------------------------------------------------------------------------------------------------
# torch forward (training losses, ONNX export)
# ----------------------------------------------------------------------------------------------------------
if torch is not None:

    def _euler_xyz_matrix(e: "torch.Tensor") -> "torch.Tensor":
        cx, cy, cz = torch.cos(e[..., 0]), torch.cos(e[..., 1]), torch.cos(e[..., 2])
        sx, sy, sz = torch.sin(e[..., 0]), torch.sin(e[..., 1]), torch.sin(e[..., 2])
        row0 = torch.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], -1)
        row1 = torch.stack([sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], -1)
        row2 = torch.stack([-sy, cy * sx, cy * cx], -1)
        return torch.stack([row0, row1, row2], -2)

    class MHRModel(torch.nn.Module):
        """Differentiable MHR forward; exports to ONNX (``export_onnx``).

        ``forward(shape (N,45), model_params (N,204), expr (N,72) | None) -> MHROutput`` with tensors in
        ``self.frame`` (see :class:`MHROutput`). All asset arrays are buffers (``.to(device)`` moves them).
        """

        def __init__(self, assets: MHRAssets, frame: str = "product"):
            super().__init__()
            if frame not in FRAMES:
                raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")
            self.frame = frame
            self.lod = assets.lod
            self.joint_names = assets.joint_names
            a = assets
            buf = lambda name, x: self.register_buffer(name, torch.as_tensor(x))  # noqa: E731
            buf("rest_vertices", a.rest_vertices)
            buf("faces", a.faces)
            buf("shape_dirs", a.identity_blendshapes.reshape(NUM_SHAPE, -1))
            buf("expr_dirs", a.expression_blendshapes.reshape(NUM_EXPR, -1))
            buf("parameter_transform", a.parameter_transform)
            buf("joint_offsets", a.joint_offsets)
            buf("prerotations", quaternion_to_matrix_np(a.joint_prerotations).astype(np.float32))
            buf("ibp_linear", a.inverse_bind_pose[:, :3, :3].copy())
            buf("ibp_offset", a.inverse_bind_pose[:, :3, 3].copy())
            buf("skin_indices", a.skin_indices)
            buf("skin_weights", a.skin_weights)
            self.has_keypoints = a.keypoint_regressor is not None
            reg = a.keypoint_regressor if self.has_keypoints else np.zeros((0, 0), np.float32)
            cols = np.flatnonzero(np.abs(reg).sum(0) > 0)       # sparse regressor: only the used columns
            buf("keypoint_columns", cols)
            buf("keypoint_regressor", np.ascontiguousarray(reg[:, cols]))
            self.has_correctives = a.corrective_blendshapes is not None
            if self.has_correctives:
                buf("corrective_hidden", a.corrective_hidden)
                buf("corrective_dirs", a.corrective_blendshapes.reshape(a.corrective_blendshapes.shape[0], -1))
            # FK schedule: per depth level, the joints of that level and the position of their parents in
            # the concatenation of the earlier levels (no in-place writes, which keeps the ONNX graph simple).
            levels = joint_levels(a.joint_parents)
            order = np.concatenate(levels)
            position = np.empty_like(order)
            position[order] = np.arange(len(order))
            self._num_levels = len(levels)
            for i, lvl in enumerate(levels):
                buf(f"level{i}_joints", lvl)
                buf(f"level{i}_parents", position[a.joint_parents[lvl]] if i else np.zeros(0, np.int64))
            buf("joint_order_inverse", position)

        @classmethod
        def from_npz(cls, path: str | Path, frame: str = "product") -> "MHRModel":
            return cls(load_mhr_assets(path), frame=frame)

        @property
        def num_vertices(self) -> int:
            return int(self.rest_vertices.shape[0])

        def joint_parameters(self, model_params: "torch.Tensor") -> "torch.Tensor":
            """(N,204) model parameters -> (N,127,7) joint parameters (tx,ty,tz, rx,ry,rz, log2 scale)."""
            return (model_params @ self.parameter_transform.t()).reshape(model_params.shape[0], -1, 7)

        def skeleton(self, model_params: "torch.Tensor", euler_r: "torch.Tensor | None" = None):
            """Forward kinematics. Returns global (t (N,127,3) cm, R (N,127,3,3), s (N,127)) in MHR frame."""
            jp = self.joint_parameters(model_params)
            loc_t = jp[..., :3] + self.joint_offsets
            if euler_r is None:
                euler_r = _euler_xyz_matrix(jp[..., 3:6])
            loc_r = self.prerotations @ euler_r
            loc_s = torch.exp(_LN2 * jp[..., 6])
            ts, rs, ss = [], [], []
            all_t = all_r = all_s = None
            for i in range(self._num_levels):
                idx = getattr(self, f"level{i}_joints")
                lt, lr, ls = loc_t[:, idx], loc_r[:, idx], loc_s[:, idx]
                if i:
                    par = getattr(self, f"level{i}_parents")
                    pt, pr, ps = all_t[:, par], all_r[:, par], all_s[:, par]
                    lt = pt + ps[..., None] * (pr @ lt[..., None])[..., 0]
                    lr = pr @ lr
                    ls = ps * ls
                ts.append(lt), rs.append(lr), ss.append(ls)
                all_t, all_r, all_s = torch.cat(ts, 1), torch.cat(rs, 1), torch.cat(ss, 1)
            inv = self.joint_order_inverse
            return all_t[:, inv], all_r[:, inv], all_s[:, inv]

        def forward(self, shape: "torch.Tensor", model_params: "torch.Tensor",
                    expr: "torch.Tensor | None" = None, apply_correctives: bool = True) -> MHROutput:
            n = model_params.shape[0]
            shape = shape.expand(n, -1)
            rest = self.rest_vertices + (shape @ self.shape_dirs).reshape(n, -1, 3)
            if expr is not None:
                rest = rest + (expr.expand(n, -1) @ self.expr_dirs).reshape(n, -1, 3)
            euler_r = _euler_xyz_matrix(self.joint_parameters(model_params)[..., 3:6])
            if apply_correctives and self.has_correctives:
                feat = torch.cat([euler_r[:, 2:, :, 0], euler_r[:, 2:, :, 1]], -1)
                feat = feat - feat.new_tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
                hidden = torch.relu(feat.reshape(n, -1) @ self.corrective_hidden.t())
                rest = rest + (hidden @ self.corrective_dirs).reshape(n, -1, 3)
            g_t, g_r, g_s = self.skeleton(model_params, euler_r)
            s_r = g_s[..., None, None] * g_r
            lin = s_r @ self.ibp_linear                                     # (N,J,3,3)
            off = (s_r @ self.ibp_offset[..., None])[..., 0] + g_t          # (N,J,3)
            w = self.skin_weights[..., None]
            v_lin = (lin[:, self.skin_indices] * w[..., None]).sum(2)      # (N,V,3,3)
            v_off = (off[:, self.skin_indices] * w).sum(2)                 # (N,V,3)
            verts = (v_lin @ rest[..., None])[..., 0] + v_off
            kps = None
            if self.has_keypoints:
                kps = self.keypoint_regressor @ torch.cat([verts, g_t], 1)[:, self.keypoint_columns]
            if self.frame == "product":
                verts, g_t = mhr_to_product(verts), mhr_to_product(g_t)
                kps = None if kps is None else mhr_to_product(kps)
            return MHROutput(verts, g_t, kps, self.frame)

    class _MHRExportWrapper(torch.nn.Module):
        """Tuple-returning wrapper so ``torch.onnx.export`` sees plain tensors."""

        def __init__(self, model: "MHRModel"):
            super().__init__()
            self.model = model

        def forward(self, shape, model_params, expr):
            out = self.model(shape, model_params, expr)
            if out.keypoints is None:
                return out.vertices, out.joints
            return out.vertices, out.joints, out.keypoints

    def export_onnx(model: "MHRModel", path: str | Path, opset: int = 17) -> Path:
        """Write the layer as ONNX: inputs ``shape (N,45)``, ``model_params (N,204)``, ``expr (N,72)``
        (float32, dynamic N); outputs ``vertices``, ``joints`` and (with a regressor) ``keypoints``
        in ``model.frame``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        wrapper = _MHRExportWrapper(model.eval())
        args = (torch.zeros(2, NUM_SHAPE), torch.zeros(2, NUM_MODEL_PARAMS), torch.zeros(2, NUM_EXPR))
        outputs = ["vertices", "joints"] + (["keypoints"] if model.has_keypoints else [])
        axes = {k: {0: "n"} for k in ["shape", "model_params", "expr"] + outputs}
        names = ["shape", "model_params", "expr"]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:  # the TorchScript exporter takes <1 s here, the dynamo one ~30 s for the same graph
                torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=outputs,
                                  dynamic_axes=axes, opset_version=opset, dynamo=False)
            except (TypeError, RuntimeError, NotImplementedError):  # torch without the legacy exporter
                n = torch.export.Dim("n", min=1)
                torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=outputs,
                                  dynamic_shapes=({0: n}, {0: n}, {0: n}), opset_version=max(opset, 18),
                                  dynamo=True)
        return path


def _benchmark(path: str, batches=(1, 64), repeats: int = 20, threads: int = 1) -> None:
    """Median wall time of the numpy, torch and ONNX Runtime forwards (CPU) on random bodies."""
    import tempfile
    import time

    rng = np.random.default_rng(0)
    runners = {"numpy": MHRNumpy.from_npz(path)}
    if torch is not None:
        torch.set_num_threads(threads)
        model = MHRModel.from_npz(path).eval()
        runners["torch"] = lambda s, p, e: model(torch.from_numpy(s), torch.from_numpy(p), torch.from_numpy(e))
        try:
            import onnxruntime as ort

            onnx_path = export_onnx(model, Path(tempfile.mkdtemp()) / "mhr.onnx")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            runners["onnxruntime"] = lambda s, p, e: sess.run(None, {"shape": s, "model_params": p, "expr": e})
        except ImportError:
            pass
    print(f"{path}: LOD {load_mhr_assets(path).lod}, torch / onnxruntime threads: {threads}")
    for n in batches:
        s = (0.8 * rng.standard_normal((n, NUM_SHAPE))).astype(np.float32)
        p = (0.3 * rng.standard_normal((n, NUM_MODEL_PARAMS))).astype(np.float32)
        e = (0.3 * rng.standard_normal((n, NUM_EXPR))).astype(np.float32)
        for name, run in runners.items():
            ctx = torch.no_grad() if torch is not None else None
            with ctx if ctx is not None else _Null():
                run(s, p, e)
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    run(s, p, e)
                    times.append((time.perf_counter() - t0) * 1000)
            print(f"  N={n:3d} {name:12s} {np.median(times):8.2f} ms")


def _compare_samples(path: str, samples_dir: str) -> None:
    """Differences to real SAM 3D Body output dicts (their joints, keypoints and LOD 1 mesh)."""
    from scipy.spatial import cKDTree

    model = MHRNumpy.from_npz(path)
    for f in sorted(Path(samples_dir).glob("*.npz")):
        with np.load(f) as d:
            out = model(d["shape_params"], d["mhr_model_params"], d["expr_params"])
            dj = np.linalg.norm(out.joints[0] - d["pred_joint_coords"], axis=-1) * 1000
            line = f"{f.name}: joints max {dj.max():.4f} mm"
            if out.keypoints is not None:
                dk = np.linalg.norm(out.keypoints[0] - d["pred_keypoints_3d"][:70], axis=-1) * 1000
                line += f"; keypoints mean {dk.mean():.2f} max {dk.max():.2f} mm"
            nn = cKDTree(d["pred_vertices"]).query(out.vertices[0])[0] * 1000
            line += f"; vertices to nearest LOD1 vertex median {np.median(nn):.2f} mean {nn.mean():.2f} mm"
        print(line)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":  # python -m instanthmr.mhr_layer models/mhr_lod3.npz [--bench] [--samples DIR]
    import argparse

    ap = argparse.ArgumentParser(description="MHR layer utilities")
    ap.add_argument("model", metavar="NPZ", help="converted MHR model")
    ap.add_argument("--bench", action="store_true", help="time the numpy / torch / onnxruntime forwards")
    ap.add_argument("--samples", metavar="DIR", help="compare with SAM 3D Body output dicts in DIR")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch / onnxruntime intra-op threads")
    a = ap.parse_args()
    try:
        if a.samples:
            _compare_samples(a.model, a.samples)
        if a.bench:
            _benchmark(a.model, a.batches, a.repeats, a.threads)
    except MHRAssetError as exc:
        raise SystemExit(f"error: {exc}")
