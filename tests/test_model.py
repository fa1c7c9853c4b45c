"""The torch network: registry, output contract, fusion, CLIFF camera, checkpoints (tiny config, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instanthmr.core.geometry import cliff_condition, crop_cam_to_full, default_focal
from instanthmr.core.skeleton import MHR70_NAMES
from instanthmr.training.model import (
    BODY_PART_GROUPS,
    OUTPUT_NAMES,
    PRED_CAM,
    WHOLEBODY_OUTPUT,
    CheckpointError,
    ModelConfig,
    PretrainedWeightsError,
    build_model,
    count_parameters,
    get_config,
    list_configs,
    load_checkpoint,
    output_names_for,
    query_count,
    save_checkpoint,
)
from instanthmr.training.model.random_init import randomize_

TINY = "instanthmr_tiny_test"


def _inputs(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(n, 3, 224, 224, generator=g)
    cliff = torch.stack([torch.rand(n, generator=g) - 0.5, torch.rand(n, generator=g) - 0.5,
                         torch.rand(n, generator=g) * 0.6 + 0.2], dim=1)
    return image, cliff


@pytest.fixture(scope="module")
def tiny():
    return randomize_(build_model(TINY), seed=1).eval()


def test_registry_has_named_configs():
    names = list_configs()
    for n in ("instanthmr_repvit_m1_5", "instanthmr_repvit_m1_1", "instanthmr_repvit_m0_9", TINY):
        assert n in names
    with pytest.raises(KeyError, match="unknown model config"):
        build_model("instanthmr_nope")
    with pytest.raises(ValueError, match="unknown model config keys"):
        build_model(TINY, not_a_field=1)
    with pytest.raises(ValueError, match="cliff_form"):
        build_model(TINY, cliff_form="weird")


def test_config_summaries_agree_with_the_built_networks():
    """query_count / output_names_for (used by tools/model_info.py without building) say what the network of
    every registered config has; each config builds the architecture it names."""
    archs = set()
    for name in list_configs():
        cfg = get_config(name)
        with torch.device("meta"):  # nothing allocated
            net = build_model(cfg)
        assert type(net).arch == cfg.arch and net.config.name == name
        assert query_count(cfg) == net.num_queries and output_names_for(cfg) == net.output_names
        archs.add(cfg.arch)
    assert archs == {"query9", "notebook"}
    assert query_count(get_config("instanthmr_repvit_m1_5")) == 9
    assert query_count(get_config("instanthmr_notebook_m2_3")) == 141


def test_default_model_builds_without_download():
    net = build_model()  # repvit_m1_5, no network access needed
    assert net.config.name == "instanthmr_repvit_m1_5" and net.config.backbone == "repvit_m1_5"
    feat = net.backbone(torch.zeros(1, 3, 224, 224))[-1]
    assert feat.shape == (1, 512, 7, 7)  # last stage, 49 tokens
    assert 14e6 < count_parameters(net) < 25e6


def test_body_part_groups_partition_mhr70():
    assert list(BODY_PART_GROUPS) == ["torso_head", "left_arm", "right_arm", "left_leg", "right_leg"]
    names = {k: {MHR70_NAMES[j] for j in v} for k, v in BODY_PART_GROUPS.items()}
    assert "left_wrist" in names["left_arm"] and "left_pinky_tip" in names["left_arm"]
    assert "right_heel" in names["right_leg"] and "nose" in names["torso_head"] and "neck" in names["torso_head"]
    assert sorted(j for g in BODY_PART_GROUPS.values() for j in g) == list(range(70))


def test_forward_output_contract(tiny):
    image, cliff = _inputs(3)
    with torch.no_grad():
        out = tiny(image, cliff)
    assert tiny.output_names == OUTPUT_NAMES
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes == {"mhr_params": (3, 204), "shape_params": (3, 45), "cam_trans": (3, 3),
                      "joints_2d": (3, 70, 2), "joints_3d": (3, 70, 3), PRED_CAM: (3, 3)}
    assert all(torch.isfinite(v).all() for v in out.values())
    # different people give different answers (the network looks at its inputs)
    assert (out["joints_3d"][0] - out["joints_3d"][1]).abs().max() > 1e-3
    assert (out[PRED_CAM][:, 0] > 0).all()  # weak-perspective scale is positive


def test_wholebody_head_is_optional():
    net = randomize_(build_model(TINY, wholebody_head=True)).eval()
    with torch.no_grad():
        out = net(*_inputs(2))
    assert net.output_names == OUTPUT_NAMES + (WHOLEBODY_OUTPUT,)
    assert out[WHOLEBODY_OUTPUT].shape == (2, 133, 3)


def test_samples_in_a_batch_are_independent(tiny):
    image, cliff = _inputs(4)
    with torch.no_grad():
        full = tiny(image, cliff)
        one = tiny(image[2:3], cliff[2:3])
    for k in OUTPUT_NAMES:
        torch.testing.assert_close(full[k][2:3], one[k], atol=1e-5, rtol=1e-5)


def test_fuse_keeps_outputs_and_refuses_training():
    net = randomize_(build_model(TINY), seed=3).eval()
    image, cliff = _inputs(2)
    with torch.no_grad():
        before = net(image, cliff)
        n_convs = sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
        net.fuse()
        after = net(image, cliff)
    assert n_convs > 0 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.backbone.modules())
    for k in OUTPUT_NAMES:
        torch.testing.assert_close(after[k], before[k], atol=1e-4, rtol=1e-4)
    assert net.fuse() is net  # idempotent
    with pytest.raises(RuntimeError, match="fused"):
        net.train()


@pytest.mark.parametrize("form", ["focal", "pixel"])
def test_cam_trans_is_cliff_full_frame_translation(form):
    """cam_trans equals the CLIFF formula applied to the network's own weak-perspective camera, on a real
    image geometry (for ``pixel`` form: a 16:9 image with the default focal, the form's assumption)."""
    net = randomize_(build_model(TINY, cliff_form=form), seed=2).eval()
    wh = (1280, 720)
    boxes = np.array([[100.0, 80.0, 400.0, 650.0], [900.0, 300.0, 1000.0, 500.0]])
    cliff = torch.from_numpy(cliff_condition(boxes, wh, form=form))
    with torch.no_grad():
        out = net(_inputs(2)[0], cliff)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = np.max(boxes[:, 2:] - boxes[:, :2], axis=1) * 1.2
    expected = crop_cam_to_full(out[PRED_CAM].numpy(), centre, side, wh, default_focal(wh))
    np.testing.assert_allclose(out["cam_trans"].numpy(), expected, rtol=1e-4, atol=1e-4)
    assert (out["cam_trans"][:, 2] > 0).all()


def test_half_model_keeps_camera_in_float32():
    net = randomize_(build_model(TINY)).eval().fuse().half()
    image, cliff = _inputs(2)
    with torch.no_grad():
        out = net(image.half(), cliff)
    assert out["cam_trans"].dtype == torch.float32 and out["joints_3d"].dtype == torch.float16
    assert torch.isfinite(out["cam_trans"]).all()


def test_checkpoint_roundtrip(tmp_path, tiny):
    path = save_checkpoint(tmp_path / "sub" / "ckpt.pt", tiny, step=1234, best_mpjpe=0.05)
    assert path.is_file() and not (tmp_path / "sub" / "ckpt.pt.tmp").exists()
    loaded = load_checkpoint(path)
    assert loaded.step == 1234 and loaded.checkpoint_extra["best_mpjpe"] == 0.05
    assert isinstance(loaded.config, ModelConfig) and loaded.config == tiny.config
    image, cliff = _inputs(2)
    with torch.no_grad():
        a, b = tiny(image, cliff), loaded(image, cliff)
    for k in OUTPUT_NAMES:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)


def test_checkpoint_errors(tmp_path, tiny):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": {}}, other)
    with pytest.raises(CheckpointError, match="not an InstantHMR checkpoint"):
        load_checkpoint(other)
    mismatched = tmp_path / "mismatch.pt"
    save_checkpoint(mismatched, tiny, step=0)
    ckpt = torch.load(mismatched, weights_only=True)
    ckpt["config"]["d_model"] = 128
    torch.save(ckpt, mismatched)
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(mismatched)
    fused = randomize_(build_model(TINY)).eval().fuse()
    with pytest.raises(CheckpointError, match="fused"):
        save_checkpoint(tmp_path / "fused.pt", fused, step=0)


def test_pretrained_backbone_from_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PretrainedWeightsError, match="not found"):
        build_model(TINY, pretrained_backbone=str(tmp_path / "nope.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save({"stem.conv1.c.weight": torch.zeros(1)}, wrong)
    with pytest.raises(PretrainedWeightsError, match="wrong.pth"):
        build_model(TINY, pretrained_backbone=str(wrong))


def test_pretrained_backbone_from_local_file(tmp_path):
    import timm

    cfg = build_model(TINY).config
    src = timm.create_model(cfg.backbone, pretrained=False, **cfg.backbone_kwargs)  # a classification model
    with torch.no_grad():
        for p in src.parameters():
            p.uniform_(-1, 1)
    torch.save(src.state_dict(), tmp_path / "w.pth")
    net = build_model(TINY, pretrained_backbone=str(tmp_path / "w.pth"))
    # every backbone weight, up to the last stage, is the file's (timm's feature wrapper names "stages.3"
    # "stages_3"); the classifier head is all the file has beyond them
    want = dict(src.named_parameters())
    got = {n.replace("stages_", "stages.", 1): p for n, p in net.backbone.named_parameters()}
    assert len(got) > 100 and set(want) - set(got) <= {n for n in want if n.startswith("head")}
    for name, param in got.items():
        torch.testing.assert_close(param, want[name], msg=name)


def test_pretrained_backbone_from_hub_fails_fast_offline(monkeypatch):
    from instanthmr.training.model import backbone

    monkeypatch.setattr(backbone, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(PretrainedWeightsError, match="unreachable"):
        build_model(TINY, pretrained_backbone="hub")
