"""Floor 2, numpy + OpenCV + ONNX Runtime: ONNX sessions, device choice and speed options (``session``), the
HMR network (``hmr``), the Hugging Face download of the released file (``hub``), person detectors
(``detector``, ``mediapipe_detector``), MediaPipe's TFLite models on LiteRT (``mediapipe``) and the offline
per-person model built on them (``mediapipe_hmr``), detector + network on whole frames (``pipeline``). Never
imports torch at module import (the torch RF-DETR detector loads it when built)."""
