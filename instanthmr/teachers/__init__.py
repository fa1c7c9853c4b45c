"""Floor 5, the teachers whose labels the network is distilled from: MediaPipe (``mediapipe``), SAM 3D Body
(``sam3d``), the LLM 2D-to-3D lifter (``lifter``)."""
