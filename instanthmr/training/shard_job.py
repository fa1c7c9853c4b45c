"""Teacher annotation into shards as a batch job: the runner's engines and manifest, the shard format's own
resumability (docs/scaling.md). ``tools/annotate_mediapipe.py --ray`` / ``--workers`` runs it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from instanthmr.runner.engines import EngineConfig, make_engine
from instanthmr.runner.jobs import MANIFEST_VERSION, JobManifest, JobResult, file_size, print_summary, run_job

SHARD_MANIFEST_NAME = "annotate_manifest.jsonl"
SHARD_TASK_DIR = "tasks"


def shard_tasks(items: list[tuple[str, Path]], images_per_task: int = 256) -> list[dict]:
    """Work items for a teacher: each video on its own, photos in groups of up to ``images_per_task`` per
    folder. Each item writes its shards into its own folder ``OUT/tasks/<id>/`` (a shard set of its own:
    a retry resumes it, and no other writer touches it)."""
    tasks, by_folder = [], {}
    for kind, path in items:
        if kind == "video":
            tasks.append({"key": f"video:{path}", "paths": [str(path)], "kind": "video", "bytes": file_size(path)})
        else:
            by_folder.setdefault(path.parent, []).append(path)
    for folder, files in by_folder.items():
        for i in range(0, len(files), images_per_task):
            chunk = files[i:i + images_per_task]
            tasks.append({"key": f"images:{folder}#{i // images_per_task}", "paths": [str(p) for p in chunk],
                          "kind": "image", "bytes": sum(file_size(p) for p in chunk)})
    for t in tasks:
        t["folder"] = f"{SHARD_TASK_DIR}/{hashlib.sha1(t['key'].encode()).hexdigest()[:16]}"
    return tasks


def shard_job(items: list[tuple[str, Path]], out: Path, worker_cls, options: dict, task_skip, *, label: str,
              engine: EngineConfig = EngineConfig(), images_per_task: int = 256, retry_failed: bool = False,
              max_attempts: int = 3, quiet: bool = False, on_event=None) -> JobResult:
    """Label ``items`` (``(kind, path)``) into the shard folder ``out`` with ``worker_cls`` workers on the
    local pool or Ray (``engine``, see :func:`~instanthmr.runner.engines.make_engine`).

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
    engine = make_engine(replace(engine, device="cpu"), worker_cls, {**options, "out": str(out)})
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
    res.take(got)
    print_summary(res, engine.slots, engine.name, manifest, label, noun="task")
    return res
