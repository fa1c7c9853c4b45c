"""Drawing and Rerun logging of :class:`~instanthmr.runtime.pipeline.FrameResult` s.

* :func:`draw_frame`: OpenCV overlay (boxes, 2D skeletons coloured by body part, timings) for
  ``--out-video``; optionally MHR meshes painted first (:class:`MeshFrame`).
* :class:`RerunVisualizer`: one Rerun recording with the camera image, 2D skeletons and boxes, a 3D view in
  camera space (metres, x right, y down, z forward: ``ViewCoordinates.RDF``) with the camera frustum
  (``Pinhole`` with the focal the network used), time series of the stage timings and FPS, all on a
  ``frame`` timeline, and a blueprint that lays the panels out. With the grounded-motion stage, the floor as
  a grid (``world/floor/grid``; grey while provisional) and the foot points coloured by contact
  (``world/floor/contacts``: green on the floor, grey off).

Persons are read by attribute (``box``, ``score``, ``joints_2d`` pixels, ``joints_3d_cam`` metres,
``focal_length``, ``principal_point``, ``joints_valid``, and ``track_id`` when tracked), so anything shaped
like ``HMRPrediction`` can be drawn. Joints a person does not have (``joints_valid`` False) are not drawn,
nor the bones that end at them. A tracked person keeps one colour and an ``ID n`` label for the whole run
(:func:`track_color`); untracked persons are ``#i``.
"""

from __future__ import annotations

import colorsys
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.core.faults import temp_path_for
from instanthmr.core.geometry import default_focal
from instanthmr.core.skeleton import MHR70_EDGE_GROUPS, MHR70_NAMES, MHR70_PARTS
from instanthmr.outputs.atomic import ResultsWriteError

#: RGB colour of each drawing-edge group (left side cool, right side warm).
GROUP_COLORS: dict[str, tuple[int, int, int]] = {
    "torso": (235, 235, 235),
    "face": (255, 215, 0),
    "left_arm": (0, 190, 255),
    "right_arm": (255, 70, 70),
    "left_leg": (40, 110, 255),
    "right_leg": (255, 150, 0),
    "left_foot": (120, 170, 255),
    "right_foot": (255, 200, 90),
    "left_hand": (0, 255, 190),
    "right_hand": (255, 0, 200),
    "extra": (170, 170, 170),
}
#: RGB colour of each joint part group (``MHR70_PARTS``).
PART_COLORS: dict[str, tuple[int, int, int]] = {
    "body": (255, 255, 255),
    "feet": (255, 220, 120),
    "right_hand": (255, 0, 200),
    "left_hand": (0, 255, 190),
    "extra": (170, 170, 170),
}
JOINT_COLORS = np.zeros((70, 3), np.uint8)
for _part, _idx in MHR70_PARTS.items():
    JOINT_COLORS[list(_idx)] = PART_COLORS[_part]

_PERSON_COLORS = [(0, 255, 0), (0, 200, 255), (255, 0, 255), (255, 255, 0), (255, 128, 0), (128, 128, 255),
                  (0, 255, 160), (255, 80, 120)]


def joints_or_nan(p, name: str) -> np.ndarray:
    """``p.<name>`` as float64 with the joints ``p`` does not have (``joints_valid`` False) set to NaN, so
    every drawing skips them."""
    j = np.array(getattr(p, name), dtype=np.float64)
    valid = getattr(p, "joints_valid", None)
    if valid is not None:
        j[~np.asarray(valid, bool)] = np.nan
    return j


def person_color(i: int) -> tuple[int, int, int]:
    return _PERSON_COLORS[i % len(_PERSON_COLORS)]


def track_color(track_id: int) -> tuple[int, int, int]:
    """A bright RGB colour that depends on the track ID only (stable over the run). Hues step by the golden
    ratio, so consecutive IDs (the usual case: people who appear together) get far-apart colours."""
    hue = (0.12 + 0.618033988749895 * int(track_id)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 1.0)
    return int(round(255 * r)), int(round(255 * g)), int(round(255 * b))


def person_label(p, i: int) -> tuple[str, tuple[int, int, int]]:
    """``("ID 3", its track colour)`` for a tracked person, ``("#i", palette colour)`` otherwise."""
    tid = getattr(p, "track_id", None)
    if tid is None:
        return f"#{i}", person_color(i)
    return f"ID {int(tid)}", track_color(int(tid))


@dataclass
class MeshFrame:
    """MHR meshes of one frame: ``vertices (N, V, 3)`` metres in the camera frame (x right, y down, z
    forward), ``faces (F, 3)``, ``colors (N, 3)`` RGB uint8 (one per person, the track colour)."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray


def mesh_frame(renderer, persons) -> MeshFrame:
    """Decode ``persons`` (``mhr_params``, ``shape_params``, ``cam_trans``) with an
    :class:`~instanthmr.body.mesh.MeshRenderer` into a :class:`MeshFrame` coloured like their boxes."""
    tagged = [(p, person_label(p, i)[1]) for i, p in enumerate(persons)
              if getattr(p, "mhr_params", None) is not None and getattr(p, "shape_params", None) is not None]
    colors = np.array([c for _, c in tagged], np.uint8).reshape(-1, 3)  # persons without MHR parameters: no mesh
    return MeshFrame(renderer.vertices_cam([p for p, _ in tagged]), renderer.faces, colors)


def overlay_mesh_frame(image_rgb: np.ndarray, persons, meshes: MeshFrame, alpha: float = 0.6) -> np.ndarray:
    """``image_rgb`` with the meshes painted over it through the camera the network used (a copy)."""
    from instanthmr.body.mesh import overlay_meshes

    persons = list(persons)
    if not persons or len(meshes.vertices) == 0:
        return np.ascontiguousarray(image_rgb).copy()
    return overlay_meshes(image_rgb, meshes.vertices, meshes.faces, float(persons[0].focal_length),
                          persons[0].principal_point, alpha=alpha, colors=meshes.colors)


def timing_text(result) -> str:
    fps = 1000.0 / result.total_ms if result.total_ms > 0 else 0.0
    det = f"det {result.detector_ms:.1f} ms" if result.detector_ran else "det reused"
    return (f"{len(result.persons)} person(s) | {det} | HMR {result.hmr_ms:.1f} ms | total {result.total_ms:.1f} ms "
            f"| {fps:.1f} FPS")


def draw_frame(image_rgb: np.ndarray, result, boxes: bool = True, skeletons: bool = True,
               text: bool = True, meshes: MeshFrame | None = None) -> np.ndarray:
    """A copy of ``image_rgb`` with each person's box (colour and label per track, ``ID n score``, or per
    person ``#i score`` when untracked), 2D skeleton (edges coloured by body part) and a timing line drawn
    on it; ``meshes`` (a :class:`MeshFrame`) are painted first, under everything else."""
    import cv2

    out = np.ascontiguousarray(image_rgb).copy()
    if meshes is not None:
        out = overlay_mesh_frame(out, result.persons, meshes)
    h, w = out.shape[:2]
    thick = max(1, int(round(min(w, h) / 360)))
    radius = max(1, thick + 1)
    for i, p in enumerate(result.persons):
        if skeletons and getattr(p, "joints_2d", None) is not None:
            j = joints_or_nan(p, "joints_2d")
            for group, edges in MHR70_EDGE_GROUPS.items():
                color = GROUP_COLORS[group]
                lw = max(1, thick - 1) if group in ("left_hand", "right_hand", "extra") else thick
                for a, b in edges:
                    pa, pb = j[a], j[b]
                    if np.all(np.isfinite(pa)) and np.all(np.isfinite(pb)):
                        cv2.line(out, (int(round(pa[0])), int(round(pa[1]))), (int(round(pb[0])), int(round(pb[1]))),
                                 color, lw, cv2.LINE_AA)
            for k in MHR70_PARTS["body"] + MHR70_PARTS["feet"]:
                if np.all(np.isfinite(j[k])):
                    cv2.circle(out, (int(round(j[k, 0])), int(round(j[k, 1]))), radius,
                               tuple(int(c) for c in JOINT_COLORS[k]), -1, cv2.LINE_AA)
        if boxes:
            x1, y1, x2, y2 = (int(round(v)) for v in np.asarray(p.box, dtype=np.float64))
            label, color = person_label(p, i)
            cv2.rectangle(out, (x1, y1), (x2, y2), color, thick)
            cv2.putText(out, f"{label} {float(p.score):.2f}", (x1 + 2, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * thick + 0.1, color, thick, cv2.LINE_AA)
    if text:
        scale = 0.4 * thick + 0.1
        org = (8, int(22 * scale / 0.5) + 4)
        line = timing_text(result)
        cv2.putText(out, line, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(out, line, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


_HEAD = [i for i, n in enumerate(MHR70_NAMES) if n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]


def _group_strips(joints: list[np.ndarray], group: str) -> list[np.ndarray]:
    """The bones of ``group`` whose two ends are both present (finite)."""
    return [j[[a, b]] for j in joints for a, b in MHR70_EDGE_GROUPS[group]
            if np.isfinite(j[a]).all() and np.isfinite(j[b]).all()]


class RerunVisualizer:
    """Logs frames to one Rerun recording: a viewer (``spawn``), an ``.rrd`` file (``save_path``), or both.

    Entity layout: ``world`` (RDF: x right, y down, z forward, metres) / ``world/camera`` (Pinhole + image)
    / ``world/camera/boxes`` and ``world/camera/skeleton/<group>`` (2D, pixels) / ``world/skeleton/<group>``
    and ``world/joints`` (3D, camera space) / ``world/tracks`` (3D label ``ID n`` above each tracked head)
    / ``world/meshes`` (MHR meshes, :meth:`log_meshes`) / ``timings/ms/<stage>`` and ``timings/fps``.
    """

    def __init__(self, application_id: str = "instanthmr", spawn: bool = True, save_path: str | Path | None = None,
                 jpeg_quality: int | None = 80, image_plane_distance: float = 1.0):
        import rerun as rr

        if not spawn and save_path is None:
            raise ValueError("RerunVisualizer needs a viewer (spawn=True) or a save_path")
        self.rr = rr
        self.rec = rr.RecordingStream(application_id)
        self.jpeg_quality = jpeg_quality
        self.image_plane_distance = float(image_plane_distance)
        self.save_path = Path(save_path) if save_path is not None else None
        # The recording streams to a temporary file, renamed onto save_path by close(): an older .rrd there
        # stays until the new one is complete.
        self._file = temp_path_for(self.save_path) if self.save_path is not None else None
        bp = self.blueprint()
        if self.save_path is not None:
            self.save_path.parent.mkdir(parents=True, exist_ok=True)
        if spawn and self._file is not None:  # viewer and file both get everything
            rr.spawn(connect=False)
            self.rec.set_sinks(rr.FileSink(str(self._file)), rr.GrpcSink(), default_blueprint=bp)
        elif self._file is not None:
            self.rec.save(str(self._file), default_blueprint=bp)
        else:
            self.rec.spawn(default_blueprint=bp)
        self._log_static()
        self._camera_key = None

    @staticmethod
    def blueprint():
        import rerun.blueprint as rrb

        return rrb.Blueprint(
            rrb.Horizontal(
                rrb.Vertical(
                    rrb.Spatial2DView(origin="world/camera", name="Camera (2D skeletons, boxes)"),
                    rrb.Horizontal(
                        rrb.TimeSeriesView(origin="timings/ms", name="Timings (ms)"),
                        rrb.TimeSeriesView(origin="timings/fps", name="FPS"),
                    ),
                    row_shares=[3, 1],
                ),
                rrb.Spatial3DView(origin="world", name="3D (camera space, m, Y down)"),
                column_shares=[3, 2],
            ),
            collapse_panels=True,
        )

    def _log_static(self) -> None:
        rr, rec = self.rr, self.rec
        rec.log("world", rr.ViewCoordinates.RDF, static=True)
        stage_colors = {"detector_ms": (255, 120, 0), "hmr_ms": (0, 170, 255), "total_ms": (230, 230, 230)}
        for name, color in stage_colors.items():
            rec.log(f"timings/ms/{name}", rr.SeriesLines(colors=[color], names=[name], widths=[2]), static=True)
        rec.log("timings/fps", rr.SeriesLines(colors=[(0, 220, 100)], names=["FPS"], widths=[2]), static=True)

    def log_frame(self, image_rgb: np.ndarray, result, frame_index: int | None = None,
                  time_s: float | None = None, meshes: MeshFrame | None = None,
                  mesh_overlay: bool = False) -> None:
        """Log one frame and its result at ``frame_index`` (default ``result.frame_index``) on the ``frame``
        timeline (and ``time_s`` on a ``video_time`` timeline when given). ``meshes`` go to ``world/meshes``
        (3D) and, with ``mesh_overlay``, are also painted on the logged camera image."""
        rr, rec = self.rr, self.rec
        idx = result.frame_index if frame_index is None else frame_index
        rec.set_time("frame", sequence=int(idx))
        if time_s is not None:
            rec.set_time("video_time", duration=float(time_s))
        h, w = image_rgb.shape[:2]
        persons = list(result.persons)

        if persons:  # the camera the network used for this frame
            focal = float(persons[0].focal_length)
            pp = np.asarray(persons[0].principal_point, dtype=np.float64)
        elif self._camera_key is not None and self._camera_key[:2] == (w, h):
            focal, pp = self._camera_key[2], np.array(self._camera_key[3:])  # nobody: keep the last camera
        else:
            focal, pp = default_focal((w, h)), np.array([w / 2.0, h / 2.0])
        key = (w, h, round(focal, 3), round(float(pp[0]), 3), round(float(pp[1]), 3))
        if key != self._camera_key:  # the frustum only changes with the image size or the focal
            rec.log("world/camera", rr.Pinhole(focal_length=focal, principal_point=pp, width=w, height=h,
                                               camera_xyz=rr.ViewCoordinates.RDF,
                                               image_plane_distance=self.image_plane_distance))
            self._camera_key = key
        if meshes is not None and mesh_overlay:
            image_rgb = overlay_mesh_frame(image_rgb, persons, meshes)
        img = rr.Image(np.ascontiguousarray(image_rgb))
        if self.jpeg_quality:
            img = img.compress(jpeg_quality=int(self.jpeg_quality))
        rec.log("world/camera", img)

        boxes = np.array([np.asarray(p.box, np.float32) for p in persons], np.float32).reshape(-1, 4)
        tags = [person_label(p, i) for i, p in enumerate(persons)]
        labels = [f"{label} {float(p.score):.2f}" for (label, _), p in zip(tags, persons)]
        colors = [c for _, c in tags]
        rec.log("world/camera/boxes", rr.Boxes2D(array=boxes, array_format=rr.Box2DFormat.XYXY, labels=labels,
                                                 colors=colors, show_labels=True))
        j2d = [joints_or_nan(p, "joints_2d").astype(np.float32) for p in persons]
        j3d = [joints_or_nan(p, "joints_3d_cam").astype(np.float32) for p in persons]
        for group, color in GROUP_COLORS.items():
            rec.log(f"world/camera/skeleton/{group}", rr.LineStrips2D(_group_strips(j2d, group), colors=[color]))
            rec.log(f"world/skeleton/{group}",
                    rr.LineStrips3D(_group_strips(j3d, group), colors=[color], radii=[0.008]))
        pts2 = np.concatenate(j2d) if j2d else np.zeros((0, 2), np.float32)
        pts3 = np.concatenate(j3d) if j3d else np.zeros((0, 3), np.float32)
        cols = np.tile(JOINT_COLORS, (len(persons), 1))
        ok2, ok3 = np.isfinite(pts2).all(axis=1), np.isfinite(pts3).all(axis=1)  # absent joints: no point
        rec.log("world/camera/joints", rr.Points2D(pts2[ok2], colors=cols[ok2], radii=[max(1.0, min(w, h) / 300)]))
        rec.log("world/joints", rr.Points3D(pts3[ok3], colors=cols[ok3], radii=[0.015]))
        # The ID floats 25 cm above the head (Y down), so it reads in the 3D view like the 2D box label; a
        # person without any head joint gets no 3D label.
        heads, head_colors, head_labels = [], [], []
        for j, (label, color) in zip(j3d, tags):
            head = j[_HEAD][np.isfinite(j[_HEAD]).all(axis=1)]
            if len(head):
                heads.append(head.mean(axis=0) - [0.0, 0.25, 0.0])
                head_colors.append(color)
                head_labels.append(label)
        rec.log("world/tracks", rr.Points3D(np.array(heads, np.float32).reshape(-1, 3), colors=head_colors,
                                            labels=head_labels, radii=[0.03], show_labels=True))
        self._log_ground(result, persons, j3d)
        if meshes is not None:
            self.log_meshes(meshes)

        rec.log("timings/ms/detector_ms", rr.Scalars(float(result.detector_ms)))
        rec.log("timings/ms/hmr_ms", rr.Scalars(float(result.hmr_ms)))
        rec.log("timings/ms/total_ms", rr.Scalars(float(result.total_ms)))
        fps = 1000.0 / result.total_ms if result.total_ms > 0 else 0.0
        rec.log("timings/fps", rr.Scalars(fps))

    def _log_ground(self, result, persons, j3d) -> None:
        """The floor as a grid under the people (``result.ground``: grounded-motion stage) and each foot point
        coloured by contact (green: on the floor, grey: off), in the camera-frame 3D view."""
        from instanthmr.video.ground import CONTACT_NAMES, FOOT_JOINTS, Floor, floor_grid

        rr, rec = self.rr, self.rec
        ground = getattr(result, "ground", None)
        if ground is None:
            if getattr(self, "_floor_shown", False):
                rec.log("world/floor", rr.Clear(recursive=True))
                self._floor_shown = False
            return
        self._floor_shown = True
        pts = np.concatenate(j3d) if j3d else np.zeros((0, 3), np.float32)
        centre = np.nanmedian(pts, axis=0) if np.isfinite(pts).any() else np.array([0.0, 0.0, 3.0])
        floor = Floor(np.asarray(ground["normal_cam"], np.float64), float(ground["camera_height_m"]))
        color = (150, 150, 150) if ground.get("provisional") else (90, 200, 255)
        rec.log("world/floor/grid", rr.LineStrips3D(floor_grid(floor, centre), colors=[color], radii=[0.004]))
        feet, cols = [], []
        for p, j in zip(persons, j3d):
            contacts = getattr(p, "contacts", None) or {}
            for name, k in zip(CONTACT_NAMES, FOOT_JOINTS):
                if name in contacts and np.isfinite(j[k]).all():
                    feet.append(j[k])
                    cols.append((40, 230, 60) if contacts[name]["contact"] else (120, 120, 120))
        rec.log("world/floor/contacts", rr.Points3D(np.array(feet, np.float32).reshape(-1, 3),
                                                     colors=np.array(cols, np.uint8).reshape(-1, 3), radii=[0.03]))

    def log_meshes(self, meshes: MeshFrame, entity: str = "world/meshes") -> None:
        """All persons' meshes as one ``Mesh3D`` (cleared when nobody is there), in track colours."""
        from instanthmr.body.mesh import log_mhr_meshes

        log_mhr_meshes(self.rec, entity, meshes.vertices, meshes.faces, colors=meshes.colors)

    def close(self, keep: bool = True) -> None:
        """Flush everything to the sinks; the .rrd file is complete and at ``save_path`` after this (with
        ``keep=False`` it is dropped instead and ``save_path`` keeps whatever it held)."""
        if self.rec is None:
            return
        try:
            self.rec.flush()
        finally:
            self.rec.disconnect()
            self.rec = None
        if self._file is not None and self._file.exists():
            if keep:
                try:
                    os.replace(self._file, self.save_path)
                except OSError as e:
                    raise ResultsWriteError(f"cannot write {self.save_path}: {e.strerror or e}") from None
            else:
                self._file.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
