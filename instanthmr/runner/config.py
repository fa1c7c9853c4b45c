"""What one run does: :class:`RunConfig`, frozen, with every check of its values in :meth:`RunConfig.validate`.

Field names are the demo's flags without the dashes (``save_json`` is ``--save-json``); messages name a field
through ``label`` so the command line can say ``--save-json`` and a library caller ``save_json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from instanthmr.runtime.factory import PipelineSpec
from instanthmr.video.smoothing import SMOOTH_MODES

RIGS = ("mhr70", "mixamo")
#: Output kind -> the RunConfig field holding its path, in the order the end of a run reports them.
OUTPUT_FIELDS = {"json": "save_json", "csv": "save_csv", "npz": "save_npz", "video": "out_video",
                 "rrd": "save_rrd", "bvh": "save_bvh", "gltf": "save_gltf"}

#: A per-frame stage run after tracking and before the outputs: ``stage(frame, result) -> result``
#: (``frame``: a ``video.sources.Frame``; ``result``: the ``FrameResult``, pixels and metres as documented there).
Stage = Callable[[object, object], object]


@dataclass(frozen=True)
class RunConfig:
    """One source through a pipeline into the outputs.

    Source (exactly one): ``image`` (a photo, or a folder of photos, each on its own), ``video`` (a file) or
    ``camera`` (an index). ``frame_skip``: process every Kth frame; ``max_frames``: stop after N processed
    frames. ``smooth``: none | causal | offline (``None``: none for images, offline for a video without a
    viewer, else causal; docs/temporal.md). ``pipeline``: the
    :class:`~instanthmr.runtime.factory.PipelineSpec` :func:`run` builds when it is given no pipeline (its
    ``keypoint_crops`` picks how people are followed between detector runs). Outputs: file paths (``None`` = not written); ``viewer`` opens the Rerun
    window; ``rig`` names the bones of BVH / glTF; ``in_place``: BVH / glTF / VMC without the root's
    horizontal motion (the root's x, z set to 0 every frame, its height kept: for game engines); ``stream``
    ``"vmc[:HOST:PORT]"`` sends one person live.
    Meshes: ``mhr_model`` (a converted ``.npz`` or a folder), ``mhr_lod`` (0 finest .. 6), ``mhr_overlay``
    (paint them on the images). ``focal_length``: the camera's focal length in pixels, or ``fov`` its
    horizontal field of view in degrees (``None``: what the estimator assumes, the image diagonal, a guess).
    ``body_fit``: fit the MHR body model to each track (``None``: what the pipeline's speed preset says,
    ``pipeline.runtime.body_fit``, and where it says nothing on for the MediaPipe path, off for a network:
    :meth:`fits_body`; docs/body_fit.md), which also draws meshes and skins the .glb without ``mhr_model``.
    ``ground``: grounded motion on videos and cameras (floor, world-frame joints, contacts, foot lock;
    docs/ground.md); ``floor``: the floor given as ``"nx,ny,nz,h"`` (up normal in the camera frame, the camera's
    height in metres) instead of estimated. ``stages``: :data:`Stage` callables applied in order to every frame's tracked result.
    ``quiet``: no progress lines; ``verbose`` False: no lines at all from the loop (what runs, warnings, the
    end-of-run summary; a batch worker's report is its manifest record).
    """

    image: str | None = None
    video: str | None = None
    camera: int | None = None
    frame_skip: int = 1
    max_frames: int | None = None
    smooth: str | None = None
    pipeline: PipelineSpec = field(default_factory=PipelineSpec)
    save_json: str | None = None
    save_csv: str | None = None
    save_npz: str | None = None
    save_bvh: str | None = None
    save_gltf: str | None = None
    out_video: str | None = None
    save_rrd: str | None = None
    viewer: bool = False
    rig: str = "mhr70"
    in_place: bool = False
    stream: str | None = None
    mhr_model: str | None = None
    mhr_lod: int | None = None
    mhr_overlay: bool = False
    focal_length: float | None = None
    fov: float | None = None
    body_fit: bool | None = None
    ground: bool = True
    floor: str | None = None
    stages: tuple[Stage, ...] = ()
    quiet: bool = False
    verbose: bool = True

    @property
    def source_name(self) -> str:
        """The source as the JSON's ``meta.source`` names it: the path, or ``camera:N``."""
        return str(self.image or self.video or f"camera:{self.camera}")

    def output_paths(self, label: Callable[[str], str] = str) -> dict[str, str | None]:
        """``{label(field): path}`` of every output file (None = not asked for), in report order."""
        return {label(f): getattr(self, f) for f in OUTPUT_FIELDS.values()}

    def fits_body(self, mediapipe: bool) -> bool:
        """Whether the run fits the MHR body model to each track, the one copy of the rule: ``body_fit`` when
        given (``--body-fit`` / ``--no-body-fit``), else the speed preset's (``pipeline.runtime.body_fit``,
        e.g. ``cpu-fast``: off), else on for the MediaPipe path (``mediapipe``) and off for a network."""
        for choice in (self.body_fit, self.pipeline.runtime.body_fit):
            if choice is not None:
                return bool(choice)
        return bool(mediapipe)

    def smoothing(self) -> str:
        """``smooth`` or its default: none for images; causal (no delay) wherever someone watches live (a
        camera, or a video in the viewer); offline for a video without a viewer, where it has the lower error
        (docs/temporal.md) and nobody waits on a blank window."""
        if self.smooth is not None:
            return self.smooth
        if self.image:
            return "none"
        return "offline" if self.video and not self.viewer else "causal"

    def validate(self, label: Callable[[str], str] = str) -> None:
        """Every value and output path, before anything loads: ``ValueError`` with one line naming the field as
        ``label(field)`` (the demo passes its flag names). An output path that cannot be written is
        ``core.faults.OutputPathError`` (a ``ValueError``)."""
        sources = [n for n in ("image", "video", "camera") if getattr(self, n) is not None]
        if len(sources) != 1:
            raise ValueError(f"give exactly one source: {label('image')}, {label('video')} or {label('camera')}"
                             + (f" (got {', '.join(label(s) for s in sources)})" if sources else ""))
        self.validate_options(label)
        if self.camera is not None and self.camera < 0:
            raise ValueError(f"{label('camera')} is a camera index, 0 or more (0 = the default camera), "
                             f"got {self.camera}")
        if self.smooth == "offline" and self.camera is not None:
            raise ValueError(f"{label('smooth')} offline needs the whole video before any output; use causal or "
                             f"none with {label('camera')}")
        if self.out_video:
            from instanthmr.outputs.video import check_video_extension

            check_video_extension(self.out_video)
        if self.stream:
            from instanthmr.outputs.vmc import parse_target

            parse_target(self.stream)  # a malformed target is a bad argument
        from instanthmr.outputs.sinks import check_output_paths

        check_output_paths(self.output_paths(label), inputs=(self.image, self.video))

    def validate_options(self, label: Callable[[str], str] = str) -> None:
        """The checks that need no source or output path (a batch job's shared options): ``ValueError``."""
        self.pipeline.validate(label)
        for name in ("frame_skip", "max_frames"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{label(name)} must be 1 or more, got {value}")
        if self.smooth is not None and self.smooth not in SMOOTH_MODES:
            raise ValueError(f"{label('smooth')} is one of {', '.join(SMOOTH_MODES)}, got {self.smooth!r}")
        if self.rig not in RIGS:
            raise ValueError(f"{label('rig')} is one of {', '.join(RIGS)}, got {self.rig!r}")
        if self.mhr_lod is not None and not 0 <= self.mhr_lod <= 6:
            raise ValueError(f"{label('mhr_lod')} is a level of detail from 0 (finest) to 6 (coarsest), "
                             f"got {self.mhr_lod}")
        if self.focal_length is not None and not 0 < self.focal_length < float("inf"):  # NaN fails too
            raise ValueError(f"{label('focal_length')} is a focal length in pixels, more than 0, "
                             f"got {self.focal_length}")
        if self.fov is not None:
            if self.focal_length is not None:
                raise ValueError(f"give {label('focal_length')} or {label('fov')}, not both")
            from instanthmr.core.geometry import focal_from_fov

            focal_from_fov(self.fov, (1, 1))  # its range check, one line
        if self.floor is not None:
            from instanthmr.video.ground import Floor

            Floor.parse(self.floor)  # a malformed plane is a bad argument
