"""Camera geometry shared by the runtime, the trainer and the annotation tools.

Conventions
-----------
* Image points are in full-image **pixels**, OpenCV pixel-index convention (the centre of pixel ``(i, j)``
  is at ``x = j, y = i``), x right, y down.
* Boxes are ``[x1, y1, x2, y2]`` in pixels.
* The person crop is a square of side ``max(w, h) * CROP_SCALE`` centred on the box, zero-padded past the
  image border and resized to ``CROP_SIZE``. Normalised crop coordinates ``n`` in ``[-1, 1]`` map to image
  pixels by ``x = cx + n * side / 2`` (the same mapping the released ``instanthmr.onnx`` uses).
* Camera space is metres, x right, y down, z forward (OpenCV), pinhole with focal ``f`` and principal
  point ``(px, py)`` in pixels.

All functions accept a single item or a batch along the leading axes (numpy broadcasting).
"""

from __future__ import annotations

import numpy as np

CROP_SIZE = 224
CROP_SCALE = 1.2
CLIFF_FORMS = ("pixel", "focal")  # the forms this project's networks train with
#: Every form a network file can declare: ``"angular"`` is the public InstantHMR exporter's ``cliff_focal=true``.
FILE_CLIFF_FORMS = CLIFF_FORMS + ("angular",)
#: The ``angular`` form's default focal is this times the image diagonal (the public InstantHMR inference code).
ANGULAR_FOCAL_SCALE = 1.05
#: Per-channel RGB mean and standard deviation of ImageNet, on pixels scaled to [0, 1]: the input normalisation
#: of the InstantHMR network (unless its file's metadata says otherwise) and of RF-DETR.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_BOX_PX = 4.0  # boxes narrower or lower than this (after clipping) carry no person worth a crop


def _as_boxes(box_xyxy) -> np.ndarray:
    box = np.asarray(box_xyxy, dtype=np.float64)
    if box.shape[-1] != 4:
        raise ValueError(f"boxes must have 4 values [x1, y1, x2, y2] in the last axis, got shape {box.shape}")
    return box


def usable_boxes(boxes_xyxy, min_px: float = MIN_BOX_PX) -> np.ndarray:
    """``(N,)`` mask of the boxes ``(N, 4)`` that are finite and at least ``min_px`` wide and high."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    return np.isfinite(b).all(axis=1) & (b[:, 2] - b[:, 0] >= min_px) & (b[:, 3] - b[:, 1] >= min_px)


def box_iou(a, b) -> np.ndarray:
    """Pairwise intersection over union of boxes ``a (N, 4)`` and ``b (M, 4)`` -> ``(N, M)`` (0 where the union
    is empty; a box with negative width or height has no area)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_center_size(box_xyxy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cx, cy, b)`` of boxes: centre in pixels and ``b = max(w, h)`` in pixels."""
    b = _as_boxes(box_xyxy)
    cx = (b[..., 0] + b[..., 2]) / 2.0
    cy = (b[..., 1] + b[..., 3]) / 2.0
    size = np.maximum(b[..., 2] - b[..., 0], b[..., 3] - b[..., 1])
    return cx, cy, size


def square_crop_box(box_xyxy, scale: float = CROP_SCALE) -> np.ndarray:
    """The square crop region ``(..., 3) = [cx, cy, side]`` in pixels for detection boxes."""
    cx, cy, size = box_center_size(box_xyxy)
    return np.stack([cx, cy, size * scale], axis=-1)


def crop_affine(box_xyxy, out_size: int = CROP_SIZE, scale: float = CROP_SCALE) -> np.ndarray:
    """``(..., 2, 3)`` affine matrices mapping image pixels to crop pixels (for ``cv2.warpAffine``)."""
    sq = square_crop_box(box_xyxy, scale)
    s = out_size / sq[..., 2]
    m = np.zeros(sq.shape[:-1] + (2, 3))
    m[..., 0, 0] = s
    m[..., 1, 1] = s
    m[..., 0, 2] = -(sq[..., 0] - sq[..., 2] / 2.0) * s
    m[..., 1, 2] = -(sq[..., 1] - sq[..., 2] / 2.0) * s
    return m


def crop_person(image: np.ndarray, box_xyxy, out_size: int = CROP_SIZE, scale: float = CROP_SCALE,
                interpolation: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut one square person crop out of ``image`` (H, W, C), zero-padded past the border.

    Returns ``(crop (out_size, out_size, C), affine (2, 3))``; one ``cv2.warpAffine`` call, no Python loop
    over pixels.
    """
    import cv2

    m = crop_affine(box_xyxy, out_size, scale)
    crop = cv2.warpAffine(image, m.astype(np.float64), (out_size, out_size),
                          flags=cv2.INTER_LINEAR if interpolation is None else interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, m


def image_to_crop(points_px, box_xyxy, out_size: int = CROP_SIZE, scale: float = CROP_SCALE) -> np.ndarray:
    """Image pixels ``(..., J, 2)`` -> normalised crop coordinates in ``[-1, 1]`` (``box`` is ``(..., 4)``)."""
    sq = square_crop_box(box_xyxy, scale)[..., None, :]
    p = np.asarray(points_px, dtype=np.float64)
    return (p - sq[..., :2]) / (sq[..., 2:3] / 2.0)


def crop_to_image(points_norm, box_xyxy, scale: float = CROP_SCALE) -> np.ndarray:
    """Normalised crop coordinates ``(..., J, 2)`` in ``[-1, 1]`` -> full-image pixels (exact inverse)."""
    sq = square_crop_box(box_xyxy, scale)[..., None, :]
    n = np.asarray(points_norm, dtype=np.float64)
    return sq[..., :2] + n * (sq[..., 2:3] / 2.0)


def default_focal(image_wh) -> float | np.ndarray:
    """Default focal length in pixels: the image diagonal ``sqrt(W^2 + H^2)`` (about 53 deg horizontal FOV
    on 16:9)."""
    wh = np.asarray(image_wh, dtype=np.float64)
    f = np.sqrt(wh[..., 0] ** 2 + wh[..., 1] ** 2)
    return float(f) if f.ndim == 0 else f


def focal_from_fov(fov_deg: float, image_wh) -> float:
    """Focal length (px) of a pinhole whose *horizontal* field of view is ``fov_deg`` degrees on an image
    ``image_wh`` (W, H) px wide: ``(W / 2) / tan(fov / 2)``. ``ValueError`` outside (0, 180) degrees."""
    fov = float(fov_deg)
    if not 0.0 < fov < 180.0:
        raise ValueError(f"--fov is the horizontal field of view in degrees, in (0, 180), got {fov_deg}")
    return float(image_wh[0]) / 2.0 / float(np.tan(np.radians(fov) / 2.0))


def condition_focal(image_wh, form: str = "pixel", focal: float | None = None) -> float:
    """The focal length (px) a CLIFF ``form`` assumes: ``focal`` when given, else :func:`default_focal` (the
    image diagonal), or ``ANGULAR_FOCAL_SCALE`` x that for the ``angular`` form."""
    if focal is not None:
        return float(focal)
    f = default_focal((float(image_wh[0]), float(image_wh[1])))
    return ANGULAR_FOCAL_SCALE * f if form == "angular" else f


def intrinsics(image_wh, focal: float | None = None, principal_point=None) -> np.ndarray:
    """3x3 pinhole matrix; ``focal`` defaults to :func:`default_focal`, the principal point to the centre."""
    w, h = float(image_wh[0]), float(image_wh[1])
    f = default_focal((w, h)) if focal is None else float(focal)
    px, py = (w / 2.0, h / 2.0) if principal_point is None else map(float, principal_point)
    return np.array([[f, 0.0, px], [0.0, f, py], [0.0, 0.0, 1.0]])


def cliff_condition(box_xyxy, image_wh, focal=None, form: str = "pixel") -> np.ndarray:
    """The 3-number CLIFF condition of a detection box, in one of the two forms used in the wild.

    * ``"pixel"`` (the released ``instanthmr.onnx``): ``[2cx/W - 1, 2cy/H - 1, max(bw, bh) / max(W, H)]``.
    * ``"focal"`` (SAM 3D Body, CLIFF): ``[(cx - W/2) / f, (cy - H/2) / f, b / f]`` with ``b = max(bw, bh)``
      and ``f`` defaulting to :func:`default_focal`.
    * ``"angular"`` (files from the public InstantHMR exporter with ``cliff_focal=true``):
      ``[atan((cx - W/2) / f), atan((cy - H/2) / f), b / f]`` (no atan on the third), ``f`` (= fy) defaulting
      to ``ANGULAR_FOCAL_SCALE`` x the image diagonal (:func:`condition_focal`).

    ``box_xyxy`` is ``(4,)`` or ``(N, 4)`` pixels, ``image_wh`` is ``(W, H)``; returns ``(3,)`` or ``(N, 3)``
    float32.
    """
    if form not in FILE_CLIFF_FORMS:
        raise ValueError(f"unknown CLIFF form {form!r}; expected one of {FILE_CLIFF_FORMS}")
    cx, cy, b = box_center_size(box_xyxy)
    w, h = float(image_wh[0]), float(image_wh[1])
    if form == "pixel":
        out = [2.0 * cx / w - 1.0, 2.0 * cy / h - 1.0, b / max(w, h)]
    else:
        f = condition_focal((w, h), form) if focal is None else np.asarray(focal, dtype=np.float64)
        x, y = (cx - w / 2.0) / f, (cy - h / 2.0) / f
        out = [np.arctan(x), np.arctan(y), b / f] if form == "angular" else [x, y, b / f]
    return np.stack(np.broadcast_arrays(*out), axis=-1).astype(np.float32)


def crop_cam_to_full(pred_cam, crop_center, crop_side, image_wh, focal=None) -> np.ndarray:
    """Weak-perspective crop camera ``(s, tx, ty)`` -> full-frame translation in metres (CLIFF).

    ``t = [tx + 2 (cx - W/2) / (b s), ty + 2 (cy - H/2) / (b s), 2 f / (b s)]`` where ``(cx, cy)`` is the crop
    centre and ``b`` the crop side in pixels. Shapes broadcast: ``pred_cam (..., 3)``, ``crop_center (..., 2)``,
    ``crop_side (...)``.
    """
    cam = np.asarray(pred_cam, dtype=np.float64)
    c = np.asarray(crop_center, dtype=np.float64)
    b = np.asarray(crop_side, dtype=np.float64)
    w, h = float(image_wh[0]), float(image_wh[1])
    f = default_focal((w, h)) if focal is None else float(focal)
    s, tx, ty = cam[..., 0], cam[..., 1], cam[..., 2]
    bs = b * s + 1e-9
    return np.stack([tx + 2.0 * (c[..., 0] - w / 2.0) / bs, ty + 2.0 * (c[..., 1] - h / 2.0) / bs,
                     2.0 * f / bs], axis=-1)


def solve_camera_translation(points_3d, points_2d, focal: float, principal_point, weights=None) -> np.ndarray:
    """Least-squares camera translation ``t`` (3,) metres with ``project(points_3d + t) ~ points_2d``
    (pinhole, ``focal`` px, ``principal_point`` px, both fixed; ``points_3d`` (J, 3) metres, camera axes,
    ``points_2d`` (J, 2) px). Linear in ``t``: ``f (X + tx) = (u - px) (Z + tz)`` and the same for y.
    ``weights`` (J,) >= 0 weigh each point's two rows by their square root; points of weight 0 are left out."""
    x3 = np.asarray(points_3d, np.float64)
    uv = np.asarray(points_2d, np.float64) - np.asarray(principal_point, np.float64)
    if weights is not None:
        sel = np.asarray(weights) > 0
        x3, uv = x3[sel], uv[sel]
    n = len(x3)
    a = np.zeros((2 * n, 3))
    b = np.zeros(2 * n)
    a[0::2, 0] = focal
    a[0::2, 2] = -uv[:, 0]
    b[0::2] = uv[:, 0] * x3[:, 2] - focal * x3[:, 0]
    a[1::2, 1] = focal
    a[1::2, 2] = -uv[:, 1]
    b[1::2] = uv[:, 1] * x3[:, 2] - focal * x3[:, 1]
    if weights is not None:
        sw = np.repeat(np.sqrt(np.asarray(weights, np.float64)[sel]), 2)
        a, b = a * sw[:, None], b * sw
    t, *_ = np.linalg.lstsq(a, b, rcond=None)
    return t


def project_points(points_cam, focal, principal_point) -> np.ndarray:
    """Perspective projection of camera-space points ``(..., J, 3)`` (metres) to pixels ``(..., J, 2)``.

    ``focal`` is a scalar or ``(fx, fy)``; ``principal_point`` is ``(px, py)``. Points at or behind the
    camera (z <= 1 mm) are clamped to z = 1 mm rather than dividing by zero.
    """
    p = np.asarray(points_cam, dtype=np.float64)
    f = np.asarray(focal, dtype=np.float64)
    if f.ndim:   # (fx, fy); a scalar multiplies both as it is (broadcast_to cost more than the projection)
        f = np.broadcast_to(f, (2,))
    c = np.asarray(principal_point, dtype=np.float64)
    z = np.maximum(p[..., 2:3], 1e-3)
    return p[..., :2] / z * f + c
