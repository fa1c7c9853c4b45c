"""InstantHMR: real-time monocular 3D human pose (70 MHR keypoints, body-model parameters, camera
translation) from a person detector and one small ONNX network.

Runtime modules (numpy + OpenCV + onnxruntime only): ``skeleton``, ``geometry``, ``metrics``, ``paths``,
``inference``, ``detector``, ``pipeline``. Training and export (torch): ``instanthmr.model``,
``instanthmr.train``.
"""

__version__ = "0.1.0"
