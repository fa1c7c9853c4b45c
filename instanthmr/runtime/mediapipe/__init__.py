"""MediaPipe's pretrained BlazePose / hand models, run offline without the MediaPipe package, by concern.

Why this exists: on a machine with no internet there is no RF-DETR checkpoint and no released
``instanthmr.onnx``, but the ``mediapipe==0.10.21`` wheel on PyPI bundles real pretrained TFLite models. That
wheel needs ``numpy<2``, so instead of importing MediaPipe we take three ``.tflite`` files out of it and run them
with the ``ai-edge-litert`` interpreter (numpy-2 ready, no torch), re-implementing the few graph calculators
around them. One module per concern, each importing only the ones above it:

* :mod:`~instanthmr.runtime.mediapipe.files`: the model files, their checksums, where they live, fetching them;
* :mod:`~instanthmr.runtime.mediapipe.tflite`: the LiteRT runner;
* :mod:`~instanthmr.runtime.mediapipe.regions`: rotated regions of interest, crops, weighted NMS;
* :mod:`~instanthmr.runtime.mediapipe.blazepose`: the person detector, the 33 landmarks, the multi-person search;
* :mod:`~instanthmr.runtime.mediapipe.hands`: the hand landmark model and finding a person's hands;
* :mod:`~instanthmr.runtime.mediapipe.conversion`: landmarks -> MHR70 2D / metric 3D / camera translation;
* :mod:`~instanthmr.runtime.mediapipe.detector`: ``MediaPipeDetector``, the registered ``"mediapipe"`` detector;
* :mod:`~instanthmr.runtime.mediapipe.estimator`: ``MediaPipeHMR``, the offline pose estimator, and
  ``mediapipe_pipeline()``, the composed pipeline.

This package's namespace re-exports the model-level names (files to conversion) for short imports; the
detector and the estimator are imported from their modules (they pull in the pipeline).
"""

from instanthmr.runtime.mediapipe.blazepose import (
    BLAZEPOSE33_INDEX,
    BLAZEPOSE33_NAMES,
    BlazePoseDetector,
    BlazePoseLandmarker,
    BlazePosePeople,
    PersonPose,
    PoseDetection,
    PoseLandmarks,
    detection_views,
    landmark_box,
    refine_from_heatmap,
    ssd_anchors,
)
from instanthmr.runtime.mediapipe.conversion import (
    MHR70_FROM_BLAZEPOSE,
    PREDICTED_MHR70,
    UNLABELLED_MHR70,
    MHR70Landmarks,
    mhr70_from_landmarks,
    solve_translation,
)
from instanthmr.runtime.mediapipe.files import (
    LITERT_REQUIREMENT,
    MEDIAPIPE_VERSION,
    MODEL_FILES,
    MediaPipeModelError,
    extract_mediapipe_models,
    fetch_mediapipe_models,
    mediapipe_models_dir,
    mediapipe_models_present,
    model_path,
    unavailable_reason,
)
from instanthmr.runtime.mediapipe.hands import (
    HandLandmarker,
    HandLandmarks,
    find_hands,
    hand_roi_from_landmarks,
    hand_roi_from_pose,
)
from instanthmr.runtime.mediapipe.regions import (
    Roi,
    crop_roi,
    normalize_radians,
    roi_from_alignment,
    sigmoid,
    weighted_nms,
)
from instanthmr.runtime.mediapipe.tflite import TFLiteModel

__all__ = [
    "BLAZEPOSE33_INDEX", "BLAZEPOSE33_NAMES", "BlazePoseDetector", "BlazePoseLandmarker", "BlazePosePeople",
    "PersonPose", "PoseDetection", "PoseLandmarks", "detection_views", "landmark_box", "refine_from_heatmap",
    "ssd_anchors", "MHR70_FROM_BLAZEPOSE", "PREDICTED_MHR70", "UNLABELLED_MHR70", "MHR70Landmarks",
    "mhr70_from_landmarks", "solve_translation", "LITERT_REQUIREMENT", "MEDIAPIPE_VERSION", "MODEL_FILES",
    "MediaPipeModelError", "extract_mediapipe_models", "fetch_mediapipe_models", "mediapipe_models_dir",
    "mediapipe_models_present", "model_path", "unavailable_reason", "HandLandmarker", "HandLandmarks", "find_hands",
    "hand_roi_from_landmarks", "hand_roi_from_pose", "Roi", "crop_roi", "normalize_radians", "roi_from_alignment",
    "sigmoid", "weighted_nms", "TFLiteModel",
]
