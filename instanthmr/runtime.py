"""The one place that owns ONNX Runtime backend and device choice (rtmlib's ``BaseTool`` idea).

Every ONNX model in InstantHMR (the HMR network, the exported detector) subclasses :class:`OnnxModel`,
which opens the file, asks for the execution provider matching ``device`` with a CPU fallback, reports the
provider that really runs, and turns every way a file can be wrong into one :class:`ModelLoadError` that
names the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEVICES = ("auto", "cuda", "coreml", "cpu")
_PROVIDER_FOR_DEVICE = {
    "cuda": "CUDAExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


class ModelLoadError(RuntimeError):
    """A model file is missing, unreadable, not ONNX, or not the model that was expected."""


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def best_device() -> str:
    """``cuda`` if the CUDA provider is installed, else ``coreml`` on a Mac that has it, else ``cpu``."""
    avail = available_providers()
    for dev in ("cuda", "coreml"):
        if _PROVIDER_FOR_DEVICE[dev] in avail:
            return dev
    return "cpu"


def providers_for(device: str) -> list[str]:
    """Provider list for ``device``: the requested one (when installed) followed by the CPU fallback."""
    device = device.lower()
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    if device == "auto":
        device = best_device()
    wanted = _PROVIDER_FOR_DEVICE[device]
    avail = available_providers()
    providers = [wanted] if wanted in avail and wanted != "CPUExecutionProvider" else []
    return providers + ["CPUExecutionProvider"]


class OnnxModel:
    """An ONNX Runtime session on the best provider for ``device``, with clear load errors.

    Subclasses set ``expected_inputs`` / ``expected_outputs`` (names that must exist) and implement
    ``preprocess`` / ``__call__`` / ``postprocess``.
    """

    expected_inputs: tuple[str, ...] = ()
    expected_outputs: tuple[str, ...] = ()

    def __init__(self, onnx_path: str | Path, device: str = "auto", intra_op_threads: int = 0):
        import onnxruntime as ort

        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise ModelLoadError(f"model file not found: {self.path}")
        if hasattr(ort, "preload_dlls"):  # finds CUDA/cuDNN shipped in pip wheels (ORT >= 1.21)
            try:
                ort.preload_dlls()
            except Exception:  # best effort: a CPU-only machine has nothing to preload
                pass
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # keep provider-fallback chatter off the user's console
        if intra_op_threads:
            opts.intra_op_num_threads = intra_op_threads
        self.requested_device = device
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers_for(device))
        except Exception as e:  # ORT raises several exception types for bad files
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelLoadError(f"{self.path}: not a loadable ONNX model ({first_line[:200]})") from None
        self.provider = self.session.get_providers()[0]
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        missing_in = [n for n in self.expected_inputs if n not in self.input_names]
        missing_out = [n for n in self.expected_outputs if n not in self.output_names]
        if missing_in or missing_out:
            raise ModelLoadError(
                f"{self.path}: not a {type(self).__name__} model: missing inputs {missing_in} / outputs "
                f"{missing_out} (file has inputs {self.input_names}, outputs {self.output_names})")
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map or {})

    @property
    def device(self) -> str:
        """The device that really runs: ``cuda``, ``coreml`` or ``cpu``."""
        return {v: k for k, v in _PROVIDER_FOR_DEVICE.items()}.get(self.provider, self.provider)

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        return self.session.run(outputs, feeds)
