"""The text protocol of the LLM 2D-to-3D lifter: normalisation, quantisation, prompt, target and parser.

This must match, character for character, what the fine-tuned lifter (a LoRA adapter on a 3B Mistral
instruct model) was trained on; ``tests/golden/lifter_prompt*.txt`` freeze the prompt text.

Coordinate frames and units (all per person, 133 COCO-WholeBody joints in ``skeleton`` order):

- 3D normalised: root-centred at the midpoint of left_hip (11) and right_hip (12), then divided by the
  largest absolute coordinate over all joints and axes, so values lie in [-1, 1]; unitless. Axes are the
  input's (the project uses camera axes: X right, Y down, Z forward).
- 2D normalised: ``(kp2d - min) / (max - min)`` per axis over the person's keypoint bounding box, in [0, 1].
- On the wire, each value is either an integer bin in [0, 255] (``coord_format="bins"``; 3D range
  [-1.5, 1.5], 2D range [0, 1]) or a fixed-decimal string (``coord_format="decimal"``; LocLLM found decimal
  strings beat special location tokens).

numpy only: no torch here, the runtime and the annotation tool share it.
"""

from __future__ import annotations

import re

import numpy as np

from instanthmr.core.skeleton import COCO_WHOLEBODY_INDEX, COCO_WHOLEBODY_NAMES

JOINT_NAMES: tuple[str, ...] = COCO_WHOLEBODY_NAMES
NUM_JOINTS = len(JOINT_NAMES)  # 133
ROOT_JOINTS: tuple[int, int] = (COCO_WHOLEBODY_INDEX["left_hip"], COCO_WHOLEBODY_INDEX["right_hip"])

NUM_BINS = 256
RANGE_3D: tuple[float, float] = (-1.5, 1.5)  # normalised 3D fits in [-1, 1]; the margin absorbs drift
RANGE_2D: tuple[float, float] = (0.0, 1.0)
DEFAULT_DECIMALS = 3
COORD_FORMATS = ("bins", "decimal")
DEFAULT_MIN_FRACTION = 0.5  # an output "parses" when at least this fraction of joints is present

#: Resolution of one bin in normalised 3D units (3/255): the round-trip error bound per axis.
BIN_STEP_3D = (RANGE_3D[1] - RANGE_3D[0]) / (NUM_BINS - 1)

USER_HEADER = "Predict the 3D coordinates for these 2D whole-body keypoints:"

_SYSTEM_BINS = (
    "You are a 3D human pose estimation model. "
    "Given the 2D whole-body keypoints of one person (133 COCO-WholeBody joints: body, feet, face, "
    "left hand, right hand), predict the 3D coordinates of every joint.\n"
    "Input: one joint per line as `joint_name: bx by`, where bx and by are the 2D position normalised "
    "to the person's keypoint bounding box [0, 1] and quantised to integer bins 0-255.\n"
    "Output: one joint per line as `joint_name: bx by bz`, in the same order, where bx, by and bz are "
    "the 3D position centred on the mid-hip, scaled so that the largest absolute coordinate is 1, and "
    "quantised over [-1.5, 1.5] to integer bins 0-255. Output nothing else."
)

_SYSTEM_DECIMAL = (
    "You are a 3D human pose estimation model. "
    "Given the 2D whole-body keypoints of one person (133 COCO-WholeBody joints: body, feet, face, "
    "left hand, right hand), predict the 3D coordinates of every joint.\n"
    "Input: one joint per line as `joint_name: x y`, where x and y are the 2D position normalised "
    "to the person's keypoint bounding box, as decimals in [0, 1] with {d} digits after the point.\n"
    "Output: one joint per line as `joint_name: x y z`, in the same order, where x, y and z are "
    "the 3D position centred on the mid-hip and scaled so that the largest absolute coordinate is 1, "
    "as decimals with {d} digits after the point. Output nothing else."
)


class LifterProtocolError(ValueError):
    """Input that the protocol cannot encode (wrong shape, unknown format)."""


def _check_format(coord_format: str) -> None:
    if coord_format not in COORD_FORMATS:
        raise LifterProtocolError(f"coord_format must be one of {COORD_FORMATS}, got {coord_format!r}")


def _check_joints(a: np.ndarray, dims: int, what: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.shape[-2:] != (NUM_JOINTS, dims):
        raise LifterProtocolError(f"{what} must have shape (..., {NUM_JOINTS}, {dims}), got {a.shape}")
    return a


# ------------------------------------------------------------------------------------------------
# Normalisation
# ------------------------------------------------------------------------------------------------


def normalize_3d(kp3d) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Root-centre at the mid-hip and divide by the max absolute coordinate.

    ``kp3d (..., 133, 3)`` (any unit) -> ``(normalised (..., 133, 3), root (..., 3), scale (...))`` with
    ``kp3d == normalised * scale + root``. Idempotent: a normalised pose comes back unchanged.
    """
    k = _check_joints(kp3d, 3, "kp3d")
    root = k[..., list(ROOT_JOINTS), :].mean(axis=-2)
    centred = k - root[..., None, :]
    scale = np.abs(centred).max(axis=(-1, -2))
    safe = np.where(scale > 0, scale, 1.0)  # a degenerate (all-at-root) pose stays at zero
    return centred / safe[..., None, None], root, scale


def denormalize_3d(normalised, root, scale) -> np.ndarray:
    """Inverse of :func:`normalize_3d`: ``normalised * scale + root``."""
    n = np.asarray(normalised, dtype=np.float64)
    return n * np.asarray(scale, dtype=np.float64)[..., None, None] + np.asarray(root, dtype=np.float64)[..., None, :]


def normalize_2d(kp2d, valid=None) -> np.ndarray:
    """Map ``kp2d (..., 133, 2)`` pixels into the person's keypoint bounding box, [0, 1] per axis.

    ``valid (..., 133)`` (optional) restricts the box to those joints (invalid ones are still mapped with
    the same box). A zero-extent axis maps to 0.
    """
    k = _check_joints(kp2d, 2, "kp2d")
    if valid is None:
        lo, hi = k.min(axis=-2), k.max(axis=-2)
    else:
        v = np.broadcast_to(np.asarray(valid, bool)[..., None], k.shape)
        if not v.any(axis=(-1, -2)).all():
            raise LifterProtocolError("normalize_2d: a sample has no valid 2D keypoint")
        lo = np.where(v, k, np.inf).min(axis=-2)
        hi = np.where(v, k, -np.inf).max(axis=-2)
    extent = hi - lo
    return (k - lo[..., None, :]) / np.where(extent > 0, extent, 1.0)[..., None, :]


# ------------------------------------------------------------------------------------------------
# Quantisation
# ------------------------------------------------------------------------------------------------


def quantize(values, lo: float, hi: float, bins: int = NUM_BINS) -> np.ndarray:
    """``round((clamp(v, lo, hi) - lo) / (hi - lo) * (bins - 1))`` as int64 (round half to even)."""
    v = np.clip(np.asarray(values, dtype=np.float64), lo, hi)
    return np.rint((v - lo) / (hi - lo) * (bins - 1)).astype(np.int64)


def dequantize(indices, lo: float, hi: float, bins: int = NUM_BINS) -> np.ndarray:
    """Inverse of :func:`quantize`: ``lo + index / (bins - 1) * (hi - lo)``."""
    return lo + np.asarray(indices, dtype=np.float64) / (bins - 1) * (hi - lo)


# ------------------------------------------------------------------------------------------------
# Text
# ------------------------------------------------------------------------------------------------


def system_prompt(coord_format: str = "bins", decimals: int = DEFAULT_DECIMALS) -> str:
    """The system message the lifter was trained with, for the given coordinate format."""
    _check_format(coord_format)
    return _SYSTEM_BINS if coord_format == "bins" else _SYSTEM_DECIMAL.format(d=decimals)


def _format_lines(values: np.ndarray, coord_format: str, decimals: int) -> str:
    if coord_format == "bins":
        rows = (" ".join(str(int(b)) for b in row) for row in values)
    else:
        rows = (" ".join(f"{x:.{decimals}f}" for x in row) for row in values + 0.0)  # +0.0: no "-0.000" for 0
    return "\n".join(f"{name}: {row}" for name, row in zip(JOINT_NAMES, rows))


def format_input(kp2d, coord_format: str = "bins", decimals: int = DEFAULT_DECIMALS, valid=None) -> str:
    """The 133 ``joint_name: x y`` lines for one person's 2D keypoints in pixels (or any unit)."""
    _check_format(coord_format)
    n = normalize_2d(kp2d, valid)
    if n.ndim != 2:
        raise LifterProtocolError(f"format_input takes one person (133, 2), got {np.shape(kp2d)}")
    vals = quantize(n, *RANGE_2D) if coord_format == "bins" else n
    return _format_lines(vals, coord_format, decimals)


def build_messages(kp2d, coord_format: str = "bins", decimals: int = DEFAULT_DECIMALS, valid=None) -> list[dict]:
    """The chat messages ``[system, user]`` for one person's 2D keypoints ``(133, 2)``."""
    user = USER_HEADER + "\n" + format_input(kp2d, coord_format, decimals, valid)
    return [
        {"role": "system", "content": system_prompt(coord_format, decimals)},
        {"role": "user", "content": user},
    ]


def format_target(kp3d, coord_format: str = "bins", decimals: int = DEFAULT_DECIMALS) -> str:
    """The assistant text for one person's 3D keypoints ``(133, 3)``: normalised here first (so metric or
    already-normalised poses both work), then 133 ``joint_name: x y z`` lines."""
    _check_format(coord_format)
    n, _, _ = normalize_3d(kp3d)
    if n.ndim != 2:
        raise LifterProtocolError(f"format_target takes one person (133, 3), got {np.shape(kp3d)}")
    vals = quantize(n, *RANGE_3D) if coord_format == "bins" else n
    return _format_lines(vals, coord_format, decimals)


# ------------------------------------------------------------------------------------------------
# Parser
# ------------------------------------------------------------------------------------------------

# At most 9 digits before and 9 after the point: a real coordinate has a few, and bounded runs keep the
# regex linear in the text (an unbounded ``\d+\.?\d*`` backtracks quadratically over a long digit run) and
# ``int()`` far below Python's 4300-digit limit. Longer numbers make the line unparsable, like any garbage.
_NUM = r"[-+]?(?:\d{1,9}(?:\.\d{0,9})?|\.\d{1,9})"
# Tolerant: optional list bullets/quotes/backticks around the name, ':' or '=' after it, numbers separated
# by spaces and/or commas, optional brackets, trailing punctuation. Exactly three numbers per joint.
_LINE = re.compile(
    rf"[ \t\-*>`'\"]*([A-Za-z][A-Za-z0-9_]{{0,63}})[`'\"]?[ \t]*[:=][ \t]*[\[(]?[ \t]*"
    rf"({_NUM})[ \t,]+({_NUM})[ \t,]+({_NUM})[ \t]*[\])]?[ \t,;.`]*\r?",
    re.ASCII,  # \d is 0-9 only: int() and float() see nothing else
)
#: Longer lines are never a joint line (the longest well-formed one is well under 100 characters); skipping
#: them bounds the regex's work per line, whatever the model generated.
MAX_LINE_CHARS = 256


def parse_output(
    text: str,
    coord_format: str = "bins",
    drop_last_partial: bool = False,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Parse the lifter's generated text into normalised 3D joints.

    Returns ``(kp3d_normalised (133, 3) float64, mask (133,) bool, fraction)``: joints not found are 0 with
    mask False; ``fraction`` = found / 133. Lines with unknown names, the wrong count of numbers, numbers of
    more than 9 digits before or after the point, bins outside [0, 255], decimals outside ``RANGE_3D``
    ([-1.5, 1.5]: the normalised [-1, 1] plus its margin) or lines longer than ``MAX_LINE_CHARS`` are ignored;
    for a name given twice the first line wins. Time is linear in the length of ``text``, whatever it holds.
    ``drop_last_partial``: the generation was cut by the token limit, so a last line without a newline may
    hold a cut-off number and is dropped. Use :func:`is_parsed` to apply the "counts as parsed" threshold.
    """
    _check_format(coord_format)
    if drop_last_partial and text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    out = np.zeros((NUM_JOINTS, 3), dtype=np.float64)
    mask = np.zeros(NUM_JOINTS, dtype=bool)
    lo, hi = RANGE_3D
    for line in text.split("\n"):
        m = _LINE.fullmatch(line) if len(line) <= MAX_LINE_CHARS else None
        if m is None:
            continue
        j = COCO_WHOLEBODY_INDEX.get(m.group(1).lower())
        if j is None or mask[j]:
            continue
        raw = m.groups()[1:]
        if coord_format == "bins":
            if not all(r.isdigit() for r in raw):
                continue
            b = np.array([int(r) for r in raw])
            if (b < 0).any() or (b >= NUM_BINS).any():
                continue
            out[j] = dequantize(b, *RANGE_3D)
        else:
            v = np.array([float(r) for r in raw])
            if not (np.isfinite(v).all() and (v >= lo).all() and (v <= hi).all()):
                continue  # outside the normalised range [-1, 1] plus the protocol's margin: not a joint
            out[j] = v
        mask[j] = True
    return out, mask, float(mask.mean())


def is_parsed(fraction: float, min_fraction: float = DEFAULT_MIN_FRACTION) -> bool:
    """Whether an output with this parsed fraction counts as parsed (default: at least half the joints)."""
    return fraction >= min_fraction
