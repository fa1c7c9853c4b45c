"""Synthetic people with exact labels: MHR bodies rendered onto real background photos, written as standard
shard instances carrying all five network outputs exactly (``tools/synth_mhr.py`` documents the method and its
domain gap). Pixels for 2D, metres and the camera frame (x right, y down, z forward) for 3D.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.body.mesh import overlay_meshes
from instanthmr.body.mhr import MHRNumpy
from instanthmr.core import geometry
from instanthmr.video.sources import media_kind

TEACHER = "synthetic_mhr"

# Colour by the joint that moves a vertex most (clothing-like regions, varied per sample).
_PART_KEYWORDS = {
    "skin": ("head", "neck", "eye", "jaw", "teeth", "tongue", "thumb", "index", "middle", "ring", "pinky",
             "wrist"),
    "lower": ("upleg", "lowleg", "root"),
    "shoes": ("foot", "ball", "talocrural", "subtalar", "tarsal"),
}


@dataclass
class ParamPrior:
    """Examples of real (204 model, 45 shape) parameters and their per-dimension spread."""

    params: np.ndarray      # (M, 204)
    shapes: np.ndarray      # (M, 45)

    @classmethod
    def from_paths(cls, paths) -> "ParamPrior":
        """Fit on SAM 3D Body output dicts (``mhr_model_params`` / ``shape_params`` .npz) and/or shard sets
        (instances with valid ``mhr_params`` and ``shape_params``)."""
        ps, ss = [], []
        for path in paths:
            path = Path(path)
            files = sorted(path.rglob("*.npz")) if path.is_dir() else [path]
            for f in files:
                with np.load(f, allow_pickle=False) as z:
                    if "mhr_model_params" in z.files and "shape_params" in z.files:        # teacher dict
                        ps.append(z["mhr_model_params"].reshape(1, 204))
                        ss.append(z["shape_params"].reshape(1, 45))
                    elif "mhr_params" in z.files and "shape_params" in z.files:           # shard
                        ok = z["mhr_params_valid"] & z["shape_params_valid"]
                        ps.append(z["mhr_params"][ok]), ss.append(z["shape_params"][ok])
        if not ps or sum(len(p) for p in ps) == 0:
            raise ValueError(f"no MHR parameters found in {', '.join(map(str, paths))}")
        return cls(np.concatenate(ps).astype(np.float64), np.concatenate(ss).astype(np.float64))

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A convex blend of two real examples plus noise (0.35 x the examples' spread, at least 0.05 rad on
        joint angles), with a uniformly random heading and a small random tilt."""
        m = len(self.params)
        i, j = rng.integers(0, m, 2)
        t = rng.uniform(0.0, 1.0)
        params = (1 - t) * self.params[i] + t * self.params[j]
        shape = (1 - t) * self.shapes[i] + t * self.shapes[j]
        spread = self.params.std(0) if m > 1 else np.zeros(204)
        noise = 0.35 * np.maximum(spread, 0.0)
        noise[6:130] = np.maximum(noise[6:130], 0.05)
        params = params + rng.standard_normal(204) * noise
        shape = shape + rng.standard_normal(45) * 0.5       # identity coefficients are ~unit variance
        params[0:3] = 0.0                                    # placement is cam_trans
        params[3:6] = (rng.uniform(-0.15, 0.15), rng.uniform(-np.pi, np.pi), rng.uniform(-0.15, 0.15))
        return params.astype(np.float32), shape.astype(np.float32)


def part_colors(model: MHRNumpy, rng: np.random.Generator) -> np.ndarray:
    """(F,3) RGB face colours: skin, upper clothing, lower clothing, shoes by each vertex's main joint."""
    a = model.assets
    names = a.joint_names or tuple(str(i) for i in range(len(a.joint_parents)))
    main_joint = a.skin_indices[np.arange(a.num_vertices), np.argmax(a.skin_weights, 1)]
    skin = np.array([rng.uniform(90, 240), 0, 0])
    skin[1], skin[2] = skin[0] * rng.uniform(0.7, 0.85), skin[0] * rng.uniform(0.55, 0.75)
    palette = {"skin": skin, "upper": rng.uniform(20, 235, 3), "lower": rng.uniform(20, 200, 3),
               "shoes": rng.uniform(10, 120, 3)}
    joint_part = []
    for n in names:
        n = n.lower()
        part = "upper"
        for key, words in _PART_KEYWORDS.items():
            if any(w in n for w in words):
                part = key
                break
        joint_part.append(part)
    vcol = np.stack([palette[joint_part[j]] for j in main_joint])
    return vcol[model.faces].mean(1)


def list_backgrounds(root: Path | None) -> list[Path]:
    if root is None or not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if media_kind(p) == "image")


def background(rng: np.random.Generator, photos: list[Path], size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """A random crop of a random photo resized to ``size`` (W,H), RGB; a noisy flat colour without photos."""
    import cv2

    w, h = size
    for _ in range(5):
        if not photos:
            break
        path = photos[rng.integers(len(photos))]
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None or min(img.shape[:2]) < 32:
            continue                                         # unreadable photo: try another one
        ih, iw = img.shape[:2]
        s = rng.uniform(0.6, 1.0) * min(iw / w, ih / h)      # crop with the output's aspect ratio
        cw, ch = max(8, int(w * s)), max(8, int(h * s))
        x0, y0 = rng.integers(0, iw - cw + 1), rng.integers(0, ih - ch + 1)
        crop = cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.ascontiguousarray(crop[..., ::-1]), str(path)
    base = rng.integers(30, 200, 3)
    img = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    return img, ""


def synth_sample(model: MHRNumpy, prior: ParamPrior, rng: np.random.Generator, photos: list[Path],
                 size: tuple[int, int] = (640, 480)) -> tuple[np.ndarray, dict]:
    """One rendered image and its shard instance (exact labels)."""
    w, h = size
    params, shape = prior.sample(rng)
    out = model(shape[None], params[None])
    verts, kps = out.vertices[0].astype(np.float64), out.keypoints[0].astype(np.float64)
    focal = geometry.default_focal((w, h))
    pp = np.array([w / 2.0, h / 2.0])
    # distance so that the body's height fills 35-90 % of the image height, then a random in-frame spot
    height = verts[:, 1].max() - verts[:, 1].min()
    z = focal * height / (h * rng.uniform(0.35, 0.9))
    centre = 0.5 * (verts.min(0) + verts.max(0))
    half = 0.5 * (verts.max(0) - verts.min(0))[:2] * focal / z
    target = np.array([rng.uniform(min(half[0], w / 2), max(w - half[0], w / 2)),
                       rng.uniform(min(half[1], h / 2), max(h - half[1], h / 2))])
    cam = np.array([(target[0] - pp[0]) * z / focal - centre[0], (target[1] - pp[1]) * z / focal - centre[1],
                    z - centre[2]])
    image, bg_path = background(rng, photos, (w, h))
    image = overlay_meshes(image, (verts + cam)[None], model.faces, focal, pp, alpha=1.0,
                           colors=part_colors(model, rng)[None])
    v2d = geometry.project_points(verts + cam, focal, pp)
    lo, hi = np.clip(v2d.min(0), 0, [w - 1, h - 1]), np.clip(v2d.max(0), 0, [w - 1, h - 1])
    inst = {
        "box": np.concatenate([lo, hi]).astype(np.float32), "image_size": (w, h),
        "intrinsics": geometry.intrinsics((w, h), focal),
        "joints_3d": kps.astype(np.float32), "joints_2d": geometry.project_points(kps + cam, focal, pp),
        "cam_trans": cam.astype(np.float32), "mhr_params": params, "shape_params": shape,
        "image_path": bg_path,
    }
    return image, inst


def write_synth_shards(model: MHRNumpy, prior: ParamPrior, out_dir: Path, n: int, seed: int = 0,
                       photos: list[Path] | None = None, size=(640, 480), shard_size: int = 256) -> int:
    """Write ``n`` samples (resumable: sample ``i`` always comes from seed ``(seed, i)``). Returns how many
    were written by this call."""
    from instanthmr.training.data.shards import ShardWriter, encode_context_crop

    written = 0
    with ShardWriter(out_dir, teacher=TEACHER, teacher_version=f"lod{model.assets.lod}-seed{seed}",
                     shard_size=shard_size, prefix=f"{TEACHER}-seed{seed}-") as w:
        for i in range(n):
            key = f"{TEACHER}/{seed}/{i:07d}"
            if w.is_done(key):
                continue
            image, inst = synth_sample(model, prior, np.random.default_rng([seed, i]), photos or [], size)
            jpeg, ctx = encode_context_crop(image, inst["box"])
            w.add({**inst, "source": key, "image_jpeg": jpeg, "context_box": ctx})
            w.mark_done(key)
            written += 1
    return written
