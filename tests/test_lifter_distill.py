"""The whole-body distillation loss: same normalisation as the protocol, invariances, masking, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instanthmr.teachers.lifter import normalize_3d
from instanthmr.teachers.lifter.distill import normalize_3d_torch, wholebody_loss


def poses(n=3, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 133, 3, generator=g, dtype=torch.float64)


def test_torch_normalisation_matches_protocol():
    p = poses()
    np.testing.assert_allclose(normalize_3d_torch(p).numpy(), normalize_3d(p.numpy())[0], atol=1e-12)


def test_invariant_to_translation_and_scale():
    p = poses()
    target = torch.from_numpy(normalize_3d(p.numpy())[0])
    mask = torch.ones(3, 133, dtype=torch.bool)
    moved = p * torch.tensor([0.3, 2.0, 7.0], dtype=torch.float64)[:, None, None] + torch.tensor([1.0, -2.0, 5.0], dtype=torch.float64)
    assert wholebody_loss(p, target, mask).item() == pytest.approx(0.0, abs=1e-12)
    assert wholebody_loss(moved, target, mask).item() == pytest.approx(0.0, abs=1e-12)


def test_worked_example_and_weight():
    p = poses(1)
    target = normalize_3d_torch(p).clone()
    target[0, 40, 1] += 0.3  # one joint off by 0.3 on one axis
    mask = torch.ones(1, 133)
    assert wholebody_loss(p, target, mask).item() == pytest.approx(0.3 / (133 * 3))
    assert wholebody_loss(p, target, mask, weight=2.5).item() == pytest.approx(2.5 * 0.3 / (133 * 3))
    mask[0, :100] = 0  # the mean runs over valid joints only
    assert wholebody_loss(p, target, mask).item() == pytest.approx(0.0, abs=1e-12)
    mask[0, 40] = 1
    assert wholebody_loss(p, target, mask).item() == pytest.approx(0.3 / (34 * 3))


def test_masked_joints_ignored_even_when_nan():
    p = poses(2)
    target = normalize_3d_torch(p).clone()
    mask = torch.ones(2, 133, dtype=torch.bool)
    target[:, 100:] = float("nan")
    mask[:, 100:] = False
    p.requires_grad_(True)
    loss = wholebody_loss(p, target, mask)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-12) and torch.isfinite(p.grad).all()


def test_no_valid_joint_gives_zero_with_gradient():
    p = poses(2).requires_grad_(True)
    loss = wholebody_loss(p, torch.zeros(2, 133, 3, dtype=torch.float64), torch.zeros(2, 133))
    loss.backward()
    assert loss.item() == 0.0 and p.grad is not None and torch.all(p.grad == 0)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shapes"):
        wholebody_loss(torch.zeros(2, 133, 3), torch.zeros(2, 133, 3), torch.ones(2, 70))


def test_loss_falls_when_fitting_a_small_head():
    """A tiny linear head fits lifter targets through the loss: the distillation gradient is usable."""
    torch.manual_seed(0)
    feats = torch.randn(16, 8)
    target = normalize_3d_torch(torch.randn(16, 133, 3))
    mask = torch.rand(16, 133) > 0.2
    head = torch.nn.Linear(8, 133 * 3)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        loss = wholebody_loss(head(feats).view(16, 133, 3), target, mask, weight=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_wholebody_head_learns_from_lifter_shards(tmp_path):
    """Lifter labels written as shards train the network's optional whole-body head (loss falls)."""
    model = pytest.importorskip("instanthmr.training.model")
    from instanthmr.training.data.shards import ShardReader, ShardWriter

    g = torch.Generator().manual_seed(0)
    with ShardWriter(tmp_path, teacher="llm_lifter") as w:
        for i in range(2):
            target = normalize_3d(torch.randn(133, 3, generator=g, dtype=torch.float64).numpy())[0]
            mask = np.ones(133, bool)
            mask[23:91] = i == 0  # the second person's face did not parse
            w.add({"box": [0, 0, 100, 200], "image_size": [640, 480], "source": f"p{i}",
                   "joints_3d_wholebody": target, "joints_3d_wholebody_valid": mask})
            w.mark_done(f"p{i}")
    r = ShardReader(tmp_path)
    target = torch.from_numpy(np.stack([r[i]["joints_3d_wholebody"] for i in range(2)]))
    mask = torch.from_numpy(np.stack([r[i]["joints_3d_wholebody_valid"] for i in range(2)]))
    assert mask.sum() == 133 + 65

    torch.manual_seed(0)
    net = model.build_model("instanthmr_tiny_test", wholebody_head=True)
    net.train()
    images, cond = torch.randn(2, 3, 224, 224, generator=g), torch.zeros(2, 3)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(5):
        loss = wholebody_loss(net(images, cond)[model.WHOLEBODY_OUTPUT], target.float(), mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
