"""Shared fixtures. Tests that need the shared media or MHR assets skip cleanly when they are absent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from instanthmr.paths import shared_data_dir, shared_mhr_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not (d / "SOURCES.tsv").exists():
        pytest.skip(f"shared media not found at {d} (set INSTANTHMR_DATA)")
    return d


@pytest.fixture(scope="session")
def mhr_dir() -> Path:
    d = shared_mhr_dir()
    if not (d / "samples").exists():
        pytest.skip(f"MHR assets not found at {d} (set INSTANTHMR_MHR)")
    return d
