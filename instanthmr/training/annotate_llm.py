"""Annotate people with the LLM 2D-to-3D lifter: 133 COCO-WholeBody 2D keypoints in, normalised 3D out.

Input (``--input``), one person per record, pixel coordinates:

- ``.npz``: ``kp2d (N, 133, 2)`` (or ``keypoints (N, 133, 3)`` with scores), optional ``keys``,
  ``kp2d_valid (N, 133)``, ``box``, ``image_size``, ``image_path`` (``tools/eval_lifter.py make-set`` writes one);
- ``.json``: a list of ``{"key", "keypoints": 133 x [x, y(, score)], "box"?, "image_size"?, "image_path"?}``,
  or a COCO-WholeBody annotation file (``annotations`` with ``keypoints/foot_kpts/face_kpts/lefthand_kpts/
  righthand_kpts``);
- a shard folder from our own pipeline/teachers: ``joints_2d_wholebody`` where valid, else the MHR70
  ``joints_2d`` mapped to the COCO-WholeBody joints they share.

Joints without a valid 2D position are placed at an anchor (see ``lifter.evaluate.fill_missing_2d``).
Each person -> protocol prompt -> chat template -> greedy generation (batched) -> parser -> shards
(``joints_3d_wholebody`` normalised, mask = parsed joints; outputs below ``--min-fraction`` get no label)
plus ``raw-<teacher>.jsonl`` with every generated text for audit. Resumable: rerun the same command; Ctrl-C,
SIGTERM and SIGHUP keep every finished person (exit 130 / 143 / 129).

The command: ``tools/annotate_llm.py``; the call: ``annotate(LifterJob(input=..., out=..., base_model=...))``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.core.skeleton import MHR70_TO_COCO_WHOLEBODY
from instanthmr.teachers.lifter import protocol
from instanthmr.teachers.lifter.evaluate import fill_missing_2d

TEACHER = "llm_lifter"


class AnnotateError(RuntimeError):
    """A one-line, user-facing failure."""


def _record(key, kp, valid=None, box=None, image_size=None, image_path="") -> dict:
    kp = np.asarray(kp, dtype=np.float64)
    if kp.shape not in ((133, 2), (133, 3)):
        raise AnnotateError(f"person {key!r}: keypoints must be 133 x 2 or 133 x 3, got {kp.shape}")
    v = np.isfinite(kp[:, :2]).all(1) if valid is None else np.asarray(valid, bool)
    return {"key": str(key), "kp2d": np.nan_to_num(kp[:, :2]), "valid": v, "box": box,
            "image_size": image_size, "image_path": str(image_path or "")}


def _from_npz(path: Path, score_thr: float) -> list[dict]:
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    if "kp2d" in d:
        kp, valid = d["kp2d"], d.get("kp2d_valid")
    elif "keypoints" in d and d["keypoints"].shape[-1] == 3:
        kp, valid = d["keypoints"][..., :2], d["keypoints"][..., 2] > score_thr
    else:
        raise AnnotateError(f"{path}: expected 'kp2d (N, 133, 2)' or 'keypoints (N, 133, 3)'")
    keys = d.get("keys", np.array([f"{path.stem}#{i:06d}" for i in range(len(kp))]))
    return [_record(keys[i], kp[i], None if valid is None else valid[i],
                    d["box"][i] if "box" in d else None, d["image_size"][i] if "image_size" in d else None,
                    d["image_path"][i] if "image_path" in d else "") for i in range(len(kp))]


def _from_json(path: Path, score_thr: float) -> list[dict]:
    data = json.loads(path.read_text())
    recs = []
    if isinstance(data, dict) and "annotations" in data:  # COCO-WholeBody
        images = {im["id"]: im for im in data.get("images", [])}
        for a in data["annotations"]:
            parts = [a.get(k) for k in ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")]
            if any(p is None for p in parts):
                raise AnnotateError(f"{path}: annotation {a.get('id')} lacks whole-body keypoint fields")
            kp = np.concatenate([np.asarray(p, float).reshape(-1, 3) for p in parts])
            im = images.get(a.get("image_id"), {})
            x, y, w, h = a.get("bbox", [0, 0, 0, 0])
            recs.append(_record(f"coco:{a.get('image_id')}:{a.get('id')}", kp[:, :2], kp[:, 2] > score_thr,
                                [x, y, x + w, y + h] if w > 0 else None,
                                [im["width"], im["height"]] if "width" in im else None, im.get("file_name", "")))
        return recs
    if not isinstance(data, list):
        raise AnnotateError(f"{path}: expected a list of people or a COCO-WholeBody annotation file")
    for i, r in enumerate(data):
        kp = np.asarray(r["keypoints"], float)
        valid = kp[:, 2] > score_thr if kp.ndim == 2 and kp.shape[1] == 3 else None
        recs.append(_record(r.get("key", f"{path.stem}#{i:06d}"), kp, valid, r.get("box"), r.get("image_size"),
                            r.get("image_path", "")))
    return recs


def _from_shards(path: Path) -> list[dict]:
    from instanthmr.training.data.shards import ShardReader

    recs = []
    for i, inst in enumerate(ShardReader(path)):
        kp, valid = inst["joints_2d_wholebody"].astype(np.float64), inst["joints_2d_wholebody_valid"].copy()
        if not valid.any() and inst["joints_2d_valid"].any():  # only MHR70 2D: take the shared joints
            for m, c in MHR70_TO_COCO_WHOLEBODY.items():
                kp[c], valid[c] = inst["joints_2d"][m], inst["joints_2d_valid"][m]
        recs.append(_record(f"{inst['source']}#{i:06d}", kp, valid, inst["box"], inst["image_size"], inst["image_path"]))
    return recs


def load_people(path: Path, score_thr: float = 0.3) -> list[dict]:
    """Person records ``{key, kp2d (133, 2), valid (133,), box, image_size, image_path}`` from ``path``."""
    if not path.exists():
        raise AnnotateError(f"input not found: {path}")
    try:
        if path.is_dir():
            return _from_shards(path)
        if path.suffix == ".npz":
            return _from_npz(path, score_thr)
        if path.suffix == ".json":
            return _from_json(path, score_thr)
    except AnnotateError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        raise AnnotateError(f"{path}: cannot read people ({type(e).__name__}: {e})") from None
    raise AnnotateError(f"{path}: input must be a .npz, a .json or a shard folder")


def prepare(rec: dict) -> dict | None:
    """Fill missing joints and set box/image size defaults; None when the person has < 2 valid joints."""
    if rec["valid"].sum() < 2:
        return None
    kp = fill_missing_2d(rec["kp2d"], rec["valid"])
    pts = rec["kp2d"][rec["valid"]]
    box = rec["box"] if rec["box"] is not None else np.concatenate([pts.min(0), pts.max(0)])
    size = rec["image_size"] if rec["image_size"] is not None else np.ceil(pts.max(0)).astype(int)
    return {**rec, "kp2d": kp, "box": np.asarray(box, np.float32), "image_size": np.asarray(size, np.int32)}


@dataclass(frozen=True)
class LifterJob:
    """One annotation run (``tools/annotate_llm.py`` documents each option): ``input`` (people, see the module
    docstring), ``out`` (a shard folder, resumed), the base LM and its LoRA ``adapter`` (Hugging Face id or
    folder), the prompt's ``coord_format``, generation (``batch_size``, ``max_new_tokens``, ``device``,
    ``dtype``), ``min_fraction`` (an output is kept when at least this fraction of joints parsed),
    ``score_threshold`` (a 2D keypoint scored below it is missing), ``shard_size`` and ``limit`` (0 = all)."""

    input: str
    out: str
    base_model: str
    adapter: str | None = None
    coord_format: str = "bins"
    batch_size: int = 8
    max_new_tokens: int = 2048
    device: str = "auto"
    dtype: str = "auto"
    min_fraction: float = protocol.DEFAULT_MIN_FRACTION
    score_threshold: float = 0.3
    shard_size: int = 512
    limit: int = 0


def annotate(args: LifterJob, lm=None) -> dict:
    """Run the lifter over the input; returns the summary dict (samples, parse rate, seconds per sample, ...).
    ``lm``: an already loaded ``LifterLM``."""
    from instanthmr.training.data.shards import ShardWriter

    if lm is None:  # a local folder that is not there is said now, not blamed on the network after loading
        from instanthmr.teachers.lifter.llm import check_local_model

        check_local_model(args.base_model, "base model")
        if args.adapter:
            check_local_model(args.adapter, "LoRA adapter")
    people = load_people(Path(args.input), args.score_threshold)
    if args.limit:
        people = people[: args.limit]
    if lm is None:
        from instanthmr.teachers.lifter.llm import LifterLM

        lm = LifterLM.load(args.base_model, args.adapter, args.device, args.dtype, args.max_new_tokens)
    version = f"{args.base_model}+{args.adapter or 'no-adapter'}|{args.coord_format}"
    out = Path(args.out)
    stats = {"samples": 0, "parsed": 0, "joints_parsed": 0, "skipped_done": 0, "skipped_bad_input": 0,
             "truncated": 0, "seconds": 0.0, "new_tokens": 0}
    with ShardWriter(out, teacher=TEACHER, teacher_version=version, shard_size=args.shard_size) as writer, \
            open(out / f"raw-{TEACHER}.jsonl", "a") as raw:
        todo = []
        for rec in people:
            if writer.is_done(rec["key"]):
                stats["skipped_done"] += 1
                continue
            p = prepare(rec)
            if p is None:
                stats["skipped_bad_input"] += 1
                writer.mark_done(rec["key"])
                continue
            todo.append(p)
        for b in range(0, len(todo), args.batch_size):
            batch = todo[b: b + args.batch_size]
            msgs = [protocol.build_messages(p["kp2d"], args.coord_format, valid=p["valid"]) for p in batch]
            t0 = time.perf_counter()
            gens = lm.generate(msgs)
            stats["seconds"] += time.perf_counter() - t0
            for p, g in zip(batch, gens):
                joints, mask, frac = protocol.parse_output(g.text, args.coord_format, drop_last_partial=g.truncated)
                ok = protocol.is_parsed(frac, args.min_fraction)
                stats["samples"] += 1
                stats["parsed"] += int(ok)
                stats["joints_parsed"] += int(mask.sum())
                stats["truncated"] += int(g.truncated)
                stats["new_tokens"] += g.new_tokens
                raw.write(json.dumps({"key": p["key"], "text": g.text, "coord_format": args.coord_format,
                                      "truncated": g.truncated, "new_tokens": g.new_tokens,
                                      "parsed_fraction": round(frac, 4), "teacher_version": version}) + "\n")
                if ok:
                    writer.add({"box": p["box"], "image_size": p["image_size"], "source": p["key"],
                                "image_path": p["image_path"], "joints_3d_wholebody": joints,
                                "joints_3d_wholebody_valid": mask, "joints_2d_wholebody": p["kp2d"],
                                "joints_2d_wholebody_valid": p["valid"]})
                writer.mark_done(p["key"])  # after its label: the label and the done-mark share a shard
            raw.flush()
    n = stats["samples"]
    stats.update(parse_rate=stats["parsed"] / n if n else 0.0,
                 mean_joints_parsed=stats["joints_parsed"] / n if n else 0.0,
                 seconds_per_sample=stats["seconds"] / n if n else 0.0)
    return stats
