import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from instanthmr.core import metrics as m
from instanthmr.core.skeleton import MHR70_PARTS


def test_mpjpe_worked_example():
    gt = np.zeros((1, 2, 3))
    pred = np.array([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]])  # errors 5 and 1
    assert m.mpjpe(pred, gt)[0] == pytest.approx(3.0)
    assert m.mpjpe(pred, gt, mask=[[True, False]])[0] == pytest.approx(5.0)
    assert np.isnan(m.mpjpe(pred, gt, mask=[[False, False]])[0])


def test_pa_mpjpe_is_zero_for_similarity_transform_and_not_for_reflection():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(4, 70, 3))
    rot = Rotation.random(4, random_state=1).as_matrix()
    pred = 1.7 * np.einsum("bij,bkj->bki", rot, gt) + rng.normal(size=(4, 1, 3))
    assert m.mpjpe(pred, gt).min() > 0.5
    assert m.pa_mpjpe(pred, gt).max() < 1e-9
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert m.pa_mpjpe(mirrored, gt).min() > 0.3  # a reflection cannot be explained by a rotation


def test_pa_mpjpe_only_fits_on_masked_joints():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(10, 3))
    pred = gt.copy()
    pred[0] += 100.0  # a wild outlier
    mask = np.ones(10, bool)
    mask[0] = False
    assert m.pa_mpjpe(pred, gt, mask=mask) == pytest.approx(0.0, abs=1e-9)
    assert m.pa_mpjpe(pred, gt) > 0.5  # unmasked, the outlier drags the fit


def test_root_align_and_per_part():
    gt = np.zeros((2, 70, 3))
    pred = gt.copy()
    pred[:, MHR70_PARTS["left_hand"], 0] = 0.01  # 1 cm off on the left hand only
    parts = m.per_part_mpjpe(pred, gt, MHR70_PARTS)
    assert parts["left_hand"] == pytest.approx(0.01)
    assert parts["body"] == 0.0 and parts["right_hand"] == 0.0
    assert parts["all"] == pytest.approx(0.01 * 21 / 70)
    j = np.arange(6, dtype=float).reshape(2, 3)
    np.testing.assert_allclose(m.root_align(j, [0, 1]), j - j.mean(0))


def test_pck_and_acceleration():
    gt = np.zeros((1, 4, 2))
    pred = np.array([[[0.5, 0], [1.5, 0], [0, 0.9], [3, 4]]])
    assert m.pck(pred, gt, threshold=1.0)[0] == pytest.approx(0.5)
    t = np.arange(10, dtype=float)
    constant_velocity = np.stack([t, 2 * t, 0 * t], -1)[:, None, :]  # (T, 1, 3)
    assert m.jitter(constant_velocity) == pytest.approx(0.0)
    quadratic = np.stack([t ** 2, 0 * t, 0 * t], -1)[:, None, :]  # acceleration 2 per frame^2
    assert m.jitter(quadratic) == pytest.approx(2.0)
    assert m.jitter(quadratic, fps=10) == pytest.approx(200.0)
    assert m.acceleration_error(quadratic, constant_velocity) == pytest.approx(2.0)
