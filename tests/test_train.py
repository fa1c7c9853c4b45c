"""Trainer: config, losses, sampler, and an end-to-end distillation on synthetic shards -> ONNX -> InstantHMR."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from instanthmr.core import geometry
from instanthmr.training.config import ConfigError, load_config
from instanthmr.training.data.augment import AugmentConfig
from instanthmr.training.data.synthetic import synthetic_person, write_synthetic_shards
from instanthmr.training.dataset import ShardBlockSampler, ShardDataset
from instanthmr.training.losses import distillation_loss, masked_l1, weak_to_full


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # two cores shared by several processes: one intra-op thread is ~20x faster than two contended ones
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_synthetic_shards(tmp_path_factory.mktemp("syn"), 48, seed=0, shard_size=16)


def _cfg(shards, out, *extra):
    return load_config("configs/train_smoke.yaml", [f"data.train=[{shards}]", f"run.out_dir={out}",
                                                    "run.progress=false", *extra])


def test_config_overrides_and_errors(tmp_path):
    cfg = load_config("configs/train_smoke.yaml", ["optim.lr=1e-3", "data.augment.flip_prob=0", "loss.cam_trans=0"])
    assert cfg.optim.lr == 1e-3 and cfg.data.augment.flip_prob == 0 and cfg.loss.cam_trans == 0
    assert cfg.model.name == "instanthmr_tiny_test" and cfg.loss.joints_3d == 1.0  # included defaults kept
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(None, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="must be a number"):
        load_config(None, ["optim.steps=many"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")


def test_masked_l1_ignores_masked_items():
    pred, target = torch.zeros(2, 3, 2), torch.ones(2, 3, 2)
    target[0, 0] = 100.0
    mask = torch.ones(2, 3, dtype=torch.bool)
    mask[0, 0] = False
    assert float(masked_l1(pred, target, mask)) == pytest.approx(1.0)
    assert float(masked_l1(pred, target, torch.zeros(2, 3, dtype=torch.bool))) == 0.0


def test_camera_losses_vanish_for_the_teacher_camera(shards):
    """The teacher's translation, written as a weak-perspective camera, must give zero camera losses."""
    ds = ShardDataset(shards, AugmentConfig(rot_prob=1.0, flip_prob=0.5))
    batch = {k: torch.stack([ds[i][k] for i in range(4)]) for k in ds[0]}
    t, box, f, pp = batch["cam_trans"], batch["crop_box"], batch["focal"], batch["principal_point"]
    s = 2 * f / (box[:, 2] * t[:, 2])
    d = box[:, :2] - pp
    weak = torch.stack([s, t[:, 0] - 2 * d[:, 0] / (box[:, 2] * s), t[:, 1] - 2 * d[:, 1] / (box[:, 2] * s)], 1)
    torch.testing.assert_close(weak_to_full(weak, box, f, pp), t, atol=1e-4, rtol=1e-5)
    # the same formula as the runtime's numpy version (principal point at the image centre)
    np.testing.assert_allclose(weak_to_full(weak, box, f, pp).numpy()[0], geometry.crop_cam_to_full(
        weak.numpy()[0], box.numpy()[0, :2], box.numpy()[0, 2], 2 * pp.numpy()[0], f.numpy()[0]), rtol=1e-4)
    pred = {"pred_cam": weak, "joints_3d": batch["joints_3d"], "joints_2d": batch["joints_2d"],
            "mhr_params": batch["mhr_params"], "shape_params": batch["shape_params"], "cam_trans": t}
    cfg = load_config(None)
    _, terms = distillation_loss(pred, batch, cfg.loss)
    assert terms["reprojection"] < 1e-4 and terms["cam_trans"] < 1e-5 and terms["joints_3d"] == 0.0


def test_sampler_splits_ranks_evenly_and_covers_everything():
    ranges = [range(0, 10), range(10, 13), range(13, 40)]
    per = [list(ShardBlockSampler(ranges, r, 3, seed=1, block_size=4)) for r in range(3)]
    assert len({len(p) for p in per}) == 1
    assert set().union(*map(set, per)) >= set(range(36))  # all but at most a short tail
    one = list(ShardBlockSampler(ranges, 0, 1, seed=1, block_size=5))
    assert sorted(one) == list(range(40))
    blocks = [one[i:i + 5] for i in range(0, 40, 5)]
    owner = [next(k for k, r in enumerate(ranges) if i in r) for i in range(40)]
    assert sum(len({owner[i] for i in b}) for b in blocks) <= len(blocks) + len(ranges)  # shard-local blocks
    s = ShardBlockSampler(ranges, 0, 1, seed=1, block_size=5)
    s.set_epoch(0, start=7)
    assert list(s) == one[7:]


def test_distillation_end_to_end(shards, tmp_path):
    from instanthmr.runtime.hmr import InstantHMR
    from instanthmr.training.export import export_onnx
    from instanthmr.training.model import load_checkpoint
    from instanthmr.training.trainer import Trainer

    trainer = Trainer(_cfg(shards, tmp_path / "run", "optim.steps=60"))
    hist = trainer.fit()
    assert len(hist) == 60 and trainer.step == 60
    first = {k: np.mean([h[k] for h in hist[:6]]) for k in hist[0] if isinstance(hist[0][k], float)}
    last = {k: np.mean([h[k] for h in hist[-6:]]) for k in first}
    assert last["loss"] < 0.6 * first["loss"], (first["loss"], last["loss"])
    for term in ("joints_2d", "reprojection", "joints_3d", "shape_params"):
        assert last[term] < 0.85 * first[term], (term, first[term], last[term])
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == 1 + 60 // 5

    onnx_path = tmp_path / "trained.onnx"
    export_onnx(load_checkpoint(tmp_path / "run" / "final.pt"), onnx_path)
    net = InstantHMR(onnx_path, device="cpu")
    img, inst = synthetic_person(np.random.default_rng(123))
    (pred,) = net.predict(img, inst["box"][None])
    assert pred.joints_3d_local.shape == (70, 3) and pred.joints_2d.shape == (70, 2)
    assert np.isfinite(pred.cam_trans).all() and pred.cam_trans[2] > 0
    # the trained network places the joints in the person's box far better than its centre does
    err = np.linalg.norm(pred.joints_2d - inst["joints_2d"], axis=1).mean()
    centre = geometry.box_center_size(inst["box"])[:2]
    base = np.linalg.norm(inst["joints_2d"] - np.array(centre), axis=1).mean()
    assert err < 0.8 * base, (err, base)


def test_resume_continues_where_it_stopped(shards, tmp_path):
    from instanthmr.training.model import read_checkpoint
    from instanthmr.training.trainer import Trainer

    Trainer(_cfg(shards, tmp_path, "optim.steps=4", "optim.ema_decay=0.9")).fit()
    ck = read_checkpoint(tmp_path / "last.pt")
    assert ck["step"] == 4 and "optimizer" in ck and "ema" in ck
    t2 = Trainer(_cfg(shards, tmp_path, "optim.steps=6", "optim.ema_decay=0.9"), resume="auto")
    assert t2.step == 4 and t2.ema.updates == 4
    assert len(t2.fit()) == 2 and read_checkpoint(tmp_path / "last.pt")["step"] == 6


def test_ddp_path_runs_under_a_gloo_group(shards, tmp_path, monkeypatch):
    import torch.distributed as dist

    from instanthmr.training.trainer import Trainer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1",
                 "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(k, v)
    try:
        t = Trainer(_cfg(shards, tmp_path, "optim.steps=2"))
        assert t.dist.distributed and isinstance(t.ddp, torch.nn.parallel.DistributedDataParallel)
        assert len(t.fit()) == 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_cli_errors_are_one_line(tmp_path, capsys):
    from instanthmr.cli.train import main

    assert main(["--config", "configs/train_smoke.yaml", "--set", f"data.train=[{tmp_path / 'nothing'}]",
                 "--set", f"run.out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nothing" in err and "\n" not in err
    assert main(["--set", "optim.bogus=1"]) == 2


def test_wholebody_head_is_trained_from_lifter_labels(tmp_path):
    from instanthmr.training.data.shards import ShardWriter, encode_context_crop
    from instanthmr.training.trainer import Trainer

    rng = np.random.default_rng(0)
    with ShardWriter(tmp_path / "wb", teacher="lifter_stub") as w:
        for i in range(8):
            img, inst = synthetic_person(rng)
            jpeg, ctx = encode_context_crop(img, inst["box"])
            wb = rng.uniform(-1, 1, (133, 3))
            w.add({"box": inst["box"], "image_size": (320, 240), "image_jpeg": jpeg, "context_box": ctx,
                   "joints_2d": inst["joints_2d"], "joints_3d_wholebody": wb / np.abs(wb).max(),
                   "joints_3d_wholebody_valid": np.arange(133) < 100})
            w.mark_done(str(i))
    def head_change(run: str, *extra: str) -> tuple[float, list]:
        t = Trainer(_cfg(tmp_path / "wb", tmp_path / run, "optim.steps=2", "optim.weight_decay=0",
                         "model.overrides={wholebody_head: true}", *extra))
        before = [q.detach().clone() for q in t.model.wholebody_head.parameters()]
        hist = t.fit()
        after = list(t.model.wholebody_head.parameters())
        return max(float((a.detach() - b).abs().max()) for a, b in zip(after, before)), hist

    moved, hist = head_change("run")
    assert all(h["wholebody"] > 0 for h in hist)
    assert all(h["joints_3d"] == 0.0 and h["mhr_params"] == 0.0 for h in hist)  # no such labels: masked out
    # the whole-body labels are what trains the head: with their loss weighted 0 it does not move at all
    still, _ = head_change("run0", "loss.wholebody=0")
    assert moved > 1e-5 and still == 0.0, (moved, still)


def test_mhr_consistency_term_trains_through_the_mhr_layer(shards, tmp_path):
    """loss.mhr_consistency decodes the predicted parameters through the MHR layer (here a toy rig with a
    keypoint regressor) and is part of the loss; without model.mhr_model it is refused in one line."""
    from test_mhr_layer import toy_assets

    from instanthmr.training.trainer import Trainer, TrainingError

    a = toy_assets()
    arrays = {k: getattr(a, k) for k in ("rest_vertices", "faces", "identity_blendshapes",
                                         "expression_blendshapes", "skin_indices", "skin_weights",
                                         "joint_parents", "joint_offsets", "joint_prerotations",
                                         "inverse_bind_pose", "parameter_transform")}
    reg = np.zeros((70, 127 + 127), np.float32)
    reg[np.arange(70), 127 + np.arange(70)] = 1.0  # keypoint k = skeleton joint k
    np.savez(tmp_path / "toy_mhr.npz", keypoint_regressor=reg, **arrays)

    with pytest.raises(TrainingError, match="needs model.mhr_model"):
        Trainer(_cfg(shards, tmp_path / "a", "optim.steps=2", "loss.mhr_consistency=1.0"))
    t = Trainer(_cfg(shards, tmp_path / "b", "optim.steps=3", "loss.mhr_consistency=1.0",
                     f"model.mhr_model={tmp_path / 'toy_mhr.npz'}"))
    logs = t.fit()
    assert all(np.isfinite(r["mhr_consistency"]) and r["mhr_consistency"] > 0 for r in logs)

    # the term alone (every other weight 0, no weight decay) trains the pose head through the MHR layer and
    # the keypoint heads it is compared with, and nothing it does not reach (the camera head)
    others = [f"loss.{k}=0" for k in ("joints_3d", "joints_2d", "reprojection", "cam_trans", "mhr_params",
                                      "shape_params")]
    t = Trainer(_cfg(shards, tmp_path / "c", "optim.steps=2", "optim.weight_decay=0", "loss.mhr_consistency=1.0",
                     f"model.mhr_model={tmp_path / 'toy_mhr.npz'}", *others))
    heads = {n: [q.detach().clone() for q in getattr(t.model, n).parameters()]
             for n in ("pose_head", "joint_heads", "camera_head")}
    t.fit()
    moved = {n: max(float((q.detach() - b).abs().max()) for q, b in zip(getattr(t.model, n).parameters(), before))
             for n, before in heads.items()}
    assert moved["pose_head"] > 1e-5 and moved["joint_heads"] > 1e-5 and moved["camera_head"] == 0.0, moved
