"""Rotations, batched numpy: the one home of every rotation convention the package uses.

All matrices are ``(..., 3, 3)`` right-handed rotations acting on column vectors (``v' = R @ v``); angles are
radians; leading axes are batch axes. Quaternions are ``(x, y, z, w)`` (the glTF, Unity and MHR order).

- :func:`axis_rotation`: about X, Y or Z (the BVH reader's channels, virtual cameras, test poses);
- :func:`euler_xyz_to_matrix` / :func:`euler_xyz_from_matrix`: MHR's (momentum's) "Euler XYZ",
  ``R = Rz @ Ry @ Rx``; :func:`euler_xyz_nearest`: of a rotation's two spellings, the one continuous with a
  reference; :func:`wrap_angle` into ``(-pi, pi]``; :func:`nearest_rotation` (SVD projection onto rotations);
  :func:`euler_zxy_from_matrix`: the BVH writer's ``Zrotation Xrotation Yrotation``;
- :func:`quaternion_to_matrix` / :func:`quaternion_from_matrix`;
- :func:`swing` (Rodrigues: smallest rotation between two directions), :func:`frame_from` (an orthonormal
  frame from two directions), :func:`kabsch` (best rotation between two point sets, also the rotation of
  :func:`instanthmr.core.metrics.procrustes_align`).
"""

from __future__ import annotations

import numpy as np


def unit(v, eps: float = 1e-9) -> np.ndarray:
    """``(..., 3)`` vectors scaled to length 1 (zero vectors stay zero: divided by ``eps``)."""
    n = np.sqrt((v * v).sum(axis=-1, keepdims=True))
    return v / np.maximum(n, eps)


def cross(a, b) -> np.ndarray:
    """``np.cross`` for ``(..., 3)`` arrays, several times faster on the few-row arrays the rig solver uses."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def axis_rotation(axis: int, angle) -> np.ndarray:
    """Rotations ``(..., 3, 3)`` about X (0), Y (1) or Z (2) by ``angle (...)`` radians (counter-clockwise
    seen from the positive axis: ``axis_rotation(2, pi/2) @ x = y``)."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    r = np.zeros(angle.shape + (3, 3))
    a, b = [(1, 2), (2, 0), (0, 1)][axis]
    r[..., axis, axis] = 1.0
    r[..., a, a], r[..., a, b], r[..., b, a], r[..., b, b] = c, -s, s, c
    return r


def euler_xyz_to_matrix(e, xp=np):
    """``(..., 3)`` angles ``(rx, ry, rz)`` -> ``Rz(rz) @ Ry(ry) @ Rx(rx)``, MHR's (momentum's) "Euler XYZ".

    ``xp`` is the array module (``numpy``, or ``torch`` for MHR's differentiable forward: the same formula,
    so both forwards agree)."""
    cx, cy, cz = xp.cos(e[..., 0]), xp.cos(e[..., 1]), xp.cos(e[..., 2])
    sx, sy, sz = xp.sin(e[..., 0]), xp.sin(e[..., 1]), xp.sin(e[..., 2])
    return xp.stack([
        xp.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], -1),
        xp.stack([sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], -1),
        xp.stack([-sy, cy * sx, cy * cx], -1),
    ], -2)


def euler_xyz_from_matrix(r) -> np.ndarray:
    """``(..., 3, 3)`` rotations -> ``(..., 3)`` angles ``(rx, ry, rz)`` with ``R = Rz Ry Rx``, ``ry`` in
    [-pi/2, pi/2]: the inverse of :func:`euler_xyz_to_matrix`."""
    r = np.asarray(r, dtype=np.float64)
    ry = np.arcsin(np.clip(-r[..., 2, 0], -1.0, 1.0))
    rx = np.arctan2(r[..., 2, 1], r[..., 2, 2])
    rz = np.arctan2(r[..., 1, 0], r[..., 0, 0])
    return np.stack([rx, ry, rz], -1)


def wrap_angle(a):
    """Radians wrapped into ``(-pi, pi]``."""
    a = np.asarray(a, dtype=np.float64)
    return np.pi - np.mod(np.pi - a, 2.0 * np.pi)


def euler_xyz_nearest(e, ref) -> np.ndarray:
    """``(..., 3)`` Euler XYZ angles of the same rotations as ``e``, spelled as near ``ref`` as they can be: of
    the two spellings ``e`` and ``(rx + pi, pi - ry, rz + pi)``, each angle moved by whole turns to lie
    within pi of ``ref``, the one with the smaller summed difference. Angles that stay continuous along a
    track, so averaging them over time (smoothing) does not average two spellings of one rotation."""
    e, ref = np.asarray(e, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    other = e + np.array([np.pi, 0.0, np.pi])
    other[..., 1] = np.pi - e[..., 1]
    a, b = ref + wrap_angle(e - ref), ref + wrap_angle(other - ref)
    pick = np.abs(b - ref).sum(-1) < np.abs(a - ref).sum(-1)
    return np.where(pick[..., None], b, a)


def nearest_rotation(m) -> np.ndarray:
    """``(..., 3, 3)`` the rotations nearest (Frobenius) to the matrices ``m``, e.g. an average of rotations:
    ``U diag(1, 1, det(U V^T)) V^T`` from the SVD ``m = U S V^T``."""
    u, _, vt = np.linalg.svd(np.asarray(m, dtype=np.float64))
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    return (u * np.stack([np.ones_like(d), np.ones_like(d), d], -1)[..., None, :]) @ vt


def euler_zxy_from_matrix(m) -> np.ndarray:
    """``(..., 3, 3)`` -> angles ``(..., 3)`` radians ``(z, x, y)`` with ``m = Rz(z) @ Rx(x) @ Ry(y)``
    (BVH's ``Zrotation Xrotation Yrotation`` channels), ``x`` in [-pi/2, pi/2]."""
    x = np.arcsin(np.clip(m[..., 2, 1], -1.0, 1.0))
    y = np.arctan2(-m[..., 2, 0], m[..., 2, 2])
    z = np.arctan2(-m[..., 0, 1], m[..., 1, 1])
    return np.stack([z, x, y], axis=-1)


def quaternion_to_matrix(q) -> np.ndarray:
    """``(..., 4)`` quaternions ``(x, y, z, w)``, normalised here -> ``(..., 3, 3)`` rotation matrices."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def quaternion_from_matrix(m) -> np.ndarray:
    """``(..., 3, 3)`` rotation matrices -> unit quaternions ``(..., 4)`` as ``(x, y, z, w)`` with w >= 0."""
    m = np.asarray(m, dtype=np.float64)
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # four candidate forms; each is accurate where its squared component is the largest (Shepperd's method)
    cand = np.stack([
        np.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1], 1 + tr], -1),
        np.stack([1 + 2 * m[..., 0, 0] - tr, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0],
                  m[..., 2, 1] - m[..., 1, 2]], -1),
        np.stack([m[..., 0, 1] + m[..., 1, 0], 1 + 2 * m[..., 1, 1] - tr, m[..., 1, 2] + m[..., 2, 1],
                  m[..., 0, 2] - m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 + 2 * m[..., 2, 2] - tr,
                  m[..., 1, 0] - m[..., 0, 1]], -1),
    ], -2)  # (..., 4, 4): row k is 4 q_k * q
    diag = np.stack([1 + tr, 1 + 2 * m[..., 0, 0] - tr, 1 + 2 * m[..., 1, 1] - tr, 1 + 2 * m[..., 2, 2] - tr], -1)
    best = np.argmax(diag, axis=-1)
    q = np.take_along_axis(cand, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:] < 0, -q, q)


def swing(a, b) -> np.ndarray:
    """Smallest rotations ``(T, 3, 3)`` turning directions ``a (T, 3)`` onto ``b (T, 3)`` (Rodrigues); opposite
    directions turn by pi about an axis perpendicular to ``a``."""
    a, b = unit(a), unit(b)
    v = cross(a, b)
    c = (a * b).sum(-1)
    k = np.zeros(a.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    coef = 1.0 / np.maximum(1.0 + c, 1e-9)
    r = np.eye(3) + k + k @ k * coef[..., None, None]
    flip = c < -1.0 + 1e-9
    if np.any(flip):
        axis = unit(cross(a[flip], np.where(np.abs(a[flip, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])))
        r[flip] = 2.0 * axis[:, :, None] * axis[:, None, :] - np.eye(3)
    return r


def frame_from(a, b) -> np.ndarray:
    """Orthonormal frames ``(..., 3, 3)`` (columns) with first axis along ``a`` and ``b`` in the 1-2 plane."""
    e1 = unit(a)
    e2 = unit(b - (b * e1).sum(-1, keepdims=True) * e1)
    return np.stack([e1, e2, cross(e1, e2)], axis=-1)


def kabsch(src, dst, weights=None) -> np.ndarray:
    """Rotations ``(..., 3, 3)`` (det +1, never a reflection) minimising ``sum_k w_k |R src_k - dst_k|^2``.

    ``src``, ``dst``: ``(..., K, 3)`` vectors (broadcast against each other: one rest set against every
    frame), used as given (centre them first to fit point clouds); ``weights (..., K)`` default 1."""
    s = src if weights is None else src * np.asarray(weights, dtype=np.float64)[..., None]
    h = np.einsum("...ki,...kj->...ij", s, dst)  # sum src^T dst
    u, _, vt = np.linalg.svd(h)
    v, ut = np.swapaxes(vt, -1, -2), np.swapaxes(u, -1, -2)
    d = np.sign(np.linalg.det(v @ ut))
    fix = np.ones(d.shape + (3,))
    fix[..., -1] = np.where(d == 0, 1.0, d)
    return v @ (fix[..., :, None] * ut)
