"""Synthetic MHR people: exact labels, rendering inside the box, resumable shards (LOD 6, tiny images)."""

from __future__ import annotations

import numpy as np
import pytest
from test_mhr_layer import _converted

from instanthmr.body.mhr import MHRNumpy
from instanthmr.cli.synth_mhr import main
from instanthmr.training.data import synth_mhr
from instanthmr.training.data.synth_mhr import ParamPrior, synth_sample, write_synth_shards
from instanthmr.core import geometry
from instanthmr.core.skeleton import MHR70_INDEX
from instanthmr.training.data.shards import ShardReader
from instanthmr.training.mhr_losses import check_shards

SIZE = (160, 120)


@pytest.fixture(scope="module")
def model(mhr_dir):
    return MHRNumpy.from_npz(_converted(6, mhr_dir)[0])


@pytest.fixture(scope="module")
def prior(mhr_dir):
    return ParamPrior.from_paths([mhr_dir / "samples"])


def test_prior_from_real_samples(prior):
    assert prior.params.shape == (4, 204) and prior.shapes.shape == (4, 45)
    rng = np.random.default_rng(0)
    draws = np.stack([prior.sample(rng)[0] for _ in range(20)])
    assert np.isfinite(draws).all() and (draws[:, :3] == 0).all()
    assert draws[:, 4].std() > 1.0                  # heading spans the circle
    assert np.abs(draws[:, 6:130]).max() < 3.0       # joint angles stay in a plausible range


def test_rendered_person_sits_in_its_box(model, prior, monkeypatch):
    monkeypatch.setattr(synth_mhr, "background",
                        lambda rng, photos, size: (np.zeros((size[1], size[0], 3), np.uint8), ""))
    for seed in range(3):
        image, inst = synth_sample(model, prior, np.random.default_rng(seed), [], SIZE)
        painted = image.max(-1) > 0
        x1, y1, x2, y2 = inst["box"]
        ys, xs = np.nonzero(painted)
        assert xs.min() >= np.floor(x1) - 1 and xs.max() <= np.ceil(x2) + 1
        assert ys.min() >= np.floor(y1) - 1 and ys.max() <= np.ceil(y2) + 1
        assert painted[int(y1):int(y2) + 1, int(x1):int(x2) + 1].mean() > 0.15
        hips = inst["joints_2d"][[MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]].mean(0)
        assert painted[int(round(hips[1])), int(round(hips[0]))]          # the pelvis is covered by the body
        assert (inst["joints_3d"][:, 2] + inst["cam_trans"][2] > 0.5).all()  # in front of the camera


def test_shards_carry_exact_labels_and_resume(model, prior, tmp_path, mhr_dir):
    out = tmp_path / "synth"
    assert write_synth_shards(model, prior, out, 3, seed=1, photos=[], size=SIZE, shard_size=2) == 3
    assert write_synth_shards(model, prior, out, 5, seed=1, photos=[], size=SIZE, shard_size=2) == 2
    reader = ShardReader(out)
    assert len(reader) == 5 and len({reader[i]["source"] for i in range(5)}) == 5
    for i in range(5):
        inst = reader[i]
        for f in ("joints_3d", "joints_2d", "cam_trans", "mhr_params", "shape_params"):
            assert np.all(inst[f + "_valid"]), f
        k = inst["intrinsics"]
        proj = geometry.project_points(inst["joints_3d"] + inst["cam_trans"], k[0, 0], k[:2, 2])
        np.testing.assert_allclose(inst["joints_2d"], proj, atol=1e-3)
        assert inst["image_jpeg"] is not None and tuple(inst["image_size"]) == SIZE
    # the parameters reproduce the 3D keypoints through the layer (the teacher-data check passes)
    report = check_shards(model, out, threshold_mm=0.5)
    assert report.ok and report.checked == 5 and report.errors_mm.max() < 0.05, report.summary()
    # a prior can be fitted on shard sets too
    assert ParamPrior.from_paths([out]).params.shape == (5, 204)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--mhr-model", str(tmp_path / "none.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "none.npz: MHR model file not found" in capsys.readouterr().err
