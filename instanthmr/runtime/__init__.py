"""Floor 2, numpy + OpenCV + ONNX Runtime: ONNX sessions and device choice (``session``), the HMR network
(``hmr``), person detectors (``detector``, ``mediapipe_detector``), MediaPipe's TFLite models on LiteRT
(``mediapipe``), detector + network on whole frames (``pipeline``). Never imports torch at module import
(the torch RF-DETR detector loads it when built)."""
