"""The hand-gate measurement's bookkeeping (instanthmr/cli/eval_hand_gate.py): the recorder runs the real
``find_hands`` search rule through fake models, and the table counts drops and savings per gate."""

import numpy as np

from instanthmr.cli.eval_hand_gate import GATES, _Recorder, gate_table
from instanthmr.runtime.mediapipe.hands import HandLandmarks
from instanthmr.runtime.mediapipe.regions import Roi


class _Fake:
    """A hand model that finds a hand (presence ``score``) or not; counts its calls."""

    def __init__(self, score: float, found: bool):
        self.score, self.found, self.calls = score, found, 0

    def __call__(self, image, roi):
        self.calls += 1
        pts = np.stack([np.linspace(0, 20, 21), np.linspace(0, 30, 21)], -1).astype(np.float32)
        return HandLandmarks(pts, np.zeros((21, 3), np.float32), self.score, roi) if self.found else None


def test_recorder_counts_a_fresh_search_and_its_passes():
    image, roi = np.zeros((64, 64, 3), np.uint8), Roi(32.0, 32.0, 40.0, 0.0)
    for found, passes in ((True, 2), (False, 1)):  # a hand found is run again on its re-fitted crop
        full, lite = _Fake(0.9, found), _Fake(0.004, True)
        rec = _Recorder(full, lite)
        assert (rec.track(image, roi) is not None) == found
        assert rec.fresh == [(0.004, found, passes)] and rec.passes == full.calls == passes and lite.calls == 1


def test_gate_table_drops_and_savings():
    fresh = [(0.001, True, 2), (0.003, False, 1), (0.5, True, 2), (0.03, False, 1)]
    rows = gate_table(fresh, 8, (0.5,))
    by_gate = dict(zip(GATES, rows[2:]))
    # gate 0.002: the first search skipped: its hand (1 of 2) dropped, 2 of 8 passes saved, 4 lite halves paid
    assert by_gate[0.002] == "| 0.002 | 1 / 2 (50.0 %) | 1 / 4 | 2 / 8 (25 %) | +0 % |"
    assert by_gate[0.05].startswith("| 0.05 | 1 / 2 (50.0 %) | 3 / 4 | 4 / 8 (50 %) | +25 % |")
    assert by_gate[0.001].startswith("| 0.001 | 0 / 2 (0.0 %) | 0 / 4 |")
