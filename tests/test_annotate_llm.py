"""annotate_llm: input formats, canned model outputs -> shards, the tiny-LM generation path, resume, errors.

No download: the LM is a tiny random Llama written to a temp folder (``build_tiny_causal_lm``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in this file may touch the network

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from instanthmr.cli.annotate_llm import main  # noqa: E402
from instanthmr.teachers.lifter import format_target, normalize_3d  # noqa: E402
from instanthmr.teachers.lifter.llm import Generation  # noqa: E402
from instanthmr.training import annotate_llm  # noqa: E402
from instanthmr.training.annotate_llm import LifterJob  # noqa: E402
from instanthmr.training.data.shards import ShardReader, ShardWriter  # noqa: E402


def people_npz(path: Path, n: int = 4) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    kp3d = rng.normal(size=(n, 133, 3)) * 0.3 + [0, 0, 4.0]
    kp2d = 1000 * kp3d[..., :2] / kp3d[..., 2:] + 500
    valid = np.ones((n, 133), bool)
    valid[0, 23:91] = False  # no face for person 0
    np.savez(path, keys=np.array([f"p{i}" for i in range(n)]), kp2d=kp2d, kp2d_valid=valid)
    return path, kp3d


class CannedLM:
    """Stands in for LifterLM: returns fixed texts in order and records the prompts it was given."""

    def __init__(self, gens: list[Generation]):
        self.gens, self.seen = list(gens), []

    def generate(self, batch):
        self.seen += batch
        out, self.gens = self.gens[: len(batch)], self.gens[len(batch):]
        return out


def parse_args(fields) -> LifterJob:
    """The job these tests run: a small batch on the CPU, ``fields`` over it."""
    return LifterJob(**{"base_model": "unused", "batch_size": 2, "device": "cpu", "dtype": "float32",
                        "min_fraction": 0.5, **fields})


def test_canned_outputs_to_shards(tmp_path):
    inp, kp3d = people_npz(tmp_path / "people.npz")
    good = format_target(kp3d[0])
    lines = good.split("\n")
    truncated = "\n".join(lines[:100]) + "\nright_hand_9: 12 4"  # cut by the token limit
    garbled = "I cannot help with that.\n" + "\n".join(ln.replace(":", "") for ln in lines)
    duplicated = "\n".join(lines[:70] + ["nose: 0 0 0"] * 5)  # a loop repeating one line
    lm = CannedLM([Generation(good, 900, False), Generation(truncated, 2048, True),
                   Generation(garbled, 900, False), Generation(duplicated, 900, False)])
    out = tmp_path / "labels"
    s = annotate_llm.annotate(parse_args({"input": str(inp), "out": str(out)}), lm=lm)
    assert s["samples"] == 4 and s["parsed"] == 3 and s["parse_rate"] == 0.75 and s["truncated"] == 1
    assert s["mean_joints_parsed"] == pytest.approx((133 + 100 + 0 + 70) / 4)
    assert len(lm.seen) == 4 and lm.seen[0][1]["content"].startswith("Predict the 3D coordinates")
    r = ShardReader(out)
    assert len(r) == 3 and r.inputs == {"p0", "p1", "p2", "p3"}
    by_key = {inst["source"]: inst for inst in r}
    assert set(by_key) == {"p0", "p1", "p3"}  # the garbled answer gets no label
    p0, p1 = by_key["p0"], by_key["p1"]
    assert p0["teacher"] == "llm_lifter" and p0["joints_3d_wholebody_valid"].all()
    assert np.abs(p0["joints_3d_wholebody"] - normalize_3d(kp3d[0])[0]).max() <= 1.5 / 255 + 1e-6
    assert p1["joints_3d_wholebody_valid"].sum() == 100
    assert not p0["joints_2d_wholebody_valid"][23:91].any() and p0["joints_2d_wholebody_valid"][:23].all()
    p3 = by_key["p3"]  # duplicated "nose" lines: the first (well-formed) one wins
    assert p3["joints_3d_wholebody_valid"].sum() == 70
    np.testing.assert_allclose(p3["joints_3d_wholebody"][0], p0["joints_3d_wholebody"][0])
    raw = [json.loads(x) for x in (out / "raw-llm_lifter.jsonl").read_text().splitlines()]
    assert [x["key"] for x in raw] == ["p0", "p1", "p2", "p3"] and raw[2]["text"] == garbled
    assert raw[1]["truncated"] is True and raw[2]["parsed_fraction"] == 0.0
    # Resume: everything is done, the model is not called again.
    lm2 = CannedLM([])
    s2 = annotate_llm.annotate(parse_args({"input": str(inp), "out": str(out)}), lm=lm2)
    assert s2["samples"] == 0 and s2["skipped_done"] == 4 and lm2.seen == []


def test_input_formats(tmp_path):
    rng = np.random.default_rng(1)
    kp = rng.uniform(0, 500, size=(133, 3))
    kp[:, 2] = 0.9
    kp[100:, 2] = 0.1  # low score: missing
    (tmp_path / "list.json").write_text(json.dumps([{"key": "a", "keypoints": kp.tolist(), "image_size": [640, 480]}]))
    recs = annotate_llm.load_people(tmp_path / "list.json")
    assert recs[0]["key"] == "a" and recs[0]["valid"].sum() == 100
    coco = {"images": [{"id": 7, "width": 640, "height": 480, "file_name": "x.jpg"}],
            "annotations": [{"id": 3, "image_id": 7, "bbox": [10, 20, 100, 200],
                             "keypoints": kp[:17].ravel().tolist(), "foot_kpts": kp[17:23].ravel().tolist(),
                             "face_kpts": kp[23:91].ravel().tolist(), "lefthand_kpts": kp[91:112].ravel().tolist(),
                             "righthand_kpts": kp[112:].ravel().tolist()}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    c = annotate_llm.load_people(tmp_path / "coco.json")[0]
    np.testing.assert_allclose(c["kp2d"], kp[:, :2])
    assert c["key"] == "coco:7:3" and list(c["box"]) == [10, 20, 110, 220] and c["image_path"] == "x.jpg"
    # A shard folder holding only MHR70 2D (our own pipeline / SAM 3D Body teacher).
    with ShardWriter(tmp_path / "sam", teacher="sam3d_body") as w:
        w.add({"box": [0, 0, 10, 10], "image_size": [64, 64], "source": "img.jpg",
               "joints_2d": rng.uniform(0, 64, size=(70, 2))})
        w.mark_done("img.jpg")
    s = annotate_llm.load_people(tmp_path / "sam")[0]
    assert s["key"] == "img.jpg#000000" and s["valid"].sum() == 63 and not s["valid"][23:91].any()
    p = annotate_llm.prepare(s)
    assert np.isfinite(p["kp2d"]).all() and p["box"].shape == (4,)


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    assert main(["--input", str(tmp_path / "none.npz"), "--out", str(tmp_path / "o"),
                              "--base-model", "x"]) == 2
    assert "input not found" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", kp2d=np.zeros((2, 17, 2)))
    assert main(["--input", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "o"),
                              "--base-model", "x"]) == 2
    err = capsys.readouterr().err
    assert "133" in err and err.count("\n") == 1
    inp, _ = people_npz(tmp_path / "people.npz", 1)
    assert main(["--input", str(inp), "--out", str(tmp_path / "o"),
                              "--base-model", "someone/not-downloaded-model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot load base model 'someone/not-downloaded-model'") and err.count("\n") == 1


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from instanthmr.teachers.lifter.llm import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm"))


def test_tiny_lm_generation_path(tiny_lm, tmp_path, capsys):
    inp, _ = people_npz(tmp_path / "people.npz", 3)
    out = tmp_path / "labels"
    rc = main(["--input", str(inp), "--out", str(out), "--base-model", str(tiny_lm),
                            "--max-new-tokens", "6", "--batch-size", "2", "--device", "cpu"])
    assert rc == 0
    summary = capsys.readouterr().out
    assert "samples 3" in summary and "parse rate 0.0%" in summary and "time/sample" in summary
    raw = [json.loads(x) for x in (out / "raw-llm_lifter.jsonl").read_text().splitlines()]
    assert len(raw) == 3 and all(0 < r["new_tokens"] <= 6 for r in raw)
    assert all(r["truncated"] or r["new_tokens"] < 6 for r in raw)
    r = ShardReader(out)
    assert len(r) == 0 and r.inputs == {"p0", "p1", "p2"}  # all done, none labelled (a random LM)


def test_system_role_fallback(tiny_lm):
    from instanthmr.teachers.lifter import build_messages
    from instanthmr.teachers.lifter.llm import LifterLM

    lm = LifterLM.load(str(tiny_lm), device="cpu", max_new_tokens=2)
    msgs = build_messages(np.random.default_rng(0).normal(size=(133, 2)))
    assert lm.prompt_text(msgs).startswith("<|system|>\nYou are a 3D human pose")
    lm.tokenizer.chat_template = (  # a Mistral-like template that refuses a system turn
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "[INST] {{ m['content'] }} [/INST]{% endfor %}")
    text = lm.prompt_text(msgs)
    assert text.startswith("[INST] You are a 3D human pose") and "\n\nPredict the 3D coordinates" in text
    assert lm.system_in_user
