#!/usr/bin/env python3
"""Batch jobs: thousands of videos and photos through the demo's pipeline, resumable, on a local pool or Ray.

    python tools/batch.py clips/ --out runs/poses                                # every video/photo under clips/
    python tools/batch.py "clips/**/*.mp4" more.csv --out runs/poses --formats json,npz,bvh --workers 2
    python tools/batch.py clips/ --out runs/poses --ray                          # the same job on a local Ray
    python tools/batch.py clips/ --out s3://bucket/poses --ray auto --gpus-per-worker 0.25 --device cuda
    python tools/batch.py clips/ --out runs/poses --retry-failed                 # resume; retry the failed ones

Inputs are files, folders (searched recursively for images and videos), globs (quoted: expanded here, ``**``
too) or CSV manifests (a ``path`` column, else the first column; relative paths are relative to the CSV).
Each input's outputs mirror its path under ``--out``: ``clips/a/run.mp4`` -> ``OUT/a/run.mp4.json`` (``.npz``,
``.csv``, ``.mp4_track<id>.bvh``, ``.glb``, ``.overlay.mp4``), relative to the inputs' common folder. A
worker writes an input's files into a staging folder and moves them into place only when the input is
complete, so an output file is either whole or absent. ``OUT/batch_manifest.jsonl`` records every input's
state (done / failed with the reason / skipped) and figures (frames, people, seconds); re-running the same
command resumes: done inputs are skipped, failed ones are retried with ``--retry-failed``.

Models and options are the demo's (``python demo.py --help``): the same flags, the same defaults, the same
code (each worker loads the demo's pipeline once and runs the demo's loop and writers per input). Engines:
``--workers N`` local processes (default: what this machine can take), or ``--ray [ADDRESS]`` (a local Ray
without an address; ``auto`` or ``ray://HOST:10001`` for a cluster): one model load per worker actor,
``--gpus-per-worker`` fractions, the largest inputs first; an input whose worker dies is retried on the next
free worker (``--max-attempts``). Every engine runs ``--cpus-per-worker`` model threads per worker, so their
results are identical. See docs/scaling.md. Exit status: 0 every input done, 1 some input failed (or the
models could not be loaded), 2 bad arguments, 130 / 143 / 129 stopped by a signal (run again to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import glob
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from instanthmr.core.errors import first_line

MANIFEST_NAME = "batch_manifest.jsonl"
MANIFEST_VERSION = 1
STAGING_DIR = ".batch-staging"
#: output format -> (demo flag dest, file suffix appended to the input's name)
FORMATS = {"json": ("save_json", ".json"), "npz": ("save_npz", ".npz"), "csv": ("save_csv", ".csv"),
           "bvh": ("save_bvh", ".bvh"), "glb": ("save_gltf", ".glb"), "mp4": ("out_video", ".overlay.mp4")}
DEFAULT_FORMATS = "json"
#: demo options a batch job sets itself (source, output files, viewer, live stream) and so does not take from
#: the user; of the demo's "outputs" group only DEMO_OUTPUT_MODIFIERS (how a format is written) are taken
DEMO_OWNED = {"help", "image", "video", "camera", "save_rrd", "no_spawn", "save_json", "save_csv", "save_npz",
              "save_bvh", "save_gltf", "out_video", "quiet", "stream"}
DEMO_OUTPUT_MODIFIERS = {"rig"}
#: demo options that change speed, not results: a resumed job may change them
DEMO_SPEED_ONLY = {"threads", "device", "io_binding", "cuda_graph", "async_detector"}
#: memory to budget per local worker (sets the default --workers): one worker (starter network + MediaPipe
#: detector) peaked at 0.37 GB on a 60-frame 720p clip; a long video keeps every frame's results for the
#: offline smoothing, and the torch RF-DETR detector adds ~0.5 GB
WORKER_MEMORY_BYTES = 1_200_000_000


class BatchError(RuntimeError):
    """A job cannot start (bad inputs, an --out holding another job, workers that cannot load their models)."""


# --------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------

def media_kind(path: Path) -> str | None:
    """``"image"``, ``"video"`` or None, from the file extension (the extensions the demo's sources read)."""
    from instanthmr.cli.annotate_mediapipe import VIDEO_EXTS
    from instanthmr.video.sources import IMAGE_EXTENSIONS

    ext = path.suffix.lower()
    return "image" if ext in IMAGE_EXTENSIONS else "video" if ext in VIDEO_EXTS else None


@dataclass
class InputList:
    """What the command line named: media files (absolute, in order, no duplicates), files named explicitly
    by a CSV list that are not images or videos (``(path, reason)``, recorded as skipped), and the sizes a
    CSV list gave (so a job over a million files on a network mount need not stat each one)."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    sizes: dict[Path, int] = field(default_factory=dict)


SIZE_COLUMNS = ("bytes", "size", "size_bytes")


def _csv_paths(path: Path) -> list[tuple[Path, int | None]]:
    """``(path, size or None)`` per row of a CSV list: the ``path`` column (else the first), the size from a
    ``bytes`` / ``size`` / ``size_bytes`` column when there is one; relative paths are relative to the CSV."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        return []
    head = [c.strip().lower() for c in rows[0]]
    col = head.index("path") if "path" in head else 0
    size_col = next((head.index(c) for c in SIZE_COLUMNS if c in head), None)
    if "path" in head or (media_kind(Path(rows[0][0].strip())) is None and not (path.parent / rows[0][0]).exists()):
        rows = rows[1:]  # a header row
    out = []
    for r in rows:
        if len(r) <= col or not r[col].strip():
            continue
        size = r[size_col].strip() if size_col is not None and len(r) > size_col else ""
        out.append((path.parent / r[col].strip(), int(size) if size.isdigit() else None))
    return out


def collect_inputs(specs: list[str]) -> InputList:
    """Expand files, folders, globs and CSV manifests into media files. Raises :class:`BatchError` for a
    name that matches nothing, or a file named on the command line that is neither image nor video."""
    out = InputList()
    seen: set[Path] = set()

    def add(p: Path, explicit: bool, listed: bool = False) -> Path:
        p = Path(os.path.abspath(p))  # no file-system access: a list of a million files on a network mount
        if p in seen:
            return p
        kind = media_kind(p)
        if kind is None:
            if listed:
                seen.add(p)
                out.skipped.append((p, "not an image or video file"))
            elif explicit:
                raise BatchError(f"{p}: not an image, video or .csv list of them")
            return p
        seen.add(p)
        out.files.append(p)
        return p

    for spec in specs:
        p = Path(spec).expanduser()
        if p.is_file() and p.suffix.lower() == ".csv":
            for q, size in _csv_paths(p):
                q = add(q, explicit=False, listed=True)  # a missing file stays an input: it fails with "not found"
                if size is not None:
                    out.sizes[q] = size
        elif p.is_file():
            add(p, explicit=True)
        elif p.is_dir():
            for q in sorted(x for x in p.rglob("*") if x.is_file()):
                add(q, explicit=False)
        elif glob.has_magic(spec):
            matches = sorted(glob.glob(os.path.expanduser(spec), recursive=True))
            if not matches:
                raise BatchError(f"no file matches {spec!r}")
            for m in matches:
                mp = Path(m)
                for q in (sorted(x for x in mp.rglob("*") if x.is_file()) if mp.is_dir() else [mp]):
                    add(q, explicit=False)
        else:
            raise BatchError(f"input not found: {spec}")
    return out


def common_root(paths: list[Path]) -> Path:
    """The deepest folder holding every path (the folder mirrored under --out)."""
    if not paths:
        return Path.cwd()
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


def input_key(path: Path, root: Path) -> str:
    """The input's name in the manifest and under --out: its path below ``root``, with forward slashes."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        raise BatchError(f"{path} is outside {root}, the folder this job mirrors under --out (set when the job "
                         "started); give --relative-to, or use another --out") from None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# --------------------------------------------------------------------------------------------------
# outputs: a local folder or an fsspec URL (s3://, gs://, ...)
# --------------------------------------------------------------------------------------------------

def is_url(out: str) -> bool:
    return "://" in str(out) and not str(out).startswith("file://")


def _local(out: str) -> Path:
    return Path(str(out)[len("file://"):] if str(out).startswith("file://") else out)


class OutputTarget:
    """Where a job's files go. Workers write an input's files into a private staging folder and
    :meth:`commit` moves them into place: ``os.replace`` in a local folder (atomic per file; staging lives
    inside ``--out`` so it is the same file system), one PUT per file for an object-store URL (fsspec;
    objects appear whole)."""

    def __init__(self, out: str):
        self.out = str(out).rstrip("/")
        self.url = is_url(self.out)
        self.root = None if self.url else _local(self.out)

    def fs(self):
        import fsspec

        return fsspec.core.url_to_fs(self.out)

    def staging(self) -> Path:
        if self.url:
            import tempfile

            return Path(tempfile.mkdtemp(prefix="instanthmr-batch-"))
        d = self.root / STAGING_DIR / uuid.uuid4().hex
        d.mkdir(parents=True)
        return d

    def commit(self, staging: Path, key: str) -> list[str]:
        """Move every file of ``staging`` to ``OUT/<key's folder>/``; returns their paths relative to OUT."""
        parent = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        names = sorted(p.name for p in staging.iterdir() if p.is_file())
        if self.url:
            fs, base = self.fs()
            for n in names:
                fs.put_file(str(staging / n), f"{base}/{parent}{n}")
        else:
            dest = self.root / parent
            dest.mkdir(parents=True, exist_ok=True)
            for n in names:
                os.replace(staging / n, dest / n)
        return [parent + n for n in names]

    def read_text(self, name: str) -> str | None:
        if not self.url:
            p = self.root / name
            return p.read_text() if p.is_file() else None
        fs, base = self.fs()
        try:
            with fs.open(f"{base}/{name}", "r") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def put(self, local: Path, name: str) -> None:
        fs, base = self.fs()
        fs.put_file(str(local), f"{base}/{name}")


# --------------------------------------------------------------------------------------------------
# the job manifest
# --------------------------------------------------------------------------------------------------

def _fsync_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class JobManifest:
    """A job's state, one JSON record per line: the first is ``{"job": {...}}`` (options, root), then one per
    input event, the last record of an input wins. Only the driver writes it: records are appended and
    flushed as inputs finish (a torn last line after a crash is ignored on reading), and :meth:`compact`
    rewrites it to one line per input through a temporary file and a rename.

    Input record: ``input`` (key), ``path``, ``bytes``, ``state`` (done | failed | skipped), ``reason``
    (failed/skipped), ``frames``, ``people`` (distinct tracks), ``seconds`` (worker wall time), ``outputs``
    (paths relative to --out), ``attempts``, ``worker`` (host:pid), ``finished`` (UTC time).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.job: dict | None = None
        self.records: dict[str, dict] = {}
        self._fh = None
        text = self.path.read_text() if self.path.is_file() else ""
        self._torn = bool(text) and not text.endswith("\n")  # the next append starts on a line of its own
        if text:
            for line in text.splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line torn by a crash: that input is simply not recorded
                if "job" in rec:
                    self.job = rec["job"]
                elif "input" in rec:
                    self.records[rec["input"]] = rec

    def state(self, key: str) -> str | None:
        rec = self.records.get(key)
        return rec.get("state") if rec else None

    def record(self, rec: dict) -> None:
        rec = {"input": rec["input"], **rec, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.records[rec["input"]] = rec
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a")
            if self._torn:
                self._fh.write("\n")
                self._torn = False
        self._fh.write(json.dumps(rec, default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def compact(self) -> None:
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = ([json.dumps({"job": self.job}, default=str)] if self.job is not None else []) + \
                [json.dumps(r, default=str) for r in self.records.values()]
        _fsync_write(self.path, "".join(line + "\n" for line in lines))
        self._torn = False

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def counts(self) -> dict[str, int]:
        out = {"done": 0, "failed": 0, "skipped": 0}
        for r in self.records.values():
            out[r["state"]] = out.get(r["state"], 0) + 1
        return out


def manifest_path(out: str, explicit: str | None = None) -> Path:
    """``OUT/batch_manifest.jsonl`` for a local --out; for a URL a local copy (--manifest, or one under
    ``~/.cache/instanthmr/batch/``) that is uploaded next to the outputs whenever it is compacted."""
    if explicit:
        return Path(explicit)
    if not is_url(out):
        return _local(out) / MANIFEST_NAME
    h = hashlib.sha1(str(out).rstrip("/").encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "instanthmr" / "batch" / h / MANIFEST_NAME


# --------------------------------------------------------------------------------------------------
# the worker: the demo's pipeline loaded once, one input at a time
# --------------------------------------------------------------------------------------------------

def _copy_options(src: argparse.ArgumentParser, dst: argparse.ArgumentParser, skip: set[str]) -> list[str]:
    """Add ``src``'s options (except the ``skip`` dests) to ``dst`` under the same group titles, keeping
    mutually exclusive pairs exclusive; returns the copied dests. argparse has no public API for this; these
    attributes have been stable since Python 3.2."""
    groups = {}
    mutex_of = {id(a): g for g in src._mutually_exclusive_groups for a in g._group_actions}  # noqa: SLF001
    new_mutex: dict[int, argparse._MutuallyExclusiveGroup] = {}  # noqa: SLF001
    dests = []
    for group in src._action_groups:  # noqa: SLF001
        for action in group._group_actions:  # noqa: SLF001
            if action.dest in skip or (group.title == "outputs" and action.dest not in DEMO_OUTPUT_MODIFIERS):
                continue
            g = groups.get(group.title) or groups.setdefault(
                group.title, dst.add_argument_group(f"demo: {group.title}" if group.title else None))
            owner = mutex_of.get(id(action))
            if owner is not None:
                mx = new_mutex.get(id(owner)) or new_mutex.setdefault(id(owner), g.add_mutually_exclusive_group())
                mx._add_action(action)  # noqa: SLF001
            else:
                g._add_action(action)  # noqa: SLF001
            dests.append(action.dest)
    return dests


def demo_namespace(options: dict, **sources_and_outputs) -> argparse.Namespace:
    """The demo's arguments for one input: its defaults, then ``options`` (the user's demo flags), then the
    source and output paths; headless and quiet."""
    from instanthmr.cli import demo

    args = demo.build_parser().parse_args(["--image", "_", "--no-spawn", "--quiet"])
    args.image = None
    for k, v in {**options, **sources_and_outputs}.items():
        setattr(args, k, v)
    return args


class PoseWorker:
    """A batch worker: the demo's models loaded once (:meth:`load`), then one input at a time (:meth:`run`)
    through the demo's own loop and writers. ``options``: ``demo`` (demo flag dest -> value), ``out`` (the
    job's --out), ``formats`` (list of :data:`FORMATS` keys)."""

    def __init__(self, options: dict):
        self.options = options
        self.loaded = None  # demo.load_pipeline's (model path, PosePipeline)

    def load(self) -> dict:
        from instanthmr.cli import demo

        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # as the demo: damaged frames are counted, not logged
        log = io.StringIO()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            self.loaded = demo.load_pipeline(demo_namespace(self.options["demo"]))
        pipeline = self.loaded[1]
        return {"host": socket.gethostname(), "pid": os.getpid(), "log": log.getvalue().strip(),
                "model": str(pipeline.hmr.path), "provider": pipeline.hmr.provider,
                "detector": f"{pipeline.detector.name} {getattr(pipeline.detector, 'variant', '')}".strip()}

    def run(self, task: dict) -> dict:
        from instanthmr.cli import demo
        from instanthmr.outputs.signals import StopSignals

        t0 = time.monotonic()
        target = OutputTarget(self.options["out"])
        staging = target.staging()
        log = io.StringIO()
        try:
            path = Path(task["path"])
            if not path.is_file():
                return {"state": "failed", "reason": f"not found: {path}", "seconds": time.monotonic() - t0}
            name = path.name
            outputs = {FORMATS[f][0]: str(staging / (name + FORMATS[f][1])) for f in self.options["formats"]}
            source = {"image": str(path)} if task.get("kind") == "image" else {"video": str(path)}
            args = demo_namespace(self.options["demo"], **source, **outputs)
            demo.check_args(args)
            figures: dict = {}
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                # no signal handlers of its own: a worker process is stopped by its driver
                rc = demo.run(args, StopSignals(signals=()), loaded=self.loaded, figures=figures)
            if rc >= 128:  # stopped (128 + signal number): the job is stopping, this input is not done
                raise KeyboardInterrupt
            if rc not in (demo.EXIT_OK, demo.EXIT_NO_PERSONS):
                lines = [ln for ln in log.getvalue().splitlines() if ln.strip()]
                return {"state": "failed", "reason": lines[-1] if lines else f"exit {rc}",
                        "seconds": round(time.monotonic() - t0, 3)}
            files = target.commit(staging, task["key"])
            return {"state": "done", "frames": int(figures.get("frames", 0)), "people": int(figures.get("people", 0)),
                    "seconds": round(time.monotonic() - t0, 3), "outputs": files}
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one bad input never stops a job: it is recorded with the reason
            return {"state": "failed", "reason": first_line(e), "seconds": round(time.monotonic() - t0, 3)}
        finally:
            shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# engines: the same job on this process, local processes or Ray actors
# --------------------------------------------------------------------------------------------------

def _stamped(result: dict) -> dict:
    """A worker's result with ``worker`` = ``host:pid`` of the process that ran it."""
    return {**result, "worker": f"{socket.gethostname()}:{os.getpid()}"}


class WorkerLost(Exception):
    """A worker died (killed, out of memory, node lost) while it held an input."""


class WorkerLoadError(BatchError):
    """Workers could not load their models (the same for every worker, so the job stops)."""


class InlineEngine:
    """One worker in this process (``--workers 1``)."""

    name = "in-process"

    def __init__(self, worker_cls, options: dict):
        self.worker = worker_cls(options)
        self.slots = 1
        self._task = None
        self.info: list[dict] = []

    def start(self) -> list[dict]:
        try:
            self.info = [self.worker.load()]
        except Exception as e:
            raise WorkerLoadError(first_line(e)) from None
        return self.info

    def submit(self, slot: int, task: dict) -> None:
        self._task = task

    def wait(self) -> list[tuple[int, dict, dict | WorkerLost]]:
        task, self._task = self._task, None
        return [(0, task, _stamped(self.worker.run(task)))]

    def close(self) -> None:
        pass


def _process_main(conn, worker_cls, options: dict, env: dict) -> None:
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's: it stops the pool
    worker = worker_cls(options)
    try:
        info = worker.load()
    except Exception as e:
        conn.send(("load_error", first_line(e)))
        return
    conn.send(("ready", info))
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the driver is gone
            return
        if task is None:
            return
        conn.send(("result", _stamped(worker.run(task))))


class ProcessEngine:
    """``n`` local worker processes (spawned: each loads its own models), one input in flight each. A process
    that dies is replaced; its input comes back to the job as lost, and the slot as ready once the
    replacement has loaded its models."""

    name = "local pool"

    def __init__(self, worker_cls, options: dict, n: int, env_per_slot: list[dict] | None = None):
        import multiprocessing as mp

        self.ctx = mp.get_context("spawn")
        self.worker_cls, self.options, self.slots = worker_cls, options, int(n)
        self.env = env_per_slot or [{} for _ in range(self.slots)]
        self.procs: list = [None] * self.slots
        self.conns: list = [None] * self.slots
        self.busy: dict[int, dict] = {}
        self.starting: set[int] = set()  # replacements loading their models
        self.info: list[dict] = [{} for _ in range(self.slots)]

    def _spawn(self, slot: int) -> None:
        parent, child = self.ctx.Pipe()
        p = self.ctx.Process(target=_process_main, args=(child, self.worker_cls, self.options, self.env[slot]),
                             daemon=True, name=f"instanthmr-batch-{slot}")
        p.start()
        child.close()
        self.procs[slot], self.conns[slot] = p, parent

    def _message(self, slot: int):
        """The next message of a slot's process, or None when it died without one."""
        try:
            return self.conns[slot].recv() if self.conns[slot].poll() else None
        except (EOFError, OSError):
            return None

    def _loaded(self, slot: int, msg) -> dict:
        if msg is None:
            raise WorkerLoadError(f"a worker process died while loading its models (exit {self.procs[slot].exitcode})")
        if msg[0] == "load_error":
            raise WorkerLoadError(msg[1])
        self.info[slot] = msg[1]
        return msg[1]

    def start(self) -> list[dict]:
        for s in range(self.slots):
            self._spawn(s)
        for s in range(self.slots):  # they all load at the same time
            self.conns[s].poll(None)
            self._loaded(s, self._message(s))
        return self.info

    def submit(self, slot: int, task: dict) -> None:
        self.busy[slot] = task
        self.conns[slot].send(task)

    def wait(self) -> list[tuple[int, dict | None, object]]:
        from multiprocessing.connection import wait

        watch = {}
        for s in list(self.busy) + sorted(self.starting):
            watch[self.conns[s]] = s
            watch[self.procs[s].sentinel] = s
        out = []
        for s in sorted({watch[r] for r in wait(list(watch))}):
            msg = self._message(s)  # a result sent just before the process exited still counts
            if s in self.starting:
                self.starting.discard(s)
                out.append((s, None, self._loaded(s, msg)))
                continue
            task = self.busy.pop(s)
            if msg is not None and msg[0] == "result":
                out.append((s, task, msg[1]))
                continue
            self.procs[s].join(timeout=5)
            out.append((s, task, WorkerLost(f"worker process {self.procs[s].pid} died (exit {self.procs[s].exitcode})")))
            self._spawn(s)
            self.starting.add(s)
        return out

    def close(self) -> None:
        for s, p in enumerate(self.procs):
            if p is not None and s not in self.busy and s not in self.starting:
                try:
                    self.conns[s].send(None)
                except OSError:
                    pass
        for s, p in enumerate(self.procs):
            if p is None:
                continue
            p.join(timeout=5 if s not in self.busy and s not in self.starting else 0)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)


class RayActor:
    """The Ray actor around a worker: loads the models in its constructor (again after Ray restarts it);
    a load error is kept and reported by :meth:`info` so the driver can stop with one line."""

    def __init__(self, worker_cls, options: dict):
        self.worker = worker_cls(options)
        try:
            self._info, self._error = self.worker.load(), None
        except Exception as e:
            self._info, self._error = None, first_line(e)

    def info(self) -> dict:
        return {"error": self._error} if self._error else {**self._info, "pid": os.getpid()}

    def run(self, task: dict) -> dict:
        if self._error:
            return {"state": "failed", "reason": f"worker could not load its models: {self._error}"}
        return _stamped(self.worker.run(task))


def ray_init(address: str | None, num_cpus: int | None = None, temp_dir: str | None = None):
    """Connect to a Ray cluster (``auto``, ``HOST:PORT``, ``ray://HOST:10001``) or start a local one."""
    try:
        import ray
    except ImportError:
        raise BatchError("--ray needs the ray package: python install.py --extras scale (or pip install "
                         "'ray[default]')") from None
    if not ray.is_initialized():
        kw = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=num_cpus, _temp_dir=temp_dir, **kw)
    return ray


class RayEngine:
    """``n`` Ray actors, each with its own models (``num_cpus`` / ``num_gpus`` per actor; fractions share a
    GPU). Ray restarts an actor whose process dies (on another node when the node is gone): the input it
    held comes back to the job as lost, and the slot as ready once the restarted actor has loaded its
    models. A slot whose actor cannot come back within ``recovery_s`` is dropped."""

    name = "Ray"

    def __init__(self, worker_cls, options: dict, n: int | None, address: str | None, cpus: float = 1.0,
                 gpus: float = 0.0, recovery_s: float = 600.0):
        self.worker_cls, self.options = worker_cls, options
        self.address, self.cpus, self.gpus = address, float(cpus), float(gpus)
        self.slots = n
        self.recovery_s = float(recovery_s)
        self.actors: list = []
        self.refs: dict = {}  # ObjectRef -> (slot, task); task None = a probe of a restarting actor
        self.probe_at: dict[int, float] = {}  # slot -> when to ask a restarting actor again
        self.lost_at: dict[int, float] = {}  # slot -> when its actor died
        self.info: list[dict] = []
        self._own_ray = False

    def start(self) -> list[dict]:
        try:
            import ray

            self._own_ray = not ray.is_initialized()
        except ImportError:
            pass
        ray = ray_init(self.address)
        if self.slots is None:
            res = ray.cluster_resources()
            self.slots = max(1, int(res.get("GPU", 0) // self.gpus) if self.gpus > 0
                             else int(res.get("CPU", 1) // max(self.cpus, 1e-9)))
        actor = ray.remote(RayActor).options(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=-1,
                                             max_task_retries=0)
        self.actors = [actor.remote(self.worker_cls, self.options) for _ in range(self.slots)]
        self.info = ray.get([a.info.remote() for a in self.actors])
        errors = [i["error"] for i in self.info if i.get("error")]
        if errors:
            raise WorkerLoadError(errors[0])
        return self.info

    def submit(self, slot: int, task: dict) -> None:
        self.refs[self.actors[slot].run.remote(task)] = (slot, task)

    def _probe_later(self, slot: int, delay: float) -> None:
        if time.monotonic() - self.lost_at.get(slot, time.monotonic()) > self.recovery_s:
            self.lost_at.pop(slot, None)
            return  # never came back: the job goes on with the other workers
        self.probe_at[slot] = time.monotonic() + delay

    def wait(self) -> list[tuple[int, dict | None, object]]:
        import ray

        while True:
            now = time.monotonic()
            for slot in [s for s, t in self.probe_at.items() if t <= now]:
                del self.probe_at[slot]
                self.refs[self.actors[slot].info.remote()] = (slot, None)
            if not self.refs and not self.probe_at:
                raise WorkerLoadError("every Ray worker is gone and none came back; run the same command to resume")
            timeout = max(0.0, min(self.probe_at.values()) - now) if self.probe_at else None
            if not self.refs:
                time.sleep(timeout)
                continue
            ready, _ = ray.wait(list(self.refs), num_returns=1, timeout=timeout)
            out = []
            for ref in ready:
                slot, task = self.refs.pop(ref)
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # raised by our code in the worker: the input failed
                    value = {"state": "failed", "reason": first_line(e.cause or e)}
                except ray.exceptions.RayError as e:  # the actor died, its node went away, Ray killed it for memory
                    if task is not None:
                        out.append((slot, task, WorkerLost(f"Ray worker lost ({type(e).__name__})")))
                        self.lost_at[slot] = time.monotonic()
                    self._probe_later(slot, 0.0 if task is not None else 1.0)
                    continue
                if task is None:  # the restarted actor answered: loaded again, ready for work
                    if value.get("error"):
                        raise WorkerLoadError(value["error"])
                    self.info[slot] = value
                    self.lost_at.pop(slot, None)
                out.append((slot, task, value))
            if out:
                return out

    def close(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a, no_restart=True)
        self.actors = []
        if self._own_ray:
            ray.shutdown()


# --------------------------------------------------------------------------------------------------
# the job
# --------------------------------------------------------------------------------------------------

@dataclass
class JobResult:
    """What one run of a job did (the manifest holds the per-input detail)."""

    total: int = 0  # inputs in the job
    done_before: int = 0  # already done by an earlier run (skipped now)
    done: int = 0  # done in this run
    failed: int = 0
    skipped: int = 0  # not images or videos
    frames: int = 0
    people: int = 0
    worker_deaths: int = 0
    retried: int = 0  # inputs that went to another worker after theirs died
    wall_s: float = 0.0
    interrupted: bool = False
    exit_code: int = 0  # 130 / 143 / 129 when stopped by SIGINT / SIGTERM / SIGHUP
    failures: list = field(default_factory=list)


def run_job(tasks: list[dict], engine, manifest: JobManifest, quiet: bool = False, max_attempts: int = 3,
            on_event=None, label: str = "batch") -> JobResult:
    """Run ``tasks`` (``key``, ``path``, ``bytes``, ...) on ``engine``, largest first, recording each outcome in
    ``manifest``. A lost worker's input goes back to the front of the queue, up to ``max_attempts`` times.
    ``on_event(kind, task, worker)`` is called on ``"start"`` and ``"end"`` with the worker's load info
    (``host``, ``pid``): progress hooks, and the tests that kill a worker mid-job."""
    from tqdm import tqdm

    res = JobResult()
    queue = deque(sorted(tasks, key=lambda t: -t["bytes"]))
    free = list(range(engine.slots))
    busy: dict[int, dict] = {}
    t0 = time.monotonic()
    bar = tqdm(total=sum(t["bytes"] for t in tasks), unit="B", unit_scale=True, unit_divisor=1024,
               desc=label, disable=quiet or not tasks, dynamic_ncols=True, file=sys.stderr, smoothing=0.1,
               mininterval=0.5 if sys.stderr.isatty() else 30.0)  # a log file gets a line every 30 s

    def note(kind, task, slot):
        if on_event is not None:
            on_event(kind, task, engine.info[slot] if slot < len(engine.info) else {})

    try:
        while queue or busy:
            while free and queue:
                slot, task = free.pop(0), queue.popleft()
                task["attempts"] = task.get("attempts", 0) + 1
                busy[slot] = task
                engine.submit(slot, task)
                note("start", task, slot)
            for slot, task, outcome in engine.wait():
                if task is None:  # a replacement worker has loaded its models
                    free.append(slot)
                    continue
                busy.pop(slot, None)
                if isinstance(outcome, WorkerLost):  # the engine hands the slot back once it is replaced
                    res.worker_deaths += 1
                    if task["attempts"] < max_attempts:
                        res.retried += 1
                        queue.appendleft(task)  # next free worker takes it
                        bar.write(f"[{label}] {task['key']}: {outcome}; retrying on another worker", file=sys.stderr)
                        continue
                    outcome = {"state": "failed", "reason": f"{outcome} on each of {task['attempts']} attempts"}
                else:
                    free.append(slot)
                rec = {"input": task["key"], **{k: task[k] for k in ("path", "folder") if k in task},
                       "bytes": task["bytes"], **outcome, "attempts": task["attempts"]}
                manifest.record(rec)
                note("end", {**task, **outcome}, slot)
                if outcome["state"] == "done":
                    res.done += 1
                    res.frames += int(outcome.get("frames", 0))
                    res.people += int(outcome.get("people", 0))
                else:
                    res.failed += 1
                    res.failures.append((task["key"], outcome.get("reason", "")))
                    bar.write(f"[{label}] failed: {task['key']}: {outcome.get('reason', '?')}", file=sys.stderr)
                bar.update(task["bytes"])
                bar.set_postfix_str(f"{res.done} done, {res.failed} failed, {len(queue) + len(busy)} left", refresh=False)
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM / SIGHUP under core.faults.stop_signals
        from instanthmr.core.faults import interrupt_exit_code

        res.interrupted, res.exit_code = True, interrupt_exit_code(e)
    finally:
        bar.close()
        res.wall_s = time.monotonic() - t0
    return res


# --------------------------------------------------------------------------------------------------
# teacher annotation into shards: the same engine and manifest, the shard format's own resumability
# --------------------------------------------------------------------------------------------------

SHARD_MANIFEST_NAME = "annotate_manifest.jsonl"
SHARD_TASK_DIR = "tasks"


def shard_tasks(items: list[tuple[str, Path]], images_per_task: int = 256) -> list[dict]:
    """Work items for a teacher: each video on its own, photos in groups of up to ``images_per_task`` per
    folder. Each item writes its shards into its own folder ``OUT/tasks/<id>/`` (a shard set of its own:
    a retry resumes it, and no other writer touches it)."""
    tasks, by_folder = [], {}
    for kind, path in items:
        if kind == "video":
            tasks.append({"key": f"video:{path}", "paths": [str(path)], "kind": "video", "bytes": _size(path)})
        else:
            by_folder.setdefault(path.parent, []).append(path)
    for folder, files in by_folder.items():
        for i in range(0, len(files), images_per_task):
            chunk = files[i:i + images_per_task]
            tasks.append({"key": f"images:{folder}#{i // images_per_task}", "paths": [str(p) for p in chunk],
                          "kind": "image", "bytes": sum(_size(p) for p in chunk)})
    for t in tasks:
        t["folder"] = f"{SHARD_TASK_DIR}/{hashlib.sha1(t['key'].encode()).hexdigest()[:16]}"
    return tasks


def shard_job(items: list[tuple[str, Path]], out: Path, worker_cls, options: dict, task_skip, *, label: str,
              ray: str | None = None, workers: int | None = None, cpus_per_worker: float = 1.0,
              gpus_per_worker: float = 0.0, images_per_task: int = 256, retry_failed: bool = False,
              max_attempts: int = 3, quiet: bool = False, on_event=None) -> JobResult:
    """Label ``items`` (``(kind, path)``) into the shard folder ``out`` with ``worker_cls`` workers on the
    local pool or Ray (see :func:`make_engine`).

    Nothing is labelled twice and nothing is lost when a worker dies: a shard holds its inputs' done-marks
    with their labels, so the retried item resumes its own shard set and skips what it holds, and
    ``task_skip(task, done)`` lists the units of a task already done anywhere else under ``out`` (an earlier
    run with or without --ray, a ``--shard i/N`` part). ``OUT/annotate_manifest.jsonl`` records each item's
    state and figures (frames = units labelled, people = instances) for a fast resume and the reasons of
    failures; the shards stay the truth.
    """
    from instanthmr.training.data.shards import list_shards, read_header

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = JobManifest(out / SHARD_MANIFEST_NAME)
    done_units: set[str] = set()
    for p in list_shards(out):
        done_units.update(read_header(p).get("inputs", []))
    res = JobResult(total=0)
    tasks = []
    header = json.loads(json.dumps({"version": MANIFEST_VERSION, "tool": label, "options": options}, default=str))
    same_options = manifest.job == header  # else a "done" task may owe units (e.g. a larger --max-frames)
    for t in shard_tasks(items, images_per_task):
        res.total += 1
        state = manifest.state(t["key"])
        if state == "done" and same_options:
            res.done_before += 1
            continue
        if state == "failed" and not retry_failed:
            continue
        t["skip"] = sorted(task_skip(t, done_units))
        tasks.append(t)
    manifest.job = header
    manifest.compact()
    print(f"[{label}] {res.total} task(s) ({len(items)} input(s)): {len(tasks)} to run, {res.done_before} done "
          f"before; {len(done_units)} unit(s) already in the shards")
    if not tasks:
        return res
    engine = make_engine(argparse.Namespace(ray=ray, workers=workers, cpus_per_worker=cpus_per_worker,
                                            gpus_per_worker=gpus_per_worker, device="cpu"),
                         worker_cls, {**options, "out": str(out)})
    from instanthmr.core.faults import interrupt_exit_code, stop_signals

    try:
        with stop_signals():  # SIGTERM / SIGHUP stop the job like Ctrl-C
            engine.start()
            got = run_job(tasks, engine, manifest, quiet=quiet, max_attempts=max_attempts, label=label,
                          on_event=on_event)
    except KeyboardInterrupt as e:
        got = JobResult(interrupted=True, exit_code=interrupt_exit_code(e))
    finally:
        engine.close()
        manifest.compact()
    for f in ("done", "failed", "frames", "people", "worker_deaths", "retried", "wall_s", "interrupted", "exit_code",
              "failures"):
        setattr(res, f, getattr(got, f))
    print_summary(res, engine, manifest, label, noun="task")
    return res


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------

def parse_ray(value: str | None) -> str | None:
    return None if value in (None, "local") else value


def looks_like_address(value: str) -> bool:
    return value in ("auto", "local") or ":" in value


def default_workers(gpus: int = 0) -> int:
    """What this machine can take: one worker per GPU on a GPU machine; else one per core, at most one per
    ``WORKER_MEMORY_BYTES`` of available memory."""
    if gpus:
        return gpus
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        import psutil

        avail = psutil.virtual_memory().available
    except ImportError:
        avail = cpus * WORKER_MEMORY_BYTES
    return max(1, min(cpus, int(avail // WORKER_MEMORY_BYTES)))


def local_gpus() -> int:
    """NVIDIA GPUs visible here (``nvidia-smi -L``), honouring CUDA_VISIBLE_DEVICES; 0 without a driver."""
    import subprocess

    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    n = sum(1 for ln in out.splitlines() if ln.startswith("GPU "))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return min(n, len([v for v in visible.split(",") if v.strip()])) if visible is not None else n


def build_parser() -> tuple[argparse.ArgumentParser, list[str]]:
    """The batch parser and the demo option dests it carries."""
    from instanthmr.cli import demo

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders, globs, or .csv lists of them")
    j = p.add_argument_group("job")
    j.add_argument("--out", required=True, metavar="DIR|URL",
                   help="output folder, mirrored input paths (or an fsspec URL such as s3://bucket/poses: "
                        "needs the fsspec backend, e.g. s3fs; the manifest is then kept locally, see --manifest)")
    j.add_argument("--formats", default=DEFAULT_FORMATS, metavar="LIST",
                   help=f"comma list of {', '.join(FORMATS)} (mp4 = overlay video) (default: {DEFAULT_FORMATS})")
    j.add_argument("--retry-failed", action="store_true", help="run the inputs that failed in an earlier run too")
    j.add_argument("--relative-to", default=None, metavar="DIR",
                   help="mirror input paths relative to this folder (default: the inputs' common folder, "
                        "kept for the job's later runs)")
    j.add_argument("--manifest", default=None, metavar="PATH",
                   help=f"the job manifest (default: OUT/{MANIFEST_NAME}; for a URL --out, a local file under "
                        "~/.cache/instanthmr/batch/, uploaded to OUT when the job ends)")
    j.add_argument("--max-attempts", type=int, default=3, metavar="N",
                   help="hand an input to a new worker at most N times when its worker dies (default: 3)")
    j.add_argument("--dry-run", action="store_true", help="list what would run, run nothing")
    j.add_argument("--quiet", action="store_true", help="no progress bar")
    e = p.add_argument_group("engine")
    e.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parallel workers, each with its own models (default: local: one per GPU, else one per "
                        "core within memory; Ray: what the cluster's CPUs/GPUs fit)")
    e.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray: a local Ray without ADDRESS, else 'auto' or ray://HOST:10001 (needs "
                        "install.py --extras scale)")
    e.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C",
                   help="CPU cores per worker: its model threads (unless --threads is given) and its Ray resource "
                        "(default: 1). Every engine uses the same, so their results are identical")
    e.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                   help="GPUs per Ray worker, fractions share one (e.g. 0.25 = 4 workers per GPU) (default: 0)")
    dests = _copy_options(demo.build_parser(), p, DEMO_OWNED)
    return p, dests


def _job_header(args, demo_options: dict, root: Path) -> dict:
    header = {"version": MANIFEST_VERSION, "tool": "batch", "root": str(root), "formats": args.formats,
              "options": {k: v for k, v in demo_options.items() if k not in DEMO_SPEED_ONLY}}
    return json.loads(json.dumps(header, default=str))  # as it reads back from the manifest, to compare


def _check_same_job(old: dict, new: dict) -> None:
    diffs = [f"--formats {','.join(old.get('formats', []))} -> {','.join(new['formats'])}"] \
        if old.get("formats") != new["formats"] else []
    for k in sorted(set(old.get("options", {})) | set(new["options"])):
        a, b = old.get("options", {}).get(k), new["options"].get(k)
        if a != b:
            diffs.append(f"--{k.replace('_', '-')} {a!r} -> {b!r}")
    if diffs:
        raise BatchError(f"--out holds a job run with other options ({'; '.join(diffs[:3])}); its done inputs "
                         "would not match: use another --out, or repeat the earlier options")


def plan_tasks(inputs: InputList, manifest: JobManifest, root: Path, retry_failed: bool) -> tuple[list[dict], int]:
    """The inputs to run now, and how many are already done. Skipped files (not media) are recorded."""
    tasks, done_before = [], 0
    for path, reason in inputs.skipped:
        key = input_key(path, root)
        if manifest.state(key) != "skipped":
            manifest.record({"input": key, "path": str(path), "state": "skipped", "reason": reason})
    for path in inputs.files:
        key = input_key(path, root)
        size = inputs.sizes[path] if path in inputs.sizes else _size(path)
        rec = manifest.records.get(key)
        if rec and rec["state"] == "done" and rec.get("bytes") == size:
            done_before += 1
            continue
        if rec and rec["state"] == "failed" and not retry_failed:
            continue
        tasks.append({"key": key, "path": str(path), "kind": media_kind(path), "bytes": size})
    return tasks, done_before


def make_engine(args, worker_cls, options: dict):
    """The engine the flags ask for (not started)."""
    if args.ray is not None:
        return RayEngine(worker_cls, options, args.workers, parse_ray(args.ray), args.cpus_per_worker,
                         args.gpus_per_worker)
    gpus = local_gpus() if getattr(args, "device", "cpu") in ("auto", "cuda") else 0
    n = args.workers or default_workers(gpus)
    if n == 1:
        return InlineEngine(worker_cls, options)
    env = [{"CUDA_VISIBLE_DEVICES": str(s % gpus)} if gpus else {} for s in range(n)]
    return ProcessEngine(worker_cls, options, n, env)


def print_summary(res: JobResult, engine, manifest: JobManifest, label: str = "batch", noun: str = "input") -> None:
    c = manifest.counts()
    hours = max(res.wall_s, 1e-9) / 3600
    print(f"[{label}] {res.total} {noun}(s): {res.done} done now, {res.done_before} done before, {res.failed} "
          f"failed, {res.skipped} skipped; {res.frames} frame(s), {res.people} people in {res.wall_s:.1f} s on "
          f"{engine.slots} worker(s) ({engine.name})")
    if res.done:
        print(f"[{label}] {res.done / hours:.0f} {noun}s/hour, {res.frames / max(res.wall_s, 1e-9):.1f} frames/s"
              + (f"; {res.worker_deaths} worker death(s), {res.retried} input(s) retried" if res.worker_deaths else ""))
    print(f"[{label}] manifest {manifest.path}: {c['done']} done, {c['failed']} failed, {c['skipped']} skipped")


def main(argv: list[str] | None = None, on_event=None) -> int:
    """The command line; ``on_event``: see :func:`run_job`."""
    parser, demo_dests = build_parser()
    args = parser.parse_args(argv)
    if args.ray is not None and not looks_like_address(args.ray):  # `--ray clips/`: an input, not an address
        args.inputs.append(args.ray)
        args.ray = "local"
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    bad = [f for f in args.formats if f not in FORMATS]
    if bad or not args.formats:
        parser.error(f"--formats: unknown {bad}; choose from {', '.join(FORMATS)}")
    if args.workers is not None and args.workers < 1 or args.max_attempts < 1:
        parser.error("--workers and --max-attempts must be >= 1")
    if args.gpus_per_worker < 0 or args.cpus_per_worker <= 0:
        parser.error("--cpus-per-worker must be > 0 and --gpus-per-worker >= 0")
    demo_options = {d: getattr(args, d) for d in demo_dests}
    from instanthmr.cli import demo

    try:
        demo.check_args(demo_namespace(demo_options))  # the demo's own checks of its values, before any work
    except ValueError as e:
        parser.error(str(e))
    try:
        return _run(args, demo_options, on_event)
    except BatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if not isinstance(e, WorkerLoadError) else 1


def _run(args, demo_options: dict, on_event=None) -> int:
    target = OutputTarget(args.out)
    mpath = manifest_path(args.out, args.manifest)
    if target.url and not mpath.is_file():  # resuming from another machine: start from the uploaded copy
        text = target.read_text(MANIFEST_NAME)
        if text:
            mpath.parent.mkdir(parents=True, exist_ok=True)
            mpath.write_text(text)
    manifest = JobManifest(mpath)
    inputs = collect_inputs(args.inputs)
    if not inputs.files and not inputs.skipped:
        raise BatchError(f"no image or video found in {' '.join(args.inputs)}")
    all_paths = inputs.files + [p for p, _ in inputs.skipped]
    if args.relative_to:
        root = Path(args.relative_to).resolve()
    elif manifest.job and manifest.job.get("root"):
        root = Path(manifest.job["root"])
    else:
        root = common_root(all_paths)
    header = _job_header(args, demo_options, root)
    if manifest.job is not None:
        _check_same_job(manifest.job, header)
    manifest.job = header
    tasks, done_before = plan_tasks(inputs, manifest, root, args.retry_failed)
    failed_kept = sum(1 for p in inputs.files if manifest.state(input_key(p, root)) == "failed") \
        if not args.retry_failed else 0
    print(f"[batch] {len(inputs.files)} input(s) under {root}: {len(tasks)} to run, {done_before} done before"
          + (f", {failed_kept} failed before (not retried: --retry-failed)" if failed_kept else "")
          + (f", {len(inputs.skipped)} skipped (not images or videos)" if inputs.skipped else ""))
    if args.dry_run:
        for t in sorted(tasks, key=lambda t: -t["bytes"])[:50]:
            print(f"  {t['key']} ({t['bytes']} bytes)")
        return 0
    if not target.url:
        target.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target.root / STAGING_DIR, ignore_errors=True)  # left by a killed run
    manifest.compact()
    res = JobResult(total=len(inputs.files), done_before=done_before, skipped=len(inputs.skipped))
    if not tasks:
        _finish(manifest, target, mpath)
        print_summary(res, argparse.Namespace(slots=0, name="nothing to run"), manifest)
        return _exit_status(res, manifest, inputs, root, mpath)
    options = {"demo": demo_options, "out": args.out, "formats": args.formats}
    if not demo_options.get("threads"):
        # Every engine runs the same thread count per worker: the thread count changes floating-point sums and
        # so, a little, the results (and ONNX Runtime's default would take every core once per worker).
        options["demo"] = {**demo_options, "threads": max(1, int(args.cpus_per_worker))}
    engine = make_engine(args, PoseWorker, options)
    from instanthmr.core.faults import interrupt_exit_code, stop_signals

    t_load = time.monotonic()
    try:
        with stop_signals():  # SIGTERM / SIGHUP stop the job like Ctrl-C: what is done stays recorded
            info = engine.start()
            first = info[0] if info else {}
            for line in (first.get("log") or "").splitlines():
                print(f"[worker] {line}", file=sys.stderr)
            print(f"[batch] {engine.slots} worker(s) ({engine.name}) loaded in {time.monotonic() - t_load:.1f} s: "
                  f"{first.get('model', '?')} on {first.get('provider', '?')}, detector {first.get('detector', '?')}")
            res2 = run_job(tasks, engine, manifest, quiet=args.quiet, max_attempts=args.max_attempts,
                           on_event=on_event)
    except KeyboardInterrupt as e:
        res2 = JobResult(interrupted=True, exit_code=interrupt_exit_code(e))
    finally:
        engine.close()
        _finish(manifest, target, mpath)
    for f in ("done", "failed", "frames", "people", "worker_deaths", "retried", "wall_s", "interrupted", "exit_code"):
        setattr(res, f, getattr(res2, f))
    print_summary(res, engine, manifest)
    return _exit_status(res, manifest, inputs, root, mpath)


def _exit_status(res: JobResult, manifest: JobManifest, inputs: InputList, root: Path, mpath: Path) -> int:
    """130/143/129 when stopped, 1 while any input of the job is failed (now or in an earlier run), else 0."""
    if res.interrupted:
        print("[batch] stopped: finished inputs are recorded; run the same command to resume", file=sys.stderr)
        return res.exit_code or 130
    failed = sum(1 for p in inputs.files if manifest.state(input_key(p, root)) == "failed")
    if failed:
        print(f"[batch] {failed} input(s) failed (reasons in {mpath}); run again with --retry-failed to retry them",
              file=sys.stderr)
        return 1
    return 0


def _finish(manifest: JobManifest, target: OutputTarget, mpath: Path) -> None:
    manifest.compact()
    if target.url:
        target.put(mpath, MANIFEST_NAME)
    elif target.root is not None:
        shutil.rmtree(target.root / STAGING_DIR, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
