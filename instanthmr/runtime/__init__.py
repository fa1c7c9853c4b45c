"""Floor 2, numpy + OpenCV + ONNX Runtime: ONNX sessions, device choice and speed options (``session``), the
HMR network (``hmr``), the Hugging Face download of the released file (``hub``), person detectors and their
registry (``detector``), MediaPipe's models on LiteRT, its detector and the offline pose estimator built on them
(the ``mediapipe`` sub-package, one module per concern), a detector + an estimator on whole frames
(``pipeline``). Never imports torch at module import (the torch RF-DETR detector loads it when built)."""
