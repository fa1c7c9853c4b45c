"""How well the offline paths do on the shared ground truth (``tools/eval_offline.py``): 3D PA-MPJPE / MPJPE in
millimetres on the gt3d sets (pelvis-aligned, the limbs in :data:`LIMBS`), 2D PCK@0.1 of the box on the
annotated 2D sets, per method (the MediaPipe path, networks, the average pose, MediaPipe Pose itself).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from instanthmr.core.metrics import mpjpe, pa_mpjpe, root_align
from instanthmr.core.paths import STARTER_MODEL, shared_data_dir
from instanthmr.core.skeleton import MHR70_EDGES, MHR70_INDEX
from instanthmr.runner.speed import utc_stamp

#: Joints scored in 3D (pelvis = the hips' mid-point is the alignment root, not scored).
LIMBS = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_shoulder",
         "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")
COCO17 = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
          "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
          "right_knee", "left_ankle", "right_ankle")
MPII16 = ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
          "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
          "left_wrist")
PCK_ALPHA = 0.1


# --------------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------------

@dataclass
class Sample:
    """One labelled person: ``joints`` (K, 2 or 3) for ``names`` (MHR70 names), ``visible`` (K,),
    ``box`` xyxy px; for 3D also ``joints_2d`` and ``focal``."""

    dataset: str
    image_path: Path
    names: tuple[str, ...]
    joints: np.ndarray
    visible: np.ndarray
    box: np.ndarray
    focal: float | None = None
    kind: str = "2d"
    results: dict = field(default_factory=dict)


def load_gt3d(root: Path) -> list[Sample]:
    from instanthmr.training.data.gt3d import dataset_to_names
    from instanthmr.training.data.gt3d import load_gt3d as load

    out = []
    for ds in ("h36m", "mpi_inf_3dhp"):
        if not (root / ds).is_dir():
            continue
        for fr in load(root, ds):
            j = dataset_to_names(fr.joints_cam, ds, LIMBS)
            v = dataset_to_names(fr.visible[:, None], ds, LIMBS)[:, 0].astype(bool)
            out.append(Sample(ds, fr.image_path, LIMBS, j, v, np.asarray(fr.box, np.float64), fr.focal, "3d"))
    return out


def load_annotated_2d(root: Path) -> list[Sample]:
    from instanthmr.training.data.gt3d import box_from_joints

    out = []
    coco = root / "coco" / "person_keypoints_subset.json"
    if coco.is_file():
        d = json.loads(coco.read_text())
        files = {im["id"]: im["file_name"] for im in d["images"]}
        for a in d["annotations"]:
            k = np.asarray(a["keypoints"], np.float64).reshape(17, 3)
            if (k[:, 2] > 0).sum() < 5:
                continue
            x, y, w, h = a["bbox"]
            out.append(Sample("coco", coco.parent / files[a["image_id"]], COCO17, k[:, :2], k[:, 2] > 0,
                              np.array([x, y, x + w, y + h])))
    mpii = root / "mpii" / "test_mpii.json"
    if mpii.is_file():
        keep = [i for i, n in enumerate(MPII16) if n in LIMBS]
        for a in json.loads(mpii.read_text()):
            j = np.asarray(a["joints"], np.float64)
            v = np.asarray(a["joints_vis"], bool) & (j > 0).all(1)
            out.append(Sample("mpii", mpii.parent / a["image"], tuple(MPII16[i] for i in keep), j[keep], v[keep],
                              box_from_joints(j[v])))
    return out


# --------------------------------------------------------------------------------------------------
# Methods: method(image, sample) -> (joints_2d (70, 2) px, joints_3d (70, 3) m, valid (70,)) or None
# (every method gets the sample's box and focal length; nothing else of the ground truth)
# --------------------------------------------------------------------------------------------------

class MediaPipeMethod:
    name = "mediapipe"
    label = "MediaPipe path (offline default)"

    def __init__(self, hands: bool = True):
        from instanthmr.runtime.mediapipe.estimator import MediaPipeHMR

        self.hmr = MediaPipeHMR(hands=hands)

    def __call__(self, image, sample: Sample):
        preds = self.hmr.predict(image, sample.box[None], focal_length=sample.focal)
        if not preds:
            return None
        p = preds[0]
        return p.joints_2d, p.joints_3d_local, p.valid_mask


class MediaPipeFitMethod:
    """The MediaPipe path followed by the MHR body fit (:mod:`instanthmr.body.fit`) on the single image: bone
    lengths estimated from this one person (no track to hold them over), the fit from a cold start; 2D keeps
    MediaPipe's own joints where it gave them (as the demo's body-fit stage does)."""

    name = "mediapipe_fit"
    label = "MediaPipe path + MHR body fit"

    def __init__(self, base: MediaPipeMethod):
        from instanthmr.body.fit import BodyFitter
        from instanthmr.body.mhr import SHIPPED_MHR_MODEL, MHRNumpy

        self.base = base
        self.fitter = BodyFitter(MHRNumpy.from_npz(SHIPPED_MHR_MODEL))

    def __call__(self, image, sample: Sample):
        from instanthmr.body.fit import fit_alone
        from instanthmr.core.geometry import project_points
        from instanthmr.video.body_fit import observation_from

        preds = self.base.hmr.predict(image, sample.box[None], focal_length=sample.focal)
        if not preds:
            return None
        obs = observation_from(preds[0]).clean()
        fit, _ = fit_alone(self.fitter, obs)
        j2 = project_points(fit.keypoints + fit.cam_trans, obs.focal, obs.principal_point)
        seen = obs.w2d > 0
        j2[seen] = obs.joints_2d[seen]
        return j2, fit.keypoints, np.ones(len(j2), bool)


class NetworkMethod:
    def __init__(self, path: Path, name: str, label: str):
        from instanthmr.runtime.hmr import InstantHMR

        self.net = InstantHMR(path, device="cpu", max_persons=1)
        self.name, self.label = name, label

    def __call__(self, image, sample: Sample):
        p = self.net.predict(image, sample.box[None], focal_length=sample.focal)[0]
        return p.joints_2d, p.joints_3d_local, p.valid_mask


def facing_camera(joints_3d: np.ndarray) -> np.ndarray:
    """Pelvis-centred joints (70, 3) turned about the vertical (y) axis so the hips face the camera (left
    hip towards +x): averaging people who face different ways would otherwise cancel their widths out."""
    v = joints_3d[MHR70_INDEX["left_hip"]] - joints_3d[MHR70_INDEX["right_hip"]]
    a = np.arctan2(v[2], v[0])  # rotate by -a about y: v -> +x
    c, s = np.cos(a), np.sin(a)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return joints_3d @ rot.T


class AveragePoseMethod:
    name = "average"
    label = "constant average pose"

    def __init__(self, mean_3d: np.ndarray, mean_2d_box: np.ndarray, valid: np.ndarray):
        self.mean_3d, self.mean_2d_box, self.valid = mean_3d, mean_2d_box, valid

    @classmethod
    def from_clips(cls, clips, every: int = 10) -> "AveragePoseMethod":
        """Per-joint means of the MediaPipe path's pelvis-centred 3D and of its 2D in box units ([0, 1] of
        the box's width/height) over every ``every``-th frame of ``clips``."""
        from instanthmr.runtime.mediapipe.estimator import mediapipe_pipeline
        from instanthmr.video.sources import open_source

        pipe = mediapipe_pipeline(hands=False, crops="boxes")
        hips = [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]
        j3, j2, vs = [], [], []
        for clip in clips:
            src = open_source(None, str(clip), None)
            try:
                for fr in src:
                    if fr.index % every:
                        continue
                    pipe.reset()
                    for p in pipe.predict(fr.image).persons:
                        v = p.valid_mask
                        if not v[hips].all():
                            continue
                        b = np.asarray(p.box, np.float64)
                        j3.append(facing_camera(np.nan_to_num(p.joints_3d_local - p.joints_3d_local[hips].mean(0))))
                        u = np.nan_to_num((p.joints_2d - b[:2]) / np.maximum(b[2:] - b[:2], 1.0))
                        if u[hips[0], 0] < u[hips[1], 0]:  # seen from behind: mirror (labels stay right)
                            u[:, 0] = 1.0 - u[:, 0]
                        j2.append(u)
                        vs.append(v)
            finally:
                src.close()
        if not vs:
            raise ValueError("no person found on the clips for the average pose")
        v = np.array(vs, np.float64)[..., None]
        n = np.maximum(v.sum(0), 1.0)
        return cls((np.array(j3) * v).sum(0) / n, (np.array(j2) * v).sum(0) / n, v.sum(0)[:, 0] > 0)

    def __call__(self, image, sample: Sample):
        b = np.asarray(sample.box, np.float64)
        return self.mean_2d_box * (b[2:] - b[:2]) + b[:2], self.mean_3d.copy(), self.valid.copy()


class MediaPipePoseMethod:
    """MediaPipe Pose (the real package, in its own venv) on each box's square crop, all images in one
    worker call."""

    name = "mediapipe_pose"
    label = "MediaPipe Pose 0.10.21 itself"

    WORKER = r'''
import json, sys
import cv2, numpy as np
import mediapipe as mp
jobs = json.loads(open(sys.argv[1]).read())
out = []
with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
    for job in jobs:
        img = cv2.cvtColor(cv2.imread(job["image"]), cv2.COLOR_BGR2RGB)
        x1, y1, x2, y2 = job["box"]
        cx, cy, s = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 1.25
        m = np.array([[1, 0, s / 2 - cx], [0, 1, s / 2 - cy]], np.float64)
        crop = cv2.warpAffine(img, m, (int(round(s)), int(round(s))))
        r = pose.process(crop)
        if r.pose_landmarks is None:
            out.append(None)
            continue
        p = np.array([[l.x * crop.shape[1] + cx - s / 2, l.y * crop.shape[0] + cy - s / 2]
                      for l in r.pose_landmarks.landmark])
        w = np.array([[l.x, l.y, l.z] for l in r.pose_world_landmarks.landmark])
        out.append({"points": p.tolist(), "world": w.tolist()})
print(json.dumps({"results": out}))
'''

    def __init__(self, venv: Path | None = None):
        from instanthmr.teachers.mediapipe_pose import DEFAULT_VENV, MediaPipeVenvError, ensure_mediapipe_venv

        try:
            self.py = ensure_mediapipe_venv(venv or DEFAULT_VENV)
        except MediaPipeVenvError as e:
            raise ValueError(str(e)) from None
        self._cache: dict = {}

    def prepare(self, samples: list[Sample]) -> None:
        import tempfile

        from instanthmr.teachers.mediapipe_pose import run_worker

        jobs = [{"image": str(s.image_path), "box": [float(v) for v in s.box]} for s in samples]
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(jobs, f)
        try:
            res = run_worker(self.py, self.WORKER, [f.name], timeout=600)
        finally:
            Path(f.name).unlink()
        self._cache = {(j["image"], tuple(j["box"])): r for j, r in zip(jobs, res["results"])}

    def __call__(self, image, sample: Sample):
        from instanthmr.runtime.mediapipe import BLAZEPOSE33_INDEX
        from instanthmr.runtime.mediapipe.conversion import MHR70_FROM_BLAZEPOSE

        r = self._cache.get((str(sample.image_path), tuple(float(v) for v in sample.box)))
        if r is None:
            return None
        j2 = np.full((70, 2), np.nan)
        j3 = np.full((70, 3), np.nan)
        v = np.zeros(70, bool)
        pts, world = np.asarray(r["points"]), np.asarray(r["world"])
        for m, b in MHR70_FROM_BLAZEPOSE.items():
            j2[MHR70_INDEX[m]] = pts[BLAZEPOSE33_INDEX[b]]
            j3[MHR70_INDEX[m]] = world[BLAZEPOSE33_INDEX[b]]
            v[MHR70_INDEX[m]] = True
        return j2, j3, v


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------

def _pick(joints, names):
    return np.asarray(joints, np.float64)[[MHR70_INDEX[n] for n in names]]


def score_3d(samples: list[Sample], method) -> dict:
    """Pelvis-aligned MPJPE and PA-MPJPE (mm) over the scored limb joints of ``samples``."""
    hips = [LIMBS.index("left_hip"), LIMBS.index("right_hip")]
    errs, pa, scored, total, missed = [], [], 0, 0, 0
    for s in samples:
        total += int(s.visible.sum())
        out = s.results.get(method.name)
        if out is None:
            missed += 1
            continue
        _, j3, valid = out
        p, v = _pick(j3, s.names), _pick(valid[:, None], s.names)[:, 0].astype(bool) & s.visible
        if not v[hips].all():
            missed += 1
            continue
        p = np.nan_to_num(root_align(p, hips))
        g = root_align(s.joints, hips)
        errs.append(float(mpjpe(p, g, v)) * 1000)
        pa.append(float(pa_mpjpe(p, g, v)) * 1000)
        scored += int(v.sum())
    return {"frames": len(samples), "missed": missed, "joints": scored, "of_joints": total,
            "mpjpe_mm": float(np.mean(errs)) if errs else float("nan"),
            "pa_mpjpe_mm": float(np.mean(pa)) if pa else float("nan")}


def score_2d(samples: list[Sample], method) -> dict:
    """PCK@0.1 of the box over the labelled joints (a joint not predicted counts as wrong)."""
    hits, total, missed = 0, 0, 0
    for s in samples:
        vis = s.visible
        total += int(vis.sum())
        out = s.results.get(method.name)
        if out is None:
            missed += 1
            continue
        j2, _, valid = out
        p = _pick(j2, s.names)
        ok = _pick(valid[:, None], s.names)[:, 0].astype(bool) & np.isfinite(p).all(1)
        thr = PCK_ALPHA * float(max(s.box[2] - s.box[0], s.box[3] - s.box[1]))
        correct = (np.linalg.norm(np.nan_to_num(p) - s.joints, axis=1) <= thr) & ok
        hits += int((correct & vis).sum())
    return {"people": len(samples), "missed": missed, "joints": total, "pck": hits / total if total else float("nan")}


def draw_overlay(image_rgb, sample: Sample, out, path: Path) -> None:
    import cv2

    img = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    x1, y1, x2, y2 = (int(v) for v in sample.box)
    cv2.rectangle(img, (x1, y1), (x2, y2), (200, 200, 200), 1)
    th = max(2, int(round(max(img.shape[:2]) / 400)))
    for j in sample.joints[sample.visible]:
        cv2.circle(img, (int(j[0]), int(j[1])), th + 2, (0, 200, 0), -1)
    if out is not None:
        j2, _, valid = out
        for a, b in MHR70_EDGES:
            if valid[a] and valid[b] and np.isfinite(j2[[a, b]]).all():
                cv2.line(img, tuple(int(v) for v in j2[a]), tuple(int(v) for v in j2[b]), (0, 0, 255), th)
    # the person, not the whole frame (a 2048 px MPI-INF-3DHP frame shows a small person)
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, 1.4 * max(x2 - x1, y2 - y1)
    h, w = img.shape[:2]
    a, b = max(int(cx - side / 2), 0), max(int(cy - side / 2), 0)
    img = img[b:min(int(cy + side / 2), h), a:min(int(cx + side / 2), w)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def evaluate(data: Path | None = None, starter: Path | None = STARTER_MODEL, models: list[Path] = (),
             mediapipe_pose: bool = False, venv: Path | None = None, overlays: Path | None = None) -> dict:
    """Score every method on the shared ground truth under ``data`` (default: the shared data folder): the
    MediaPipe path, the ``starter`` network, each of ``models``, the average pose, and with ``mediapipe_pose``
    MediaPipe Pose itself (its venv built when missing). ``overlays``: one PNG per image and method there.
    Returns the report: ``methods`` -> dataset -> PA-MPJPE / MPJPE (mm) or PCK@0.1."""
    from instanthmr.video.sources import read_image_rgb

    data = data or shared_data_dir()
    samples = load_gt3d(data / "gt3d") + load_annotated_2d(data / "annotated_2d")
    if not samples:
        raise ValueError(f"no ground truth found under {data} (gt3d/, annotated_2d/); pass --data")
    clips = [data / "videos" / n for n in ("openpose_video.avi", "sports2d_demo.mp4")]
    methods = [MediaPipeMethod()]
    methods.append(MediaPipeFitMethod(methods[0]))
    if starter and Path(starter).is_file():
        methods.append(NetworkMethod(starter, "starter", f"starter network ({Path(starter).name})"))
    for i, m in enumerate(models):
        methods.append(NetworkMethod(m, f"model{i + 1}" if len(models) > 1 else "model", f"network {m.name}"))
    if all(c.is_file() for c in clips):
        methods.append(AveragePoseMethod.from_clips(clips))
    else:
        print(f"note: no average pose ({' or '.join(str(c) for c in clips)} missing)", file=sys.stderr)
    if mediapipe_pose:
        mpp = MediaPipePoseMethod(venv)
        mpp.prepare(samples)
        methods.append(mpp)
    for s in samples:
        image = read_image_rgb(s.image_path)
        for m in methods:
            s.results[m.name] = m(image, s)
            if overlays:
                draw_overlay(image, s, s.results[m.name],
                             overlays / f"{s.dataset}_{s.image_path.stem}_{int(s.box[0])}_{m.name}.png")
    s3 = [s for s in samples if s.kind == "3d"]
    s2 = [s for s in samples if s.kind == "2d"]
    report: dict = {"time": utc_stamp(), "data": str(data), "methods": {}}
    for m in methods:
        r: dict = {"label": m.label}
        for ds in sorted({s.dataset for s in s3}):
            r[ds] = score_3d([s for s in s3 if s.dataset == ds], m)
        if s3:
            r["gt3d"] = score_3d(s3, m)
        for ds in sorted({s.dataset for s in s2}):
            r[ds] = score_2d([s for s in s2 if s.dataset == ds], m)
        if s2:
            r["annotated_2d"] = score_2d(s2, m)
        report["methods"][m.name] = r
    return report
