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

This module is numpy only (the run-time floors use it); the differentiable, ONNX-exportable torch forward
:class:`~instanthmr.body.mhr_torch.MHRModel` lives in :mod:`instanthmr.body.mhr_torch`.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from instanthmr.core.rotations import euler_xyz_to_matrix, quaternion_to_matrix

NPZ_FORMAT_VERSION = 1
NUM_SHAPE = 45
NUM_EXPR = 72
NUM_MODEL_PARAMS = 204
#: ``model_params`` (``mhr_params``) layout: 0:3 root translation, 3:6 root rotation (Euler), 6:136 joint
#: angles (the pose: 3:136 are angles in radians), 136:204 bone scales.
NUM_POSE_PARAMS = 136
NUM_SCALE_PARAMS = NUM_MODEL_PARAMS - NUM_POSE_PARAMS
POSE_PARAMS = slice(0, NUM_POSE_PARAMS)
ANGLE_PARAMS = slice(3, NUM_POSE_PARAMS)
ROOT_ROTATION = slice(3, 6)  # Euler XYZ, radians (MHR's root orientation)
SCALE_PARAMS = slice(NUM_POSE_PARAMS, NUM_MODEL_PARAMS)
NUM_JOINTS = 127
FRAMES = ("product", "mhr")
#: The low-LOD model shipped inside the package (LOD 6, 595 vertices, with the MHR70 regressor and parameter
#: limits; MHR's Apache-2.0 licence and a NOTICE beside it), so the body fit and meshes work out of the box.
SHIPPED_MHR_MODEL = Path(__file__).resolve().parent / "assets" / "mhr_lod6.npz"
_LN2 = 0.6931471805599453  # ln 2: 2**s as exp(_LN2 * s)

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


#: MHR native (cm, Y up, Z toward the viewer) -> product frame (m, Y down, Z away from the camera), per axis.
MHR_TO_PRODUCT = (0.01, -0.01, -0.01)


def mhr_to_product(points: np.ndarray) -> np.ndarray:
    """MHR native (cm, Y up) -> product frame (m, Y down, Z away); :mod:`~instanthmr.body.mhr_torch` has the
    torch twin."""
    points = np.asarray(points)
    points = points if points.dtype.kind == "f" else points.astype(np.float64)  # integer input: no truncation
    return points * np.asarray(MHR_TO_PRODUCT, dtype=points.dtype)


def product_to_mhr(points: np.ndarray) -> np.ndarray:
    """Product frame (m, Y down) -> MHR native (cm, Y up); the inverse of :func:`mhr_to_product`."""
    points = np.asarray(points)
    points = points if points.dtype.kind == "f" else points.astype(np.float64)
    return points / np.asarray(MHR_TO_PRODUCT, dtype=points.dtype)


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
    correctives, or None; parameter_limits (204,2) ``[min, max]`` per model parameter (``-inf, inf`` where
    the rig sets none) and parameter_limit_weights (204,), or None for files converted before they were kept.
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
    parameter_limits: np.ndarray | None = None
    parameter_limit_weights: np.ndarray | None = None
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
        if self.parameter_limits is not None:
            checks.append((self.parameter_limits.shape == (NUM_MODEL_PARAMS, 2),
                           f"parameter_limits {self.parameter_limits.shape} is not ({NUM_MODEL_PARAMS},2)"))
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
        parameter_limits=f32("parameter_limits") if "parameter_limits" in data else None,
        parameter_limit_weights=f32("parameter_limit_weights") if "parameter_limit_weights" in data else None,
        joint_names=names("joint_names"),
        parameter_names=names("parameter_names"),
        keypoint_names=names("keypoint_names"),
        lod=int(data["lod"]) if "lod" in data else -1,
        path=str(path),
    )
    assets.validate()
    return assets


def joint_levels(parents: np.ndarray) -> list[np.ndarray]:
    """Joint indices grouped by depth in the tree (level 0 = roots). FK runs one batched step per level,
    so an exported graph has ~depth steps instead of 127."""
    depth = np.zeros(len(parents), dtype=np.int64)
    for i, p in enumerate(parents):
        depth[i] = 0 if p < 0 else depth[p] + 1
    return [np.flatnonzero(depth == d) for d in range(int(depth.max()) + 1)]


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
        self._prerot = quaternion_to_matrix(assets.joint_prerotations)
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
        euler_r = euler_xyz_to_matrix(jp[..., 3:6])
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
