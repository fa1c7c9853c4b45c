"""Error helpers shared by every floor."""

from __future__ import annotations


def first_line(error: BaseException, limit: int | None = 200) -> str:
    """An exception as one short line for a user-facing message: its first non-empty line (its type's name
    when it has no message), cut to ``limit`` characters."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:limit]
