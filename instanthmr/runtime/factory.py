"""Which model runs, and the pipeline built around it: the model-choice policy as a library call.

    from instanthmr import create_pipeline
    pipe = create_pipeline()                        # models/instanthmr.onnx -> the Hub copy -> offline MediaPipe
    pipe = create_pipeline("starter", detector="boxes.json")
    pipe.model_source, pipe.why                     # what runs ("mediapipe" or the .onnx path) and why

The policy (``model="auto"``): a local ``models/instanthmr.onnx`` first, else the released network from the
Hugging Face Hub (downloaded once into its cache), else the offline MediaPipe path (BlazePose + hand landmarks
as MHR70, no body-model parameters; docs/offline.md), else the small starter network, each fallback with one
line that says why. ``"mediapipe"`` / ``"starter"`` pick an offline path by name, a path or
``hf:OWNER/REPO[/FILE][@REV]`` names a file. A random-init export (``random_init=True``, made by
``instanthmr.training.export.random_init_onnx``: training is a higher floor) is passed as ``model``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from instanthmr.core.paths import (
    DEFAULT_MODEL,
    MEDIAPIPE_MODEL_NAME,
    RELEASED_REPO_ID,
    RELEASED_WEIGHTS_LICENSE,
    REPO_ROOT,
    STARTER_MODEL,
    STARTER_MODEL_NAME,
    default_model,
)
from instanthmr.runtime.session import ModelLoadError, RuntimeOptions

#: detector_stride default with keypoint_crops: the detector still runs at least this often to find newcomers
#: (docs/temporal.md: 10 frames kept the crops as good as detecting every frame, 10x fewer calls).
KEYPOINT_DETECT_EVERY = 10
RANDOM_BANNER = ("WARNING: RANDOM WEIGHTS (--random-init): the network is untrained, its poses mean nothing. "
                 "This run only exercises the plumbing and measures speed.")


def display_path(path: Path) -> str:
    """``path`` relative to the checkout when inside it (shorter messages), else as given."""
    try:
        return str(Path(path).relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class PipelineSpec:
    """What to build: the model and everything around it. Units: ``det_confidence`` a score in [0, 1],
    ``detector_resolution`` pixels (a multiple of 32), ``detector_stride`` processed frames.

    ``model``: ``"auto"`` (the policy above), ``"mediapipe"``, ``"starter"``, a path to an InstantHMR ``.onnx``
    or ``"hf:OWNER/REPO[/FILE][@REV]"``. ``random_init``: ``model`` is a random-init export (results are
    meaningless; the run says so). ``detector``: a name, an ``.onnx`` export or a ``.json`` box file (``None``:
    rfdetr, or mediapipe on the MediaPipe path). ``detector_stride`` ``None``: 1, ``KEYPOINT_DETECT_EVERY``
    with ``keypoint_crops``, or the MediaPipe path's newcomer search interval. ``mhr_model`` / ``mhr_lod``: the
    MHR file ``mhr_only`` networks take their 3D keypoints from (only read when such a network runs).
    ``mediapipe_precision``: how the MediaPipe path's landmark models run, ``"int8"`` (the shipped ONNX copies)
    or ``"float"`` (MediaPipe's own files; :class:`~instanthmr.runtime.mediapipe.estimator.MediaPipeHMR`)."""

    model: str = "auto"
    random_init: bool = False
    device: str = "auto"
    detector: str | None = None
    detector_variant: str = "nano"
    detector_weights: str | None = None
    detector_resolution: int | None = None
    det_confidence: float = 0.5
    max_persons: int = 8
    detector_stride: int | None = None
    keypoint_crops: bool = False
    hands: bool = True
    batch_persons: bool = True
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    mhr_model: str | None = None
    mhr_lod: int | None = None
    mediapipe_precision: str = "int8"

    def validate(self, label=str) -> None:
        """The values alone, before anything loads: ``ValueError`` with one line naming the field as
        ``label(field)`` (the demo passes its flag names)."""
        for name in ("max_persons", "detector_stride", "detector_resolution"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{label(name)} must be 1 or more, got {value}")
        if not 0.0 <= self.det_confidence <= 1.0:  # NaN fails both comparisons
            raise ValueError(f"{label('det_confidence')} is a detection score in [0, 1], got {self.det_confidence}")
        from instanthmr.runtime.mediapipe.files import LANDMARK_PRECISIONS

        if self.mediapipe_precision not in LANDMARK_PRECISIONS:
            raise ValueError(f"{label('mediapipe_precision')} must be one of {', '.join(LANDMARK_PRECISIONS)}, "
                             f"got {self.mediapipe_precision!r}")
        if self.mhr_lod is not None and not 0 <= self.mhr_lod <= 6:
            raise ValueError(f"{label('mhr_lod')} is a level of detail from 0 (finest) to 6 (coarsest), "
                             f"got {self.mhr_lod}")
        if self.runtime.frames_in_flight > 1 and not self.keypoint_crops:
            raise ValueError(f"{label('frames_in_flight')} above 1 (also set by the cpu-live preset) needs "
                             f"{label('keypoint_crops')}, a network's crops from the latest finished frame's joints; "
                             "the MediaPipe path runs one frame at a time: choose another preset there")
        if self.model and self.model.startswith("hf:"):
            from instanthmr.runtime.hub import parse_hub_spec

            parse_hub_spec(self.model)  # a malformed hf: spec is a bad argument


@dataclass(frozen=True)
class Choice:
    """The policy's answer: ``model`` (``"mediapipe"`` or an ``.onnx`` path) and ``why`` (one line)."""

    model: Path | str
    why: str


def choose_model(spec: PipelineSpec, log=_stderr) -> Choice:
    """The model ``spec`` names, by the policy in the module docstring; the notes on the way go to ``log``
    (one line each). Raises :class:`ModelLoadError` (one line) when nothing can run."""
    from instanthmr.runtime import hub

    model = spec.model or "auto"
    if spec.random_init:
        if model in ("auto", MEDIAPIPE_MODEL_NAME, STARTER_MODEL_NAME):
            raise ModelLoadError("random_init needs the random-init export as model (made by "
                                 "instanthmr.training.export.random_init_onnx; the demo's --random-init does it)")
        return Choice(Path(model), "a random-init export (--random-init): poses are meaningless")

    def downloading(f):
        log(f"downloading {f} into {hub.hub_cache_dir()} (once; the released network is ~77 MB) ...")

    if model == MEDIAPIPE_MODEL_NAME:
        return Choice(MEDIAPIPE_MODEL_NAME, "asked for by name (--model mediapipe)")
    if model == STARTER_MODEL_NAME:
        return Choice(STARTER_MODEL, "asked for by name (--model starter)")
    if hub.is_hub_spec(model):
        got = hub.fetch(hub.parse_hub_spec(model), on_download=downloading)
        if got.note:
            log(f"note: {got.note}")
        return Choice(got.path, f"the Hugging Face Hub file {model}")
    if model != "auto":
        path = Path(model)
        if not path.is_file():
            raise ModelLoadError(f"InstantHMR model not found: {path}. check the --model path; for a plumbing run "
                                 "without weights use --random-init")
        return Choice(path, "the file given (--model)")
    found = hub.released_model(on_download=downloading)
    if found.path is not None:
        if found.note:
            log(f"note: {found.note}")
        return Choice(found.path, "the released network")
    from instanthmr.runtime.mediapipe.files import unavailable_reason

    offline = unavailable_reason()
    if offline is None:  # the offline default: as accurate as MediaPipe Pose (docs/offline.md)
        why = (f"note: released model not used: {found.note}; {hub.unavailable_hint()}; running the offline "
               "MediaPipe path: BlazePose (+ hand) landmarks as MHR70 2D and metric 3D, the MHR body fitted to "
               f"each track (docs/offline.md, docs/body_fit.md; --model {STARTER_MODEL_NAME} runs the small starter "
               "network)")
        log(why)
        return Choice(MEDIAPIPE_MODEL_NAME, why)
    path = default_model()
    if not path.is_file():
        raise ModelLoadError(f"InstantHMR model not found: {DEFAULT_MODEL} ({found.note}). Download the released "
                             f"instanthmr.onnx (see models/README.md): {hub.unavailable_hint()}; for a plumbing run "
                             "without weights use --random-init")
    why = (f"note: released model not used: {found.note}; {hub.unavailable_hint()}; the offline MediaPipe path "
           f"cannot run either ({offline}); running the offline starter model {display_path(path)} (much less "
           "accurate; see models/README.md)")
    log(why)
    return Choice(path, why)


def released_weights(model: Path | str) -> str | None:
    """One line when ``model`` is the released network (``models/instanthmr.onnx`` or its Hub copy): which
    file runs and that its weights are under the SAM License; ``None`` for any other file."""
    from instanthmr.runtime.hub import released_origin

    if model == MEDIAPIPE_MODEL_NAME:
        return None
    origin = released_origin(Path(model))
    if origin is None:
        return None
    where = "models/" if origin == "local" else f"Hugging Face Hub, {RELEASED_REPO_ID}"
    return f"weights: the released InstantHMR network ({where}), under the {RELEASED_WEIGHTS_LICENSE}"


def detector_stride(spec: PipelineSpec, model=None) -> int:
    """``spec.detector_stride``, or its default: 1, KEYPOINT_DETECT_EVERY with keypoint crops, or for the
    MediaPipe path (``model`` "mediapipe") how often its detector looks for newcomers (frames)."""
    if spec.detector_stride is not None:
        return spec.detector_stride
    if model == MEDIAPIPE_MODEL_NAME:
        from instanthmr.runtime.mediapipe.estimator import DETECT_EVERY

        return DETECT_EVERY
    return KEYPOINT_DETECT_EVERY if spec.keypoint_crops else 1


def mhr_for_network(spec: PipelineSpec) -> Path | None:
    """The MHR model file for networks that take their 3D keypoints from it (``mhr_only`` graphs): the
    ``mhr_model`` / ``mhr_lod`` file when one is given (loaded only if the network needs it)."""
    if spec.mhr_model is None:
        return None
    from instanthmr.body.mesh import resolve_mhr_model

    return resolve_mhr_model(spec.mhr_model, spec.mhr_lod)


def build_pipeline(spec: PipelineSpec, model: Path | str, run_loop: bool = False):
    """The pipeline for a chosen ``model``: the one place the pipeline classes are constructed. ``run_loop``:
    it is for :func:`instanthmr.runner.loop.run`, whose finishing thread runs the MediaPipe path's hand passes,
    so (unless ``runtime.threads``) the MediaPipe models take
    :func:`~instanthmr.runtime.mediapipe.models.run_loop_threads`; else LiteRT's default."""
    stride = detector_stride(spec, model)
    if model == MEDIAPIPE_MODEL_NAME:
        from instanthmr.runtime.mediapipe.estimator import mediapipe_pipeline
        from instanthmr.runtime.mediapipe.models import run_loop_threads

        return mediapipe_pipeline(detector=spec.detector or "mediapipe", hands=spec.hands, detect_every=stride,
                                  max_persons=spec.max_persons, det_confidence=spec.det_confidence,
                                  device=spec.device, detector_variant=spec.detector_variant,
                                  detector_weights=spec.detector_weights, detector_resolution=spec.detector_resolution,
                                  precision=spec.mediapipe_precision,
                                  num_threads=spec.runtime.threads or (run_loop_threads(spec.hands) if run_loop
                                                                       else None))
    from instanthmr.runtime.pipeline import PosePipeline

    runtime = spec.runtime  # with keypoint crops the tracking wrapper hides the detector (async_detector) itself
    return PosePipeline.from_files(
        model, device=spec.device, detector=spec.detector or "rfdetr", detector_variant=spec.detector_variant,
        det_confidence=spec.det_confidence, max_persons=spec.max_persons, detector_stride=stride,
        batch_persons=spec.batch_persons, detector_weights=spec.detector_weights,
        detector_resolution=spec.detector_resolution, runtime=runtime, mhr=mhr_for_network(spec),
        crops="keypoints" if spec.keypoint_crops else "boxes")


_SPEC_FIELDS = {f.name for f in fields(PipelineSpec)}


def create_pipeline(spec_or_model: PipelineSpec | str | Path = "auto", *, log=None, run_loop: bool = False,
                    **spec_fields):
    """A ready pipeline, by the model-choice policy (module docstring); ``spec_fields`` are
    :class:`PipelineSpec` fields (over the given spec's). ``log(line)`` gets each note on the way (default:
    stderr). ``run_loop``: the pipeline is for :func:`instanthmr.runner.loop.run` (:func:`build_pipeline`). The
    pipeline says what was chosen: ``.model_source`` (``"mediapipe"`` or the ``.onnx`` path), ``.why`` (one line),
    ``.spec``, ``.det_confidence``, ``.random_init``, ``.released`` (the licence line of the released weights, or
    None). Raises :class:`ModelLoadError` or ``ValueError`` (one line)."""
    unknown = sorted(set(spec_fields) - _SPEC_FIELDS)
    if unknown:
        raise TypeError(f"create_pipeline: unknown field(s) {unknown}; PipelineSpec has {sorted(_SPEC_FIELDS)}")
    if isinstance(spec_or_model, PipelineSpec):
        spec = replace(spec_or_model, **spec_fields)
    else:
        spec = PipelineSpec(model=str(spec_or_model), **spec_fields)
    spec.validate()
    choice = choose_model(spec, log or _stderr)
    pipeline = build_pipeline(spec, choice.model, run_loop)
    pipeline.spec, pipeline.model_source, pipeline.why = spec, choice.model, choice.why
    pipeline.det_confidence, pipeline.random_init = spec.det_confidence, spec.random_init
    pipeline.released = released_weights(choice.model)
    return pipeline


def pipeline_facts(pipeline) -> dict:
    """What a run reports about any pipeline (built by :func:`create_pipeline` or by hand): ``model``,
    ``mediapipe`` (the landmark path, which follows people itself), ``stride`` (frames), ``confidence``,
    ``random_init``, ``released``."""
    model = getattr(pipeline, "model_source", None)
    # the MediaPipe path follows people with their landmarks and looks for newcomers every stride frames
    mediapipe = model == MEDIAPIPE_MODEL_NAME or (model is None and pipeline.crops == "landmarks")
    if model is None:
        model = MEDIAPIPE_MODEL_NAME if mediapipe else getattr(pipeline.estimator, "path", pipeline.estimator.name)
    stride = pipeline.detector_stride
    confidence = getattr(pipeline, "det_confidence", None)
    if confidence is None:
        confidence = getattr(pipeline.detector, "confidence", None)
    return {"model": model, "mediapipe": mediapipe, "stride": int(stride), "confidence": confidence,
            "random_init": bool(getattr(pipeline, "random_init", False)),
            "released": getattr(pipeline, "released", None)}
