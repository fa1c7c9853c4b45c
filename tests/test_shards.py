"""Shard format: round trip, masks, atomic/resumable writing, parallel prefixes, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from instanthmr.training.data.shards import (
    FORMAT_VERSION,
    HEADER_KEY,
    ShardFormatError,
    ShardReader,
    ShardWriter,
    encode_context_crop,
    load_source_image,
    read_header,
)


def _inst(i: int, with_params: bool = True) -> dict:
    rng = np.random.default_rng(i)
    inst = {
        "source": f"img{i // 2}.jpg", "person_index": None,
        "box": [10.0 + i, 20.0, 110.0 + i, 220.0], "image_size": (640, 480),
        "intrinsics": np.array([[800, 0, 320], [0, 800, 240], [0, 0, 1]], float),
        "joints_3d": rng.normal(size=(70, 3)), "joints_2d": rng.uniform(0, 400, (70, 2)),
    }
    inst.pop("person_index")
    if with_params:
        inst["mhr_params"] = rng.normal(size=204)
        inst["cam_trans"] = np.array([0.1, 0.2, 5.0 + i])
    return inst


def test_round_trip_and_masks(tmp_path):
    insts = [_inst(i, with_params=i % 2 == 0) for i in range(5)]
    insts[1]["joints_2d_valid"] = np.arange(70) < 30
    insts[2]["joints_3d"][4] = np.nan  # a NaN from a teacher must come back invalid, not NaN
    with ShardWriter(tmp_path, teacher="unit", teacher_version="v0", shard_size=2) as w:
        for i, inst in enumerate(insts):
            w.add(inst)
            w.mark_done(f"in{i}")
    r = ShardReader(tmp_path)
    assert len(r) == 5 and len(r.paths) == 3  # flushed every 2 instances + remainder
    assert r.inputs == {f"in{i}" for i in range(5)}
    for i, inst in enumerate(insts):
        got = r[i]
        assert got["teacher"] == "unit" and got["teacher_version"] == "v0"
        assert got["source"] == inst["source"]
        np.testing.assert_allclose(got["box"], inst["box"])
        ok = got["joints_3d_valid"]
        np.testing.assert_allclose(got["joints_3d"][ok], np.asarray(inst["joints_3d"])[ok], rtol=1e-6)
        assert np.isfinite(got["joints_3d"]).all()
        assert bool(got["mhr_params_valid"]) == (i % 2 == 0)
        assert not got["shape_params_valid"] and got["shape_params"].shape == (45,)
        assert got["joints_3d_wholebody_valid"].shape == (133,) and not got["joints_3d_wholebody_valid"].any()
    assert r[1]["joints_2d_valid"].sum() == 30
    assert not r[2]["joints_3d_valid"][4] and r[2]["joints_3d_valid"].sum() == 69
    h = read_header(r.paths[0])
    assert h["format_version"] == FORMAT_VERSION and "joints_3d" in h["fields"]
    assert "shape_params" not in r.fields


def test_resume_after_crash_loses_nothing_and_duplicates_nothing(tmp_path):
    keys = [f"frame{i}" for i in range(7)]

    class Boom(RuntimeError):
        pass

    with pytest.raises(Boom):
        with ShardWriter(tmp_path, teacher="unit", shard_size=2) as w:
            for k in keys:
                w.add(_inst(len(w.done)))
                if k == "frame4":  # dies mid-input: frame4's instance must not be kept
                    raise Boom()
                w.mark_done(k)
    (tmp_path / "unit-000099.npz.tmp").write_bytes(b"half written")  # a killed write
    w = ShardWriter(tmp_path, teacher="unit", shard_size=2)
    assert w.done == {"frame0", "frame1", "frame2", "frame3"}
    assert not list(tmp_path.glob("*.tmp"))
    todo = [k for k in keys if not w.is_done(k)]
    assert todo == ["frame4", "frame5", "frame6"]
    for k in todo:
        w.add(_inst(0))
        w.mark_done(k)
    w.mark_done("empty_frame")  # no person found: still recorded as done
    w.close()
    r = ShardReader(tmp_path)
    assert len(r) == 7 and r.inputs == set(keys) | {"empty_frame"}
    # frames 0-3 wrote _inst(0..3) (box x1 10..13), the resumed frames _inst(0); the instance added for frame4
    # before the crash (x1 14) is gone
    assert sorted(float(r[i]["box"][0]) for i in range(len(r))) == [10, 10, 10, 10, 11, 12, 13]


def test_parallel_prefixes_share_a_folder(tmp_path):
    for part in range(3):
        with ShardWriter(tmp_path, teacher="unit", prefix=f"unit-part{part}of3-") as w:
            for i in range(part, 9, 3):
                w.add(_inst(i))
                w.mark_done(f"k{i}")
    r = ShardReader(tmp_path)
    assert len(r) == 9 and r.inputs == {f"k{i}" for i in range(9)}
    assert ShardWriter(tmp_path, teacher="unit", prefix="unit-part0of3-").done == r.inputs


def test_embedded_crop_maps_back_to_image_pixels(tmp_path):
    img = np.zeros((240, 320, 3), np.uint8)
    img[100:110, 150:160] = (255, 0, 0)  # a red square at image pixels x 150-159, y 100-109
    box = [120, 60, 200, 180]
    jpeg, ctx = encode_context_crop(img, box)
    with ShardWriter(tmp_path, teacher="unit") as w:
        w.add({"box": box, "image_size": (320, 240), "image_jpeg": jpeg, "context_box": ctx})
        w.mark_done("a")
    inst = ShardReader(tmp_path)[0]
    src, m = load_source_image(inst)
    ys, xs = np.nonzero((src[..., 0] > 128) & (src[..., 1] < 100))
    centre = m @ np.array([xs.mean(), ys.mean(), 1.0])
    np.testing.assert_allclose(centre, [154.5, 104.5], atol=1.0)


def test_bad_inputs_fail_clearly(tmp_path):
    w = ShardWriter(tmp_path, teacher="unit")
    with pytest.raises(ValueError, match="joints_3d"):
        w.add({"box": [0, 0, 1, 1], "image_size": (2, 2), "joints_3d": np.zeros((17, 3))})
    with pytest.raises(ValueError, match="unknown instance fields"):
        w.add({"box": [0, 0, 1, 1], "image_size": (2, 2), "keypoints": np.zeros(3)})
    with pytest.raises(ValueError, match="teacher name"):
        ShardWriter(tmp_path, teacher="bad name/")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ShardFormatError, match="junk.npz"):
        ShardReader(tmp_path)
    (tmp_path / "junk.npz").unlink()
    future = {"format": "instanthmr-shard", "format_version": FORMAT_VERSION + 1, "num_instances": 0}
    np.savez(tmp_path / "future.npz", **{HEADER_KEY: np.array(json.dumps(future))})
    with pytest.raises(ShardFormatError, match="newer"):
        ShardReader(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ShardReader(tmp_path / "nowhere")
