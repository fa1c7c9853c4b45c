"""Training across processes: ``torchrun --nproc_per_node 2`` on CPU (Gloo) runs tools/train.py end to end.

One job, stopped with Ctrl-C (SIGINT to torchrun, which forwards it to both ranks) after its first
checkpoint, then resumed with ``--resume auto`` to the end. Checked: the two ranks draw disjoint halves of
the data in an epoch, the loss falls, only rank 0 saves checkpoints and writes logs, the stop saves
``last.pt`` at the step reached and the resumed run continues from there (no step trained twice in the log).

Each rank runs this file as its launch module (``torchrun -m test_torchrun``): :func:`_instrumented_main`
records, per rank, the sample indices the data loader drew and every checkpoint/log write, then runs the
real ``instanthmr.cli.train.main``.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STEPS, CKPT_EVERY, BATCH, SAMPLES = 20, 5, 8, 64  # 64 samples = 4 batches of 8 per rank per epoch


def _instrumented_main() -> int:
    """A rank under torchrun: log what this rank reads and writes to ``$TORCHRUN_TEST_LOG``, then train."""
    import instanthmr.training.model as model_pkg
    from instanthmr.cli.train import main
    from instanthmr.training import dataset, trainer

    rank = int(os.environ["RANK"])
    log = Path(os.environ["TORCHRUN_TEST_LOG"])
    seen = open(log / f"seen_rank{rank}.txt", "a", buffering=1)
    writes = open(log / f"writes_rank{rank}.txt", "a", buffering=1)
    epoch = {"now": -1}

    set_epoch, getitem = dataset.ShardDataset.set_epoch, dataset.ShardDataset.__getitem__

    def set_epoch_logged(self, e, *a, **k):
        epoch["now"] = int(e)
        return set_epoch(self, e, *a, **k)

    def getitem_logged(self, i):
        seen.write(f"{epoch['now']} {int(i)}\n")
        return getitem(self, i)

    save, log_row = model_pkg.save_checkpoint, trainer.Trainer._log

    def save_logged(path, *a, **k):
        writes.write(f"checkpoint {Path(path).name}\n")
        return save(path, *a, **k)

    def log_logged(path, tb, rec):
        writes.write(f"log {Path(path).name} {rec.get('step')}\n")
        return log_row(path, tb, rec)

    dataset.ShardDataset.set_epoch, dataset.ShardDataset.__getitem__ = set_epoch_logged, getitem_logged
    model_pkg.save_checkpoint = save_logged
    trainer.Trainer._log = staticmethod(log_logged)
    return main(sys.argv[1:])


@pytest.fixture(scope="module")
def torchrun() -> str:
    exe = Path(sys.executable).with_name("torchrun")
    if not exe.exists() and not shutil.which("torchrun"):
        pytest.skip("torchrun not found")
    return str(exe) if exe.exists() else shutil.which("torchrun")


def _command(torchrun: str, shards: Path, out: Path, *extra: str) -> list[str]:
    return [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "test_torchrun",
            "--config", str(ROOT / "configs" / "train_smoke.yaml"), "--threads", "1",
            "--set", f"data.train=[{shards}]", "--set", f"run.out_dir={out}", "--set", f"optim.steps={STEPS}",
            "--set", f"run.ckpt_every={CKPT_EVERY}", "--set", f"data.batch_size={BATCH}",
            "--set", "data.block_size=4", "--set", "run.progress=false", "--set", "run.device=cpu", *extra]


def _env(log: Path) -> dict:
    path = os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "TORCHRUN_TEST_LOG": str(log), "OMP_NUM_THREADS": "1"}


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_two_processes_train_stop_and_resume(tmp_path, torchrun):
    import torch

    from instanthmr.training.data.synthetic import write_synthetic_shards

    shards = write_synthetic_shards(tmp_path / "syn", SAMPLES, seed=0, shard_size=8)
    out, log = tmp_path / "run", tmp_path / "log"
    log.mkdir()

    # 1. start, and stop with Ctrl-C once the first checkpoint is on disk
    p = subprocess.Popen(_command(torchrun, shards, out), env=_env(log), cwd=tmp_path, start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while not (out / "last.pt").exists() and p.poll() is None:
            time.sleep(0.2)
        assert p.poll() is None, "the run ended before its first checkpoint:\n" + p.communicate()[0][-3000:]
        os.killpg(p.pid, signal.SIGINT)
        first = p.communicate(timeout=180)[0]
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode != 0, first[-2000:]
    stopped_at = int(torch.load(out / "last.pt", weights_only=False)["step"])
    assert CKPT_EVERY <= stopped_at < STEPS, first[-2000:]
    assert not (out / "final.pt").exists()
    # rank 0 saved where the stop found it (or, when the stop caught a rank inside a collective and the
    # group went down with an error, the last periodic checkpoint is there: resuming works from either)
    assert f"at step {stopped_at}; saved" in first or stopped_at % CKPT_EVERY == 0, first[-2000:]

    # the ranks drew disjoint halves of epoch 0, together all of it
    seen = {r: [tuple(map(int, ln.split())) for ln in _lines(log / f"seen_rank{r}.txt")] for r in (0, 1)}
    epoch0 = {r: [i for e, i in seen[r] if e == 0] for r in (0, 1)}
    assert len(epoch0[0]) == len(epoch0[1]) == SAMPLES // 2
    assert not set(epoch0[0]) & set(epoch0[1])
    assert set(epoch0[0]) | set(epoch0[1]) == set(range(SAMPLES))

    # 2. resume to the end
    done = subprocess.run(_command(torchrun, shards, out, "--resume", "auto"), env=_env(log), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    text = done.stdout + done.stderr
    assert f"continuing from {out / 'last.pt'} at step {stopped_at} of {STEPS}" in text
    assert text.count(f"trained {STEPS} steps") == 1  # rank 0 reports; rank 1 is silent
    assert int(torch.load(out / "final.pt", weights_only=False)["step"]) == STEPS

    # only rank 0 saved checkpoints and wrote logs, in both runs
    assert _lines(log / "writes_rank1.txt") == []
    writes0 = _lines(log / "writes_rank0.txt")
    assert "checkpoint final.pt" in writes0 and f"log metrics.csv {STEPS}" in writes0
    names = {p.name for p in out.iterdir()}
    assert {"final.pt", "last.pt", "metrics.csv"} <= names <= {"final.pt", "last.pt", "metrics.csv", "tb"}, names

    # one row per logged step, continuing where the stop left off; the loss fell
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS
    assert set(range(CKPT_EVERY, STEPS + 1, CKPT_EVERY)) <= set(steps)
    loss = [float(r["loss"]) for r in rows]
    assert sum(loss[-2:]) / 2 < 0.8 * loss[0], loss


if __name__ == "__main__":  # a rank under torchrun (see the module docstring)
    sys.exit(_instrumented_main())
