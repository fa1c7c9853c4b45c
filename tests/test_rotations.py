"""The one rotations module (``instanthmr.core.rotations``): each convention checked against scipy's, and
each inverse against its forward."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from instanthmr.core import rotations as r

RNG = np.random.default_rng(7)
MATS = Rotation.random(64, random_state=3).as_matrix()


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_axis_rotation_is_right_handed(axis):
    a = RNG.uniform(-np.pi, np.pi, size=5)
    want = Rotation.from_rotvec(np.eye(3)[axis] * a[:, None]).as_matrix()
    np.testing.assert_allclose(r.axis_rotation(axis, a), want, atol=1e-12)
    np.testing.assert_allclose(r.axis_rotation(2, np.pi / 2) @ [1.0, 0, 0], [0, 1.0, 0], atol=1e-12)


def test_euler_conventions_match_scipy_and_invert():
    e = RNG.uniform(-1.4, 1.4, size=(32, 3))
    m = r.euler_xyz_to_matrix(e)
    np.testing.assert_allclose(m, Rotation.from_euler("xyz", e).as_matrix(), atol=1e-12)  # extrinsic xyz = Rz Ry Rx
    np.testing.assert_allclose(r.euler_xyz_from_matrix(m), e, atol=1e-9)
    zxy = r.euler_zxy_from_matrix(MATS)  # intrinsic Z X Y = Rz @ Rx @ Ry
    np.testing.assert_allclose(Rotation.from_euler("ZXY", zxy).as_matrix(), MATS, atol=1e-9)


def test_euler_xyz_runs_on_torch_with_the_same_numbers():
    torch = pytest.importorskip("torch")
    e = RNG.uniform(-3, 3, size=(8, 3))
    np.testing.assert_allclose(r.euler_xyz_to_matrix(torch.as_tensor(e), torch).numpy(), r.euler_xyz_to_matrix(e),
                               atol=1e-12)


def test_quaternions_round_trip_in_xyzw_order():
    q = r.quaternion_from_matrix(MATS)
    assert (q[:, 3] >= 0).all()
    np.testing.assert_allclose(np.abs(q), np.abs(Rotation.from_matrix(MATS).as_quat()), atol=1e-12)  # scipy: x y z w
    np.testing.assert_allclose(r.quaternion_to_matrix(q * 3.0), MATS, atol=1e-12)  # normalised on the way in


def test_swing_turns_one_direction_onto_another_even_when_opposite():
    a = RNG.normal(size=(20, 3))
    b = np.concatenate([RNG.normal(size=(19, 3)), -a[-1:]])
    s = r.swing(a, b)
    np.testing.assert_allclose(np.einsum("tij,tj->ti", s, r.unit(a)), r.unit(b), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(s), 1.0, atol=1e-9)


def test_kabsch_recovers_a_rotation_and_refuses_a_mirror():
    rest = RNG.normal(size=(6, 3))
    cur = np.einsum("tij,kj->tki", MATS, rest)  # one rest set against 64 frames
    np.testing.assert_allclose(r.kabsch(rest, cur), MATS, atol=1e-9)
    mirrored = rest * [-1.0, 1.0, 1.0]
    assert np.linalg.det(r.kabsch(rest, mirrored)) == pytest.approx(1.0)
    w = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])  # weights: the last two points do not count
    noisy = cur[0].copy()
    noisy[4:] += 5.0
    np.testing.assert_allclose(r.kabsch(rest, noisy, w), MATS[0], atol=1e-9)
