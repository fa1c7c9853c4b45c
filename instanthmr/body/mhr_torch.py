"""MHR's torch forward (differentiable, ONNX-exportable): training losses and mesh export.

The only torch file of :mod:`instanthmr.body`; the run-time floors use the numpy forward in
:mod:`instanthmr.body.mhr` (same assets, same frames and units, documented there).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from instanthmr.body.mhr import (
    _LN2,
    FRAMES,
    MHR_TO_PRODUCT,
    NUM_EXPR,
    NUM_MODEL_PARAMS,
    NUM_SHAPE,
    MHRAssets,
    MHROutput,
    joint_levels,
    load_mhr_assets,
)
from instanthmr.core.rotations import euler_xyz_to_matrix, quaternion_to_matrix


def mhr_to_product(points: torch.Tensor) -> torch.Tensor:
    """The torch twin of :func:`instanthmr.body.mhr.mhr_to_product` (no constant tensors: export-friendly)."""
    sx, sy, sz = MHR_TO_PRODUCT
    return torch.stack([points[..., 0] * sx, points[..., 1] * sy, points[..., 2] * sz], -1)


def product_to_mhr(points: torch.Tensor) -> torch.Tensor:
    sx, sy, sz = MHR_TO_PRODUCT
    return torch.stack([points[..., 0] / sx, points[..., 1] / sy, points[..., 2] / sz], -1)


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
        buf("prerotations", quaternion_to_matrix(a.joint_prerotations).astype(np.float32))
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
            euler_r = euler_xyz_to_matrix(jp[..., 3:6], torch)
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
        euler_r = euler_xyz_to_matrix(self.joint_parameters(model_params)[..., 3:6], torch)
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
