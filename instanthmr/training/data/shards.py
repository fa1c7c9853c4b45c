"""Teacher-label shards: one versioned, append-only, resumable on-disk format for every teacher.

A *shard set* is a folder of ``.npz`` files. Each shard holds up to ``shard_size`` person instances,
every array stacked along axis 0, plus a JSON header (``__header__``) that names the format version, the
teacher, the fields present and the *inputs* (images / video frames) whose annotation the shard completes.
See ``docs/annotation.md`` for the full field table, units and coordinate frames.

Why this shape:

* **Atomic**: a shard is written to ``<name>.tmp`` and ``os.replace``-d into place, so a reader never sees
  a half-written file and a killed run leaves at most a stray ``.tmp`` (deleted on the next start).
* **Resumable without a separate manifest**: the "done" list *is* the union of the shard headers'
  ``inputs``; an input is recorded in the same file as its instances, so labels and the done-mark can
  never disagree. Inputs in which the teacher found nobody are recorded too (a shard may hold 0 instances).
* **Parallel**: each writer has its own file-name prefix (e.g. ``sam3d_body-part03of08-``), so ``N``
  processes or machines write into one folder without locking.
* **Generic**: every label field is optional and carries a validity mask ``<field>_valid``; a teacher
  writes only what it has.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from instanthmr.body.mhr import NUM_MODEL_PARAMS, NUM_SHAPE

FORMAT_NAME = "instanthmr-shard"
FORMAT_VERSION = 1
HEADER_KEY = "__header__"


@dataclass(frozen=True)
class LabelField:
    """A teacher label: per-instance ``shape``; ``mask_shape`` is the shape of ``<name>_valid``
    (per joint for keypoints, ``()`` = one flag per instance for parameter vectors)."""

    shape: tuple[int, ...]
    mask_shape: tuple[int, ...]
    doc: str


#: Every label a teacher may provide. Units/frames are the contract shared by all teachers.
LABEL_FIELDS: dict[str, LabelField] = {
    "joints_3d": LabelField((70, 3), (70,), "MHR70, metres, camera axes (x right, y down, z forward), "
                                            "body-centred (origin = body-model root, not the camera)"),
    "joints_2d": LabelField((70, 2), (70,), "MHR70, full-image pixels"),
    "mhr_params": LabelField((NUM_MODEL_PARAMS,), (), "MHR model parameters (SAM 3D Body mhr_model_params)"),
    "shape_params": LabelField((NUM_SHAPE,), (), "MHR identity/shape coefficients"),
    "cam_trans": LabelField((3,), (), "metres, camera frame: camera-space joints = joints_3d + cam_trans"),
    "joints_3d_wholebody": LabelField((133, 3), (133,), "COCO-WholeBody, root-relative, scale-normalised "
                                                        "(the LLM lifter's normalisation)"),
    "joints_2d_wholebody": LabelField((133, 2), (133,), "COCO-WholeBody, full-image pixels"),
}

#: Per-instance metadata (always present in a shard).
META_FIELDS: dict[str, tuple[tuple[int, ...], str]] = {
    "box": ((4,), "float32"),  # detector box [x1, y1, x2, y2], full-image pixels
    "image_size": ((2,), "int32"),  # (W, H) of the full image
    "intrinsics": ((3, 3), "float32"),  # pinhole K the teacher used (focal, principal point), pixels
    "context_box": ((3,), "float32"),  # [cx, cy, side] in image pixels of the embedded crop; side 0 = none
}
STRING_FIELDS = ("source", "image_path")  # input key (e.g. "clip.mp4#000123"), image file (may be "")
BYTES_FIELD = "image_jpeg"  # optional embedded context crop (JPEG bytes, RGB content)


class ShardFormatError(ValueError):
    """A shard file is unreadable, of another format/version, or internally inconsistent."""


def _valid_name(field: str) -> str:
    return f"{field}_valid"


def _check_instance(inst: dict) -> None:
    for key in ("box", "image_size"):
        if key not in inst:
            raise ValueError(f"instance is missing required field {key!r}")
    allowed = set(LABEL_FIELDS) | {_valid_name(f) for f in LABEL_FIELDS} | set(META_FIELDS) \
        | set(STRING_FIELDS) | {BYTES_FIELD}
    unknown = sorted(set(inst) - allowed)
    if unknown:
        raise ValueError(f"unknown instance fields {unknown}; known: {sorted(allowed)}")
    for name, spec in LABEL_FIELDS.items():
        if inst.get(name) is None:
            continue
        a = np.asarray(inst[name])
        if a.shape != spec.shape:
            raise ValueError(f"field {name!r} must have shape {spec.shape}, got {a.shape}")
        m = inst.get(_valid_name(name))
        if m is not None and np.asarray(m).shape != spec.mask_shape:
            raise ValueError(f"mask {_valid_name(name)!r} must have shape {spec.mask_shape}, "
                             f"got {np.asarray(m).shape}")


def _stack_shard(instances: list[dict]) -> dict[str, np.ndarray]:
    """Column arrays for a list of instance dicts (missing labels become zeros with a False mask)."""
    n = len(instances)
    out: dict[str, np.ndarray] = {}
    for name, (shape, dtype) in META_FIELDS.items():
        arr = np.zeros((n,) + shape, dtype)
        for i, inst in enumerate(instances):
            if name in inst and inst[name] is not None:
                arr[i] = np.asarray(inst[name], dtype)
        out[name] = arr
    for name in STRING_FIELDS:
        out[name] = np.array([str(inst.get(name) or "") for inst in instances], dtype=np.str_).reshape(n)
    for name, spec in LABEL_FIELDS.items():
        if not any(inst.get(name) is not None for inst in instances):
            continue  # absent for the whole shard: not stored (the reader reports it invalid)
        arr = np.zeros((n,) + spec.shape, np.float32)
        mask = np.zeros((n,) + spec.mask_shape, bool)
        for i, inst in enumerate(instances):
            if inst.get(name) is None:
                continue
            v = np.asarray(inst[name], np.float32)
            m = inst.get(_valid_name(name))
            m = np.ones(spec.mask_shape, bool) if m is None else np.asarray(m, bool)
            finite = np.isfinite(v).reshape(spec.mask_shape + (-1,)).all(-1) if spec.mask_shape \
                else np.isfinite(v).all()
            arr[i] = np.where(np.isfinite(v), v, 0.0)
            mask[i] = m & finite  # a NaN from the teacher is never a valid label
        out[name] = arr
        out[_valid_name(name)] = mask
    blobs = [inst.get(BYTES_FIELD) or b"" for inst in instances]
    if any(blobs):
        offsets = np.zeros(n + 1, np.int64)
        offsets[1:] = np.cumsum([len(b) for b in blobs])
        out[BYTES_FIELD] = np.frombuffer(b"".join(blobs), np.uint8).copy()
        out[BYTES_FIELD + "_offsets"] = offsets
    return out


def _atomic_save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)  # uncompressed: labels are small, JPEG bytes are already compressed
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_header(path: str | Path) -> dict:
    """The JSON header of one shard (reads only that member of the ``.npz``)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if HEADER_KEY not in z.files:
                raise ShardFormatError(f"{path}: not an InstantHMR shard (no {HEADER_KEY})")
            header = json.loads(str(z[HEADER_KEY]))
    except ShardFormatError:
        raise
    except Exception as e:  # zipfile / OSError / JSON errors all mean the same thing to the caller
        raise ShardFormatError(f"{path}: unreadable shard ({type(e).__name__}: {e})") from None
    if header.get("format") != FORMAT_NAME:
        raise ShardFormatError(f"{path}: format {header.get('format')!r} is not {FORMAT_NAME!r}")
    if int(header.get("format_version", -1)) > FORMAT_VERSION:
        raise ShardFormatError(f"{path}: format_version {header.get('format_version')} is newer than this "
                               f"reader ({FORMAT_VERSION}); update InstantHMR")
    return header


def list_shards(root: str | Path) -> list[Path]:
    """All shard files under ``root`` (a folder, searched recursively, or one ``.npz``), sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"shard folder not found: {root}")
    return sorted(p for p in root.rglob("*.npz"))


class ShardWriter:
    """Append person instances to a shard set; resumable and safe to kill at any moment.

    >>> with ShardWriter("labels/", teacher="sam3d_body", teacher_version="dinov3") as w:
    ...     for key, image in inputs:
    ...         if w.is_done(key):
    ...             continue
    ...         for inst in teacher(image):
    ...             w.add(inst)           # dict of fields, see LABEL_FIELDS / META_FIELDS
    ...         w.mark_done(key)          # the input is complete (even with no person in it)

    A shard is flushed only at an input boundary once it holds ``shard_size`` instances, so an input's
    instances and its done-mark always land in the same file. ``close()`` flushes the rest.
    """

    def __init__(self, out_dir: str | Path, teacher: str, teacher_version: str = "", shard_size: int = 512,
                 prefix: str | None = None, extra_header: dict | None = None):
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", teacher):
            raise ValueError(f"teacher name must be a plain identifier, got {teacher!r}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.teacher, self.teacher_version = teacher, str(teacher_version)
        self.shard_size = int(shard_size)
        self.prefix = prefix if prefix is not None else f"{teacher}-"
        self.extra_header = dict(extra_header or {})
        for stale in self.out_dir.glob("*.npz.tmp"):  # left by a killed run; its inputs are not done
            stale.unlink(missing_ok=True)
        self._done: set[str] = set()
        seq = -1
        pat = re.compile(re.escape(self.prefix) + r"(\d+)\.npz$")
        for p in list_shards(self.out_dir):
            self._done.update(read_header(p).get("inputs", []))
            m = pat.match(p.name)
            if m:
                seq = max(seq, int(m.group(1)))
        self._seq = seq + 1
        self._buf: list[dict] = []
        self._buf_inputs: list[str] = []
        self._marked = 0  # buffered instances that belong to inputs already marked done
        self.written_instances = 0
        self.written_shards = 0

    # -- resume ------------------------------------------------------------------------------------
    @property
    def done(self) -> frozenset[str]:
        """Inputs already complete on disk or in the open buffer."""
        return frozenset(self._done)

    def is_done(self, key: str) -> bool:
        return key in self._done

    # -- writing -----------------------------------------------------------------------------------
    def add(self, instance: dict) -> None:
        """Buffer one person instance (validated now, so a bad teacher output fails at its source)."""
        _check_instance(instance)
        self._buf.append(dict(instance))

    def mark_done(self, key: str) -> None:
        """Declare input ``key`` complete; flushes a shard when enough instances are buffered."""
        self._buf_inputs.append(str(key))
        self._done.add(str(key))
        self._marked = len(self._buf)
        if len(self._buf) >= self.shard_size:
            self.flush()

    def flush(self) -> Path | None:
        """Write the buffered instances and done-marks as one shard (no-op when both are empty)."""
        if not self._buf and not self._buf_inputs:
            return None
        arrays = _stack_shard(self._buf)
        header = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "teacher": self.teacher, "teacher_version": self.teacher_version,
            "num_instances": len(self._buf), "inputs": self._buf_inputs,
            "fields": sorted(k for k in arrays if k in LABEL_FIELDS),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **self.extra_header,
        }
        arrays[HEADER_KEY] = np.array(json.dumps(header))
        path = self.out_dir / f"{self.prefix}{self._seq:06d}.npz"
        _atomic_save_npz(path, arrays)
        self._seq += 1
        self.written_instances += len(self._buf)
        self.written_shards += 1
        self._buf, self._buf_inputs, self._marked = [], [], 0
        return path

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # On an exception, instances added after the last done-mark belong to a half-done input: drop them
        # (that input is redone on resume) and keep every complete input.
        if exc_type is not None:
            del self._buf[self._marked:]
        self.flush()


class ShardReader:
    """Random access and streaming over one or more shard sets.

    ``reader[i]`` is one instance dict: label fields (float32) with ``<field>_valid`` masks (all False
    when the shard lacks the field), metadata, ``teacher`` / ``teacher_version`` from the header and, when
    embedded, ``image_jpeg`` bytes. Shards are opened lazily and a few are kept in an LRU cache, so
    shard-ordered access (see :meth:`shard_ranges`) reads each file once. A shard whose arrays turn out
    unreadable (a damaged file whose header still reads) is remembered in ``bad``: every later access to
    its instances raises the same :class:`ShardFormatError` at once.
    """

    def __init__(self, roots: str | Path | Iterable[str | Path], cache_shards: int = 8):
        roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
        self.paths: list[Path] = [p for r in roots for p in list_shards(r)]
        self.headers = [read_header(p) for p in self.paths]
        counts = np.array([int(h["num_instances"]) for h in self.headers], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cache_size = max(1, int(cache_shards))
        self.bad: dict[int, str] = {}  # shard index -> why it cannot be read (found on first access)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def fields(self) -> set[str]:
        """Label fields present in at least one shard."""
        return {f for h in self.headers for f in h.get("fields", [])}

    @property
    def inputs(self) -> set[str]:
        return {k for h in self.headers for k in h.get("inputs", [])}

    def shard_ranges(self) -> list[range]:
        """Instance index range of each shard (for shard-local shuffling)."""
        return [range(int(a), int(b)) for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    def _arrays(self, s: int) -> dict[str, np.ndarray]:
        if s in self._cache:
            self._cache.move_to_end(s)
            return self._cache[s]
        if s in self.bad:  # known bad: fail at once, without reading the file again for each instance
            raise ShardFormatError(self.bad[s])
        path = self.paths[s]
        n = int(self.headers[s]["num_instances"])
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files if k != HEADER_KEY}
            rows = [k for k, v in arrays.items() if k not in (BYTES_FIELD, BYTES_FIELD + "_offsets")
                    and v.shape[:1] != (n,)]
            if rows:
                raise ShardFormatError(f"{path}: arrays {rows} do not have {n} rows as the header says")
        except Exception as e:
            msg = str(e) if isinstance(e, ShardFormatError) else \
                f"{path}: unreadable shard ({type(e).__name__}: {e})"
            self.bad[s] = msg
            raise ShardFormatError(msg) from None
        self._cache[s] = arrays
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return arrays

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"instance {index} out of range ({len(self)} instances)")
        s = int(np.searchsorted(self.offsets, index, side="right") - 1)
        i = index - int(self.offsets[s])
        a = self._arrays(s)
        h = self.headers[s]
        inst: dict = {"teacher": h["teacher"], "teacher_version": h.get("teacher_version", ""),
                      "shard": str(self.paths[s])}
        for name in META_FIELDS:
            inst[name] = a[name][i]
        for name in STRING_FIELDS:
            inst[name] = str(a[name][i])
        for name, spec in LABEL_FIELDS.items():
            if name in a:
                inst[name] = a[name][i]
                inst[_valid_name(name)] = a[_valid_name(name)][i]
            else:
                inst[name] = np.zeros(spec.shape, np.float32)
                inst[_valid_name(name)] = np.zeros(spec.mask_shape, bool)
        if BYTES_FIELD in a:
            off = a[BYTES_FIELD + "_offsets"]
            blob = a[BYTES_FIELD][off[i]:off[i + 1]].tobytes()
            inst[BYTES_FIELD] = blob or None
        else:
            inst[BYTES_FIELD] = None
        return inst

    def __iter__(self) -> Iterator[dict]:
        for i in range(len(self)):
            yield self[i]


# ------------------------------------------------------------------------------------------------
# Embedded context crops
# ------------------------------------------------------------------------------------------------

#: The embedded crop covers CONTEXT_SCALE x the network's crop, so augmentation can jitter the box
#: (shift/scale/rotate) without running out of real pixels.
CONTEXT_SCALE = 1.5
CONTEXT_SIZE = 320


def encode_context_crop(image_rgb: np.ndarray, box_xyxy, context_scale: float = CONTEXT_SCALE,
                        size: int = CONTEXT_SIZE, quality: int = 92) -> tuple[bytes, np.ndarray]:
    """JPEG bytes of a square ``size`` crop around ``box`` covering ``context_scale`` x the network crop,
    and its ``context_box = [cx, cy, side]`` in image pixels."""
    import cv2

    from instanthmr.core.geometry import CROP_SCALE, crop_person, square_crop_box

    scale = CROP_SCALE * context_scale
    crop, _ = crop_person(image_rgb, box_xyxy, out_size=size, scale=scale)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding of the context crop failed")
    return buf.tobytes(), square_crop_box(box_xyxy, scale).astype(np.float32)


def load_source_image(inst: dict, image_root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The pixels an instance's labels refer to, as ``(image_rgb, src_to_image (2, 3))``.

    ``src_to_image`` maps pixel coordinates of the returned array to full-image pixels: identity for the
    full image, a scale + offset for an embedded context crop. Raises ``FileNotFoundError`` /
    ``ShardFormatError`` with the path when the pixels cannot be had.
    """
    import cv2

    blob = inst.get(BYTES_FIELD)
    if blob:
        img = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ShardFormatError(f"{inst.get('shard', '?')}: corrupt embedded JPEG for {inst.get('source')}")
        cx, cy, side = (float(v) for v in inst["context_box"])
        s = side / img.shape[1]
        m = np.array([[s, 0.0, cx - side / 2.0], [0.0, s, cy - side / 2.0]])
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), m
    path = Path(inst.get("image_path") or "")
    if not str(path) or str(path) == ".":
        raise ShardFormatError(f"{inst.get('shard', '?')}: instance {inst.get('source')} has neither an "
                               "embedded crop nor an image path")
    if not path.is_absolute() and image_root is not None:
        path = Path(image_root) / path
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"image not found or unreadable: {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def summarize(roots) -> dict:
    """Counts per teacher and per field (valid instances), for ``tools/eval.py`` and sanity checks."""
    r = ShardReader(roots)
    out = {"shards": len(r.paths), "instances": len(r), "inputs": len(r.inputs), "teachers": {}}
    for h in r.headers:
        t = f"{h['teacher']}:{h.get('teacher_version', '')}"
        out["teachers"][t] = out["teachers"].get(t, 0) + int(h["num_instances"])
    out["fields"] = sorted(r.fields)
    return out
