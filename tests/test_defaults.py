"""What a newcomer gets without arguments: the default network choice and the bundled sample photo."""

import json
import subprocess
import sys

from instanthmr.core import paths
from instanthmr.video.sources import read_image_rgb


def test_default_model_prefers_released_then_starter(tmp_path, monkeypatch):
    released, starter = tmp_path / "instanthmr.onnx", tmp_path / "instanthmr-starter.onnx"
    monkeypatch.setattr(paths, "DEFAULT_MODEL", released)
    monkeypatch.setattr(paths, "STARTER_MODEL", starter)
    assert paths.default_model() == released  # neither: the error will name the file to download
    starter.write_bytes(b"x")
    assert paths.default_model() == starter
    released.write_bytes(b"x")
    assert paths.default_model() == released


def test_sample_image_is_a_real_photo():
    img = read_image_rgb(paths.sample_image())
    assert img.shape == (600, 512, 3) and img.std() > 20  # a real picture, not a flat fill


def test_demo_sample_image_runs_offline(mp_models, tmp_path):
    out = tmp_path / "s.json"
    res = subprocess.run([sys.executable, str(paths.REPO_ROOT / "demo.py"), "--image", "sample", "--no-spawn",
                          "--save-json", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=paths.REPO_ROOT)
    assert res.returncode == 0, res.stderr
    assert "bundled sample photo" in res.stdout and "grace_hopper.jpg" in res.stdout
    offline = not paths.DEFAULT_MODEL.is_file() and "released model not used" in res.stderr
    if offline:  # no released network: the MediaPipe path runs, and the demo says so and why
        assert "running the offline MediaPipe path" in res.stderr and "model: MediaPipe BlazePose" in res.stdout
    from instanthmr.runtime.detector import resolve_rfdetr_weights

    if not resolve_rfdetr_weights("nano")[1]:  # offline: RF-DETR has no weights, the fallback says so
        assert "detector: mediapipe" in res.stdout
    persons = json.loads(out.read_text())["frames"][0]["persons"]
    assert len(persons) == 1 and len(persons[0]["joints_3d_cam"]) == 70
    x1, y1, x2, y2 = persons[0]["box"]
    assert x2 - x1 > 200 and y2 - y1 > 300  # the portrait fills most of the 512x600 photo
    if offline:  # shoulders apart across the chest; the body fit fills the joints MediaPipe lacks and says so
        from instanthmr.core.skeleton import MHR70_INDEX as J

        p = persons[0]
        j2 = p["joints_2d"]
        assert j2[J["left_shoulder"]][0] - j2[J["right_shoulder"]][0] > 256
        assert None not in j2[J["neck"]] and None not in j2[J["left_hip"]]  # from the fitted body
        assert not p["joints_observed"][J["neck"]] and p["joints_observed"][J["left_shoulder"]]
        assert len(p["mhr_params"]) == 204 and len(p["shape_params"]) == 45
        # the body's hips lie below the shoulders, under the chest, in the picture's frame of reference
        assert j2[J["left_hip"]][1] > j2[J["left_shoulder"]][1]
