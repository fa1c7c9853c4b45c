"""One ``.tflite`` file on the LiteRT CPU interpreter (``ai-edge-litert``: numpy 2 ready, no torch)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from instanthmr.runtime.mediapipe.files import LITERT_REQUIREMENT, MediaPipeModelError

def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise MediaPipeModelError(f"the MediaPipe models need the TFLite interpreter: pip install "
                                  f"'{LITERT_REQUIREMENT}'") from None
    return Interpreter


class TFLiteModel:
    """One ``.tflite`` file on the LiteRT CPU interpreter; outputs are returned in the model's name order
    (``Identity``, ``Identity_1``, ...), which is the order MediaPipe's graphs index them by."""

    def __init__(self, path: str | Path, num_threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise MediaPipeModelError(f"model file not found: {self.path}")
        Interpreter = _interpreter_class()
        threads = num_threads or min(4, os.cpu_count() or 1)
        try:
            with _quiet_stderr():  # LiteRT prints an INFO line about its XNNPACK delegate on every load
                self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except Exception as e:  # the interpreter raises ValueError/RuntimeError for bad files
            raise MediaPipeModelError(f"{self.path}: not a loadable TFLite model ({str(e).strip()[:200]})") from None
        self.input = self.interpreter.get_input_details()[0]
        outs = self.interpreter.get_output_details()
        self.outputs = sorted(outs, key=lambda o: _output_order(o["name"]))
        self.input_size = int(self.input["shape"][1])

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(x, np.float32))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(o["index"]) for o in self.outputs]


class _quiet_stderr:
    """Silence the C-level stderr (file descriptor 2) inside a ``with`` block; Python exceptions still
    propagate with their messages."""

    def __enter__(self):
        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:  # no real fd 2 (some embedded consoles): nothing to silence
            self._saved = None
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)
        return False


def _output_order(name: str) -> tuple[int, str]:
    base, _, num = name.rpartition("_")
    return (int(num), name) if base and num.isdigit() else (0, name)
