"""The LLM 2D-to-3D lifter used as an offline teacher for the 133-joint whole-body head.

``protocol`` (numpy only) is the text protocol the lifter was trained with; ``evaluate`` scores lifter
outputs against ground truth; ``distill`` (torch) holds the distillation loss for the fast network and is
not imported here so the protocol stays torch-free.
"""

from instanthmr.teachers.lifter.protocol import (
    BIN_STEP_3D,
    COORD_FORMATS,
    JOINT_NAMES,
    NUM_BINS,
    RANGE_2D,
    RANGE_3D,
    LifterProtocolError,
    build_messages,
    denormalize_3d,
    dequantize,
    format_input,
    format_target,
    is_parsed,
    normalize_2d,
    normalize_3d,
    parse_output,
    quantize,
    system_prompt,
)

__all__ = [
    "BIN_STEP_3D", "COORD_FORMATS", "JOINT_NAMES", "NUM_BINS", "RANGE_2D", "RANGE_3D", "LifterProtocolError",
    "build_messages", "denormalize_3d", "dequantize", "format_input", "format_target", "is_parsed",
    "normalize_2d", "normalize_3d", "parse_output", "quantize", "system_prompt",
]
