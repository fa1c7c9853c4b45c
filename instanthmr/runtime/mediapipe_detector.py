"""An offline person detector from MediaPipe's bundled BlazePose models, behind the detector interface.

Used when no RF-DETR checkpoint can be had (``create_detector("mediapipe")``, ``--detector mediapipe``, or
automatically when RF-DETR's weights are absent). It needs only numpy, OpenCV and the ``ai-edge-litert``
interpreter; the model files come from PyPI's ``mediapipe==0.10.21`` wheel (``python tools/fetch_models.py
mediapipe``). Boxes are tight full-body boxes derived from the 33 BlazePose landmarks, like a person
detector's; crowded scenes with many small people are best-effort (see ``docs/offline.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from instanthmr.runtime.detector import Detections, PersonDetector
from instanthmr.runtime.mediapipe import BlazePosePeople, PersonPose


class MediaPipeDetector(PersonDetector):
    """BlazePose person detector: ``detector(image_rgb) -> Detections`` (boxes in full-image pixels).

    ``fast=True`` looks once at the whole letterboxed image (one person, ~10-30 ms on a laptop CPU);
    the default also scans overlapping tiles and re-detects with found people blanked out, for several
    people. The landmarks of the last call stay in ``last_people`` (the offline teacher reuses them).
    """

    name = "mediapipe"

    def __init__(self, confidence: float = 0.5, max_persons: int | None = None, models_dir: str | Path | None = None,
                 fast: bool = False, num_threads: int | None = None):
        super().__init__(confidence, max_persons)
        self.people = BlazePosePeople(models_dir, max_people=max_persons or 10, tiles=not fast,
                                      rounds=1 if fast else 2, det_threshold=confidence,
                                      num_threads=num_threads)
        self.last_people: list[PersonPose] = []

    def detect(self, image_rgb: np.ndarray, frame_index: int | None = None) -> Detections:
        self.last_people = self.people(image_rgb)
        if not self.last_people:
            return Detections.empty()
        return Detections(np.stack([p.box for p in self.last_people]),
                          np.array([p.score for p in self.last_people], np.float32))


def offline_fallback(reason: str, confidence: float = 0.5, max_persons: int | None = None
                     ) -> MediaPipeDetector | None:
    """The MediaPipe detector to use when RF-DETR cannot be loaded (``reason``), or None when the MediaPipe
    models or the LiteRT interpreter are not installed either. Says loudly which detector runs."""
    import logging

    from instanthmr.runtime.mediapipe import MediaPipeModelError, mediapipe_models_present

    if not mediapipe_models_present():
        return None
    try:
        det = MediaPipeDetector(confidence, max_persons)
    except MediaPipeModelError:
        return None
    first = reason.split(". ")[0]
    logging.getLogger("instanthmr").warning(
        "%s; using the offline MediaPipe person detector instead (weaker; see docs/offline.md)", first)
    return det
