"""The LLM lifter's text protocol: normalisation, quantisation, prompt text (golden files) and parser.

Regenerate the golden files only on a deliberate protocol change:
``INSTANTHMR_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_lifter_protocol.py -k golden``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from instanthmr.teachers.lifter import (
    BIN_STEP_3D,
    JOINT_NAMES,
    LifterProtocolError,
    build_messages,
    denormalize_3d,
    dequantize,
    format_target,
    is_parsed,
    normalize_2d,
    normalize_3d,
    parse_output,
    quantize,
)

GOLDEN = Path(__file__).parent / "golden"


def fixed_sample() -> tuple[np.ndarray, np.ndarray]:
    """A deterministic closed-form person (no RNG): 3D in metres in camera axes and its 2D projection."""
    j = np.arange(133, dtype=np.float64)
    kp3d = np.stack([0.4 * np.sin(0.7 * j), 0.8 * np.cos(0.3 * j), 3.0 + 0.2 * np.sin(1.1 * j)], axis=-1)
    kp2d = 1000.0 * kp3d[:, :2] / kp3d[:, 2:] + np.array([640.0, 360.0])
    return kp3d, kp2d


def random_poses(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 133, 3)) * rng.uniform(0.2, 2.0, size=(n, 1, 1)) + rng.normal(size=(n, 1, 3))


# ------------------------------------------------------------------------------------------------
# Normalisation and quantisation, worked examples
# ------------------------------------------------------------------------------------------------


def test_normalize_3d_worked_example():
    kp = np.zeros((133, 3))
    kp[11] = [1.0, 0.0, 0.0]  # left hip
    kp[12] = [-1.0, 0.0, 2.0]  # right hip -> root (0, 0, 1)
    kp[0] = [0.0, -4.0, 1.0]  # nose 4 above the root: the largest |coordinate|
    kp[:] += [10.0, 20.0, 30.0]
    n, root, scale = normalize_3d(kp)
    np.testing.assert_allclose(root, [10.0, 20.0, 31.0])
    assert scale == pytest.approx(4.0)
    np.testing.assert_allclose(n[0], [0.0, -1.0, 0.0])
    np.testing.assert_allclose(n[11], [0.25, 0.0, -0.25])
    np.testing.assert_allclose((n[11] + n[12]) / 2, 0.0, atol=1e-12)  # mid-hip at the origin
    assert np.abs(n).max() == pytest.approx(1.0)
    np.testing.assert_allclose(denormalize_3d(n, root, scale), kp)


def test_normalize_3d_batched_idempotent_and_degenerate():
    poses = random_poses(4)
    n, root, scale = normalize_3d(poses)
    assert n.shape == (4, 133, 3) and root.shape == (4, 3) and scale.shape == (4,)
    n2, root2, scale2 = normalize_3d(n)
    np.testing.assert_allclose(n2, n, atol=1e-12)
    np.testing.assert_allclose(root2, 0.0, atol=1e-12)
    np.testing.assert_allclose(scale2, 1.0)
    np.testing.assert_allclose(denormalize_3d(n, root, scale), poses, atol=1e-12)
    flat, _, s = normalize_3d(np.ones((133, 3)))  # every joint at the root
    assert s == 0 and np.all(flat == 0)


def test_normalize_2d_worked_example():
    kp = np.zeros((133, 2))
    kp[:, 0] = 100.0
    kp[:, 1] = 50.0
    kp[0] = [300.0, 50.0]
    kp[1] = [100.0, 450.0]
    n = normalize_2d(kp)
    np.testing.assert_allclose(n[0], [1.0, 0.0])
    np.testing.assert_allclose(n[1], [0.0, 1.0])
    np.testing.assert_allclose(n[5], [0.0, 0.0])
    # An out-of-frame joint marked invalid does not stretch the box.
    kp[2] = [5000.0, 5000.0]
    valid = np.ones(133, bool)
    valid[2] = False
    np.testing.assert_allclose(normalize_2d(kp, valid)[0], [1.0, 0.0])
    # Zero extent along an axis maps to 0, not NaN.
    line = np.zeros((133, 2))
    line[:, 0] = np.arange(133)
    assert np.isfinite(normalize_2d(line)).all() and np.all(normalize_2d(line)[:, 1] == 0)
    with pytest.raises(LifterProtocolError):
        normalize_2d(kp, np.zeros(133, bool))


def test_quantize_worked_examples():
    q = quantize([-1.5, 1.5, 0.0, -7.0, 7.0, 3 / 255 - 1.5], -1.5, 1.5)
    assert q.tolist() == [0, 255, 128, 0, 255, 1]  # 0 -> 127.5 rounds half to even -> 128; clamped ends
    assert quantize([0.0, 1.0, 0.5, 0.2], 0.0, 1.0).tolist() == [0, 255, 128, 51]
    np.testing.assert_allclose(dequantize([0, 255, 128, 1], -1.5, 1.5), [-1.5, 1.5, 1.5 / 255, 3 / 255 - 1.5])
    assert quantize([0.5], 0, 1, bins=11).tolist() == [5]
    np.testing.assert_allclose(dequantize([5], 0, 1, bins=11), [0.5])


def test_shape_and_format_errors():
    with pytest.raises(LifterProtocolError, match="133"):
        normalize_3d(np.zeros((17, 3)))
    with pytest.raises(LifterProtocolError, match="133"):
        build_messages(np.zeros((133, 3)))
    with pytest.raises(LifterProtocolError, match="coord_format"):
        format_target(np.zeros((133, 3)), coord_format="tokens")
    with pytest.raises(LifterProtocolError, match="one person"):
        format_target(np.zeros((2, 133, 3)))


# ------------------------------------------------------------------------------------------------
# Round trip
# ------------------------------------------------------------------------------------------------


def test_round_trip_bins_within_bin_resolution():
    for pose in random_poses(5, seed=1):
        n, root, scale = normalize_3d(pose)
        parsed, mask, frac = parse_output(format_target(pose))
        assert mask.all() and frac == 1.0
        err = np.abs(parsed - n)
        assert err.max() <= BIN_STEP_3D / 2 + 1e-9  # rounding: at most half a bin (3/255 per bin)
        back = denormalize_3d(parsed, root, scale)
        assert np.abs(back - pose).max() <= scale * BIN_STEP_3D / 2 + 1e-9


def test_round_trip_decimal():
    for pose in random_poses(3, seed=2):
        n, root, scale = normalize_3d(pose)
        parsed, mask, frac = parse_output(format_target(pose, "decimal", decimals=4), "decimal")
        assert frac == 1.0
        assert np.abs(parsed - n).max() <= 0.5e-4 + 1e-12
        np.testing.assert_allclose(denormalize_3d(parsed, root, scale), pose, atol=scale * 1e-4)


# ------------------------------------------------------------------------------------------------
# Prompt text (golden files)
# ------------------------------------------------------------------------------------------------


def render_sample(coord_format: str) -> str:
    kp3d, kp2d = fixed_sample()
    system, user = build_messages(kp2d, coord_format)
    assert system["role"] == "system" and user["role"] == "user"
    return (f"### system\n{system['content']}\n### user\n{user['content']}\n"
            f"### assistant\n{format_target(kp3d, coord_format)}\n")


@pytest.mark.parametrize("coord_format, name", [("bins", "lifter_prompt.txt"), ("decimal", "lifter_prompt_decimal.txt")])
def test_prompt_matches_golden(coord_format, name):
    text = render_sample(coord_format)
    path = GOLDEN / name
    if os.environ.get("INSTANTHMR_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"prompt text changed; see {path}"


def test_prompt_structure():
    kp3d, kp2d = fixed_sample()
    system, user = build_messages(kp2d)
    lines = user["content"].split("\n")
    assert lines[0] == "Predict the 3D coordinates for these 2D whole-body keypoints:"
    assert len(lines) == 134
    assert [ln.split(":")[0] for ln in lines[1:]] == list(JOINT_NAMES)
    assert lines[1 + 23].startswith("face_0: ") and lines[-1].startswith("right_hand_20: ")
    assert all(0 <= int(v) <= 255 for ln in lines[1:] for v in ln.split(": ")[1].split())
    assert "joint_name: bx by bz" in system["content"]
    target = format_target(kp3d).split("\n")
    assert len(target) == 133 and all(len(t.split(": ")[1].split()) == 3 for t in target)
    dec = build_messages(kp2d, "decimal")[1]["content"].split("\n")
    assert dec[1].startswith("nose: 0.") and len(dec[1].split(": ")[1].split()[0]) == 5  # 0.xxx


# ------------------------------------------------------------------------------------------------
# Parser failure cases
# ------------------------------------------------------------------------------------------------


def full_target() -> tuple[str, np.ndarray]:
    kp3d, _ = fixed_sample()
    return format_target(kp3d), normalize_3d(kp3d)[0]


def test_parse_well_formed_with_chatter_and_fences():
    text, n = full_target()
    wrapped = "Sure! Here are the 3D coordinates:\n```\n" + text + "\n```\nLet me know if you need more."
    parsed, mask, frac = parse_output(wrapped)
    assert frac == 1.0 and mask.all()
    assert np.abs(parsed - n).max() <= BIN_STEP_3D / 2 + 1e-9


def test_parse_truncated():
    text, n = full_target()
    cut = text[: text.index("left_hand_0:")] + "left_hand_0: 12"  # cut mid-line by the token limit
    parsed, mask, frac = parse_output(cut)
    assert mask[:91].all() and not mask[91:].any()
    assert frac == pytest.approx(91 / 133) and is_parsed(frac)
    assert np.all(parsed[~mask] == 0)
    # A last line cut inside a number ("... 5" of "... 56") looks complete; drop_last_partial drops it.
    cut2 = text[: text.index("face_1:")] + "face_1: 100 120 5"
    _, m2, _ = parse_output(cut2)
    _, m3, _ = parse_output(cut2, drop_last_partial=True)
    assert m2[24] and not m3[24] and m3[:24].all()


def test_parse_garbled_lines_ignored():
    text = "\n".join([
        "nose: 10 20 30",  # good
        "left_eye: 10 20",  # two numbers
        "right_eye: 10 20 30 40",  # four numbers
        "left_ear: 10.5 20 30",  # not a bin
        "right_ear: 10 300 30",  # bin out of range
        "left_shoulder 10 20 30",  # no colon
        "elbow_of_doom: 1 2 3",  # unknown name
        "@@#$%^&*",
        "",
        "  - Right_Shoulder: (10, 20, 30),",  # bullets, case, brackets, commas: tolerated
        "left_hip:10 20 30",
    ])
    parsed, mask, frac = parse_output(text)
    idx = {n: i for i, n in enumerate(JOINT_NAMES)}
    assert set(np.flatnonzero(mask)) == {idx["nose"], idx["right_shoulder"], idx["left_hip"]}
    assert frac == pytest.approx(3 / 133) and not is_parsed(frac)
    np.testing.assert_allclose(parsed[idx["nose"]], dequantize([10, 20, 30], -1.5, 1.5))
    # Numbers never join across lines.
    _, m, _ = parse_output("nose: 1 2\n3\n")
    assert not m.any()


def test_parse_duplicates_first_wins():
    text = "nose: 0 0 0\nnose: 255 255 255\nleft_eye: 1 1 1\n"
    parsed, mask, frac = parse_output(text)
    np.testing.assert_allclose(parsed[0], [-1.5, -1.5, -1.5])
    assert mask.sum() == 2 and frac == pytest.approx(2 / 133)


def test_parse_empty_and_threshold():
    parsed, mask, frac = parse_output("")
    assert parsed.shape == (133, 3) and mask.shape == (133,) and frac == 0.0
    text, _ = full_target()
    lines = text.split("\n")
    _, _, f67 = parse_output("\n".join(lines[:67]))
    _, _, f66 = parse_output("\n".join(lines[:66]))
    assert is_parsed(f67) and not is_parsed(f66)  # 67/133 >= 50% > 66/133
    assert is_parsed(f66, min_fraction=0.4) and not is_parsed(f67, min_fraction=0.9)


def test_parse_decimal_format():
    text = "nose: -0.25 0.5 1\nleft_eye: .5 -.125 0.000\nright_eye: 1 2\n"
    parsed, mask, _ = parse_output(text, "decimal")
    np.testing.assert_allclose(parsed[0], [-0.25, 0.5, 1.0])
    np.testing.assert_allclose(parsed[1], [0.5, -0.125, 0.0])
    assert mask.sum() == 2
