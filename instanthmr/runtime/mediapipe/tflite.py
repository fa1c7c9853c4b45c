"""One ``.tflite`` file on the LiteRT CPU interpreter (``ai-edge-litert``: numpy 2 ready, no torch)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from instanthmr.core import probe
from instanthmr.runtime.mediapipe.files import LITERT_REQUIREMENT, MediaPipeModelError

def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise MediaPipeModelError(f"the MediaPipe models need the TFLite interpreter: pip install "
                                  f"'{LITERT_REQUIREMENT}'") from None
    return Interpreter


def prune_outputs(model: bytes, drop: tuple[str, ...]) -> bytes:
    """A ``.tflite`` flatbuffer (``model``, bytes) without the outputs named in ``drop`` nor the operators that
    only they need: the interpreter runs every operator of a graph, read or not, so an output nobody reads
    still costs its whole branch. The other outputs are bit for bit the same (tested). Raises
    :class:`MediaPipeModelError` when an output in ``drop`` is not in the model."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    g = m.subgraphs[0]
    names = {int(i): g.tensors[i].name.decode() for i in g.outputs}
    missing = set(drop) - set(names.values())
    if missing:
        raise MediaPipeModelError(f"no output named {sorted(missing)} to leave out (outputs: {sorted(names.values())})")
    gone = {i for i, n in names.items() if n in drop}
    keep = [i for i in names if i not in gone]
    producer = {int(o): k for k, op in enumerate(g.operators) for o in op.outputs}
    needed, stack = set(), list(keep)
    while stack:  # the operators the kept outputs depend on
        k = producer.get(stack.pop())
        if k is not None and k not in needed:
            needed.add(k)
            stack += [int(i) for i in g.operators[k].inputs if i >= 0]
    g.operators = [op for k, op in enumerate(g.operators) if k in needed]
    g.outputs = np.array(keep, np.int32)
    for sig in m.signatureDefs or []:
        sig.outputs = [o for o in sig.outputs if o.tensorIndex not in gone]
    b = flatbuffers.Builder(len(model))
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


class TFLiteModel:
    """One ``.tflite`` file on the LiteRT CPU interpreter; outputs are returned in the model's name order
    (``Identity``, ``Identity_1``, ...), which is the order MediaPipe's graphs index them by. ``drop_outputs``:
    outputs nobody reads, left out with the work only they need (:func:`prune_outputs`)."""

    def __init__(self, path: str | Path, num_threads: int | None = None, drop_outputs: tuple[str, ...] = ()):
        self.path = Path(path)
        self._span = f"invoke:{self.path.stem}"  # the per-frame breakdown's name (core.probe)
        if not self.path.is_file():
            raise MediaPipeModelError(f"model file not found: {self.path}")
        Interpreter = _interpreter_class()
        threads = num_threads or min(4, os.cpu_count() or 1)
        self.num_threads = threads
        try:
            with _quiet_stderr():  # LiteRT prints an INFO line about its XNNPACK delegate on every load
                if drop_outputs:
                    content = prune_outputs(self.path.read_bytes(), tuple(drop_outputs))
                    self.interpreter = Interpreter(model_content=content, num_threads=threads)
                else:
                    self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except MediaPipeModelError as e:
            raise MediaPipeModelError(f"{self.path}: {e}") from None
        except Exception as e:  # the interpreter (and the flatbuffer reader) raise ValueError/RuntimeError/...
            raise MediaPipeModelError(f"{self.path}: not a loadable TFLite model ({str(e).strip()[:200]})") from None
        self.input = self.interpreter.get_input_details()[0]
        outs = self.interpreter.get_output_details()
        self.outputs = sorted(outs, key=lambda o: output_order(o["name"]))
        self.input_size = int(self.input["shape"][1])

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(x, np.float32))
        with probe.span(self._span):
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


def output_order(name: str) -> tuple[int, str]:
    """The sort key that puts a model's outputs in MediaPipe's order: ``Identity``, ``Identity_1``, ... ``_10``."""
    base, _, num = name.rpartition("_")
    return (int(num), name) if base and num.isdigit() else (0, name)
