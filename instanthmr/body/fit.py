"""Fit the MHR body model to observed MHR70 joints, one person, one frame, warm-started (numpy only).

What is solved. The MHR model parameters of one person (``mhr_params`` (204): the root rotation and the body
joint angles; the finger angles only where hand joints are observed; the neck and head only where the face
is) plus two translations, given that person's observed MHR70 joints:

* a robust 3D term: ``K_i(theta) + tau - O_i`` per observed joint ``i`` (metres, product frame: x right,
  y down, z forward; ``O`` body-centred with any origin: ``tau`` (3) absorbs the origin, so the term is
  root-relative), scaled by ``sigma_3d`` and down-weighted by a Cauchy kernel (IRLS);
* a weighted 2D reprojection term: ``project(K_i + T) - o_i`` (pixels; pinhole with the frame's focal and
  principal point; ``T`` (3), metres, is the model origin in the camera frame, i.e. the output
  ``cam_trans``), scaled by ``sigma_2d`` x the person's height in pixels, Cauchy kernel too;
* MHR's joint limits (min/max per model parameter, from the converted file: soft quadratic outside and a
  hard clamp after each step);
* a pose prior toward the rest pose (each angle ~ N(0, prior_sigma));
* with a network's own ``mhr_params`` for this frame (``Observation.prior_params``), a prior toward its body
  joint angles (each ~ N(network angle, network_sigma));
* a temporal term toward the previous solution of the track (angles and translations).

How. Damped Gauss-Newton (Levenberg-Marquardt, the damping raised when a step does not lower the cost) with
an ANALYTIC Jacobian: a rotation degree of freedom with world axis ``a`` at joint position ``p`` moves every
point ``x`` downstream of it by ``a x (x - p)`` per radian. Only the points the 70-keypoint regressor reads
are moved: its skeleton joints and its few skinned vertices, each vertex split into one rigid point per
skinning joint (``x = G_k (B_k^-1 v_rest)``), so a keypoint is a fixed linear combination of rigid points
and its Jacobian is one sparse product per iteration. The body shape (identity ``shape_params`` (45) and
the bone-length parameters 130:136 / 136:204) is held fixed: it belongs to the track
(:func:`estimate_bone_params`).

Frames and units. MHR works in centimetres, Y up; everything in and out of this module is the product frame
(metres, Y down, Z away from the camera), as :mod:`instanthmr.body.mhr`. ``mhr_params[0:3]`` (root
translation) stays 0, as in SAM 3D Body: ``keypoints`` are relative to the model origin (on the floor below
the pelvis at rest) and ``cam_trans`` places them in the camera. Angles are radians.

Use::

    fitter = BodyFitter(MHRNumpy.from_npz(SHIPPED_MHR_MODEL))
    shape = fitter.shape()                                  # mean body, or BodyShape from estimate_bone_params
    obs = Observation(joints_3d=j3, w3d=valid, joints_2d=j2, w2d=valid, focal=f, principal_point=pp)
    res = fitter.fit(obs, shape, previous=None)             # FitResult: params (204), cam_trans, keypoints
    res = fitter.fit(next_obs, shape, previous=res)         # warm start + temporal term
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.linalg.lapack import dposv as _posv

from instanthmr.body.mhr import MHR_TO_PRODUCT, NUM_MODEL_PARAMS, NUM_SHAPE, MHRNumpy
from instanthmr.core.blas import blas_threads
from instanthmr.core.geometry import project_points, solve_camera_translation
from instanthmr.core.rotations import cross as _cross
from instanthmr.core.rotations import quaternion_to_matrix
from instanthmr.core.rotations import wrap_angle as _wrap
from instanthmr.core.skeleton import MHR70_FLIP_PERM, MHR70_INDEX, MHR70_NAMES

NUM_KEYPOINTS = len(MHR70_NAMES)
_LN2 = 0.6931471805599453
_D = np.asarray(MHR_TO_PRODUCT, np.float64)          # MHR (cm, Y up) -> product (m, Y down), per axis
_SIGN_D = np.sign(_D)                                # the axis flips alone
_SIGN = np.diag(_SIGN_D)                             # ... as a matrix: a rotation between the two frames
_EYE3 = np.eye(3)

# Which model parameters the fit may move, by name (MHR v1 parameter names, see docs/body_fit.md).
#: Root rotation and body joint angles: always fitted.
BODY_PARAMS = ("root_rx", "root_ry", "root_rz", "spine_twist0", "spine_lean0", "spine_bend0", "spine_twist1",
               "spine_lean1", "spine_bend1") + tuple(
    f"{s}_{n}" for s in ("r", "l") for n in ("clavicle_ry", "clavicle_rz", "uparm_twist", "uparm_ry",
                                             "uparm_rz", "elbow_bend", "lowarm_twist", "wrist_ry", "wrist_rz",
                                             "upleg_twist", "upleg_ry", "upleg_rz", "knee_bend",
                                             "lowleg_twist", "foot_bend", "foot_lean0", "ball_bend"))
#: Neck and head: fitted when face keypoints are observed.
HEAD_PARAMS = ("neck_twist", "neck_lean", "neck_bend", "head_twist", "head_lean", "head_bend")
#: Fingers of each hand: fitted when that hand's finger joints are observed (the thumb/index/... angles).
HAND_PREFIX = {"right": "r_", "left": "l_"}
_FINGER_WORDS = ("thumb", "index", "middle", "ring", "pinky")
#: Parameters 130:204 are bone lengths / scales: the track's shape, never moved per frame.
SHAPE_PARAMS = slice(130, NUM_MODEL_PARAMS)
#: Bone-length parameters estimated per track (:func:`estimate_bone_params`), each with the MHR70 bones that
#: measure it (left/right averaged: one symmetric value per pair).
BONE_PARAMS: dict[str, tuple[tuple[str, str], ...]] = {
    "scale_spine_length": (("mid_hip", "mid_shoulder"),),
    "scale_shoulder_width": (("left_shoulder", "right_shoulder"),),
    "scale_uparms": (("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow")),
    "scale_lowarms": (("left_elbow", "left_wrist"), ("right_elbow", "right_wrist")),
    "scale_hip_width": (("left_hip", "right_hip"),),
    "scale_uplegs": (("left_hip", "left_knee"), ("right_hip", "right_knee")),
    "scale_lowlegs": (("left_knee", "left_ankle"), ("right_knee", "right_ankle")),
    "scale_foot_length": (("left_heel", "left_big_toe_tip"), ("right_heel", "right_big_toe_tip")),
}
FACE_KEYPOINTS = tuple(MHR70_INDEX[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"))
_HAND_KEYPOINTS = {side: tuple(i for i, n in enumerate(MHR70_NAMES)
                               if n.startswith(f"{side}_") and any(f in n for f in _FINGER_WORDS))
                   for side in ("left", "right")}
_FACE = np.asarray(FACE_KEYPOINTS)
_LEFT_HAND, _RIGHT_HAND = (np.asarray(_HAND_KEYPOINTS[s]) for s in ("left", "right"))
#: The torso joints: root alignment (Kabsch) and the heading.
TORSO_KEYPOINTS = tuple(MHR70_INDEX[n] for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder"))
_TORSO = np.asarray(TORSO_KEYPOINTS)
#: Limbs set straight from the observed 3D before each fit (:meth:`BodyFitter.init_limbs`): (upper joint,
#: hinge joint, the three MHR70 keypoints, bend parameter). With only shoulder, elbow and wrist seen, the
#: upper-limb twist and the bend have a wrong basin (the elbow "bent backwards" against its limit, the twist
#: off by 90 degrees) that a few Gauss-Newton steps from the last frame do not leave; two-bone IK does.
LIMBS = (("l_uparm", "l_lowarm", ("left_shoulder", "left_elbow", "left_wrist"), "l_elbow_bend"),
         ("r_uparm", "r_lowarm", ("right_shoulder", "right_elbow", "right_wrist"), "r_elbow_bend"),
         ("l_upleg", "l_lowleg", ("left_hip", "left_knee", "left_ankle"), "l_knee_bend"),
         ("r_upleg", "r_lowleg", ("right_hip", "right_knee", "right_ankle"), "r_knee_bend"))


@dataclass(frozen=True)
class FitConfig:
    """Weights of the fit, each written as the size of a typical error (a larger sigma = a weaker term).

    sigma_3d: m, 3D joint error; sigma_2d: fraction of the person's 2D height (px); robust: Cauchy scale in
    sigmas (residuals far above it count ~log); prior_sigma: rad, spread of an angle around rest;
    network_sigma: rad, a network's typical error on a body joint angle (the per-frame prior toward its own
    ``mhr_params``; a guess, not tuned: no trained network was measured here);
    temporal_sigma: rad per frame; temporal_trans_sigma: m per frame; limit_sigma: rad beyond a limit.
    iterations: LM iterations per frame; first_iterations: for a track's first frame (no warm start).
    """

    sigma_3d: float = 0.03
    sigma_2d: float = 0.015
    robust: float = 10.0
    prior_sigma: float = 0.8
    network_sigma: float = 0.4
    temporal_sigma: float = 0.25
    temporal_trans_sigma: float = 0.2
    limit_sigma: float = 0.02
    iterations: int = 2
    first_iterations: int = 10
    damping: float = 1e-3
    min_hand_joints: int = 8
    min_face_joints: int = 2


@dataclass
class Observation:
    """One person's observed MHR70 joints in one frame.

    joints_3d: (70,3) metres, product frame (x right, y down, z forward), any origin (body-centred), or None;
    w3d: (70,) weights >= 0 (0 = not observed); joints_2d: (70,2) full-image pixels or None; w2d: (70,);
    focal: px and principal_point (2,) px of the pinhole the 2D joints come from (needed with joints_2d).
    prior_params: (204,) a network's own ``mhr_params`` for this person and frame, or None: the fit is pulled
    toward its body joint angles (``FitConfig.network_sigma``; not the root, whose Euler angles may be spelled
    either way). NaN joints count as unobserved whatever their weight.
    """

    joints_3d: np.ndarray | None = None
    w3d: np.ndarray | None = None
    joints_2d: np.ndarray | None = None
    w2d: np.ndarray | None = None
    focal: float | None = None
    principal_point: np.ndarray | None = None
    prior_params: np.ndarray | None = None
    cleaned: bool = field(default=False, repr=False, compare=False)   # made by clean(): clean() returns it as is

    def clean(self) -> "Observation":
        """A copy with float64 arrays, NaN joints at weight 0 (and value 0), missing weights filled in (an
        observation ``clean`` made is returned as it is: do not modify its arrays in place)."""
        if self.cleaned:
            return self
        def part(x, w, dim):
            if x is None:
                return None, np.zeros(NUM_KEYPOINTS)
            x = np.array(x, np.float64).reshape(NUM_KEYPOINTS, dim)
            w = np.ones(NUM_KEYPOINTS) if w is None else np.clip(np.asarray(w, np.float64).reshape(-1), 0, None)
            ok = np.isfinite(x).all(1)
            return np.where(ok[:, None], x, 0.0), np.where(ok, w, 0.0)
        j3, w3 = part(self.joints_3d, self.w3d, 3)
        j2, w2 = part(self.joints_2d, self.w2d, 2)
        if j2 is not None and (self.focal is None or self.principal_point is None):
            j2, w2 = None, np.zeros(NUM_KEYPOINTS)
        pp = None if self.principal_point is None else np.asarray(self.principal_point, np.float64)
        net = self.prior_params
        if net is not None:
            net = np.asarray(net, np.float64).reshape(-1)
            net = net if net.size == NUM_MODEL_PARAMS and np.isfinite(net).all() else None   # else: no prior
        return Observation(j3, w3, j2, w2, None if self.focal is None else float(self.focal), pp, net, cleaned=True)

    def mirrored(self) -> "Observation":
        """Left/right labels swapped and the 3D depth reflected about the hips' depth: the other reading of
        an ambiguous person (seen from the back with the sides swapped, or the reverse). 2D positions stay:
        only which joint is called left changes. A network's ``prior_params`` are dropped (they name the sides
        as given)."""
        o = self.clean()
        perm = np.asarray(MHR70_FLIP_PERM)
        j3 = None
        if o.joints_3d is not None:
            j3 = o.joints_3d[perm].copy()
            hips = [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]
            w = o.w3d[hips]
            zc = float((o.joints_3d[hips, 2] * w).sum() / w.sum()) if w.sum() > 0 else \
                float(np.average(o.joints_3d[:, 2], weights=o.w3d + 1e-12))
            j3[:, 2] = 2 * zc - j3[:, 2]
        j2 = None if o.joints_2d is None else o.joints_2d[perm].copy()
        return Observation(j3, o.w3d[perm], j2, o.w2d[perm], o.focal, o.principal_point, None, cleaned=True)


@dataclass
class BodyShape:
    """A track's body: identity ``shape_params`` (45) and the bone-length parameters ``mhr_params[130:204]``
    (held for the whole track), with the rigid points the fit needs for them (see :meth:`BodyFitter.shape`)."""

    shape_params: np.ndarray
    bone_params: np.ndarray                       # (74,) = mhr_params[130:204]
    local_points: np.ndarray = field(repr=False)  # (M,3) cm, each rigid point in its joint's bind frame


@dataclass
class FitResult:
    """One fitted person. params (204) mhr_params (root translation 0); cam_trans (3) m, model origin in the
    camera frame (None without 2D); offset_3d (3) m, model origin in the observation's 3D frame;
    keypoints (70,3) m, product frame, relative to the model origin (``keypoints + cam_trans`` = camera
    frame); cost: the LM objective at the solution (dimensionless, the sum of
    squared scaled residuals with the robust kernel); data_cost its data part; limit_cost its limit part;
    rms_3d_m / rms_2d_px: plain errors on the observed joints; heading (3,) the torso's unit forward vector
    (those three: properties, computed when read);
    iterations; ms: wall time of the fit. ``body_keypoints`` (70,3): the keypoints the fit used (rows of
    hands it did not fit are 0); ``keypoints`` (property): all 70. hand_cost: the part of data_cost from the
    finger keypoints of the hands the fit moved (0 without): it comes and goes with the hand model, so what
    watches the body's cost along a track leaves it out (:attr:`body_cost`)."""

    params: np.ndarray
    cam_trans: np.ndarray | None
    offset_3d: np.ndarray
    body_keypoints: np.ndarray
    cost: float
    data_cost: float
    limit_cost: float
    iterations: int
    ms: float
    hand_cost: float = 0.0
    _model: tuple | None = field(default=None, repr=False)
    _fitted: tuple | None = field(default=None, repr=False)           # (observation, w3 or None, w2 or None)
    _rotations: np.ndarray | None = field(default=None, repr=False)   # (127,3,3) global, MHR frame
    _full: np.ndarray | None = field(default=None, repr=False)

    @property
    def body_cost(self) -> float:
        """The objective without the fitted fingers' data terms (dimensionless): comparable between frames
        with and without a hand seen."""
        return self.cost - self.hand_cost

    # what only a reader asks for is computed on first use (the stage reads none of it: ~0.03 ms a fit)
    @property
    def rms_3d_m(self) -> float:
        """m: root-mean-square 3D error over the observed joints the fit used (NaN without 3D)."""
        o, w3, _ = self._fitted
        if w3 is None:
            return float("nan")
        sel = w3 > 0
        return float(np.sqrt((((self.body_keypoints[sel] + self.offset_3d - o.joints_3d[sel]) ** 2).sum(1)).mean()))

    @property
    def rms_2d_px(self) -> float:
        """px: root-mean-square reprojection error over the observed joints the fit used (NaN without 2D)."""
        o, _, w2 = self._fitted
        if w2 is None:
            return float("nan")
        sel = w2 > 0
        uv = project_points(self.body_keypoints[sel] + self.cam_trans, o.focal, o.principal_point)
        return float(np.sqrt((((uv - o.joints_2d[sel]) ** 2).sum(1)).mean()))

    @property
    def heading(self) -> np.ndarray | None:
        """(3,) the fitted torso's unit forward vector (:func:`torso_heading`)."""
        return torso_heading(self.body_keypoints)

    @property
    def keypoints(self) -> np.ndarray:
        """(70,3) m, product frame, every MHR70 keypoint of the fitted body (computed on first use: a fit that
        is not kept, e.g. the losing left/right reading, never pays for the finger levels of the skeleton)."""
        if self._full is None:
            fitter, shape, fk = self._model
            self._full = fitter.complete_keypoints(shape, self.params, fk, known=self.body_keypoints)
        return self._full


def torso_heading(joints: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | None:
    """Unit forward vector (3,) of the torso from MHR70 joints (product frame, any origin): the cross product
    of the person's left direction (left minus right hip and shoulder) and up (hips to shoulders), projected
    on the ground plane (x, z); None when a torso joint is missing. A person facing the camera gives ~(0,0,-1)."""
    j = np.asarray(joints, np.float64)
    if weights is not None and (np.asarray(weights)[_TORSO] <= 0).any():
        return None
    t = j[_TORSO]
    if not np.isfinite(t).all():
        return None
    (lh0, lh1, lh2), (rh0, rh1, rh2), (ls0, ls1, ls2), (rs0, rs1, rs2) = t.tolist()   # float maths: 3-vectors
    left = ((lh0 - rh0) + (ls0 - rs0), (lh1 - rh1) + (ls1 - rs1), (lh2 - rh2) + (ls2 - rs2))
    up = ((ls0 + rs0 - lh0 - rh0) / 2, (ls1 + rs1 - lh1 - rh1) / 2, (ls2 + rs2 - lh2 - rh2) / 2)
    f0 = left[1] * up[2] - left[2] * up[1]
    f2 = left[0] * up[1] - left[1] * up[0]
    n = math.sqrt(f0 * f0 + f2 * f2)
    return np.array([f0 / n, 0.0, f2 / n]) if n > 1e-9 else None


def heading_angle(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Angle in radians between two headings (0 when either is unknown)."""
    if a is None or b is None:
        return 0.0
    return float(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0)))


def _matrix_to_euler_xyz3(r) -> tuple:
    """:func:`_matrix_to_euler_xyz` of a (3,3) nested list: numpy's arcsin / arctan2 on floats (their values
    differ from ``math``'s in the last bit), without its clip and array."""
    return (float(np.arctan2(r[2][1], r[2][2])), -float(np.arcsin(min(max(r[2][0], -1.0), 1.0))),
            float(np.arctan2(r[1][0], r[0][0])))


def _euler_matrix3(e) -> np.ndarray:
    """(3,3) ``Rz Ry Rx`` of one (rx, ry, rz) in float maths: :func:`_euler_matrices`' formulas, same order
    (``math.cos`` / ``math.sin`` give numpy's values), so the same bits without numpy's per-call cost."""
    cx, cy, cz = math.cos(e[0]), math.cos(e[1]), math.cos(e[2])
    sx, sy, sz = math.sin(e[0]), math.sin(e[1]), math.sin(e[2])
    return np.array([[cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx],
                     [sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx],
                     [-sy, cy * sx, cy * cx]])


def _euler_nearest3(e, ref) -> list:
    """:func:`instanthmr.core.rotations.euler_xyz_nearest` of one (rx, ry, rz) ``e`` near ``ref`` (3 floats
    each) in float maths: Python's float ``%`` is numpy's ``mod`` and the sums run in numpy's order (checked on
    random and near-tie angles: the same bits)."""
    (e0, e1, e2), (r0, r1, r2) = e, ref
    a = (r0 + _wrap1(e0 - r0), r1 + _wrap1(e1 - r1), r2 + _wrap1(e2 - r2))
    b = (r0 + _wrap1(e0 + math.pi - r0), r1 + _wrap1(math.pi - e1 - r1), r2 + _wrap1(e2 + math.pi - r2))
    near_b = abs(b[0] - r0) + abs(b[1] - r1) + abs(b[2] - r2) < abs(a[0] - r0) + abs(a[1] - r1) + abs(a[2] - r2)
    return list(b if near_b else a)


def _wrap1(a: float) -> float:
    """:func:`instanthmr.core.rotations.wrap_angle` of one float."""
    return math.pi - ((math.pi - a) % (2.0 * math.pi))


def _matrix_to_euler_xyz(r: np.ndarray) -> np.ndarray:
    """Inverse of ``Rz(rz) Ry(ry) Rx(rx)`` (momentum's Euler XYZ): (3,3) -> (rx, ry, rz) radians."""
    ry = -np.arcsin(np.clip(r[2, 0], -1.0, 1.0))
    return np.array([np.arctan2(r[2, 1], r[2, 2]), ry, np.arctan2(r[1, 0], r[0, 0])])


def _frame(direction: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """(3,3) orthonormal columns: ``direction``, ``axis`` made orthogonal to it, their cross product."""
    x = direction / np.linalg.norm(direction)
    y = axis - np.dot(axis, x) * x
    y = y / max(np.linalg.norm(y), 1e-12)
    return np.stack([x, y, _cross(x, y)], 1)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation (3,3) taking direction ``a`` to direction ``b``."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = _cross(a, b), float(np.dot(a, b))
    if c < -0.999999:   # opposite: half a turn about any axis orthogonal to a
        o = np.eye(3)[np.argmin(np.abs(a))]
        v = _cross(a, o) / np.linalg.norm(_cross(a, o))
        return 2 * np.outer(v, v) - np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


def _rotation_between3(a, b) -> np.ndarray:
    """:func:`_rotation_between` of two plain 3-sequences in float maths (numpy for the opposite case)."""
    na, nb = _norm3(a), _norm3(b)
    a = (a[0] / na, a[1] / na, a[2] / na)
    b = (b[0] / nb, b[1] / nb, b[2] / nb)
    v, c = _cross3(a, b), _dot3(a, b)
    if c < -0.999999:
        return _rotation_between(np.asarray(a), np.asarray(b))
    # I + K + K^2 / (1 + c), K the cross-product matrix of v, written out: the same sums in the same order as
    # sum over m of K[i][m] K[m][j] (K's zero diagonal included), without a comprehension's cost
    k01, k02, k10, k12, k20, k21 = -v[2], v[1], v[2], -v[0], -v[1], v[0]
    w = 1.0 + c
    return np.array([
        [1.0 + 0.0 + (0.0 * 0.0 + k01 * k10 + k02 * k20) / w, 0.0 + k01 + (0.0 * k01 + k01 * 0.0 + k02 * k21) / w,
         0.0 + k02 + (0.0 * k02 + k01 * k12 + k02 * 0.0) / w],
        [0.0 + k10 + (k10 * 0.0 + 0.0 * k10 + k12 * k20) / w, 1.0 + 0.0 + (k10 * k01 + 0.0 * 0.0 + k12 * k21) / w,
         0.0 + k12 + (k10 * k02 + 0.0 * k12 + k12 * 0.0) / w],
        [0.0 + k20 + (k20 * 0.0 + k21 * k10 + 0.0 * k20) / w, 0.0 + k21 + (k20 * k01 + k21 * 0.0 + 0.0 * k21) / w,
         1.0 + 0.0 + (k20 * k02 + k21 * k12 + 0.0 * 0.0) / w]])


def _dot3(a, b) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _norm3(a) -> float:
    return math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])


def _cross3(a, b) -> tuple:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _frame3(direction, axis) -> np.ndarray:
    """:func:`_frame` of two plain 3-sequences (float maths, one array built at the end)."""
    n = _norm3(direction)
    x = (direction[0] / n, direction[1] / n, direction[2] / n)
    d = _dot3(axis, x)
    y = (axis[0] - d * x[0], axis[1] - d * x[1], axis[2] - d * x[2])
    ny = max(_norm3(y), 1e-12)
    y = (y[0] / ny, y[1] / ny, y[2] / ny)
    z = _cross3(x, y)
    return np.array([[x[0], y[0], z[0]], [x[1], y[1], z[1]], [x[2], y[2], z[2]]])


def _euler_xyz3(r) -> tuple:
    """:func:`_matrix_to_euler_xyz` of a (3,3) nested list, float maths."""
    return (math.atan2(r[2][1], r[2][2]), -math.asin(min(max(r[2][0], -1.0), 1.0)), math.atan2(r[1][0], r[0][0]))


def _kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotation R (3,3) minimising |R src_c - dst_c| over centred point sets (N,3)."""
    a, b = src - src.sum(0) / len(src), dst - dst.sum(0) / len(dst)
    u, _, vt = np.linalg.svd(a.T @ b)
    r = vt.T @ u.T
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = r.tolist()
    det = m00 * (m11 * m22 - m12 * m21) - m01 * (m10 * m22 - m12 * m20) + m02 * (m10 * m21 - m11 * m20)
    if det > 0:     # a rotation already (the usual case): the product below with d = 1, the same bits
        return r
    return (vt.T * np.array([1.0, 1.0, -1.0 if det < 0 else 0.0])) @ u.T


class BodyFitter:
    """The fit for one MHR model (any LOD with a 70-keypoint regressor); stateless between calls, so one
    fitter serves every track. See the module docstring for the terms and units."""

    def __init__(self, model: MHRNumpy, config: FitConfig | None = None):
        a = model.assets
        if a.keypoint_regressor is None:
            raise ValueError(f"{a.path or 'MHR model'}: no 70-keypoint regressor; the body fit needs one "
                             "(convert with tools/convert_mhr.py --regressor)")
        self.model, self.config = model, config or FitConfig()
        names = list(a.parameter_names)
        if len(names) != NUM_MODEL_PARAMS:
            raise ValueError(f"{a.path or 'MHR model'}: no parameter names; reconvert it with tools/convert_mhr.py")
        self.param_index = {n: i for i, n in enumerate(names)}
        self.parents = a.joint_parents.astype(np.int64)
        self.levels = model._levels
        self.prerot = quaternion_to_matrix(a.joint_prerotations)
        self.offsets = a.joint_offsets.astype(np.float64)
        self.pt = a.parameter_transform.astype(np.float64)                      # (127*7, 204)
        lim = a.parameter_limits
        self.limits = (np.tile([[-np.inf, np.inf]], (NUM_MODEL_PARAMS, 1)) if lim is None
                       else lim.astype(np.float64))
        self.limits[:3] = (-np.inf, np.inf)
        # Which parameters each fit moves (a parameter locked at [0, 0] by the rig stays 0).
        self.groups = {"body": self._indices(BODY_PARAMS), "head": self._indices(HEAD_PARAMS)}
        for side, pre in HAND_PREFIX.items():
            self.groups[side] = self._indices(n for n in names[:130]
                                              if n.startswith(pre) and any(f in n for f in _FINGER_WORDS))
        # Rigid points: the regressor's joints, and (vertex, skinning joint) pairs of its vertices.
        reg = a.keypoint_regressor.astype(np.float64)
        nv = a.num_vertices
        cols = np.flatnonzero(np.abs(reg).sum(0) > 0)
        vcols, jcols = cols[cols < nv], cols[cols >= nv] - nv
        pj, coeff_cols, pts_vertex = [], [], []
        for j in jcols:
            pj.append(j), pts_vertex.append(-1), coeff_cols.append((nv + j, 1.0))
        for v in vcols:
            for k, w in zip(a.skin_indices[v], a.skin_weights[v]):
                if w > 0:
                    pj.append(int(k)), pts_vertex.append(int(v)), coeff_cols.append((v, float(w)))
        self.point_joint = np.asarray(pj, np.int64)
        self.point_vertex = np.asarray(pts_vertex, np.int64)
        c = np.zeros((NUM_KEYPOINTS, len(pj)))
        for m, (col, w) in enumerate(coeff_cols):
            c[:, m] = reg[:, col] * w
        self.coeff = c                                                         # (70, M)
        self._vrows = np.flatnonzero(self.point_vertex >= 0)
        self._vidx = self.point_vertex[self._vrows]
        self._ibp = a.inverse_bind_pose.astype(np.float64)
        self._shape_dirs = a.identity_blendshapes.astype(np.float64)          # (45,V,3)
        self._rest = a.rest_vertices.astype(np.float64)
        # ancestor-or-self table (127,127) for the Jacobian's structure
        anc = np.zeros((len(self.parents),) * 2, bool)
        for j, p in enumerate(self.parents):
            anc[j] = anc[p] if p >= 0 else False
            anc[j, j] = True
        self._anc = anc                                                        # anc[k, j]: j is k or above k
        self._full = _Chain(self, np.arange(len(self.parents)))
        self._plans: dict[tuple[int, ...], _Plan] = {}
        self._plans_by_groups: dict[tuple[bool, bool, bool], _Plan] = {}
        self._mean_local: np.ndarray | None = None     # the mean body's rigid points (shape()), made once
        self._wrists = np.asarray([list(a.joint_names).index(n) for n in ("l_wrist", "r_wrist")], np.int64)
        self._limb_setup()
        self._body_plan = self._plan(self.groups["body"])

    def _limb_setup(self) -> None:
        """Per limb of :data:`LIMBS`: joint indices, the upper joint's (rx, ry, rz) parameters, the bend
        parameter, and at rest (in the upper joint's frame) the bone direction, the hinge axis and the
        flexion already there at zero bend."""
        names = list(self.model.assets.joint_names)
        self._limbs, self._limb_rest, self._limb_params = [], {}, {}
        for upper, hinge, ends, bend in LIMBS:
            if upper not in names or hinge not in names or bend not in self.param_index:
                continue
            u, h = names.index(upper), names.index(hinge)
            chans = []
            for c in (3, 4, 5):
                col = np.flatnonzero(np.abs(self.pt[u * 7 + c]) > 0)
                chans.append(int(col[0]) if len(col) == 1 and self.pt[u * 7 + c, col[0]] == 1 else -1)
            children = np.flatnonzero(self.parents == h)
            if -1 in chans or not len(children):
                continue
            end = max(children, key=lambda k: np.linalg.norm(self.offsets[k]))   # the next bone (not a helper)
            bone = self.offsets[h] / np.linalg.norm(self.offsets[h])
            axis = self.prerot[h][:, 2]                                     # the bend is the hinge's rz
            lower = self.prerot[h] @ self.offsets[end]
            flex0 = float(np.arccos(np.clip(np.dot(bone, lower / np.linalg.norm(lower)), -1, 1)))
            bi = self.param_index[bend]
            self._limbs.append((u, h, ends, bi))
            self._limb_rest[u] = (bone, axis, flex0)
            self._limb_params[u] = chans
        # the same, laid out for init_limbs: the MHR70 rows of each limb's three keypoints, and per limb (upper
        # joint, bend parameter, flexion at rest, the rest frame transposed, the upper joint's pre-rotation
        # transposed, its three angle parameters, the limits of those and of the bend as floats)
        self._limb_rows = np.asarray([MHR70_INDEX[n] for _, _, ends, _ in self._limbs for n in ends], np.int64)
        self._limb_fast = []
        for u, h, ends, bi in self._limbs:
            bone, axis, flex0 = self._limb_rest[u]
            lims = [tuple(float(x) for x in self.limits[i]) for i in (*self._limb_params[u], bi)]
            self._limb_fast.append((u, bi, flex0, _frame(bone, axis).T, self.prerot[u].T.copy(),
                                    tuple(self._limb_params[u]), lims))

    # ------------------------------------------------------------------------------------------------
    def _indices(self, names) -> np.ndarray:
        out = []
        for n in names:
            i = self.param_index.get(n)
            if i is not None and not (self.limits[i, 0] == 0 and self.limits[i, 1] == 0):
                out.append(i)
        return np.asarray(out, np.int64)

    def shape(self, shape_params=None, bone_params=None) -> BodyShape:
        """A :class:`BodyShape` for identity ``shape_params`` (45, default 0) and ``bone_params`` (74,
        ``mhr_params[130:204]``, default 0: MHR's mean body)."""
        s = np.zeros(NUM_SHAPE) if shape_params is None else np.asarray(shape_params, np.float64).reshape(NUM_SHAPE)
        b = np.zeros(NUM_MODEL_PARAMS - 130) if bone_params is None else np.asarray(bone_params, np.float64).reshape(-1)
        # the mean body's points once: a track uses it on every frame until its shape is held (or for good,
        # when its limbs are never all seen), and they took 0.13 ms a frame (read-only: shared)
        if shape_params is None and self._mean_local is not None:
            return BodyShape(s, b, self._mean_local)
        rest = self._rest[self._vidx] + np.einsum("s,svc->vc", s, self._shape_dirs[:, self._vidx])
        k = self.point_joint[self._vrows]
        local = np.zeros((len(self.point_joint), 3))
        local[self._vrows] = np.einsum("mij,mj->mi", self._ibp[k, :3, :3], rest) + self._ibp[k, :3, 3]
        if shape_params is None:
            local.flags.writeable = False                    # shared by every mean-body BodyShape
            self._mean_local = local
        return BodyShape(s, b, local)

    def full_params(self, shape: BodyShape, pose: np.ndarray | None = None) -> np.ndarray:
        """(204,) mhr_params: ``pose`` (0:130) with the track's bone parameters in 130:204."""
        p = np.zeros(NUM_MODEL_PARAMS)
        if pose is not None:
            p[:130] = np.asarray(pose, np.float64)[:130]
        p[130:] = shape.bone_params
        return p

    # ------------------------------------------------------------------------------------------------
    def _chain(self, joints: np.ndarray) -> "_Chain":
        """The forward kinematics restricted to ``joints`` and everything above them."""
        need = self._anc[joints].any(0)
        return _Chain(self, np.flatnonzero(need))

    def _fk(self, params: np.ndarray, chain: "_Chain | None" = None):
        """Global rotation (127,3,3), translation (127,3) cm, scale (127,) and the joint parameters (127,7),
        MHR frame; with a ``chain`` only its joints are computed (the others are left at zero)."""
        ch = chain or self._full
        n = len(self.parents)
        jpl = (ch.pt @ params).reshape(-1, 7)                       # chain order: level by level
        # one (3,4) affine [s R | t] per joint: a level is one gather and one batched matmul with the locals
        # (3,4) @ (4,4); the global scale is 2^(sum of the ancestors' scale channels)
        g_s = np.exp(_LN2 * (ch.anc @ jpl[:, 6]))
        loc = np.empty((len(jpl), 4, 4))
        np.matmul(ch.prerot, _euler_matrices(jpl[:, 3:6]), out=loc[:, :3, :3])
        loc[:, :3, :3] *= np.exp(_LN2 * jpl[:, 6])[:, None, None]
        np.add(jpl[:, :3], ch.offsets, out=loc[:, :3, 3])
        loc[:, 3] = (0.0, 0.0, 0.0, 1.0)
        g = np.empty((len(jpl), 3, 4))
        for a, b, par in ch.levels:                                  # slices: views, not copies
            if par is None:
                g[a:b] = loc[a:b, :3]
            else:
                np.matmul(g[par], loc[a:b], out=g[a:b])
        out_r, out_t, out_s, jp = np.zeros((n, 3, 3)), np.zeros((n, 3)), np.ones(n), np.zeros((n, 7))
        out_r[ch.joints] = g[:, :, :3] / g_s[:, None, None]
        out_t[ch.joints], out_s[ch.joints], jp[ch.joints] = g[:, :, 3], g_s, jpl
        g_r, g_t, g_s = out_r, out_t, out_s
        return g_r, g_t, g_s, jp

    def _points(self, shape: BodyShape, g_r, g_t, g_s, pts: np.ndarray | None = None) -> np.ndarray:
        """(M,3) cm: the rigid points (joints, and each skinned vertex per skinning joint), or the subset ``pts``."""
        k = self.point_joint if pts is None else self.point_joint[pts]
        local = shape.local_points if pts is None else shape.local_points[pts]
        return g_t[k] + g_s[k, None] * (g_r[k] @ local[:, :, None])[..., 0]

    def forward(self, shape: BodyShape, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """MHR70 keypoints (70,3) and joints (127,3), metres, product frame, for full ``params`` (204)."""
        g_r, g_t, g_s, _ = self._fk(np.asarray(params, np.float64))
        kp = self.coeff @ self._points(shape, g_r, g_t, g_s)
        return kp * _D, g_t * _D

    def complete_keypoints(self, shape: BodyShape, params: np.ndarray, fk=None,
                           known: np.ndarray | None = None) -> np.ndarray:
        """All 70 keypoints (70,3), metres, product frame, for ``params``; ``fk``: (plan, (global rotations,
        translations, scales)) a fit already computed for the plan's joints at these ``params``: only the
        joints below them (the finger levels) are added, instead of a whole forward pass. ``known`` (70,3):
        the plan's keypoint rows already computed by that fit (its ``body_keypoints``): only the other rows
        (a hand the fit did not move) are computed."""
        if fk is None:
            return self.forward(shape, params)[0]
        plan, (g_r, g_t, g_s) = fk
        rest = plan.rest
        if known is None or rest is None:
            if rest is not None:
                g_r, g_t, g_s = g_r.copy(), g_t.copy(), g_s.copy()
                jp = (rest.pt @ params).reshape(-1, 7)
                loc_r = rest.prerot @ _euler_matrices(jp[:, 3:6])
                loc_t = jp[:, :3] + rest.offsets
                loc_s = np.exp(_LN2 * jp[:, 6])
                for sel, lvl, par in rest.levels:                   # parents are already computed
                    g_t[lvl] = g_t[par] + g_s[par, None] * (g_r[par] @ loc_t[sel, :, None])[..., 0]
                    g_r[lvl] = g_r[par] @ loc_r[sel]
                    g_s[lvl] = g_s[par] * loc_s[sel]
            if known is None:
                return (self.coeff @ self._points(shape, g_r, g_t, g_s)) * _D
            out = known.copy()
            if len(plan.other_rows):
                out[plan.other_rows] = (plan.other_coeff @ self._points(shape, g_r, g_t, g_s, plan.other_pts)) * _D
            return out
        # the rows the fit did not compute, from affine (3,4) [s R | t] transforms as in _fk: the joints the fit
        # computed that they read, then the rest level by level (one batched matmul a level), in one array
        # (_Rest.layout); the rest's local transforms once per finger pose (_Rest.local)
        a = np.empty((rest.comb_size, 3, 4))
        src = rest.src
        np.multiply(g_r[src], g_s[src, None, None], out=a[:len(src), :, :3])
        a[:len(src), :, 3] = g_t[src]
        loc = rest.local(params)
        for out, par, sel in rest.comb_levels:
            np.matmul(a[par], loc[sel], out=a[out])
        ak = a[rest.comb_points]
        x = (ak[:, :, :3] @ shape.local_points[plan.other_pts][:, :, None])[..., 0] + ak[:, :, 3]
        out = known.copy()
        out[plan.other_rows] = (plan.other_coeff @ x) * _D
        return out

    def _plan(self, active: np.ndarray) -> "_Plan":
        key = tuple(active.tolist())
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _Plan(self, active)
        return plan

    def _plan_for(self, obs: Observation) -> "_Plan":
        """``self._plan(self.active_params(obs))``, looked up by which groups the observation shows."""
        c = self.config
        seen = (obs.w3d > 0) | (obs.w2d > 0)
        key = (int(seen[_FACE].sum()) >= c.min_face_joints, int(seen[_LEFT_HAND].sum()) >= c.min_hand_joints,
               int(seen[_RIGHT_HAND].sum()) >= c.min_hand_joints)
        plan = self._plans_by_groups.get(key)
        if plan is None:
            plan = self._plans_by_groups[key] = self._plan(self.active_params(obs))
        return plan

    def active_params(self, obs: Observation) -> np.ndarray:
        """The parameters this observation can move: body always; head with the face; fingers per hand."""
        c = self.config
        seen = (obs.w3d > 0) | (obs.w2d > 0)
        idx = [self.groups["body"]]
        if seen[list(FACE_KEYPOINTS)].sum() >= c.min_face_joints:
            idx.append(self.groups["head"])
        for side in ("left", "right"):
            if seen[list(_HAND_KEYPOINTS[side])].sum() >= c.min_hand_joints:
                idx.append(self.groups[side])
        return np.sort(np.concatenate(idx))

    def align_root(self, obs: Observation, keypoints: np.ndarray, params: np.ndarray,
                   rotations: np.ndarray | None = None):
        """``params`` with the root rotation turned by the rotation (Kabsch) that carries the torso of
        ``keypoints`` (70,3, product frame: the body ``params`` give) onto the observed 3D torso: a warm start
        whose root follows the body however fast it turns, so the spine does not absorb the turn (a local
        minimum the fit does not leave in a few iterations). Unchanged without the four torso joints in 3D.
        With ``rotations`` (127,3,3), the joints' global rotations at ``params`` (MHR frame), returns
        ``(params, rotations turned the same way)``."""
        if obs.joints_3d is None or (obs.w3d[_TORSO] <= 0).any():
            return params if rotations is None else (params, rotations)
        r_prod = _kabsch(keypoints[_TORSO], obs.joints_3d[_TORSO])
        turn = _SIGN @ r_prod @ _SIGN
        p = params.copy()
        # the spelling nearest the last one: root angles stay continuous along a track (smoothing averages them)
        ref = p[3:6].tolist()
        p[3:6] = _euler_nearest3(_matrix_to_euler_xyz3((turn @ _euler_matrix3(ref)).tolist()), ref)
        if rotations is None:
            return p
        turned = rotations.copy()
        turned[1:] = turn @ rotations[1:]            # every joint below the root (joint 0 is the fixed world)
        return p, turned

    def init_limbs(self, obs: Observation, params: np.ndarray, min_bend: float = 0.25,
                   rotations: np.ndarray | None = None) -> np.ndarray:
        """``params`` with each arm and leg (:data:`LIMBS`) posed by two-bone IK on the observed 3D: the
        bend from the angle at the elbow / knee (within its limits), the upper joint's three angles so that
        the upper bone points at the observed middle joint and the hinge axis is the observed limb plane's
        normal. A nearly straight limb (bend below ``min_bend`` rad) keeps its twist and only swings. The
        root must already face the observation (:meth:`align_root` / :meth:`init_root`). Limbs not fully
        observed in 3D are left as they are. ``rotations``: the joints' global rotations at ``params`` when
        known (saves a forward kinematics pass)."""
        if obs.joints_3d is None:
            return params
        p = params.copy()
        g_r = self._fk(p, self._body_plan.chain)[0] if rotations is None else rotations
        # plain float maths on the 3-vectors: a limb is ~100 scalar operations, which numpy calls would
        # multiply by their per-call overhead (this runs on every frame of every track)
        seen = (obs.w3d[self._limb_rows] > 0).tolist()
        pts = (obs.joints_3d[self._limb_rows] * _SIGN_D).tolist()           # MHR axes (directions only)
        for k, (u, bi, flex0, frame0, prerot_t, chans, limits) in enumerate(self._limb_fast):
            if not (seen[3 * k] and seen[3 * k + 1] and seen[3 * k + 2]):
                continue
            a, b, c = pts[3 * k], pts[3 * k + 1], pts[3 * k + 2]
            d1 = (b[0] - a[0], b[1] - a[1], b[2] - a[2])
            d2 = (c[0] - b[0], c[1] - b[1], c[2] - b[2])
            n1, n2 = _norm3(d1), _norm3(d2)
            if n1 < 1e-6 or n2 < 1e-6:
                continue
            d1 = (d1[0] / n1, d1[1] / n1, d1[2] / n1)
            d2 = (d2[0] / n2, d2[1] / n2, d2[2] / n2)
            flex = math.acos(min(max(_dot3(d1, d2), -1.0), 1.0))
            g_par = g_r[self.parents[u]]
            if flex - flex0 >= min_bend:
                g_u = _frame3(d1, _cross3(d1, d2)) @ frame0
            else:   # straight: swing the current upper bone onto the observed one, keep its twist
                g_u = _rotation_between3((g_r[u] @ self._limb_rest[u][0]).tolist(), d1) @ g_r[u]
            e = _euler_xyz3((prerot_t @ g_par.T @ g_u).tolist())
            for kk, i in enumerate(chans):
                p[i] = min(max(e[kk], limits[kk][0]), limits[kk][1])
            p[bi] = min(max(flex - flex0, limits[3][0]), limits[3][1])
        return p

    def init_root(self, obs: Observation, shape: BodyShape, params: np.ndarray) -> np.ndarray:
        """``params`` with the root rotation set so the model's torso (hips, shoulders) faces like the
        observed 3D torso (Kabsch); unchanged when a torso joint is missing."""
        if obs.joints_3d is None or (obs.w3d[list(TORSO_KEYPOINTS)] <= 0).any():
            return params
        p = params.copy()
        p[3:6] = 0.0
        kp, _ = self.forward(shape, p)
        idx = list(TORSO_KEYPOINTS)
        r_prod = _kabsch(kp[idx], obs.joints_3d[idx])
        r_mhr = np.diag(np.sign(_D)) @ r_prod @ np.diag(np.sign(_D))
        p[3:6] = _matrix_to_euler_xyz(r_mhr)
        return p

    # ------------------------------------------------------------------------------------------------
    @blas_threads(1)  # its products are small: a second BLAS thread costs more than it saves (core/blas.py)
    def fit(self, obs: Observation, shape: BodyShape, previous: FitResult | None = None,
            iterations: int | None = None, init_params: np.ndarray | None = None) -> FitResult:
        """Fit one person. ``previous``: the track's last solution (warm start and temporal term), None for a
        track's first frame (rest pose start, root turned to the observed torso, more iterations). The warm
        start's root rotation is first turned onto the observed 3D torso (:meth:`align_root`), which also
        serves a fast turn or the other left/right reading.
        ``init_params`` (204): the start of a first frame instead of the rest pose (e.g. the network's own
        ``mhr_params``)."""
        t0 = time.perf_counter()
        c = self.config
        obs = obs.clean()
        if previous is None and init_params is not None:
            params = self.full_params(shape, init_params)
            cam_prev = tau_prev = None
            n_iter = c.first_iterations if iterations is None else iterations
        elif previous is None:
            params = self.init_root(obs, shape, self.full_params(shape))
            cam_prev = tau_prev = None
            n_iter = c.first_iterations if iterations is None else iterations
        else:
            params = self.full_params(shape, previous.params)
            cam_prev, tau_prev = previous.cam_trans, previous.offset_3d
            n_iter = c.iterations if iterations is None else iterations
            rot = None
            if previous._rotations is not None and np.array_equal(previous.params[3:130], params[3:130]):
                params, rot = self.align_root(obs, previous.body_keypoints, params, previous._rotations)
            else:
                params = self.align_root(obs, previous.body_keypoints, params)
            params = self.init_limbs(obs, params, rotations=rot)
        if previous is None:
            params = self.init_limbs(obs, params)
        prev_pose = None if previous is None else self.full_params(shape, previous.params)
        plan = self._plan_for(obs)
        state = _State(plan, obs, shape, params, cam_prev, tau_prev, prev_pose, previous is not None)
        lam = c.damping
        cost = state.evaluate(with_jacobian=True)
        # whose Jacobian the steps use: warm-started, refreshed every other iteration (chord steps: ~15 % faster);
        # a cold start, far from the answer, refreshes it every iteration
        linear = state
        every = 1 if previous is None else 2
        it = 0
        for it in range(1, n_iter + 1):
            step = state.step(lam, linear)
            new_cost = math.inf
            # a linear model that promises more than the whole cost (which cannot go below 0) is wrong here: its
            # step is rejected without its evaluation, as the evaluation would reject it (issue 22 item 5: 2 of 3
            # warm fits on openpose_video.avi before the chord step took this state's limit curvature, see step)
            if state.gain <= cost:
                trial = state.moved(step)
                new_cost = trial.evaluate(with_jacobian=it < n_iter and it % every == 0, for_step=it < n_iter)
            if new_cost <= cost:
                state, cost, lam = trial, new_cost, max(lam / 3.0, 1e-7)
                if trial.jac is not None:
                    linear = trial
            else:   # too long a step for the linear model: damp more (the Jacobian at `state` is kept)
                lam *= 4.0
        return state.result(it, (time.perf_counter() - t0) * 1000)


class _Chain:
    """A set of joints closed under parents, grouped by depth: (joints of a level, their parents or None)."""

    def __init__(self, fitter: BodyFitter, joints: np.ndarray):
        # joints ordered level by level, so each level is a slice of the chain's own arrays
        order = [lvl[np.isin(lvl, joints)] for lvl in fitter.levels]
        self.joints = np.concatenate(order)
        local = {int(j): i for i, j in enumerate(self.joints)}
        rows = (self.joints[:, None] * 7 + np.arange(7)).reshape(-1)
        self.pt = sp.csr_matrix(fitter.pt[rows])              # ~2 non-zeros per row: sparse is 10x faster
        # the rotation channels alone (rx, ry, rz of each joint): what a fit moves, read as one (n,3) array
        self.pt_rot = sp.csr_matrix(fitter.pt[(self.joints[:, None] * 7 + np.arange(3, 6)).reshape(-1)])
        # the parameters the other channels (translations, scale) read: what a fit holds fixed
        fixed_rows = (self.joints[:, None] * 7 + np.asarray([0, 1, 2, 6])).reshape(-1)
        self.fixed_cols = np.flatnonzero(np.abs(fitter.pt[fixed_rows]).sum(0) > 0)
        self.offsets = fitter.offsets[self.joints]
        self.prerot = fitter.prerot[self.joints]
        self.anc = fitter._anc[self.joints][:, self.joints].astype(np.float64)   # [k, j]: j is k or above it
        self.levels = []
        start = 0
        for lvl in order:
            if not len(lvl):
                continue
            par = fitter.parents[lvl]
            self.levels.append((start, start + len(lvl),
                                None if par[0] < 0 else _as_view([local[int(q)] for q in par])))
            start += len(lvl)


def _as_view(index: list):
    """A gather ``index`` as a slice where it is one (one parent for the whole level: a length-1 slice that
    broadcasts; evenly spaced parents: a strided slice), so a level reads its parents without a copy; else the
    index array. The products are the same either way (a view only saves the gather)."""
    a, n = index[0], len(index)
    step = index[1] - a if n > 1 else 1
    if step == 0 and all(i == a for i in index):
        return slice(a, a + 1)
    if step > 0 and index == list(range(a, a + step * n, step)):
        return slice(a, a + step * (n - 1) + 1, step)
    return np.asarray(index, np.int64)


class _Rest:
    """Joints outside a plan's chain that the 70 keypoints still need (a hand's fingers when the fit does not
    move them), level by level, with their parents' indices in the full (127) arrays."""

    def __init__(self, fitter: BodyFitter, joints: np.ndarray):
        order = [lvl[np.isin(lvl, joints)] for lvl in fitter.levels]
        self.joints = np.concatenate(order)
        rows = (self.joints[:, None] * 7 + np.arange(7)).reshape(-1)
        self.pt = sp.csr_matrix(fitter.pt[rows])
        self.offsets, self.prerot = fitter.offsets[self.joints], fitter.prerot[self.joints]
        self.levels, start = [], 0
        for lvl in order:
            if len(lvl):
                self.levels.append((slice(start, start + len(lvl)), lvl, fitter.parents[lvl]))
                start += len(lvl)
        self.cols = np.unique(self.pt.indices)                # the parameters the rest's transforms read
        self._local: dict[bytes, np.ndarray] = {}

    def layout(self, point_joints: np.ndarray) -> None:
        """For :meth:`BodyFitter.complete_keypoints` from a fit: one array of affine (3,4) transforms holding
        first the other joints it reads (the rest's parents, the points' joints outside the rest: ``src``),
        then the rest's joints in their order; per level (its slice there, its parents there, its rows of
        the local transforms), and the points' rows there."""
        rest = {int(j): i for i, j in enumerate(self.joints)}
        outer = sorted({int(j) for _, _, par in self.levels for j in par} | {int(j) for j in point_joints}
                       - set(rest))
        at = {j: i for i, j in enumerate(outer)}
        at.update({j: len(outer) + i for j, i in rest.items()})
        self.src = np.asarray(outer, np.int64)
        n = len(outer)
        self.comb_levels = [(slice(n + sel.start, n + sel.stop), _as_view([at[int(q)] for q in par]), sel)
                            for sel, _, par in self.levels]
        self.comb_points = np.asarray([at[int(j)] for j in point_joints], np.int64)
        self.comb_size = n + len(self.joints)

    def local(self, params: np.ndarray) -> np.ndarray:
        """(R,4,4) the rest's local affine transforms at ``params`` (as :meth:`BodyFitter._fk` builds them),
        kept per value of the parameters they read: a hand the fit does not move holds its fingers' angles
        frame after frame, so they are built once, not on every person-frame (read-only, shared)."""
        key = params[self.cols].tobytes()
        loc = self._local.get(key)
        if loc is None:
            if len(self._local) > 64:                    # bounded: a new shape or finger pose makes a new one
                self._local.clear()
            jp = (self.pt @ params).reshape(-1, 7)
            loc = np.empty((len(jp), 4, 4))
            np.matmul(self.prerot, _euler_matrices(jp[:, 3:6]), out=loc[:, :3, :3])
            loc[:, :3, :3] *= np.exp(_LN2 * jp[:, 6])[:, None, None]
            np.add(jp[:, :3], self.offsets, out=loc[:, :3, 3])
            loc[:, 3] = (0.0, 0.0, 0.0, 1.0)
            loc.flags.writeable = False
            self._local[key] = loc
        return loc


class _Plan:
    """The fixed structure of a fit for one set of active parameters: DOF rows, the sparse map from rigid
    points to (keypoint, DOF joint) sums, and the parameter transform restricted to them."""

    def __init__(self, fitter: BodyFitter, active: np.ndarray):
        self.fitter, self.active = fitter, active
        pt = fitter.pt[:, active]
        rows = np.flatnonzero(np.abs(pt).sum(1) > 0)
        chan = rows % 7
        if (chan < 3).any() or (chan > 5).any():
            raise ValueError("the body fit moves rotations only; a fitted parameter drives a translation or scale")
        self.dof_joint, self.dof_chan = rows // 7, chan - 3                   # channel 0,1,2 = rx, ry, rz
        self.dof_to_param = pt[rows]                                          # (D, P)
        joints = np.unique(self.dof_joint)
        self.jj = np.searchsorted(joints, self.dof_joint)                     # DOF -> index in `joints`
        self.joints = joints
        # the keypoints this plan fits: body and face, and a hand's fingers only when they move
        moved = fitter._anc[:, joints].any(1)                                 # joints moved by a fitted DOF
        hands = {i for side, grp in fitter.groups.items() if side in ("left", "right")
                 and not np.isin(grp, active).any() for i in _HAND_KEYPOINTS[side]}
        self.kp_rows = np.asarray([i for i in range(NUM_KEYPOINTS) if i not in hands], np.int64)
        self.in_plan = np.zeros(NUM_KEYPOINTS)
        self.in_plan[self.kp_rows] = 1.0
        self.hand_rows = np.asarray([i for side in ("left", "right") if np.isin(fitter.groups[side], active).any()
                                     for i in _HAND_KEYPOINTS[side]], np.int64)      # the fingers it fits
        self.pts = np.flatnonzero(np.abs(fitter.coeff[self.kp_rows]).sum(0) > 0)
        # the keypoints outside it (FitResult.keypoints adds them) and the rigid points they read
        self.other_rows = np.setdiff1d(np.arange(NUM_KEYPOINTS), self.kp_rows)
        self.other_pts = np.flatnonzero(np.abs(fitter.coeff[self.other_rows]).sum(0) > 0)
        self.other_coeff = fitter.coeff[self.other_rows][:, self.other_pts]
        # the wrists ride along: the finger keypoints of a hand at rest hang rigidly on them (BodyFitter.keypoints)
        self.chain = fitter._chain(np.unique(np.concatenate([fitter.point_joint[self.pts], fitter._wrists])))
        missing = np.setdiff1d(np.unique(np.flatnonzero(fitter._anc[fitter.point_joint].any(0))), self.chain.joints)
        self.rest = _Rest(fitter, missing) if len(missing) else None
        if self.rest is not None:
            self.rest.layout(fitter.point_joint[self.other_pts])
        del moved
        # S[(i, jj), m] = coeff[i, m] when joints[jj] is k_m or above it (m over this plan's points)
        anc = fitter._anc[fitter.point_joint[self.pts]][:, joints]           # (M, J)
        c = np.zeros((NUM_KEYPOINTS, len(self.pts)))
        c[self.kp_rows] = fitter.coeff[self.kp_rows][:, self.pts]
        self.coeff = c
        i_idx, m_idx = np.nonzero(c)
        data, r, col = [], [], []
        for jj in range(len(joints)):
            sel = anc[m_idx, jj]
            data.append(c[i_idx[sel], m_idx[sel]])
            r.append(i_idx[sel] * len(joints) + jj)
            col.append(m_idx[sel])
        self.S = sp.csr_matrix((np.concatenate(data), (np.concatenate(r), np.concatenate(col))),
                               shape=(NUM_KEYPOINTS * len(joints), c.shape[1]))
        self.s_sum = np.asarray(self.S.sum(1)).reshape(NUM_KEYPOINTS, len(joints))
        # the same per DOF (row i * D + d: the sums over the subtree of DOF d's joint), so the Jacobian needs no
        # gather from joints to DOFs; and the DOF -> parameter map, sparse (1-2 entries a row), transposed
        per_dof = (np.arange(NUM_KEYPOINTS)[:, None] * len(joints) + self.jj[None]).reshape(-1)
        self.S_dof = sp.csr_matrix(self.S[per_dof])
        self.s_sum_dof = self.s_sum[:, self.jj]
        self.param_of_dof = sp.csr_matrix(self.dof_to_param.T)
        self.limits = fitter.limits[active]
        self.is_root = np.isin(active, [3, 4, 5])
        # constants of every evaluation: the DOF joints' parents (the root's: none), which DOFs are which
        # channel, the pose prior's and the temporal term's diagonal (no prior on the root rotation)
        par = fitter.parents[self.dof_joint]
        self.dof_parent, self.dof_has_parent = np.maximum(par, 0), par >= 0
        self.dof_ch = [np.flatnonzero(self.dof_chan == k) for k in range(3)]
        ch1, ch2 = self.dof_ch[1], self.dof_ch[2]
        self.dof_parent12 = self.dof_parent[np.concatenate([ch1, ch2])]     # ry DOFs first, then rz
        self.dof_orphan12 = np.flatnonzero(~self.dof_has_parent[np.concatenate([ch1, ch2])])
        self.prerot1 = fitter.prerot[self.dof_joint[ch1]]
        pos = np.full(len(fitter.parents), -1, np.int64)
        pos[self.chain.joints] = np.arange(len(self.chain.joints))
        self.rz1 = pos[self.dof_joint[ch1]]                                 # row of the chain's Euler angles
        self.pt_joint = fitter.point_joint[self.pts]
        self.prerot2_z = fitter.prerot[self.dof_joint[ch2]][:, :, 2:3]
        c = fitter.config
        body = ~self.is_root
        self.body = body
        self.prior_d = np.where(body, 1.0 / c.prior_sigma, 0.0)
        self.temporal_d = np.where(body, 1.0 / c.temporal_sigma, 0.0)
        self.network_d = np.where(body, 1.0 / c.network_sigma, 0.0)
        self.prior_d2, self.temporal_d2, self.network_d2 = self.prior_d ** 2, self.temporal_d ** 2, self.network_d ** 2
        self.lim_lo, self.lim_hi = self.limits[:, 0].copy(), self.limits[:, 1].copy()
        self._lever_rows: dict[bytes, tuple] = {}
        self.fixed: dict[tuple, tuple] = {}                # _Kinematics' fixed part per shape and held values

    def lever_rows(self, rows: np.ndarray) -> tuple:
        """For the observed keypoint ``rows``: (the rows of ``S_dof`` they read, as one sparse matrix; their
        ``s_sum_dof`` (1, k, D)), made once per set of rows (a track sees the same joints frame after frame)."""
        key = rows.tobytes()
        out = self._lever_rows.get(key)
        if out is None:
            if len(self._lever_rows) > 32:           # bounded (~0.1 MB each): sets of seen joints come and go
                self._lever_rows.clear()
            d = len(self.dof_joint)
            sel = (rows[:, None] * d + np.arange(d)).reshape(-1)
            out = self._lever_rows[key] = (sp.csr_matrix(self.S_dof[sel]), self.s_sum_dof[rows][None])
        return out


class _Kinematics:
    """The forward kinematics of one fit (:meth:`BodyFitter._fk` and :meth:`BodyFitter._points` on the plan's
    chain and points): a fit moves rotation parameters only (:class:`_Plan` checks it), so every joint's
    translation, scale and the rigid points' local positions are computed once per shape and held parameters
    (kept in the plan: a track's fits share them), and each evaluation computes the joints' rotations alone.
    The same operations in the same order as ``_fk`` / ``_points``: the same bits. Per evaluation it was ~40
    numpy calls, which cost more than their arithmetic (issue 22 item 5)."""

    def __init__(self, plan: "_Plan", shape: BodyShape, params: np.ndarray):
        ch = self.chain = plan.chain
        self.pt_joint, self.n = plan.pt_joint, len(plan.fitter.parents)
        # what depends on the shape and the parameters the fit holds, once per value of them: a track's frames
        # share it (read-only: shared; the rigid points' array is kept, so its id names it while cached)
        key = (id(shape.local_points), params[ch.fixed_cols].tobytes())
        fixed = plan.fixed.get(key)
        if fixed is None:
            if len(plan.fixed) > 64:                  # bounded: a new shape or held pose makes a new one
                plan.fixed.clear()
            jpl = (ch.pt @ params).reshape(-1, 7)
            g_s = np.exp(_LN2 * (ch.anc @ jpl[:, 6]))
            loc = np.empty((len(jpl), 4, 4))          # rows 0:3 of column 3 and row 3: fixed
            np.add(jpl[:, :3], ch.offsets, out=loc[:, :3, 3])
            loc[:, 3] = (0.0, 0.0, 0.0, 1.0)
            out_s = np.ones(self.n)
            out_s[ch.joints] = g_s
            fixed = (shape.local_points, g_s, np.exp(_LN2 * jpl[:, 6])[:, None, None], loc, out_s,
                     out_s[plan.pt_joint, None], shape.local_points[plan.pts][:, :, None])
            for a in fixed[1:]:
                a.flags.writeable = False
            plan.fixed[key] = fixed
        _, self.g_s, self.scale, loc, self.out_s, self.gs_pts, self.local_pts = fixed
        self.loc = loc.copy()                         # this fit's own: each evaluation writes its rotations

    def forward(self, params: np.ndarray):
        """(global rotations (127,3,3), translations (127,3) cm, scales (127,), MHR frame, zero outside the
        chain; the chain's Euler angles (n,3) rad) at ``params``."""
        ch, loc = self.chain, self.loc
        euler = (ch.pt_rot @ params).reshape(-1, 3)
        rot = loc[:, :3, :3]
        np.matmul(ch.prerot, _euler_matrices(euler), out=rot)
        rot *= self.scale
        g = np.empty((len(euler), 3, 4))
        for a, b, par in ch.levels:
            if par is None:
                g[a:b] = loc[a:b, :3]
            else:
                np.matmul(g[par], loc[a:b], out=g[a:b])
        out_r, out_t = np.zeros((self.n, 3, 3)), np.zeros((self.n, 3))
        out_r[ch.joints] = g[:, :, :3] / self.g_s[:, None, None]
        out_t[ch.joints] = g[:, :, 3]
        return out_r, out_t, self.out_s, euler

    def points(self, g_r: np.ndarray, g_t: np.ndarray) -> np.ndarray:
        """(M,3) cm: the plan's rigid points (:meth:`BodyFitter._points`)."""
        k = self.pt_joint
        return g_t[k] + self.gs_pts * (g_r[k] @ self.local_pts)[..., 0]


class _State:
    """One point of the LM iteration: parameters, translations, residuals and (optionally) the Jacobian."""

    def __init__(self, plan: _Plan, obs: Observation, shape: BodyShape, params, cam_prev, tau_prev,
                 prev_pose, has_prev: bool):
        self.plan, self.obs, self.shape = plan, obs, shape
        self.params = params
        self.w3, self.w2 = obs.w3d * plan.in_plan, obs.w2d * plan.in_plan   # keypoints outside the plan: unused
        self.has3d = obs.joints_3d is not None and self.w3.sum() > 0
        self.has2d = obs.joints_2d is not None and self.w2.sum() > 0
        # fixed along the iterations: the observed rows of each term, the union, the 2D term's pixel scale
        self.sel3 = np.flatnonzero(self.w3 > 0) if self.has3d else None
        self.sel2 = np.flatnonzero(self.w2 > 0) if self.has2d else None
        self.rows = plan.kp_rows[((self.w3 > 0) | (self.w2 > 0))[plan.kp_rows]]
        at = np.zeros(NUM_KEYPOINTS, np.int64)
        at[self.rows] = np.arange(len(self.rows))                           # keypoint -> row of the Jacobian
        self.at3 = None if self.sel3 is None else at[self.sel3]
        self.at2 = None if self.sel2 is None else at[self.sel2]
        self.scale2d = None
        if self.has2d:
            y = obs.joints_2d[self.sel2, 1]
            self.scale2d = self.plan.fitter.config.sigma_2d * max(float(y.max() - y.min()) if len(y) > 1 else 0.0,
                                                                  50.0)
        self.cam_prev, self.tau_prev, self.prev_pose, self.has_prev = cam_prev, tau_prev, prev_pose, has_prev
        # the observed values of each term's rows, and the previous pose of the fitted parameters: fixed too
        self.obs3 = None if self.sel3 is None else obs.joints_3d[self.sel3]
        self.w3s = None if self.sel3 is None else self.w3[self.sel3]
        self.obs2 = None if self.sel2 is None else obs.joints_2d[self.sel2]
        self.w2s = None if self.sel2 is None else self.w2[self.sel2]
        self.prev_active = None if prev_pose is None else prev_pose[plan.active]
        self.n_rows = (3 * len(self.sel3) if self.has3d else 0) + (2 * len(self.sel2) if self.has2d else 0) + \
            (3 if has_prev and self.has2d and cam_prev is not None else 0)
        self.net_pose = None if obs.prior_params is None else obs.prior_params[plan.active]   # the network's
        self.tau = None if tau_prev is None else np.asarray(tau_prev, np.float64).copy()
        self.cam = None if cam_prev is None else np.asarray(cam_prev, np.float64).copy()
        self.jac = self.jtj = None
        self.gain = 0.0                            # step(): the cost its step lowers, by the linear model
        self.kin = _Kinematics(plan, shape, params)   # shared by the states of this fit (moved() copies)

    # the translations start from closed-form solutions the first time they are needed
    def _init_translations(self, kp):
        o = self.obs
        if self.tau is None:
            w = self.w3
            self.tau = ((o.joints_3d - kp) * w[:, None]).sum(0) / w.sum() if self.has3d else np.zeros(3)
        if self.has2d and self.cam is None:
            self.cam = _solve_cam(kp, o.joints_2d, self.w2, o.focal, o.principal_point)

    def moved(self, step: np.ndarray) -> "_State":
        p = self.plan
        new = _State.__new__(_State)               # same observation, plan, weights, priors (copy.copy, faster)
        new.__dict__.update(self.__dict__)
        new.params, new.jac, new.jtj = self.params.copy(), None, None
        n = len(p.active)
        theta = self.params[p.active] + step[:n]
        new.params[p.active] = theta           # limits are soft (a hard clamp stalls Gauss-Newton at a bound)
        k = n
        new.tau = None if self.tau is None else self.tau.copy()
        new.cam = None if self.cam is None else self.cam.copy()
        if self.has3d:
            new.tau = self.tau + step[k:k + 3]
            k += 3
        if self.has2d:
            new.cam = self.cam + step[k:k + 3]
        return new

    def evaluate(self, with_jacobian: bool, for_step: bool = True) -> float:
        """The objective at this state (and its Jacobian). ``for_step`` False: no step will be taken from it
        (the fit's last trial): its residual vector and the diagonal terms' gradient and curvature, which only
        a step reads, are not built (``res``, ``diag_h``, ``diag_g`` None); the cost is the same."""
        p, c, o = self.plan, self.plan.fitter.config, self.obs
        g_r, g_t, g_s, euler = self.kin.forward(self.params)
        x = self.kin.points(g_r, g_t)
        self.rotations, self.fk = g_r, (g_r, g_t, g_s)
        kp = (p.coeff @ x) * _D                              # (70,3) m product (zero outside the plan's rows)
        self.kp = kp
        self._init_translations(kp)
        res = []
        n = len(p.active)
        nvar = n + 3 * self.has3d + 3 * self.has2d
        jk = jac = None
        sel3, sel2 = self.sel3, self.sel2
        if with_jacobian:
            jac = np.zeros((self.n_rows, nvar))          # the data rows' blocks are written into it in place
            # world axes of the rotation DOFs (MHR frame): rx = G_j e_x, ry = G_p P_j Rz e_y, rz = G_p P_j e_z
            dj = p.dof_joint
            axes = np.empty((len(dj), 3))
            ch0, ch1, ch2 = p.dof_ch
            axes[ch0] = g_r[dj[ch0], :, 0]
            g_par = g_r[p.dof_parent12]
            g_par[p.dof_orphan12] = _EYE3
            m = g_par[:len(ch1)] @ p.prerot1                                # (D1,3,3)
            rz = euler[p.rz1, 2, None]
            axes[ch1] = np.cos(rz) * m[:, :, 1] - np.sin(rz) * m[:, :, 0]
            axes[ch2] = (g_par[len(ch1):] @ p.prerot2_z)[..., 0]
            # rows: the observed keypoints; lever (k, J, 3) per DOF joint, then the cross product per DOF with
            # the product frame's axis scale folded into the axis components
            rows = self.rows
            s_rows, s_sum = p.lever_rows(rows)
            # coordinate first, (3, k, D): the element-wise work then runs along the DOFs (D ~ 90) instead of
            # along 3-vectors, where numpy's per-row overhead dominated (same operations, same values)
            q = np.ascontiguousarray((s_rows @ x).T).reshape(3, len(rows), len(dj))   # sum of C x over subtrees
            lever = q - s_sum * g_t.T[:, dj][:, None]                                 # (3, k, D)
            lx, ly, lz = lever
            ax, ay, az = np.ascontiguousarray(axes.T)       # (a transposed operand is ~5x slower to broadcast)
            jd = np.empty((len(rows), 3, len(dj)))
            jd[:, 0] = _D[0] * (ay * lz - az * ly)
            jd[:, 1] = _D[1] * (az * lx - ax * lz)
            jd[:, 2] = _D[2] * (ax * ly - ay * lx)
            jk = (p.param_of_dof @ jd.reshape(-1, len(dj)).T).T.reshape(len(rows), 3, n)   # (k, 3, P) m / rad
        data_cost = 0.0
        if self.has3d:
            sel = sel3
            r = (kp[sel] + self.tau - self.obs3) / c.sigma_3d                  # (k,3)
            rw, cost = _robust(r, self.w3s, c.robust)
            data_cost += cost
            if for_step:
                res.append((r * rw[:, None]).reshape(-1))
            if with_jacobian:
                jb = jac[:3 * len(sel)].reshape(len(sel), 3, nvar)
                sw = rw / c.sigma_3d
                np.multiply(jk[self.at3], sw[:, None, None], out=jb[:, :, :n])
                jb[:, 0, n], jb[:, 1, n + 1], jb[:, 2, n + 2] = sw, sw, sw
        if self.has2d:
            sel = sel2
            xc = kp[sel] + self.cam
            z = np.maximum(xc[:, 2], 1e-3)
            xz = xc[:, :2] / z[:, None]
            uv = o.focal * xz + o.principal_point
            scale = self.scale2d
            r = (uv - self.obs2) / scale
            rw, cost = _robust(r, self.w2s, c.robust)
            data_cost += cost
            if for_step:
                res.append((r * rw[:, None]).reshape(-1))
            if with_jacobian:
                # d uv / d X = f/z [[1, 0, -x/z], [0, 1, -y/z]]
                fz = (o.focal / z) * (rw / scale)                             # the row scale folded in
                at = 3 * len(sel3) if self.has3d else 0
                jb = jac[at:at + 2 * len(sel)].reshape(len(sel), 2, nvar)
                j3 = jk[self.at2]
                np.multiply(fz[:, None, None], j3[:, :2] - xz[:, :, None] * j3[:, 2:3], out=jb[:, :, :n])
                jb[:, 0, nvar - 3] = jb[:, 1, nvar - 2] = fz
                jb[:, :, nvar - 1] = -fz[:, None] * xz
        # priors: rest pose, previous frame, limits (root rotation: temporal only)
        theta = self.params[p.active]
        pr = theta * p.prior_d                                   # (the root's prior_d is 0)
        over = theta - np.minimum(np.maximum(theta, p.lim_lo), p.lim_hi)
        lim = over / c.limit_sigma
        self.diag_h = self.diag_g = None
        if for_step:
            lim_d = np.where(over != 0, 1.0 / c.limit_sigma, 0.0)
            self.diag_h = p.prior_d2 + lim_d ** 2
            self.diag_g = p.prior_d * pr + lim_d * lim
        limit_cost = float(lim @ lim)
        prior_cost = float(pr @ pr) + limit_cost
        if self.prev_pose is not None:
            # not on the root: its Euler angles jump (by pi, two at once) near gimbal lock, seen from the side,
            # while the rotation barely moves; the root follows the observed torso instead (align_root)
            dt = _wrap(theta - self.prev_active) * p.temporal_d
            if for_step:
                self.diag_h = self.diag_h + p.temporal_d2
                self.diag_g = self.diag_g + p.temporal_d * dt
            prior_cost += float(dt @ dt)
        if self.net_pose is not None:     # the network's own pose this frame (body angles; not the root)
            dn = _wrap(theta - self.net_pose) * p.network_d
            if for_step:
                self.diag_h = self.diag_h + p.network_d2
                self.diag_g = self.diag_g + p.network_d * dn
            prior_cost += float(dn @ dn)
        if self.has_prev and self.has2d and self.cam_prev is not None:
            e = (self.cam - self.cam_prev) / c.temporal_trans_sigma
            if for_step:
                res.append(e)
            prior_cost += float(e @ e)
            if with_jacobian:
                jt = jac[-3:]
                jt[0, nvar - 3] = jt[1, nvar - 2] = jt[2, nvar - 1] = 1.0 / c.temporal_trans_sigma
        self.limit_cost = limit_cost
        self.data_cost = data_cost
        total = data_cost + prior_cost
        self.cost = total
        # the data rows form J; the diagonal terms (prior, limits, temporal) go straight into J^T J, J^T r
        self.res = np.concatenate(res) if for_step else None
        self.jac = jac
        self.jtj = None
        return total

    def step(self, lam: float, linear: "_State | None" = None) -> np.ndarray:
        """The damped Gauss-Newton step from this state's residuals, with the Jacobian of ``linear`` (default:
        this state's own; an earlier state's makes a chord step: one Jacobian serves two steps)."""
        lin = linear or self
        if lin.jac is None:
            lin.evaluate(with_jacobian=True)
        j = lin.jac
        n = len(lin.diag_h)
        if lin.jtj is None:         # a chord step reuses the linear state's J^T J
            lin.jtj = j.T @ j
            lin.diag_idx = np.diag_indices(len(lin.jtj))
        h = lin.jtj.copy()
        g = j.T @ self.res
        d = h.diagonal().copy()
        # the diagonal terms' curvature at THIS state, as their gradient (diag_g): a limit the last step crossed
        # has a gradient here but had no curvature at the linear state, and that mix made the chord step fly off
        # (rejected on 90 % of openpose_video.avi's warm fits, issue 22)
        d[:n] += self.diag_h
        damp = lam * (d + 1e-6)
        h[lin.diag_idx] = d + damp
        g[:n] += self.diag_g
        # h is symmetric positive definite (J^T J plus a positive diagonal): Cholesky (LAPACK posv) is ~2x
        # faster than a general solve at this size
        _, x, info = _posv(h, g)
        x = x if info == 0 else np.linalg.solve(h, g)
        # how much the step's linear model says it lowers the cost: (H + D) x = g gives g.x + x^T D x for -x
        self.gain = float(g @ x + damp @ (x * x))
        return -x

    def result(self, iterations: int, ms: float) -> FitResult:
        params = self.params.copy()
        params[:3] = 0.0
        kp = self.kp                                                       # the plan's rows (hands: later)
        return FitResult(params=params, cam_trans=None if self.cam is None else self.cam.copy(),
                         offset_3d=self.tau.copy(), body_keypoints=kp,
                         _model=(self.plan.fitter, self.shape, (self.plan, self.fk)),
                         _rotations=self.rotations,
                         cost=float(self.cost), data_cost=float(self.data_cost), limit_cost=float(self.limit_cost),
                         iterations=iterations, ms=ms, hand_cost=self._hand_cost(),
                         _fitted=(self.obs, self.w3 if self.has3d else None, self.w2 if self.has2d else None))

    def _hand_cost(self) -> float:
        """The robust data cost of the fitted hands' finger keypoints at this state (as :meth:`evaluate`)."""
        rows, o, c = self.plan.hand_rows, self.obs, self.plan.fitter.config
        if not len(rows):
            return 0.0
        cost = 0.0
        if self.has3d:
            cost += _robust((self.kp[rows] + self.tau - o.joints_3d[rows]) / c.sigma_3d, self.w3[rows], c.robust)[1]
        if self.has2d:
            uv = project_points(self.kp[rows] + self.cam, o.focal, o.principal_point)
            cost += _robust((uv - o.joints_2d[rows]) / self.scale2d, self.w2[rows], c.robust)[1]
        return cost


def _euler_matrices(e: np.ndarray) -> np.ndarray:
    """(n,3) (rx, ry, rz) -> (n,3,3) ``Rz Ry Rx``: :func:`instanthmr.core.rotations.euler_xyz_to_matrix` in a
    few numpy calls (the fit calls it ~5 times a fit, and numpy's per-call overhead, not the maths, is its
    cost): every entry is ``a * b * c - d * e`` over the cosines, sines, their negatives, 1 and 0
    (:data:`_EULER_TERMS`), the same products in the same order as the formulas written out, so the same bits."""
    c, s = np.cos(e), np.sin(e)
    n = len(e)
    ones = _ONE_ZERO[:n] if n <= len(_ONE_ZERO) else np.broadcast_to(_ONE_ZERO[0], (n, 2))
    g = np.concatenate((c, s, -c, -s, ones), 1)[:, _EULER_TERMS]          # (n, 5, 9)
    r = g[:, 0] * g[:, 1]
    r *= g[:, 2]
    r -= g[:, 3] * g[:, 4]
    return r.reshape(n, 3, 3)


#: Columns of ``[cos rx, ry, rz, sin rx, ry, rz, -cos.., -sin.., 1, 0]`` whose products ``a b c - d e`` are the
#: entries of ``Rz Ry Rx`` (row by row): e.g. r01 = cz sy sx - sz cx, r02 = cz sy cx - sz (-sx).
_CX, _CY, _CZ, _SX, _SY, _SZ, _NCX, _NCY, _NCZ, _NSX, _NSY, _NSZ, _ONE, _ZERO = range(14)
_EULER_TERMS = np.asarray([
    (_CZ, _CY, _ONE, _ZERO, _ZERO), (_CZ, _SY, _SX, _SZ, _CX), (_CZ, _SY, _CX, _SZ, _NSX),
    (_SZ, _CY, _ONE, _ZERO, _ZERO), (_SZ, _SY, _SX, _CZ, _NCX), (_SZ, _SY, _CX, _CZ, _SX),
    (_NSY, _ONE, _ONE, _ZERO, _ZERO), (_CY, _SX, _ONE, _ZERO, _ZERO), (_CY, _CX, _ONE, _ZERO, _ZERO)]).T
_ONE_ZERO = np.tile([1.0, 0.0], (256, 1))


def _robust(r: np.ndarray, w: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """Cauchy IRLS: per-joint multipliers on the residual rows (sqrt of weight x Cauchy weight) and the
    robust cost ``sum w c^2 log(1 + e^2/c^2)`` of joints with scaled error ``e``."""
    t = np.einsum("ij,ij->i", r, r) / (c * c)
    return np.sqrt(w / (1.0 + t)), float(c * c * (w @ np.log1p(t)))


def _solve_cam(kp: np.ndarray, uv: np.ndarray, w: np.ndarray, focal: float, pp: np.ndarray) -> np.ndarray:
    """Weighted least-squares camera translation T with project(kp + T) ~ uv, kept in front of the camera."""
    t = solve_camera_translation(kp, uv, focal, pp, w)
    if t[2] <= 0.1:
        t[2] = max(t[2], 2.0)
    return t


# ----------------------------------------------------------------------------------------------------------
# Shape per track: bone lengths from the first good frames
# ----------------------------------------------------------------------------------------------------------
def _bone_ends(joints: np.ndarray, name: str) -> np.ndarray:
    """(..., 3) position of an MHR70 joint or of the mid-hip / mid-shoulder point."""
    if name.startswith("mid_"):
        part = name[4:]
        return (joints[..., MHR70_INDEX[f"left_{part}"], :] + joints[..., MHR70_INDEX[f"right_{part}"], :]) / 2
    return joints[..., MHR70_INDEX[name], :]


def _bone_weight(weights: np.ndarray, name: str) -> np.ndarray:
    if name.startswith("mid_"):
        part = name[4:]
        return np.minimum(weights[..., MHR70_INDEX[f"left_{part}"]], weights[..., MHR70_INDEX[f"right_{part}"]])
    return weights[..., MHR70_INDEX[name]]


def bone_lengths(joints: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(len(BONE_PARAMS),) metres: each bone group's length (left and right pooled) as the median over the
    frames (N,70,3) where both ends are observed (``weights`` (N,70) > 0); NaN where never observed. The
    median over frames makes it robust to a few bad frames; lengths between joints do not depend on the pose."""
    j = np.asarray(joints, np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    w = np.ones(j.shape[:2]) if weights is None else np.asarray(weights, np.float64).reshape(j.shape[:2])
    w = np.where(np.isfinite(j).all(-1), w, 0.0)
    out = np.full(len(BONE_PARAMS), np.nan)
    for b, bones in enumerate(BONE_PARAMS.values()):
        vals = []
        for a, c in bones:
            ok = (_bone_weight(w, a) > 0) & (_bone_weight(w, c) > 0)
            vals.append(np.linalg.norm(_bone_ends(j[ok], a) - _bone_ends(j[ok], c), axis=-1))
        vals = np.concatenate(vals)
        if len(vals):
            out[b] = float(np.median(vals))
    return out


def fit_alone(fitter: BodyFitter, obs: Observation) -> tuple[FitResult, BodyShape]:
    """One person seen once (a photo, a teacher's label): the bones estimated from this observation alone,
    then the fit from a cold start (no track to warm-start from or to hold the bones over)."""
    shape = estimate_bone_params(fitter, obs.joints_3d[None], obs.w3d[None])
    return fitter.fit(obs, shape, None), shape


def estimate_bone_params(fitter: BodyFitter, joints: np.ndarray, weights: np.ndarray | None = None,
                         shape_params=None, prior_sigma: float = 0.5, length_sigma: float = 0.01,
                         iterations: int = 3) -> BodyShape:
    """A track's :class:`BodyShape` from its first good frames: the bone-length parameters of
    :data:`BONE_PARAMS` (one value per left/right pair: symmetric) solved so the model's MHR70 bone lengths
    match :func:`bone_lengths` of the observed 3D ``joints`` (N,70,3) m (Gauss-Newton, finite-difference
    Jacobian over 8 parameters; a prior of ``prior_sigma`` parameter units (10 cm of bone each) toward MHR's
    mean body; ``length_sigma`` m per bone). ``shape_params`` (45): the identity shape to keep (default 0)."""
    target = bone_lengths(joints, weights)
    idx = np.asarray([fitter.param_index[n] for n in BONE_PARAMS], np.int64) - 130
    ok = np.isfinite(target)
    shape = fitter.shape(shape_params)
    if not ok.any():
        return shape
    bones = np.zeros(NUM_MODEL_PARAMS - 130)

    def lengths(b):
        s = BodyShape(shape.shape_params, b, shape.local_points)
        kp, _ = fitter.forward(s, fitter.full_params(s))
        return bone_lengths(kp[None])

    for _ in range(iterations):
        cur = lengths(bones)
        jac = np.zeros((len(target), len(idx)))
        for k, i in enumerate(idx):
            b = bones.copy()
            b[i] += 0.05
            jac[:, k] = (lengths(b) - cur) / 0.05
        r = np.concatenate([((cur - target) / length_sigma)[ok], bones[idx] / prior_sigma])
        jj = np.concatenate([jac[ok] / length_sigma, np.eye(len(idx)) / prior_sigma])
        bones[idx] -= np.linalg.lstsq(jj, r, rcond=None)[0]
    return fitter.shape(shape.shape_params, bones)
