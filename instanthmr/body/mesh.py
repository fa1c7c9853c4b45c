"""Draw MHR body meshes: decode each person's predicted parameters, place them with ``cam_trans``, log
them to Rerun, or paint them over the image (numpy + OpenCV only).

Use from the demo (``--mhr-model PATH.npz`` / ``--mhr-lod N``)::

    mesh = MeshRenderer.open(args.mhr_model, args.mhr_lod)     # None + one printed line when unavailable
    ...
    if mesh is not None:
        verts = mesh.vertices_cam(result.persons)                # (N,V,3) m, camera frame, Y down
        log_mhr_meshes(visualizer.rec, "world/meshes", verts, mesh.faces)
        frame = overlay_meshes(frame, verts, mesh.faces, focal, principal_point)   # optional
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from instanthmr.body.mhr import NUM_MODEL_PARAMS, NUM_SHAPE, SHIPPED_MHR_MODEL, MHRAssetError, MHRNumpy
from instanthmr.core.paths import MODELS_DIR

DEFAULT_LOD = 3
MESH_COLORS = np.array([[170, 190, 225], [235, 170, 140], [160, 220, 170], [225, 200, 120],
                        [200, 160, 225], [140, 210, 220]], np.uint8)


def resolve_mhr_model(path: str | Path | None, lod: int | None = None) -> Path:
    """``--mhr-model`` / ``--mhr-lod`` -> the converted file: a file is used as is, a folder (or nothing:
    ``models/``) holds ``mhr_lod{N}.npz``. With neither given and no ``models/mhr_lod3.npz`` converted, the
    LOD 6 model shipped in the package (:data:`~instanthmr.body.mhr.SHIPPED_MHR_MODEL`)."""
    if path is None and lod is None and not (MODELS_DIR / f"mhr_lod{DEFAULT_LOD}.npz").is_file():
        return SHIPPED_MHR_MODEL
    lod = DEFAULT_LOD if lod is None else int(lod)
    if path is None:
        return MODELS_DIR / f"mhr_lod{lod}.npz"
    path = Path(path)
    return path / f"mhr_lod{lod}.npz" if path.is_dir() else path


def read_mhr_model(path: str | Path | None, lod: int | None = None) -> MHRNumpy:
    """The converted MHR model ``--mhr-model`` / ``--mhr-lod`` name (:func:`resolve_mhr_model`), read from disk
    (product frame). A run reads it once and hands the built model to everything that needs it (the body fit,
    :class:`MeshRenderer`). ``MHRAssetError`` (one line) when the file is missing, wrong, or not that LOD."""
    resolved = resolve_mhr_model(path, lod)
    model = MHRNumpy.from_npz(resolved)
    if lod is not None and model.assets.lod >= 0 and model.assets.lod != int(lod):
        raise MHRAssetError(f"{resolved} is LOD {model.assets.lod}, not the requested --mhr-lod {lod}")
    return model


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(..., V, 3) area-weighted unit vertex normals (Rerun shades meshes with them)."""
    v = np.asarray(vertices, np.float64)
    flat = v.reshape(-1, *v.shape[-2:])
    out = np.zeros_like(flat)
    for i, verts in enumerate(flat):
        tri = verts[faces]
        fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])      # length = 2 x area
        for k in range(3):
            np.add.at(out[i], faces[:, k], fn)
    out /= np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
    return out.reshape(v.shape).astype(np.float32)


class MeshRenderer:
    """Decodes persons' ``mhr_params`` / ``shape_params`` into camera-frame meshes (metres, Y down)."""

    def __init__(self, model: MHRNumpy):
        if model.frame != "product":
            raise ValueError("MeshRenderer needs an MHR model in the product frame")
        self.model = model
        self.faces = model.faces.astype(np.int32)

    @classmethod
    def open(cls, path: str | Path | None, lod: int | None = None, quiet: bool = False) -> "MeshRenderer | None":
        """The renderer, or None after printing one line when the file is missing or wrong (the demo goes on
        without meshes)."""
        try:
            model = read_mhr_model(path, lod)
        except MHRAssetError as exc:
            if not quiet:
                print(f"[mhr] meshes off: {exc}", file=sys.stderr)
            return None
        return cls(model)

    def vertices_local(self, mhr_params, shape_params) -> np.ndarray:
        """(N,204), (N,45) -> (N,V,3) body-centred vertices (m, Y down); root translation dropped."""
        params = np.array(mhr_params, dtype=np.float32, copy=True).reshape(-1, NUM_MODEL_PARAMS)
        if len(params) == 0:
            return np.zeros((0, self.model.assets.num_vertices, 3), np.float32)
        params[:, :3] = 0.0
        return self.model(np.asarray(shape_params, np.float32).reshape(-1, NUM_SHAPE), params).vertices

    def vertices_cam(self, persons) -> np.ndarray:
        """Camera-frame vertices (N,V,3), metres, for objects with ``mhr_params``, ``shape_params`` and
        ``cam_trans`` (e.g. :class:`instanthmr.runtime.hmr.HMRPrediction`)."""
        persons = list(persons)
        if not persons:
            return np.zeros((0, self.model.assets.num_vertices, 3), np.float32)
        local = self.vertices_local(np.stack([p.mhr_params for p in persons]),
                                    np.stack([p.shape_params for p in persons]))
        return local + np.stack([np.asarray(p.cam_trans, np.float32) for p in persons])[:, None, :]


def log_mhr_meshes(rec, entity: str, vertices_cam: np.ndarray, faces: np.ndarray, colors=None) -> None:
    """Log N meshes as ONE ``Mesh3D`` at ``entity`` (so a person leaving the frame leaves nothing stale).

    ``rec``: a ``rerun.RecordingStream`` or the ``rerun`` module; ``vertices_cam`` (N,V,3) metres in the
    entity's frame (the visualiser's ``world`` is RDF: camera axes, Y down); ``faces`` (F,3); ``colors``
    (N,3) uint8 per person (default: a fixed palette)."""
    import rerun as rr

    v = np.asarray(vertices_cam, np.float32).reshape(-1, *np.shape(vertices_cam)[-2:]) \
        if np.size(vertices_cam) else np.zeros((0, 0, 3), np.float32)
    n = v.shape[0]
    if n == 0:
        rec.log(entity, rr.Clear(recursive=False))
        return
    nv = v.shape[1]
    faces = np.asarray(faces, np.int64)
    colors = MESH_COLORS[np.arange(n) % len(MESH_COLORS)] if colors is None else np.asarray(colors, np.uint8)
    tri = (faces[None] + (np.arange(n) * nv)[:, None, None]).reshape(-1, 3).astype(np.uint32)
    rec.log(entity, rr.Mesh3D(vertex_positions=v.reshape(-1, 3),
                              triangle_indices=tri,
                              vertex_normals=vertex_normals(v, faces).reshape(-1, 3),
                              vertex_colors=np.repeat(colors, nv, axis=0)))


def overlay_meshes(image_rgb: np.ndarray, vertices_cam: np.ndarray, faces: np.ndarray, focal: float,
                   principal_point, alpha: float = 0.6, colors=None) -> np.ndarray:
    """Paint shaded meshes over an RGB image (painter's algorithm: faces far to near, back faces culled).

    ``vertices_cam`` (N,V,3) metres in the camera frame (x right, y down, z forward); pinhole ``focal`` px
    and ``principal_point`` (2,) px. ``colors``: (N,3) per person or (N,F,3) per face, RGB. Returns a new
    image; the input is not modified."""
    import cv2

    out = np.ascontiguousarray(image_rgb).copy()
    v = np.asarray(vertices_cam, np.float64).reshape(-1, *np.shape(vertices_cam)[-2:]) \
        if np.size(vertices_cam) else np.zeros((0, 0, 3))
    if len(v) == 0:
        return out
    faces = np.asarray(faces, np.int64)
    colors = MESH_COLORS[np.arange(len(v)) % len(MESH_COLORS)] if colors is None else np.asarray(colors)
    pp = np.asarray(principal_point, np.float64)
    all_tri, all_depth, all_col = [], [], []
    light = np.array([0.0, -0.3, -1.0])
    light /= np.linalg.norm(light)
    for i in range(len(v)):
        tri3 = v[i][faces]                                                # (F,3,3)
        z = tri3[..., 2]
        normal = np.cross(tri3[:, 1] - tri3[:, 0], tri3[:, 2] - tri3[:, 0])
        normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
        centre = tri3.mean(1)
        facing = (normal * centre).sum(-1) < 0                            # towards the camera
        ok = facing & (z > 0.05).all(1)
        if not ok.any():
            continue
        px = focal * tri3[ok][..., :2] / z[ok][..., None] + pp
        shade = 0.35 + 0.65 * np.abs(normal[ok] @ light)
        col = np.asarray(colors[i], np.float64)
        col = col[ok] if col.ndim == 2 else col[None]
        all_tri.append(px), all_depth.append(z[ok].mean(1))
        all_col.append(shade[:, None] * col)
    if not all_tri:
        return out
    tri2, depth, col = np.concatenate(all_tri), np.concatenate(all_depth), np.concatenate(all_col)
    layer = out.copy()
    mask = np.zeros(out.shape[:2], np.uint8)
    pts = np.round(tri2 * 16).astype(np.int32)                           # 4 bits of sub-pixel precision
    for k in np.argsort(-depth):                                          # far first, near ones paint over
        c = tuple(int(x) for x in col[k])
        cv2.fillConvexPoly(layer, pts[k], c, lineType=cv2.LINE_AA, shift=4)
        cv2.fillConvexPoly(mask, pts[k], 255, shift=4)
    if alpha >= 1.0:
        return layer
    m = (mask > 0)[..., None]
    blended = (alpha * layer.astype(np.float32) + (1 - alpha) * out.astype(np.float32)).astype(np.uint8)
    return np.where(m, blended, out)
