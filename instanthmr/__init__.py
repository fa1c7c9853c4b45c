"""InstantHMR: real-time monocular 3D human pose (70 MHR keypoints, body-model parameters, camera
translation) from a person detector and one small ONNX network.

Runtime modules (numpy + OpenCV + onnxruntime only): ``skeleton``, ``geometry``, ``metrics``, ``paths``,
``runtime``, ``inference``, ``detector`` (ONNX path), ``mp_detector``, ``pipeline``, ``tracking``,
``smoothing``, ``results_io``, ``visualizer``. Training, export and teachers (torch): ``instanthmr.model``,
``instanthmr.train``, ``instanthmr.data``, ``instanthmr.teachers``, ``instanthmr.lifter``, ``mhr_layer``.
"""

__version__ = "0.1.0"
