"""The same job on this process, on local worker processes or on Ray actors: the engines a job runs on.

A worker class has ``worker_cls(options)`` (``options`` a picklable dict), ``load() -> dict`` (its models, once;
the dict says what was loaded and has ``host`` and ``pid``) and ``run(task) -> dict`` (one input: ``state``
done | failed, ``reason`` from the exception's first line, figures). An engine has ``slots``, ``info``,
``start()``, ``submit(slot, task)``, ``wait()`` and ``close()``; :func:`make_engine` picks one from an
:class:`EngineConfig`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass

from instanthmr.core.errors import first_line

#: memory to budget per local worker (sets the default number of workers): one worker (starter network +
#: MediaPipe detector) peaked at 0.37 GB on a 60-frame 720p clip; a long video keeps every frame's results for
#: the offline smoothing, and the torch RF-DETR detector adds ~0.5 GB
WORKER_MEMORY_BYTES = 1_200_000_000


class BatchError(RuntimeError):
    """A job cannot start (bad inputs, an output folder holding another job, workers that cannot load their
    models)."""


def _stamped(result: dict) -> dict:
    """A worker's result with ``worker`` = ``host:pid`` of the process that ran it."""
    return {**result, "worker": f"{socket.gethostname()}:{os.getpid()}"}


class WorkerLost(Exception):
    """A worker died (killed, out of memory, node lost) while it held an input."""


class WorkerLoadError(BatchError):
    """Workers could not load their models (the same for every worker, so the job stops)."""


class InlineEngine:
    """One worker in this process (``workers=1``)."""

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
        raise BatchError("Ray jobs need the ray package: python install.py --extras scale (or pip install "
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


def default_workers(gpus: int = 0) -> int:
    """What this machine can take: one worker per GPU on a GPU machine; else one per core, at most one per
    ``WORKER_MEMORY_BYTES`` of available memory."""
    if gpus:
        return gpus
    from instanthmr.runtime.session import cpu_cores

    cpus = cpu_cores()
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


@dataclass(frozen=True)
class EngineConfig:
    """Where a job runs. ``ray``: on Ray (``address`` None = a local Ray, else ``auto`` or
    ``ray://HOST:10001``), else ``workers`` local processes (None: :func:`default_workers`; 1: in this
    process). ``cpus_per_worker``: cores per worker (its Ray resource); ``gpus_per_worker``: GPUs per Ray
    worker (fractions share one); ``device``: the models' device (``auto`` / ``cuda``: one local worker per
    visible GPU, each seeing only its own)."""

    workers: int | None = None
    ray: bool = False
    address: str | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    device: str = "cpu"

    def validate(self, label=str) -> None:
        """``ValueError`` with one line for a count or share out of range (fields named by ``label``)."""
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"{label('workers')} must be >= 1, got {self.workers}")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0:
            raise ValueError(f"{label('cpus_per_worker')} must be > 0 and {label('gpus_per_worker')} >= 0")


def make_engine(config: EngineConfig, worker_cls, options: dict):
    """The engine ``config`` asks for (not started)."""
    if config.ray:
        return RayEngine(worker_cls, options, config.workers, config.address, config.cpus_per_worker,
                         config.gpus_per_worker)
    gpus = local_gpus() if config.device in ("auto", "cuda") else 0
    n = config.workers or default_workers(gpus)
    if n == 1:
        return InlineEngine(worker_cls, options)
    env = [{"CUDA_VISIBLE_DEVICES": str(s % gpus)} if gpus else {} for s in range(n)]
    return ProcessEngine(worker_cls, options, n, env)
