"""Batch jobs as a library call: thousands of videos and photos through :func:`~instanthmr.runner.loop.run`,
resumable, on a local pool or Ray (docs/scaling.md).

    from instanthmr.runner.jobs import BatchConfig, run_batch
    status = run_batch(BatchConfig(inputs=("clips/",), out="runs/poses", run=RunConfig(pipeline=spec)))

Inputs are files, folders (searched recursively for images and videos), globs (``**`` too) or CSV manifests (a
``path`` column, else the first column; relative paths are relative to the CSV). Each input's outputs mirror
its path under ``out``: ``clips/a/run.mp4`` -> ``OUT/a/run.mp4.json`` (``.npz``, ``.csv``,
``.mp4_track<id>.bvh``, ``.glb``, ``.overlay.mp4``), relative to the inputs' common folder. A worker writes an
input's files into a staging folder and moves them into place only when the input is complete, so an output
file is either whole or absent. ``OUT/batch_manifest.jsonl`` records every input's state (done / failed with
the reason / skipped) and figures (frames, people, seconds); running the same job again resumes it.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from instanthmr.core.errors import first_line
from instanthmr.runner.config import OUTPUT_FIELDS, RunConfig
from instanthmr.runner.engines import BatchError, EngineConfig, WorkerLoadError, WorkerLost, make_engine
from instanthmr.video.sources import media_kind

MANIFEST_NAME = "batch_manifest.jsonl"
MANIFEST_VERSION = 1
STAGING_DIR = ".batch-staging"
#: output format -> (RunConfig field, file suffix appended to the input's name)
FORMATS = {"json": ("save_json", ".json"), "npz": ("save_npz", ".npz"), "csv": ("save_csv", ".csv"),
           "bvh": ("save_bvh", ".bvh"), "glb": ("save_gltf", ".glb"), "mp4": ("out_video", ".overlay.mp4")}
#: RunConfig fields a job sets itself per input (source, outputs, viewer, live stream, messages), and
#: PipelineSpec / RuntimeOptions fields that change speed, not results (a resumed job may change them): neither
#: is in the job's record
JOB_OWNED = {"image", "video", "camera", *OUTPUT_FIELDS.values(), "viewer", "stream", "stages", "quiet",
             "verbose"}
SPEED_ONLY = {"device", "threads", "spinning", "io_binding", "cuda_graph", "async_detector", "padding"}
__all__ = ["BatchConfig", "BatchError", "JobManifest", "PoseWorker", "WorkerLoadError", "collect_inputs",
           "run_batch", "run_job"]


# --------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------

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


def file_size(path: Path) -> int:
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
# the worker: the pipeline loaded once, one input at a time through run()
# --------------------------------------------------------------------------------------------------

class PoseWorker:
    """A batch worker: the pipeline ``options["run"].pipeline`` names, loaded once (:meth:`load`), then one
    input at a time (:meth:`run`) through :func:`~instanthmr.runner.loop.run` and its writers. ``options``:
    ``run`` (the :class:`RunConfig` every input shares), ``out`` (the job's output folder or URL), ``formats``
    (list of :data:`FORMATS` keys)."""

    def __init__(self, options: dict):
        self.options = options
        self.pipeline = None

    def load(self) -> dict:
        from instanthmr.core.faults import quiet_video_decoder
        from instanthmr.runtime.factory import create_pipeline

        quiet_video_decoder()  # as the demo: damaged frames are counted, not logged
        config: RunConfig = self.options["run"]
        notes: list[str] = []
        self.pipeline = create_pipeline(config.pipeline, log=notes.append, run_loop=True)
        hmr, det = self.pipeline.hmr, self.pipeline.detector
        return {"host": socket.gethostname(), "pid": os.getpid(), "log": "\n".join(notes),
                "model": str(hmr.path), "provider": hmr.provider,
                "detector": f"{det.name} {getattr(det, 'variant', '')}".strip()}

    def run(self, task: dict) -> dict:
        from instanthmr.runner.loop import run

        t0 = time.monotonic()
        target = OutputTarget(self.options["out"])
        staging = target.staging()
        try:
            path = Path(task["path"])
            if not path.is_file():
                return {"state": "failed", "reason": f"not found: {path}", "seconds": time.monotonic() - t0}
            outputs = {FORMATS[f][0]: str(staging / (path.name + FORMATS[f][1])) for f in self.options["formats"]}
            source = {"image": str(path)} if task.get("kind") == "image" else {"video": str(path)}
            # The per-input lines (what runs, what was written) are not the job's output, the manifest is. A
            # failure is the exception run() raises, recorded by its first line below.
            config = replace(self.options["run"], **source, **outputs, viewer=False, quiet=True, verbose=False)
            config.validate()
            report = run(config, self.pipeline)  # no stop signals of its own: a worker is stopped by its driver
            if report.status == "stopped":  # the job is stopping, this input is not done
                raise KeyboardInterrupt
            files = target.commit(staging, task["key"])
            return {"state": "done", "frames": report.frames, "people": report.people,
                    "seconds": round(time.monotonic() - t0, 3), "outputs": files}
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one bad input never stops a job: it is recorded with the reason
            return {"state": "failed", "reason": first_line(e), "seconds": round(time.monotonic() - t0, 3)}
        finally:
            shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# running tasks on an engine
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

    def take(self, run: "JobResult") -> None:
        """Add what :func:`run_job` did (``run``) to a result that holds the job's totals."""
        for f in ("done", "failed", "frames", "people", "worker_deaths", "retried", "wall_s", "interrupted",
                  "exit_code", "failures"):
            setattr(self, f, getattr(run, f))


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


def plan_tasks(inputs: InputList, manifest: JobManifest, root: Path, retry_failed: bool) -> tuple[list[dict], int]:
    """The inputs to run now, and how many are already done. Skipped files (not media) are recorded."""
    tasks, done_before = [], 0
    for path, reason in inputs.skipped:
        key = input_key(path, root)
        if manifest.state(key) != "skipped":
            manifest.record({"input": key, "path": str(path), "state": "skipped", "reason": reason})
    for path in inputs.files:
        key = input_key(path, root)
        size = inputs.sizes[path] if path in inputs.sizes else file_size(path)
        rec = manifest.records.get(key)
        if rec and rec["state"] == "done" and rec.get("bytes") == size:
            done_before += 1
            continue
        if rec and rec["state"] == "failed" and not retry_failed:
            continue
        tasks.append({"key": key, "path": str(path), "kind": media_kind(path), "bytes": size})
    return tasks, done_before


def print_summary(res: JobResult, slots: int, engine: str, manifest: JobManifest, label: str = "batch",
                  noun: str = "input") -> None:
    """The end-of-job lines: counts, speed, the manifest's totals (``engine``: the engine's name)."""
    c = manifest.counts()
    hours = max(res.wall_s, 1e-9) / 3600
    print(f"[{label}] {res.total} {noun}(s): {res.done} done now, {res.done_before} done before, {res.failed} "
          f"failed, {res.skipped} skipped; {res.frames} frame(s), {res.people} people in {res.wall_s:.1f} s on "
          f"{slots} worker(s) ({engine})")
    if res.done:
        print(f"[{label}] {res.done / hours:.0f} {noun}s/hour, {res.frames / max(res.wall_s, 1e-9):.1f} frames/s"
              + (f"; {res.worker_deaths} worker death(s), {res.retried} input(s) retried" if res.worker_deaths else ""))
    print(f"[{label}] manifest {manifest.path}: {c['done']} done, {c['failed']} failed, {c['skipped']} skipped")


# --------------------------------------------------------------------------------------------------
# the job
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchConfig:
    """One batch job. ``inputs``: files, folders, globs or CSV lists; ``out``: a folder or an fsspec URL
    (``s3://bucket/poses``); ``run``: what every input shares (the pipeline, tracking, smoothing, rig, meshes;
    its source and output paths are set per input); ``formats``: :data:`FORMATS` keys; ``engine``: where it
    runs; ``retry_failed``: run inputs that failed in an earlier run too; ``relative_to``: the folder mirrored
    under ``out`` (default: the inputs' common folder, kept for the job's later runs); ``manifest``: the
    manifest's path (default ``OUT/batch_manifest.jsonl``; for a URL a local copy, uploaded when the job
    ends); ``max_attempts``: hand an input to a new worker at most N times when its worker dies; ``dry_run``:
    list, run nothing; ``quiet``: no progress bar."""

    inputs: tuple[str, ...]
    out: str
    run: RunConfig = field(default_factory=RunConfig)
    formats: tuple[str, ...] = ("json",)
    engine: EngineConfig = field(default_factory=EngineConfig)
    retry_failed: bool = False
    relative_to: str | None = None
    manifest: str | None = None
    max_attempts: int = 3
    dry_run: bool = False
    quiet: bool = False

    def validate(self, label=str) -> None:
        """Every value before any work: ``ValueError`` with one line (fields named by ``label``)."""
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ValueError(f"{label('formats')}: unknown {bad}; choose from {', '.join(FORMATS)}")
        if self.max_attempts < 1:
            raise ValueError(f"{label('max_attempts')} must be >= 1, got {self.max_attempts}")
        self.engine.validate(label)
        self.run.validate_options(label)
        if not is_url(self.out) and _local(self.out).exists() and not _local(self.out).is_dir():
            raise ValueError(f"{label('out')} {self.out} is a file; give a folder (created when missing) or a URL")


def job_options(config: RunConfig) -> dict:
    """What makes two runs of a job give the same results: the run's and the pipeline's fields (the runtime's
    flattened), less :data:`JOB_OWNED` and :data:`SPEED_ONLY`."""
    out = {}
    for obj in (config, config.pipeline, config.pipeline.runtime):
        for f in fields(obj):
            if f.name not in JOB_OWNED | SPEED_ONLY | {"pipeline", "runtime"}:
                out[f.name] = getattr(obj, f.name)
    return out


def _job_header(config: BatchConfig, root: Path) -> dict:
    header = {"version": MANIFEST_VERSION, "tool": "batch", "root": str(root), "formats": list(config.formats),
              "options": job_options(config.run)}
    return json.loads(json.dumps(header, default=str))  # as it reads back from the manifest, to compare


def _check_same_job(old: dict, new: dict) -> None:
    diffs = [f"formats {','.join(old.get('formats', []))} -> {','.join(new['formats'])}"] \
        if old.get("formats") != new["formats"] else []
    for k in sorted(set(old.get("options", {})) | set(new["options"])):
        a, b = old.get("options", {}).get(k), new["options"].get(k)
        if a != b:
            diffs.append(f"{k} {a!r} -> {b!r}")
    if diffs:
        raise BatchError(f"the output folder holds a job run with other options ({'; '.join(diffs[:3])}); its done "
                         "inputs would not match: use another output folder, or repeat the earlier options")


def run_batch(config: BatchConfig, on_event=None) -> int:
    """Run the job ``config`` describes (call ``config.validate()`` first); its exit status: 0 every input
    done, 1 some input failed (now or in an earlier run), 130 / 143 / 129 stopped by a signal (run again to
    resume). Raises :class:`BatchError` (one line) when the job cannot start, :class:`WorkerLoadError` when
    the workers cannot load their models. ``on_event``: see :func:`run_job`."""
    target = OutputTarget(config.out)
    mpath = manifest_path(config.out, config.manifest)
    if target.url and not mpath.is_file():  # resuming from another machine: start from the uploaded copy
        text = target.read_text(MANIFEST_NAME)
        if text:
            mpath.parent.mkdir(parents=True, exist_ok=True)
            mpath.write_text(text)
    manifest = JobManifest(mpath)
    inputs = collect_inputs(list(config.inputs))
    if not inputs.files and not inputs.skipped:
        raise BatchError(f"no image or video found in {' '.join(config.inputs)}")
    all_paths = inputs.files + [p for p, _ in inputs.skipped]
    if config.relative_to:
        root = Path(config.relative_to).resolve()
    elif manifest.job and manifest.job.get("root"):
        root = Path(manifest.job["root"])
    else:
        root = common_root(all_paths)
    header = _job_header(config, root)
    if manifest.job is not None:
        _check_same_job(manifest.job, header)
    manifest.job = header
    tasks, done_before = plan_tasks(inputs, manifest, root, config.retry_failed)
    failed_kept = sum(1 for p in inputs.files if manifest.state(input_key(p, root)) == "failed") \
        if not config.retry_failed else 0
    print(f"[batch] {len(inputs.files)} input(s) under {root}: {len(tasks)} to run, {done_before} done before"
          + (f", {failed_kept} failed before (not retried: --retry-failed)" if failed_kept else "")
          + (f", {len(inputs.skipped)} skipped (not images or videos)" if inputs.skipped else ""))
    if config.dry_run:
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
        print_summary(res, 0, "nothing to run", manifest)
        return _exit_status(res, manifest, inputs, root, mpath)
    run_config = config.run
    if not run_config.pipeline.runtime.threads:
        # Every engine runs the same thread count per worker: the thread count changes floating-point sums and
        # so, a little, the results (and ONNX Runtime's default would take every core once per worker).
        runtime = replace(run_config.pipeline.runtime, threads=max(1, int(config.engine.cpus_per_worker)),
                          spinning=False)
        run_config = replace(run_config, pipeline=replace(run_config.pipeline, runtime=runtime))
    options = {"run": run_config, "out": config.out, "formats": list(config.formats)}
    engine = make_engine(replace(config.engine, device=run_config.pipeline.device), PoseWorker, options)
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
            got = run_job(tasks, engine, manifest, quiet=config.quiet, max_attempts=config.max_attempts,
                          on_event=on_event)
    except KeyboardInterrupt as e:
        got = JobResult(interrupted=True, exit_code=interrupt_exit_code(e))
    finally:
        engine.close()
        _finish(manifest, target, mpath)
    res.take(got)
    print_summary(res, engine.slots, engine.name, manifest)
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

