"""Evaluate a checkpoint or an ONNX file against teacher shards and against real 3D ground truth.

Errors are millimetres, pelvis-aligned (mid-hips), MPJPE and PA-MPJPE (similarity Procrustes), overall and per
MHR70 body part. Against ground truth only the joints that mean the same point in both skeletons are scored
(see :mod:`instanthmr.training.data.gt3d`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from instanthmr.core import geometry
from instanthmr.core.metrics import pa_mpjpe, per_part_mpjpe, root_align
from instanthmr.core.skeleton import MHR70_INDEX, MHR70_PARTS
from instanthmr.training.data.augment import AugmentConfig, normalize_crops
from instanthmr.training.data.gt3d import SHARED_NAMES, dataset_to_names, load_gt3d, mhr70_to_names

PELVIS = [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]


class Predictor:
    """Network outputs for ``(N, S, S, 3)`` uint8 RGB crops and ``(N, 3)`` CLIFF conditions, as numpy."""

    cliff_form: str = "pixel"
    input_size: int = geometry.CROP_SIZE
    name: str = ""

    def __call__(self, crops_uint8: np.ndarray, cliff: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError


class TorchPredictor(Predictor):
    def __init__(self, checkpoint: str | Path, device: str = "cpu"):
        import torch

        from instanthmr.training.model import load_checkpoint

        self.torch = torch
        self.device = torch.device(device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = load_checkpoint(checkpoint).to(self.device).eval()
        self.cliff_form = self.model.config.cliff_form
        self.input_size = self.model.config.input_size
        self.name = f"{Path(checkpoint).name} ({self.model.config.name}, step {self.model.step})"

    def __call__(self, crops_uint8, cliff):
        t = self.torch
        with t.no_grad():
            out = self.model(t.from_numpy(normalize_crops(crops_uint8)).to(self.device),
                             t.from_numpy(np.asarray(cliff, np.float32)).to(self.device))
        return {k: v.float().cpu().numpy() for k, v in out.items()}


class OnnxPredictor(Predictor):
    def __init__(self, onnx_path: str | Path, device: str = "auto"):
        from instanthmr.runtime.hmr import InstantHMR

        self.net = InstantHMR(onnx_path, device=device)
        self.cliff_form = self.net.cliff_form
        self.input_size = self.net.input_size
        self.name = f"{Path(onnx_path).name} ({self.net.device})"

    def __call__(self, crops_uint8, cliff):
        return self.net(normalize_crops(crops_uint8), np.asarray(cliff, np.float32))


def load_predictor(path: str | Path, device: str = "auto") -> Predictor:
    """A :class:`Predictor` for a ``.onnx`` file or a torch checkpoint (anything else)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return OnnxPredictor(path, device)
    return TorchPredictor(path, "cpu" if device == "auto" else device)


def _errors(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, root) -> dict:
    p, g = root_align(pred, root), root_align(gt, root)
    err = np.linalg.norm(p - g, axis=-1)
    pa = pa_mpjpe(p, g, mask)
    return {"mpjpe_mm": float(err[mask].mean() * 1000) if mask.any() else float("nan"),
            "pa_mpjpe_mm": float(np.nanmean(pa) * 1000) if mask.any() else float("nan")}


def evaluate_shards(predictor: Predictor, roots, batch_size: int = 32, max_instances: int | None = None,
                    image_root: str | None = None) -> dict:
    """Errors vs the teacher over the instances of ``roots`` (no augmentation: the runtime's crop)."""
    from instanthmr.training.dataset import ShardDataset

    ds = ShardDataset(roots, AugmentConfig.off(), predictor.cliff_form, image_root, input_size=predictor.input_size)
    n = len(ds) if max_instances is None else min(len(ds), int(max_instances))
    keys = ("joints_3d", "joints_2d", "joints_3d_wholebody")
    pred = {k: [] for k in keys}
    tgt = {k: [] for k in keys + ("joints_3d_valid", "joints_2d_valid", "joints_3d_wholebody_valid", "crop_box")}
    for start in range(0, n, batch_size):
        items = [ds.sample(i) for i in range(start, min(n, start + batch_size))]
        out = predictor(np.stack([s["image"] for s in items]), np.stack([s["cliff_cond"] for s in items]))
        for k in keys:
            if k in out:
                pred[k].append(out[k])
        for k in tgt:
            tgt[k].append(np.stack([np.asarray(s[k]) for s in items]))
    cat = {k: np.concatenate(v) for k, v in tgt.items()}  # teacher targets (predictions stay in ``pred``)
    p3 = np.concatenate(pred["joints_3d"])
    m3 = cat["joints_3d_valid"] & cat["joints_3d_valid"][:, PELVIS].all(1, keepdims=True)
    report = {"instances": n, "vs_teacher": _errors(p3, cat["joints_3d"], m3, PELVIS)}
    pr, tr = root_align(p3, PELVIS), root_align(cat["joints_3d"], PELVIS)
    report["vs_teacher"]["per_part_mpjpe_mm"] = {
        k: v * 1000 for k, v in per_part_mpjpe(pr, tr, MHR70_PARTS, m3).items()}
    report["vs_teacher"]["per_part_pa_mpjpe_mm"] = {
        k: v * 1000 for k, v in per_part_mpjpe(pr, tr, MHR70_PARTS, m3, align="procrustes").items()}
    # 2D error in pixels of the crop's source image: normalised units x half the crop side
    p2 = np.concatenate(pred["joints_2d"])
    m2 = cat["joints_2d_valid"]
    px = np.linalg.norm(p2 - cat["joints_2d"], axis=-1) * cat["crop_box"][:, 2:3] / 2.0
    report["vs_teacher"]["joints_2d_px"] = float(px[m2].mean()) if m2.any() else float("nan")
    if pred["joints_3d_wholebody"] and cat["joints_3d_wholebody_valid"].any():
        try:
            from instanthmr.teachers.lifter.evaluate import head_errors
        except ImportError:
            head_errors = None
        if head_errors is not None:
            report["wholebody"] = head_errors(np.concatenate(pred["joints_3d_wholebody"]),
                                              cat["joints_3d_wholebody"], cat["joints_3d_wholebody_valid"])
    return report


def evaluate_gt3d(predictor: Predictor, gt3d_root: str | Path, datasets=("h36m", "mpi_inf_3dhp")) -> dict:
    """Errors vs metric ground truth on the shared joints (pelvis-aligned) of each dataset's frames."""
    import cv2

    report: dict = {"joints": list(SHARED_NAMES)}
    for ds in datasets:
        frames = load_gt3d(gt3d_root, ds)
        preds, gts, masks = [], [], []
        for fr in frames:
            img = cv2.imread(str(fr.image_path), cv2.IMREAD_COLOR)
            if img is None:
                raise FileNotFoundError(f"image not found or unreadable: {fr.image_path}")
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            h, w = img.shape[:2]
            crop, _ = geometry.crop_person(img, fr.box, out_size=predictor.input_size)
            cliff = geometry.cliff_condition(fr.box, (w, h), fr.focal, form=predictor.cliff_form)
            out = predictor(crop[None], cliff[None])
            preds.append(mhr70_to_names(out["joints_3d"][0]))
            gts.append(dataset_to_names(fr.joints_cam, ds))
            vis = dataset_to_names(fr.visible[:, None], ds)[:, 0]
            masks.append(vis)
        m = np.stack(masks)
        m[:, 0] = False  # the pelvis is the alignment root: its error is zero by construction
        res = _errors(np.stack(preds), np.stack(gts), m, 0)
        report[ds] = {"frames": len(frames), **res}
    return report


def format_table(report: dict) -> str:
    """A short human-readable table of an evaluation report."""
    lines = []
    if "vs_teacher" in report:
        t = report["vs_teacher"]
        lines.append(f"vs teacher ({report['instances']} instances): MPJPE {t['mpjpe_mm']:.1f} mm, "
                     f"PA-MPJPE {t['pa_mpjpe_mm']:.1f} mm, 2D {t['joints_2d_px']:.1f} px")
        lines.append(f"  {'part':<12}{'MPJPE':>9}{'PA-MPJPE':>10}")
        for part, v in t["per_part_mpjpe_mm"].items():
            lines.append(f"  {part:<12}{v:>9.1f}{t['per_part_pa_mpjpe_mm'][part]:>10.1f}")
    if "gt3d" in report:
        g = report["gt3d"]
        for ds, r in g.items():
            if isinstance(r, dict):
                lines.append(f"vs ground truth {ds} ({r['frames']} frames, {len(g['joints']) - 1} joints): "
                             f"MPJPE {r['mpjpe_mm']:.1f} mm, PA-MPJPE {r['pa_mpjpe_mm']:.1f} mm")
    return "\n".join(lines)
