"""Real metric 3D ground truth (Human3.6M, MPI-INF-3DHP as packaged by mmpose) and its MHR70 mapping.

Both files hold ``S (N, 17, 4)``: camera-frame joints in metres (x right, y down, z forward) + visibility,
``part (N, 17, 3)``: 2D pixels + visibility, ``imgname``, ``center``/``scale`` (mmpose box convention).
Joint orders are mmpose's (verified against the data: each set's root is the mid-point of its hips):

* H36M: root, r_hip, r_knee, r_foot, l_hip, l_knee, l_foot, spine, thorax, neck_base, head,
  l_shoulder, l_elbow, l_wrist, r_shoulder, r_elbow, r_wrist.
* MPI-INF-3DHP (test order): head_top, neck, r_shoulder, r_elbow, r_wrist, l_shoulder, l_elbow, l_wrist,
  r_hip, r_knee, r_ankle, l_hip, l_knee, l_ankle, root, spine, head.

Only joints that mean the same point in MHR70 are compared (by name): hips, knees, ankles (H36M "foot" is
its ankle joint), shoulders, elbows, wrists, and the pelvis as the hips' mid-point (which is how both
datasets' root is defined here). Spine, thorax, head and head-top have no MHR70 counterpart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.core.skeleton import MHR70_INDEX

H36M17_NAMES = ("pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
                "spine", "thorax", "neck_base", "head", "left_shoulder", "left_elbow", "left_wrist",
                "right_shoulder", "right_elbow", "right_wrist")
MPI_INF_3DHP17_NAMES = ("head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
                        "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
                        "left_knee", "left_ankle", "pelvis", "spine", "head")
#: The names both skeletons share with MHR70 ("pelvis" is derived: mean of MHR70's two hips).
SHARED_NAMES = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
                "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")
SKELETONS = {"h36m": H36M17_NAMES, "mpi_inf_3dhp": MPI_INF_3DHP17_NAMES}
_FILES = {"h36m": "h36m/h36m_body3d_subset.npz", "mpi_inf_3dhp": "mpi_inf_3dhp/test_3dhp_train.npz"}


def mhr70_to_names(joints_mhr70, names=SHARED_NAMES) -> np.ndarray:
    """Pick ``names`` out of MHR70 joints ``(..., 70, D)``; ``pelvis`` is the mean of the hips."""
    j = np.asarray(joints_mhr70, np.float64)
    cols = []
    for n in names:
        if n == "pelvis":
            cols.append((j[..., MHR70_INDEX["left_hip"], :] + j[..., MHR70_INDEX["right_hip"], :]) / 2.0)
        else:
            cols.append(j[..., MHR70_INDEX[n], :])
    return np.stack(cols, axis=-2)


def dataset_to_names(joints17, dataset: str, names=SHARED_NAMES) -> np.ndarray:
    """Pick ``names`` out of a 17-joint array ``(..., 17, D)`` of ``dataset`` ("h36m" / "mpi_inf_3dhp")."""
    order = SKELETONS[dataset]
    idx = [order.index(n) for n in names]
    return np.asarray(joints17)[..., idx, :]


@dataclass
class GTFrame:
    """One annotated person: ``joints_cam (17, 3)`` metres, camera frame (y down); ``joints_2d (17, 2)``
    pixels; ``box`` a detector-like ``[x1, y1, x2, y2]`` around the 2D joints; ``focal``/``principal_point``
    in pixels (from the dataset's cameras where known)."""

    dataset: str
    image_path: Path
    joints_cam: np.ndarray
    joints_2d: np.ndarray
    visible: np.ndarray
    box: np.ndarray
    focal: float | None
    principal_point: np.ndarray | None


def box_from_joints(joints_2d, pad: float = 0.15) -> np.ndarray:
    """A detector-like box: the joints' bounds grown by ``pad`` of their size on each side (the joints
    stop at the ankles and the head centre; a person detector's box reaches the soles and the scalp)."""
    p = np.asarray(joints_2d, np.float64)
    lo, hi = p.min(0), p.max(0)
    m = (hi - lo) * pad
    return np.concatenate([lo - m, hi + m])


def _camera_for(dataset: str, root: Path, imgname: str):
    import pickle

    try:
        if dataset == "h36m":
            cams = pickle.load(open(root / "h36m" / "cameras.pkl", "rb"))
            subj, rest = imgname.split("/")[0], Path(imgname).name
            cam = cams[(subj, rest.split(".")[1].split("_")[0])]
        else:
            cams = pickle.load(open(root / "mpi_inf_3dhp" / "cameras_train.pkl", "rb"))
            cam = cams["_".join(Path(imgname).stem.split("_")[:3])]
        f = np.asarray(cam["f"], np.float64).reshape(-1)
        c = np.asarray(cam["c"], np.float64).reshape(-1)
        return float(f.mean()), c[:2]
    except Exception:  # cameras are a bonus (only root-relative errors are reported); never fatal
        return None, None


def load_gt3d(data_root: str | Path, dataset: str) -> list[GTFrame]:
    """The annotated frames of ``dataset`` under ``data_root`` (the shared ``gt3d`` folder)."""
    if dataset not in _FILES:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(_FILES)}")
    root = Path(data_root)
    path = root / _FILES[dataset]
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth file not found: {path}")
    d = np.load(path, allow_pickle=False)
    frames = []
    for i, name in enumerate(d["imgname"]):
        name = str(name)
        img = root / dataset / Path(name).name
        s, part = d["S"][i], d["part"][i]
        f, c = _camera_for(dataset, root, name)
        frames.append(GTFrame(dataset, img, s[:, :3].astype(np.float64), part[:, :2].astype(np.float64),
                              (s[:, 3] > 0) & (part[:, 2] > 0), box_from_joints(part[:, :2]), f, c))
    return frames
