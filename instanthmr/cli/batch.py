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
code (each worker loads the pipeline once and runs the library's loop, ``instanthmr.runner.loop.run``, and its
writers per input; the job itself is ``instanthmr.runner.jobs.run_batch``). Engines:
``--workers N`` local processes (default: what this machine can take), or ``--ray [ADDRESS]`` (a local Ray
without an address; ``auto`` or ``ray://HOST:10001`` for a cluster): one model load per worker actor,
``--gpus-per-worker`` fractions, the largest inputs first; an input whose worker dies is retried on the next
free worker (``--max-attempts``). Every engine runs ``--cpus-per-worker`` model threads per worker, so their
results are identical. See docs/scaling.md. Exit status: 0 every input done, 1 some input failed (or the
models could not be loaded), 2 bad arguments, 130 / 143 / 129 stopped by a signal (run again to resume).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from instanthmr.cli.common import flag_name, looks_like_address, random_init_model
from instanthmr.cli.run_flags import (
    add_camera_flags,
    add_mesh_flags,
    add_model_flags,
    add_rig_flag,
    add_speed_flags,
    add_tracking_flags,
    run_config,
)
from instanthmr.runner.engines import BatchError, EngineConfig, WorkerLoadError
from instanthmr.runner.jobs import FORMATS, MANIFEST_NAME, BatchConfig, run_batch
from instanthmr.runtime.session import ModelLoadError

DEFAULT_FORMATS = "json"


def build_parser() -> argparse.ArgumentParser:
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
    add_model_flags(p, "demo: ")
    add_speed_flags(p, "demo: ")
    add_tracking_flags(p, "demo: ")
    add_camera_flags(p, "demo: ")
    add_rig_flag(p.add_argument_group("demo: outputs"))
    add_mesh_flags(p, "demo: ")
    return p


def batch_config(args) -> BatchConfig:
    """The job the flags ask for (``ValueError``, one line, for a bad value)."""
    return BatchConfig(inputs=tuple(args.inputs), out=args.out, run=run_config(args),
                       formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
                       engine=EngineConfig(workers=args.workers, ray=args.ray is not None,
                                           address=None if args.ray in (None, "local") else args.ray,
                                           cpus_per_worker=args.cpus_per_worker,
                                           gpus_per_worker=args.gpus_per_worker, device=args.device),
                       retry_failed=args.retry_failed, relative_to=args.relative_to, manifest=args.manifest,
                       max_attempts=args.max_attempts, dry_run=args.dry_run, quiet=args.quiet)


def main(argv: list[str] | None = None, on_event=None) -> int:
    """The command line; ``on_event``: see ``instanthmr.runner.jobs.run_job``."""
    args = build_parser().parse_args(argv)
    if args.ray is not None and not looks_like_address(args.ray):  # `--ray clips/`: an input, not an address
        args.inputs.append(args.ray)
        args.ray = "local"
    try:
        config = batch_config(args)
        config.validate(flag_name)  # every value, the demo's own checks included, before any work
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        if args.random_init and not args.dry_run:  # exported once here, not once per worker
            model = random_init_model(args.model, args.random_init_config)
            config = replace(config, run=replace(config.run, pipeline=replace(config.run.pipeline, model=str(model),
                                                                              random_init=True)))
        return run_batch(config, on_event)
    except (WorkerLoadError, ModelLoadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

