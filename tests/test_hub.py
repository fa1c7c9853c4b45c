"""The released network from the Hugging Face Hub, without ever touching the network.

A fake Hub (a tiny HTTP server on 127.0.0.1 speaking the few headers ``hf_hub_download`` reads) stands in for
huggingface.co, so the real ``huggingface_hub`` code downloads, caches and pins revisions here; an endpoint on a
closed local port stands in for a firewall; ``HF_HUB_OFFLINE=1`` (set for every test by conftest.py) for an
offline machine. Each case must end in the file or in one line that says why and what to do.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from instanthmr.cli import demo
from instanthmr.core import paths
from instanthmr.runtime import factory, hub
from instanthmr.runtime.hub import HubError, HubFile, fetch, parse_hub_spec, released_model

COMMIT = "3504446fc31e7f76fdb1cd7e463189e7cf0fdd0f"
OLD_COMMIT = "0" * 39 + "1"


class FakeHub:
    """``files[(repo, commit, filename)] = bytes``; ``refs[(repo, name)] = commit`` (branches / tags)."""

    def __init__(self):
        self.files: dict = {}
        self.refs: dict = {}
        self.gets: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def _answer(self, body: bool):
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._error(404, "RepoNotFound")
                repo, rev, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                if not any(k[0] == repo for k in owner.refs):
                    return self._error(401, "RepoNotFound")
                commits = {c for (r, _), c in owner.refs.items() if r == repo}
                commit = rev if rev in commits else owner.refs.get((repo, rev))
                if commit is None:
                    return self._error(404, "RevisionNotFound")
                data = owner.files.get((repo, commit, name))
                if data is None:
                    return self._error(404, "EntryNotFound")
                self.send_response(200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    owner.gets.append(self.path)
                    self.wfile.write(data)

            def _error(self, code, kind):
                self.send_response(code)
                self.send_header("X-Error-Code", kind)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self):
                self._answer(False)

            def do_GET(self):
                self._answer(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, repo: str, name: str, data: bytes, commit: str = COMMIT, branch: str | None = "main"):
        self.files[(repo, commit, name)] = data
        self.refs[(repo, branch or commit)] = commit

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def online(monkeypatch, tmp_path):
    """A fake Hub reachable at HF_ENDPOINT, the Hub cache in tmp_path (never the user's), offline mode off."""
    import huggingface_hub.constants as hc

    fake = FakeHub()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    yield fake
    fake.close()


@pytest.fixture
def no_local_model(monkeypatch, tmp_path):
    """No models/instanthmr.onnx (the released file is looked for on the Hub)."""
    monkeypatch.setattr(paths, "DEFAULT_MODEL", tmp_path / "models" / "instanthmr.onnx")
    monkeypatch.setattr(factory, "DEFAULT_MODEL", tmp_path / "models" / "instanthmr.onnx")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


# --------------------------------------------------------------------------------------------------------------
# hf: specs
# --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, want", [
    ("hf:momolesang/InstantHMR", HubFile("momolesang/InstantHMR", "instanthmr.onnx", None)),
    ("hf:momolesang/InstantHMR/instanthmr.pth", HubFile("momolesang/InstantHMR", "instanthmr.pth", None)),
    (f"hf:momolesang/InstantHMR@{COMMIT}", HubFile("momolesang/InstantHMR", "instanthmr.onnx", COMMIT)),
    ("hf:me/my-models/exports/v2/net.fp16.onnx@v1.0", HubFile("me/my-models", "exports/v2/net.fp16.onnx", "v1.0")),
])
def test_parse_hub_spec(spec, want):
    got = parse_hub_spec(spec)
    assert got == want
    assert parse_hub_spec(str(got)) == got  # str() writes the spec back
    assert got.is_released == (got.repo_id == "momolesang/InstantHMR")


@pytest.mark.parametrize("spec", ["momolesang/InstantHMR", "hf:", "hf:momolesang", "hf:/InstantHMR",
                                  "hf:momolesang/InstantHMR@", "hf:a/b/../c.onnx", "hf:a/b//c.onnx",
                                  "hf:bad owner/repo", "hf:a--b/c", "hf:a/b@two words"])
def test_bad_hub_specs_are_one_clear_line(spec):
    with pytest.raises(ValueError, match="expected hf:OWNER/REPO") as e:
        parse_hub_spec(spec)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------------------------------------------
# fetch: download, cache, revisions, errors
# --------------------------------------------------------------------------------------------------------------

def test_download_then_cache_hit(online):
    online.add("momolesang/InstantHMR", "instanthmr.onnx", b"weights v2")
    started = []
    got = fetch(hub.RELEASED_ONNX, on_download=started.append)
    assert got.downloaded and got.path.read_bytes() == b"weights v2" and started == [hub.RELEASED_ONNX]
    assert str(got.path).startswith(str(hub.hub_cache_dir()))  # HF_HUB_CACHE, read at call time
    again = fetch(hub.RELEASED_ONNX, on_download=started.append)
    assert again.path == got.path and not again.downloaded and len(online.gets) == 1 and len(started) == 1


def test_revision_pinning(online):
    online.add("momolesang/InstantHMR", "instanthmr.onnx", b"old", commit=OLD_COMMIT, branch="v1")
    online.add("momolesang/InstantHMR", "instanthmr.onnx", b"new")
    assert fetch(parse_hub_spec("hf:momolesang/InstantHMR")).path.read_bytes() == b"new"
    assert fetch(parse_hub_spec("hf:momolesang/InstantHMR@v1")).path.read_bytes() == b"old"
    assert fetch(parse_hub_spec(f"hf:momolesang/InstantHMR@{OLD_COMMIT}")).path.read_bytes() == b"old"


@pytest.mark.parametrize("spec, message", [
    ("hf:nobody/nothing", "repository nobody/nothing not found"),
    ("hf:momolesang/InstantHMR@v9", "revision 'v9' not found"),
    ("hf:momolesang/InstantHMR/missing.onnx", "missing.onnx not found in momolesang/InstantHMR"),
])
def test_hub_answers_no(online, spec, message):
    online.add("momolesang/InstantHMR", "instanthmr.onnx", b"w")
    with pytest.raises(HubError, match=message) as e:
        fetch(parse_hub_spec(spec))
    assert "\n" not in str(e.value)


def test_offline_env_uses_the_cache_only(online, monkeypatch):
    online.add("momolesang/InstantHMR", "instanthmr.onnx", b"w")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set, and .* is not in the Hub cache") as e:
        fetch(hub.RELEASED_ONNX)
    assert "\n" not in str(e.value) and online.gets == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    fetch(hub.RELEASED_ONNX)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = fetch(hub.RELEASED_ONNX)  # offline with the file cached: the cache answers, with a note
    assert cached.path.read_bytes() == b"w" and "HF_HUB_OFFLINE" in cached.note and len(online.gets) == 1


def test_unreachable_hub_is_one_line_then_the_cache(online, monkeypatch):
    online.add("momolesang/InstantHMR", "instanthmr.onnx", b"w")
    fetch(hub.RELEASED_ONNX)  # cached while the Hub was there
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")  # a firewall: connection refused
    got = fetch(hub.RELEASED_ONNX)
    assert got.path.read_bytes() == b"w" and "unreachable" in got.note
    with pytest.raises(HubError, match="Hub is unreachable .*127.0.0.1") as e:
        fetch(parse_hub_spec("hf:momolesang/InstantHMR/instanthmr.pth"))  # not cached: nothing to fall back on
    assert "\n" not in str(e.value)


def test_probe_goes_through_the_proxy(monkeypatch):
    port = closed_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    why = hub.reachable("https://huggingface.co", timeout_s=2.0)
    assert why is not None and f"127.0.0.1:{port} (proxy)" in why


# --------------------------------------------------------------------------------------------------------------
# released_model and the demo
# --------------------------------------------------------------------------------------------------------------

def test_local_released_file_wins_without_asking_the_hub(tmp_path, monkeypatch):
    local = tmp_path / "instanthmr.onnx"
    local.write_bytes(b"x")
    monkeypatch.setattr(paths, "DEFAULT_MODEL", local)
    monkeypatch.setattr(hub, "fetch", lambda *a, **k: pytest.fail("the Hub was asked"))
    assert released_model() == hub.Released(local, "local")


def test_released_model_from_the_hub(online, no_local_model):
    online.add("momolesang/InstantHMR", "instanthmr.onnx", b"released")
    got = released_model()
    assert got.origin == "hub" and got.path.read_bytes() == b"released" and got.note is None


def test_released_model_offline_says_why(no_local_model):
    got = released_model()  # HF_HUB_OFFLINE=1 from conftest, empty cache
    assert got.path is None and got.origin is None and "HF_HUB_OFFLINE" in got.note


def _stderr_lines(capsys) -> list[str]:
    return [l for l in capsys.readouterr().err.splitlines() if l.strip()]


@pytest.fixture
def photo_and_boxes(tmp_path):
    import cv2

    img = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    photo = tmp_path / "p.jpg"
    cv2.imwrite(str(photo), img)
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps({"frames": [{"frame_index": 0, "boxes": [[100, 20, 220, 230]]}]}))
    return ["--image", str(photo), "--detector", str(boxes), "--no-spawn", "--device", "cpu"]


def test_demo_offline_falls_back_in_one_line(no_local_model, photo_and_boxes, capsys, tmp_path):
    out = tmp_path / "o.json"
    assert demo.main(photo_and_boxes + ["--save-json", str(out)]) in (0, 3)  # 3: the offline path saw nobody
    notes = [l for l in _stderr_lines(capsys) if "released" in l]
    assert len(notes) == 1, notes
    line = notes[0]  # why, what to do, and which offline path runs instead
    assert "released model not used: HF_HUB_OFFLINE" in line and "models/" in line and "--model" in line
    assert "huggingface.co/momolesang/InstantHMR" in line and "offline" in line.split("--model PATH", 1)[1]
    assert "instanthmr.onnx" not in json.loads(out.read_text())["meta"]["model"]


def test_demo_unreachable_hub_falls_back_in_one_line(no_local_model, photo_and_boxes, capsys, monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    assert demo.main(photo_and_boxes) in (0, 3)
    notes = [l for l in _stderr_lines(capsys) if "released" in l]
    assert len(notes) == 1 and "released model not used: the Hugging Face Hub is unreachable" in notes[0], notes


def test_demo_downloads_the_released_model_and_names_its_licence(online, no_local_model, photo_and_boxes, capsys,
                                                                 random_onnx):
    online.add("momolesang/InstantHMR", "instanthmr.onnx", random_onnx.read_bytes())
    assert demo.main(photo_and_boxes) == 0
    out, err = capsys.readouterr()
    assert "downloading" in err and "hf:momolesang/InstantHMR/instanthmr.onnx" in err
    assert out.count("SAM License") == 1 and "released InstantHMR network" in out
    assert len(online.gets) == 1
    assert demo.main(photo_and_boxes) == 0  # second run: the cache, no download line
    out, err = capsys.readouterr()
    assert "downloading" not in err and len(online.gets) == 1 and "SAM License" in out


def test_demo_hf_model_spec(online, photo_and_boxes, capsys, random_onnx):
    online.add("someone/their-model", "exports/net.onnx", random_onnx.read_bytes())
    assert demo.main(photo_and_boxes + ["--model", "hf:someone/their-model/exports/net.onnx"]) == 0
    out = capsys.readouterr().out
    assert "net.onnx" in out and "SAM License" not in out  # not the released repository: no licence claim
    assert demo.main(photo_and_boxes + ["--model", "hf:someone/their-model/other.onnx"]) == 1  # asked for: an error
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other.onnx not found" in err[0]
    assert demo.main(photo_and_boxes + ["--model", "hf:not a spec"]) == 2  # a bad argument, before any work
    assert "expected hf:OWNER/REPO" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------------
# tools/fetch_models.py
# --------------------------------------------------------------------------------------------------------------

def test_fetch_models_instanthmr(online, capsys, tmp_path):
    from instanthmr.cli import fetch_models

    online.add("momolesang/InstantHMR", "instanthmr.onnx", b"released")
    assert fetch_models.main(["instanthmr"]) == 0
    out = capsys.readouterr().out
    assert "SAM License" in out and "instanthmr.onnx" in out
    dest = tmp_path / "models"
    assert fetch_models.main(["instanthmr", "--dest", str(dest)]) == 0  # a real copy where the demo looks
    assert (dest / "instanthmr.onnx").read_bytes() == b"released"
    assert fetch_models.main(["hf:momolesang/InstantHMR/missing.pth"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pth not found" in err[-1]


def test_fetch_models_offline_is_one_line_and_fast():
    """A subprocess with HF_HUB_OFFLINE=1 (from conftest) and an empty cache: exit 1, one line, what to do."""
    env = {**__import__("os").environ, "HF_HUB_CACHE": str(Path(__file__).parent / "no-such-cache")}
    r = subprocess.run([sys.executable, str(paths.REPO_ROOT / "tools" / "fetch_models.py"), "instanthmr"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "HF_HUB_OFFLINE" in lines[0] and "models/" in lines[0], r.stderr


def test_hub_module_does_not_import_huggingface_hub_until_used():
    code = ("import sys; import instanthmr.runtime.hub as h; h.parse_hub_spec('hf:a/b'); "
            "assert 'huggingface_hub' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr

