"""One source through a pipeline into the outputs: :func:`run`, the loop the demo, batch jobs and user code share.

    from instanthmr import RunConfig, create_pipeline, run
    report = run(RunConfig(video="clip.mp4", save_json="out.json"))           # builds the pipeline it names
    report = run(RunConfig(image="photo.jpg"), pipeline=create_pipeline("starter"), stop=threading.Event())

Every output is written under a temporary name and renamed into place; the data files are complete, valid
files from the first frame on (docs/demo.md). Progress and the end-of-run lines go to stdout, warnings to
stderr, as the demo prints them.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from instanthmr.core import probe
from instanthmr.core.paths import STARTER_MODEL_NAME
from instanthmr.outputs.records import JOINT_ORDER, UNITS
from instanthmr.outputs.signals import StopSignals
from instanthmr.outputs.sinks import CsvSink, JsonSink, Outputs, RerunSink, TrackFileSink, VideoSink
from instanthmr.outputs.summary import Progress, print_run, source_summary
from instanthmr.runner.config import OUTPUT_FIELDS, RunConfig
from instanthmr.runner.finisher import FrameFinisher
from instanthmr.runtime.factory import RANDOM_BANNER, create_pipeline, pipeline_facts
from instanthmr.video.sources import open_source

#: Exit statuses (the demo's): done, bad input or model, bad arguments, nobody found in any frame; a run
#: stopped by a signal ends with 128 + its number (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP; a stop event: 130).
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NO_PERSONS = 0, 1, 2, 3


@dataclass
class RunReport:
    """What :func:`run` did. ``frames``: processed frames; ``people``: distinct track IDs (``tracks``);
    ``files``: output kind (json, csv, npz, video, rrd, bvh, gltf) -> paths written; ``status``: done |
    no_persons | stopped; ``exit_code``: the demo's (module constants); ``stopped_by``: the signal's name,
    ``"stop event"`` or ``""``; ``model``: what ran (``"mediapipe"`` or the ``.onnx`` path)."""

    frames: int = 0
    people: int = 0
    tracks: list[int] = field(default_factory=list)
    files: dict[str, list[Path]] = field(default_factory=dict)
    status: str = "done"
    exit_code: int = EXIT_OK
    stopped_by: str = ""
    model: str = ""
    summary: dict = field(default_factory=dict)


def _say(config: RunConfig, *line, **kw) -> None:
    """``print`` unless ``config.verbose`` is off (a batch worker: the manifest is its report)."""
    if config.verbose:
        print(*line, **kw)


def open_meshes(config: RunConfig, model=None):
    """The MHR mesh renderer when meshes were asked for, else None (one stderr line when the file is off).
    ``model``: the MHR model already read from the file ``config`` names (the body fit's): used as it is, so
    the file is read once a run."""
    if config.mhr_model is None and config.mhr_lod is None and not config.mhr_overlay:
        return None
    from instanthmr.body.mesh import MeshRenderer

    return MeshRenderer(model) if model is not None else MeshRenderer.open(config.mhr_model, config.mhr_lod)


def open_outputs(config: RunConfig, meta: dict, source, smooth: str, stop: StopSignals, ground=None,
                 body_fit=None) -> Outputs:
    """The sinks ``config`` asks for (older files at their paths stay until new ones replace them);
    ``ground``: the grounded-motion stage, run over the smoothed frames when smoothing is offline;
    ``body_fit``: the body-fit stage: its whole-track decision runs before offline smoothing and its joints
    are derived again from the smoothed bodies after it (bones of exactly one length), and its MHR
    model's meshes are drawn (and skinned into the .glb) when no other mesh file was asked for."""
    data, images = [], []
    try:
        if config.save_json:
            data.append(JsonSink(config.save_json, meta))
        if config.save_csv:
            data.append(CsvSink(config.save_csv, ground=ground is not None))
        if config.save_npz:
            data.append(TrackFileSink("npz", config.save_npz, source.fps))
        if config.save_bvh:
            data.append(TrackFileSink("bvh", config.save_bvh, source.fps, rig=config.rig, in_place=config.in_place))
        if config.save_gltf:
            data.append(TrackFileSink("gltf", config.save_gltf, source.fps, rig=config.rig, image_size=source.size,
                                      in_place=config.in_place))
        if config.out_video:
            images.append(VideoSink(config.out_video, source.output_fps, source.size, config.mhr_overlay))
        if config.save_rrd or config.viewer:
            images.append(RerunSink(spawn=config.viewer, save_path=config.save_rrd, mesh_overlay=config.mhr_overlay))
    except BaseException:
        for sink in data + images:
            sink.discard()
        raise
    fitted = None if body_fit is None else body_fit.model    # read from the same file: not read again
    mesh = open_meshes(config, fitted) if images or config.save_gltf else None
    if mesh is None and fitted is not None and (images or config.save_gltf):
        from instanthmr.body.mesh import MeshRenderer

        mesh = MeshRenderer(fitted)
    for sink in data:
        if sink.kind == "gltf" and mesh is not None:
            sink.options["mhr_model"] = mesh.model  # the skinned MHR body in the .glb
    if not images and not config.save_gltf and (config.mhr_model or config.mhr_lod is not None or config.mhr_overlay):
        _say(config, "[mhr] meshes need the viewer, --save-rrd, --out-video or --save-gltf; none of them is on",
                     file=sys.stderr)
    # source.fps, not the output fps: frame indices count source frames (frame_skip leaves gaps).
    return Outputs(data, images, mesh, offline_fps=source.fps if smooth == "offline" else None, stop=stop,
                   extra=lambda: source_summary(source),
                   before_smoothing=body_fit.finish if body_fit is not None and smooth == "offline" else None,
                   after_smoothing=_in_turn(None if body_fit is None else body_fit.rederive,
                                            None if ground is None else ground.offline) if smooth == "offline" else None)


def _in_turn(*passes):
    """One pass over a run's frames (a list of results -> a new list) that applies each of ``passes`` given
    (not None) in order; None when none is."""
    given = [p for p in passes if p is not None]
    if not given:
        return None

    def apply(frames):
        for p in given:
            frames = p(frames)
        return frames

    return apply


def camera_focal(config: RunConfig, pipeline, image_wh) -> tuple[float | None, float, str]:
    """``(focal given to the pipeline or None, focal used px, source)`` from ``focal_length`` / ``fov``;
    source "given" or "default" (the estimator's assumption, the image diagonal: a guess; the ground stage may
    then measure it: ``focal_estimate_px`` in the frames' ``ground``). A focal the network cannot use raises
    ``ValueError`` (one line) before any frame."""
    from instanthmr.core.geometry import default_focal, focal_from_fov

    given = config.focal_length if config.focal_length is not None else (
        focal_from_fov(config.fov, image_wh) if config.fov is not None else None)
    estimator = pipeline.estimator
    used = estimator.camera_focal(image_wh, given) if hasattr(estimator, "camera_focal") else (
        default_focal(image_wh) if given is None else float(given))
    return given, float(used), "given" if given is not None else "default"


def open_body_fit(config: RunConfig, mediapipe: bool, smooth: str):
    """The per-track MHR body fit (:mod:`instanthmr.video.body_fit`), or None: :meth:`RunConfig.fits_body`
    (``body_fit``, else the speed preset's, else on for the MediaPipe path); ``mhr_model`` picks the body model
    (default: the shipped LOD 6). Offline smoothing keeps each track's frames for the whole-track decisions."""
    if not config.fits_body(mediapipe):
        return None
    from instanthmr.body.mesh import read_mhr_model
    from instanthmr.body.mhr import MHRAssetError
    from instanthmr.video.body_fit import BodyFitStage

    try:
        model = read_mhr_model(config.mhr_model, config.mhr_lod)   # the meshes reuse it (open_outputs)
        return BodyFitStage(model, keep_history=smooth == "offline")
    except (MHRAssetError, ValueError) as exc:
        _say(config, f"[body fit] off: {exc}", file=sys.stderr)
        return None


def ground_stage(config: RunConfig, source, photos: bool, focal_given: bool):
    """The grounded-motion stage (video/ground_stage.py), or None for photos and with ``ground`` off; it
    estimates the focal length's depth stretch unless the focal or the floor was given."""
    if not config.ground or photos or source.kind == "image":
        return None
    from instanthmr.video.ground import Floor
    from instanthmr.video.ground_stage import GroundStage

    return GroundStage(source.fps, floor=Floor.parse(config.floor) if config.floor else None,
                       estimate_focal=not focal_given)


def open_stream(config: RunConfig, source):
    """``stream="vmc[:HOST:PORT]"``: the live VMC sender (its own thread; never blocks the run), or None. A
    video file is streamed on its own clock (real time, however fast it is processed)."""
    if not config.stream:
        return None
    from instanthmr.outputs.vmc import VMCStreamer, parse_target

    host, port = parse_target(config.stream)
    _say(config, f"streaming: VMC to {host}:{port}")
    return VMCStreamer(host, port, realtime=source.kind == "video", in_place=config.in_place)


def open_config_source(config: RunConfig, max_frames: int | None):
    return open_source(config.image, config.video, config.camera, frame_skip=config.frame_skip, max_frames=max_frames)


def draw_offline(config: RunConfig, outputs: Outputs, quiet: bool) -> None:
    """Offline smoothing: decode the source again and draw the image outputs from the smoothed results
    (frames are not kept in memory)."""
    n = outputs.frames
    again = open_config_source(config, n)
    progress = Progress(n, "offline outputs", quiet=quiet)
    try:
        outputs.replay(again, progress)
    finally:
        progress.finish()
        again.close()


def _describe(config: RunConfig, source, pipeline, facts: dict, smooth: str, focal: tuple, ground) -> dict:
    """Print what runs (source, model, tracking, camera and ground) and return the JSON's ``meta``;
    ``focal``: :func:`camera_focal`'s answer; ``ground``: the stage or None."""
    det_desc = getattr(pipeline.detector, "variant", "")
    stride = facts["stride"]
    crops = (f"each person's next region from their landmarks (MediaPipe's rule), detector every {stride} "
             "frame(s) for newcomers" if facts["mediapipe"] else
             f"keypoint crops, detector at least every {stride} frame(s)" if pipeline.crops == "keypoints"
             else f"detector every {stride} frame(s), boxes reused between")
    _say(config, f"source: {source.kind} {source.name} ({source.size[0]}x{source.size[1]}, "
                 f"{source.expected_frames if source.expected_frames is not None else '?'} frame(s) to process)")
    what = pipeline.estimator.describe()
    _say(config, f"model: {what}; detector: {pipeline.detector.name} {det_desc} "
                 f"(stride {stride}, confidence {facts['confidence']})")
    if facts["released"]:
        _say(config, facts["released"])
    _say(config, f"tracking: {crops}; smoothing: {smooth}"
                 + (" (outputs are written after the whole video)" if smooth == "offline" else ""))
    _, focal_used, focal_source = focal
    guess = ", the image diagonal: a guess; --focal-length or --fov if known" if focal_source == "default" else ""
    floor = ("off" if ground is None else "floor given (--floor)" if config.floor else
             "floor estimated from the people's feet" + (", two-sided" if smooth == "offline" else ""))
    _say(config, f"camera: focal {focal_used:.0f} px ({focal_source}{guess}); ground: {floor}")
    return {"source": config.source_name, "source_kind": source.kind,
            "image_size": list(source.size), "fps": source.output_fps, "source_fps": source.fps,
            "frame_skip": config.frame_skip,
            "model": str(facts["model"]), "random_init": facts["random_init"], "provider": pipeline.estimator.provider,
            "detector": pipeline.detector.name, "detector_variant": det_desc,
            "detector_stride": stride, "det_confidence": facts["confidence"],
            "keypoint_crops": pipeline.crops == "keypoints", "smooth": smooth, "units": UNITS,
            "joint_order": JOINT_ORDER, "focal_length_px": round(focal_used, 3), "focal_source": focal_source,
            "ground": None if ground is None else {"floor_source": "given" if config.floor else "estimated",
                                                   "focal_estimation": ground.estimate_focal}}


class _StopEvent(Exception):
    """The caller's stop event was set: the run ends like an interruption (frames done so far are kept)."""


def run(config: RunConfig, pipeline=None, stop=None, source=None) -> RunReport:
    """Run ``config``'s source through ``pipeline`` into its outputs; the :class:`RunReport`.

    ``pipeline``: a built pipeline (reset here: nothing carries over from an earlier source; left open), else
    the one ``config.pipeline`` names is built (after the source opens; closed at the end). ``stop``: a
    ``threading.Event`` (checked between frames; when set the run ends with the frames done so far, status
    "stopped"), an ``outputs.signals.StopSignals`` (the demo's signal handling), or None. ``source``: an open
    ``video.sources.FrameSource`` to take the frames from instead of opening ``config``'s (closed at the end;
    e.g. frames decoded beforehand, so a benchmark times the loop without decoding). Raises the one-line
    errors of a bad source, model or output (``SourceError``, ``ModelLoadError``, ``ResultsWriteError``,
    ``ValueError``) and does not validate ``config`` (call ``config.validate()`` first). ``config.focal_length``
    (or ``fov``) is set on the pipeline for this run only."""
    from instanthmr.runtime.mediapipe.estimator import TrackHands
    from instanthmr.video.smoothing import OneEuroSmoother
    from instanthmr.video.tracking import TrackingPipeline, smooth_causal

    event = stop if stop is not None and hasattr(stop, "is_set") else None
    signals = stop if isinstance(stop, StopSignals) else StopSignals(signals=())  # no handlers of its own
    smooth = config.smoothing()
    source = source if source is not None else open_config_source(config, config.max_frames)
    photos = source.kind == "images"  # unrelated photos: no boxes, tracks or smoothing carried between them
    if photos and smooth != "none":
        _say(config, f"smoothing: none for a folder of photos (--smooth {smooth} ignored)", file=sys.stderr)
        smooth = "none"
    outputs: Outputs | None = None
    stream = None
    interrupted, by_event = False, False
    owned = pipeline is None
    facts: dict = {}
    focal_before = getattr(pipeline, "focal_length", None)  # a caller's pipeline gets its own focal back
    focal_given = None
    tracking = None
    finisher = None
    hands = None
    t_start = time.monotonic()
    try:
        if owned:
            pipeline = create_pipeline(config.pipeline, run_loop=True)
        else:
            pipeline.reset()
        focal = camera_focal(config, pipeline, source.size)
        focal_given = focal[0]
        if focal_given is not None:
            pipeline.focal_length = float(focal_given)
        ground = ground_stage(config, source, photos, focal_given is not None)
        facts = pipeline_facts(pipeline)
        # the MediaPipe path's hand passes run on the finishing thread (below), beside the next frame's pose
        # model: the next frame's regions need only this frame's pose; live smoothing then follows them there
        hands = TrackHands.attach(pipeline.estimator)
        smoother = OneEuroSmoother() if smooth == "causal" and hands is not None else None
        # source.fps, not the output fps: frame indices count source frames (frame_skip leaves gaps).
        tracking = TrackingPipeline.from_pipeline(
            pipeline, smooth="causal" if smooth == "causal" and smoother is None else "none", fps=source.fps)
        meta = _describe(config, source, pipeline, facts, smooth, focal, ground)
        body_fit = open_body_fit(config, facts["mediapipe"], smooth)  # one stage after tracking
        meta["body_fit"] = None if body_fit is None else str(body_fit.model.assets.path)
        if body_fit is not None:
            _say(config, f"body: the MHR body model fitted to each track ({Path(body_fit.model.assets.path).name}; "
                         "constant bones, left and right kept; --no-body-fit turns it off)")
        outputs = open_outputs(config, meta, source, smooth, signals, ground, body_fit)
        if facts["mediapipe"] and outputs.mesh is not None and body_fit is None:  # meshes asked for, no body
            _say(config, "[mhr] no meshes: without the body fit (--no-body-fit) the MediaPipe path has no MHR "
                         f"body-model parameters (the fit, --model {STARTER_MODEL_NAME} or the released network "
                         "gives them)", file=sys.stderr)
        stream = open_stream(config, source)
        # the stream goes out frame by frame: with the files' ground two-sided (offline), a live one of its own
        live_ground = (ground_stage(config, source, photos, focal_given is not None)
                       if stream is not None and ground is not None and outputs.offline else None)
        quiet = config.quiet or source.kind == "image"
        progress = Progress(source.expected_frames, source.kind, quiet=quiet)

        def finished(frame, result) -> None:  # one frame's result through the stages into the outputs
            if hands is not None:
                with probe.span("hands"):
                    result = hands(frame.image, result)
            if smoother is not None:
                result = dataclasses.replace(result, persons=smooth_causal(smoother, result.persons, result.time_s,
                                                                           result.ended_tracks))
            if body_fit is not None:
                if photos:  # unrelated photos: no track carried over
                    body_fit.reset()
                with probe.span("body_fit"):
                    result = body_fit(result)
            for stage in config.stages:
                result = stage(frame, result)
            if ground is not None and not outputs.offline:  # offline: two-sided, after smoothing
                with probe.span("ground"):
                    result = ground(result)
            with probe.span("outputs"):
                outputs.add(frame, result)
            if stream is not None:
                stream.write(frame, result if live_ground is None else live_ground(result))
            progress.update(result)

        # frame t finished (body fit, ground, outputs) on a worker thread while frame t+1's models run; two frames
        # queued at most: a slow one (the mirrored reading fitted, a track's start) is absorbed, not waited for
        # (inline under a per-frame probe, tools/frame_breakdown: each frame's breakdown then holds its own work)
        finisher = FrameFinisher(finished, depth=0 if probe.enabled() else 2,
                                 stop=None if event is None else event.is_set)
        try:
            for frame in source:
                if event is not None and event.is_set():
                    raise _StopEvent
                if photos:
                    tracking.reset()
                    finisher.put(frame, tracking(frame.image, frame.index, frame.time_s))
                    continue
                # frames in flight (runtime.frames_in_flight): results come back in order, a frame or more late
                with probe.span("tracking"):  # the models, the detector, IDs, causal smoothing
                    done_now = tracking.submit(frame.image, frame.index, frame.time_s, tag=frame)
                for done, result in done_now:
                    finisher.put(done, result)
            for done, result in tracking.drain():
                finisher.put(done, result)
            finisher.join()
            if event is not None and event.is_set():  # set by a stage while the last frames were finished
                raise _StopEvent
        except KeyboardInterrupt:  # the frames whose models ran are finished and kept, as when done inline
            interrupted = True
            try:
                finisher.join()
            except KeyboardInterrupt:  # a second one: what is still queued is dropped (below)
                pass
        except _StopEvent:
            interrupted = by_event = True
        finisher.close()  # after a stop: the worker is done before the outputs are finished
        progress.finish()
        if outputs.offline and outputs.frames:
            try:
                signals.arm()  # after a stop signal, a second one ends the drawing pass (the data files come first)
                outputs.finish()
                if outputs.image_sinks:
                    draw_offline(config, outputs, quiet)
            except KeyboardInterrupt:
                interrupted = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signals.disarm()  # from here on nothing interrupts the outputs being finished
        if finisher is not None:  # an error on the way out: no frame is written while the outputs close
            finisher.close()
        try:
            summary, written = outputs.close() if outputs is not None else ({}, {})
        finally:
            if tracking is not None:  # first: it cannot raise, so a source or stream failing below leaves no thread
                tracking.close()  # frames still in flight after a stop are dropped
            if hands is not None:  # a caller's pipeline finds hands itself again
                hands.detach()
            source.close()
            if stream is not None:
                stream.close()
            if owned and pipeline is not None and hasattr(pipeline, "close"):
                pipeline.close()
            elif not owned and focal_given is not None:
                pipeline.focal_length = focal_before
    if facts.get("random_init"):
        _say(config, RANDOM_BANNER, file=sys.stderr)
    tracks = outputs.track_ids() if outputs is not None else []
    report = RunReport(frames=outputs.frames if outputs is not None else 0, people=len(tracks), tracks=list(tracks),
                       files={k: list(v) for k, v in written.items()}, model=str(facts.get("model", "")),
                       summary=summary)
    if report.frames and config.verbose:
        requested = {kind: getattr(config, f) for kind, f in OUTPUT_FIELDS.items()}
        print_run(summary, time.monotonic() - t_start, tracks, requested, written, source)
    if stream is not None:
        _say(config, stream.summary_line())
    if len(signals.received) > 1:
        _say(config, f"{len(signals.received) - 1} more stop signal(s) ignored while the outputs were finished",
                     file=sys.stderr)
    if interrupted:
        report.status, report.exit_code = "stopped", signals.exit_code
        report.stopped_by = signals.stopped_by if signals.received else "stop event" if by_event else ""
        why = f"stopped by {report.stopped_by}" if report.stopped_by else "interrupted"
        _say(config, f"{why} after {report.frames} frame(s); " + ("outputs keep them" if report.frames else
                     "no output written (files already at the output paths are unchanged)"), file=sys.stderr)
    elif report.frames and summary["frames_with_persons"] == 0:
        det = pipeline.detector
        hint = (f"the box file {det.path} has no box for these frames" if det.name == "boxes" else
                f"detector {det.name}, confidence > {facts['confidence']}; try a lower --det-confidence")
        _say(config, f"no person found in {source.kind} {source.name} ({hint})", file=sys.stderr)
        report.status, report.exit_code = "no_persons", EXIT_NO_PERSONS
    return report
