"""The demo's JSON for a fixed clip and box file is pinned (``tests/golden/demo_openpose12.json``, written by
the code before the package moved into floors): a refactor that changes what users get fails here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from instanthmr.cli import demo
from instanthmr.core.paths import STARTER_MODEL

GOLDEN = Path(__file__).parent / "golden"


def _close(a, b, path="") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        if a and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in np.ravel(np.array(a, object))):
            # pixels rounded to 0.01, metres to 1e-5; thread-count reductions move the last digit at most
            np.testing.assert_allclose(np.asarray(b, float), np.asarray(a, float), atol=0.03, rtol=0, err_msg=path)
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert b == pytest.approx(a, abs=0.03), path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_demo_json_matches_the_golden_run(shared_data, tmp_path):
    clip = shared_data / "videos" / "openpose_video.avi"
    if not clip.is_file():
        pytest.skip(f"{clip} not found")
    out = tmp_path / "run.json"
    rc = demo.main(["--video", str(clip), "--max-frames", "12", "--model", str(STARTER_MODEL),
                    "--detector", str(GOLDEN / "openpose12_boxes.json"), "--detector-stride", "3",
                    "--smooth", "causal", "--no-spawn", "--threads", "1", "--save-json", str(out),
                    "--no-ground"])  # the stages added since (grounded motion) add fields; the pinned ones stay
    assert rc == 0
    got = json.loads(out.read_text())
    want = json.loads((GOLDEN / "demo_openpose12.json").read_text())
    meta = {k: got["meta"][k] for k in want["meta"]}
    meta["units"] = {k: meta["units"][k] for k in want["meta"]["units"]}  # new fields bring units of their own
    _close(want["meta"], meta, "meta")
    _close(want["summary"], {k: got["summary"][k] for k in want["summary"]}, "summary")
    frames = [{k: v for k, v in f.items() if k != "timings"} for f in got["frames"]]
    _close(want["frames"], frames, "frames")
