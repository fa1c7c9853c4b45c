"""One MediaPipe model file, whichever runtime runs it: MediaPipe's own ``.tflite`` on LiteRT, or an ONNX copy
(``tools/convert_mediapipe.py``: the same graph, or its static int8 version) on ONNX Runtime's CPU provider.

Both take the model's own input (NHWC float32, ``(1, S, S, 3)``, values in [0, 1]) and return its outputs in
the ``.tflite``'s name order (``Identity``, ``Identity_1``, ...), which is the order MediaPipe's graphs index
them by, so the landmark code above them does not know which runs::

    model = open_model("models/mediapipe/hand_landmark_full.tflite")          # LiteRT
    model = open_model(landmark_model_path("hand_landmark_full", "int8"))     # ONNX Runtime, int8 (files.py)
    lms, presence, handedness, world = model(crop[None])
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from instanthmr.core import probe
from instanthmr.runtime.mediapipe.tflite import TFLiteModel, output_order
from instanthmr.runtime.session import ModelLoadError, OnnxModel

#: ONNX Runtime threads per MediaPipe ONNX model: the int8 hand model ran 4.4 ms with 1 thread and with 2
#: (2-core CPU, docs/offline.md): a second thread only burns the core the rest of the frame could use.
ONNX_THREADS = 1


def run_loop_threads(hands: bool = True, cpu_count: int | None = None) -> int:
    """Threads per LiteRT MediaPipe model when the run loop drives the MediaPipe path (the demo; unless
    ``--threads``; batch jobs set theirs per worker), at most 4. With ``hands``, every core but one: the loop's
    finishing thread runs each frame's hand passes (and body fit, outputs) beside the next frame's pose model
    and takes that core. Without, every core: little is left to overlap. On this 2-core CPU
    (tools/bench_mediapipe.py, docs/offline.md "Threads"): the default (hands, body fit) 0.57-0.61x MediaPipe
    Pose's median on one thread against 0.61-0.67x on two in the same runs, p95 0.99-1.07x against 1.17-1.30x;
    body only 0.54x on one thread, 0.35-0.38x on two."""
    n = os.cpu_count() if cpu_count is None else cpu_count
    return max(1, min(4, (n or 1) - (1 if hands else 0)))


class OnnxMediaPipeModel(OnnxModel):
    """A MediaPipe model converted to ONNX, with :class:`~instanthmr.runtime.mediapipe.tflite.TFLiteModel`'s
    interface: ``model(x) -> list[np.ndarray]`` in the ``.tflite``'s output order, ``input_size`` (pixels),
    ``outputs`` (the output names fetched). ``drop_outputs``: outputs not fetched (ONNX Runtime still runs their
    branch: the converter leaves such outputs out of the file, ``convert_mediapipe --drop``). CPU only: the
    int8 graphs are made for CPUs."""

    def __init__(self, path: str | Path, num_threads: int | None = None, drop_outputs: tuple[str, ...] = ()):
        super().__init__(path, device="cpu", intra_op_threads=num_threads or ONNX_THREADS, spinning=False)
        inputs = self.session.get_inputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
            raise ModelLoadError(f"{self.path}: not a MediaPipe model converted to ONNX (inputs "
                                 f"{[(i.name, i.shape) for i in inputs]}; expected one NHWC image, e.g. (1, 224, 224, 3))")
        self.input_size = int(shape[1])
        self._input = inputs[0].name
        self.outputs = sorted((n for n in self.output_names if n not in drop_outputs), key=output_order)
        self._span = f"invoke:{self.path.name.split('.')[0]}"  # the same span name as the .tflite's (core.probe)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        with probe.span(self._span):
            return self.session.run(self.outputs, {self._input: np.ascontiguousarray(x, np.float32)})


def open_model(path: str | Path, num_threads: int | None = None, drop_outputs: tuple[str, ...] = ()):
    """The runner for one MediaPipe model file, by its suffix: ``.onnx`` -> :class:`OnnxMediaPipeModel`
    (``num_threads`` default :data:`ONNX_THREADS`), else :class:`TFLiteModel` (default: up to 4 threads)."""
    if Path(path).suffix == ".onnx":
        return OnnxMediaPipeModel(path, num_threads, drop_outputs)
    return TFLiteModel(path, num_threads, drop_outputs)
