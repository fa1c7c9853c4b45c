"""An offline person detector from MediaPipe's bundled BlazePose models, behind the detector interface.

Used when no RF-DETR checkpoint can be had (``create_detector("mediapipe")``, ``--detector mediapipe``, or
automatically when RF-DETR's weights are absent), and by the offline MediaPipe path
(:mod:`instanthmr.runtime.mediapipe.estimator`), which reuses the landmarks it computes for every person (they
travel with the boxes, ``Detections.landmarks``). It
needs only numpy, OpenCV and the ``ai-edge-litert`` interpreter; the model files come from PyPI's
``mediapipe==0.10.21`` wheel (``python tools/fetch_models.py mediapipe``). Boxes are tight full-body boxes
derived from the 33 BlazePose landmarks, like a person detector's; crowded scenes with many small people are
best-effort (see ``docs/offline.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from instanthmr.runtime.detector import Detections, PersonDetector, register_detector
from instanthmr.runtime.mediapipe.blazepose import BlazePoseLandmarker, BlazePosePeople, PersonPose, detection_views


class MediaPipeDetector(PersonDetector):
    """BlazePose person detector: ``detector(image_rgb) -> Detections`` (boxes in full-image pixels), each
    person's BlazePose landmarks (:class:`~instanthmr.runtime.mediapipe.PoseLandmarks`) in ``landmarks``.

    ``fast=True`` looks once at the whole letterboxed image (one person, ~10-30 ms on a laptop CPU);
    the default also scans overlapping tiles and re-detects with found people blanked out, for several
    people. ``landmarker``: a BlazePose landmark model already loaded (the estimator's), used instead of a
    second copy.
    """

    name = "mediapipe"

    def __init__(self, confidence: float = 0.5, max_persons: int | None = None, models_dir: str | Path | None = None,
                 fast: bool = False, num_threads: int | None = None, landmarker: BlazePoseLandmarker | None = None):
        super().__init__(confidence, max_persons)
        self.people = BlazePosePeople(models_dir, max_people=max_persons or 10, tiles=not fast,
                                      rounds=1 if fast else 2, det_threshold=confidence,
                                      num_threads=num_threads, landmarker=landmarker)

    @staticmethod
    def detections(people: list[PersonPose]) -> Detections:
        """People found by :class:`~instanthmr.runtime.mediapipe.BlazePosePeople` as boxes + landmarks."""
        if not people:
            return Detections.empty()
        return Detections(np.stack([p.box for p in people]), np.array([p.score for p in people], np.float32),
                          [p.pose for p in people])

    def detect(self, image_rgb: np.ndarray, frame_index: int | None = None) -> Detections:
        return self.detections(self.people(image_rgb))

    def detect_new(self, image_rgb: np.ndarray, known_boxes, frame_index: int | None = None) -> Detections:
        """People not already in ``known_boxes`` (``(K, 4)`` xyxy px, the people tracked): those are blanked
        out and skipped, so only newcomers get the landmark model. Score threshold and ``max_persons``
        apply as in :meth:`__call__`."""
        return self._newcomers(self.people(image_rgb, known_boxes))

    def detection_parts(self, image_wh) -> int:
        """One part per view the detector looks through (:func:`~instanthmr.runtime.mediapipe.blazepose.
        detection_views`: the whole frame, and overlapping squares along a wide or tall one)."""
        return len(detection_views(image_wh, self.people.tiles))

    def detect_new_part(self, image_rgb: np.ndarray, known_boxes, part: int,
                        frame_index: int | None = None) -> Detections:
        """Newcomers in view ``part`` only (see :meth:`detect_new`): about a quarter of a 16:9 frame's whole
        look (one detector pass, two when it finds someone, + the landmarks of whoever it finds)."""
        h, w = image_rgb.shape[:2]
        view = detection_views((w, h), self.people.tiles)[part]
        return self._newcomers(self.people(image_rgb, known_boxes, views=[view]))

    def _newcomers(self, people: list[PersonPose]) -> Detections:
        found = [p for p in people if p.score > self.confidence]
        if self.max_persons is not None:
            found = found[:max(0, int(self.max_persons))]
        return self.detections(found)


@register_detector("mediapipe")
def _build(source, *, confidence, max_persons, **_):
    return MediaPipeDetector(confidence, max_persons)
