"""InstantHMR: real-time monocular 3D human pose (70 MHR keypoints, body-model parameters, camera
translation) from a person detector and one small ONNX network.

The package is built in floors, each importing only those below it (docs/architecture.md; tests/test_layers.py
enforces it)::

    core      numpy only: skeletons, geometry, metrics, paths, errors
    body      the MHR body model (numpy forward; mhr_torch for training)
    runtime   numpy + OpenCV + ONNX Runtime: sessions, the HMR network, detectors, the frame pipeline
    video     sources, tracking, smoothing
    outputs   JSON / CSV / NPZ / BVH, the Rerun viewer, overlays
    runner    the run loop (RunConfig, run) and batch jobs, as library calls
    teachers  MediaPipe, SAM 3D Body, the LLM lifter
    training  torch: network, data, losses, trainer, export, quantisation
    cli       demo, doctor and every tool

The main names are importable from here, lazily (``import instanthmr`` loads no torch and no ONNX Runtime)::

    from instanthmr import PosePipeline, InstantHMR, HMRPrediction, FrameResult, RFDETRDetector
    from instanthmr import create_pipeline, PipelineSpec, run, RunConfig     # the model policy, the run loop

    pipe = create_pipeline("auto")                                                # local -> Hub -> offline
    pipe = PosePipeline.from_files("models/instanthmr.onnx", detector="rfdetr")   # parts built from files
    pipe = PosePipeline(create_detector("mediapipe"), load_hmr("models/instanthmr.onnx"))  # or composed
    pipe = mediapipe_pipeline()                                                    # the offline path
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "PosePipeline": "instanthmr.runtime.pipeline",
    "PoseEstimator": "instanthmr.runtime.pipeline",
    "FrameResult": "instanthmr.runtime.pipeline",
    "load_hmr": "instanthmr.runtime.pipeline",
    "InstantHMR": "instanthmr.runtime.hmr",
    "HMRPrediction": "instanthmr.runtime.hmr",
    "RFDETRDetector": "instanthmr.runtime.detector",
    "OnnxDetector": "instanthmr.runtime.detector",
    "Detections": "instanthmr.runtime.detector",
    "create_detector": "instanthmr.runtime.detector",
    "register_detector": "instanthmr.runtime.detector",
    "MediaPipeHMR": "instanthmr.runtime.mediapipe.estimator",
    "mediapipe_pipeline": "instanthmr.runtime.mediapipe.estimator",
    "ModelLoadError": "instanthmr.runtime.session",
    "RuntimeOptions": "instanthmr.runtime.session",
    "TrackingPipeline": "instanthmr.video.tracking",
    "create_pipeline": "instanthmr.runtime.factory",
    "PipelineSpec": "instanthmr.runtime.factory",
    "run": "instanthmr.runner.loop",
    "RunConfig": "instanthmr.runner.config",
    "RunReport": "instanthmr.runner.loop",
}
# The reference implementation's module-level names for the keypoint set (MHR70), as aliases.
_ALIASES = {"JOINT_NAMES": ("instanthmr.core.skeleton", "MHR70_NAMES"),
            "SKELETON_EDGES": ("instanthmr.core.skeleton", "MHR70_EDGES"),
            "NUM_JOINTS": ("instanthmr.core.skeleton", "NUM_MHR70")}
__all__ = sorted([*_LAZY, *_ALIASES]) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY or name in _ALIASES:
        module, attr = _ALIASES.get(name, (_LAZY.get(name), name))
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'instanthmr' has no attribute {name!r}")


def __dir__():
    return __all__
