"""Distil teacher shards into the InstantHMR network.

Examples::

    # one process (CPU or one GPU)
    python tools/train.py --config configs/train_default.yaml --set data.train=[labels/sam3d] --set run.out_dir=runs/a
    # 8 GPUs on one node (same command under torchrun; data.batch_size is per process)
    torchrun --nproc_per_node 8 tools/train.py --config configs/train_default.yaml --set data.train=[labels/sam3d]
    # resume the run in run.out_dir where it stopped, then export
    python tools/train.py --config ... --resume auto --export models/instanthmr_new.onnx
    # a CPU smoke run on generated people with known labels
    python tools/train.py --config configs/train_smoke.yaml --synthetic 64

Ctrl-C, SIGTERM and SIGHUP save ``last.pt`` at the current step and exit 130 / 143 / 129; ``--resume auto``
continues from there (docs/training.md says what each kind of stop keeps).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _save_on_stop(trainer, stop: BaseException) -> str:
    """Save ``last.pt`` after Ctrl-C / SIGTERM / SIGHUP; the line to print."""
    from instanthmr.core.faults import stop_reason, stop_signals

    reason = stop_reason(stop)
    if trainer is None:
        return f"{reason} before training started; nothing saved"
    if trainer.step == 0:
        return f"{reason} at step 0; nothing to save"
    try:
        with stop_signals():
            path = trainer.save()
    except KeyboardInterrupt:  # stopped again while saving: the atomic write kept the previous last.pt
        return f"{reason} at step {trainer.step}; stopped again while saving, so last.pt is the previous checkpoint"
    if path is None:  # not the main process of a distributed run: rank 0 saves
        return f"{reason} at step {trainer.step}"
    return f"{reason} at step {trainer.step}; saved {path} (continue with --resume auto)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=None, help="YAML config (default: built-in defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. optim.lr=3e-4 or data.train=[a,b] (repeatable)")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from a checkpoint, or from run.out_dir/last.pt when given without a path")
    p.add_argument("--export", type=Path, default=None, help="after training, export final.pt to this .onnx")
    p.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="generate N synthetic labelled people in run.out_dir/synthetic and train on them")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    args = p.parse_args(argv)
    if args.synthetic < 0 or args.threads < 0:
        p.error("--synthetic and --threads take a count >= 0")

    import yaml

    from instanthmr.core.faults import OutputPathError, check_output_path
    from instanthmr.training.config import ConfigError, load_config

    try:
        cfg = load_config(args.config, args.overrides)
        if not args.print_config:  # before any work: where the checkpoints and the ONNX go must be writable
            check_output_path(Path(cfg.run.out_dir) / "last.pt", "run.out_dir")
            if args.export:
                check_output_path(args.export, "--export")
    except (ConfigError, OutputPathError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.synthetic:
        from instanthmr.training.data.synthetic import write_synthetic_shards

        syn = Path(cfg.run.out_dir) / "synthetic"
        write_synthetic_shards(syn, args.synthetic, seed=cfg.run.seed)
        cfg.data.train = [str(syn)]
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0

    import torch

    from instanthmr.core.errors import first_line
    from instanthmr.core.faults import interrupt_exit_code, stop_reason, stop_signals
    from instanthmr.training.data.shards import ShardFormatError
    from instanthmr.training.model import CheckpointError, PretrainedWeightsError
    from instanthmr.training.trainer import Trainer, TrainingError

    if args.threads:
        torch.set_num_threads(args.threads)
    # denormal floats (tiny weights/gradients late in training) made CPU steps many times slower here;
    # flushing them to zero changes nothing measurable and affects CPU kernels only
    torch.set_flush_denormal(True)
    trainer = None
    try:
        with stop_signals():  # SIGTERM / SIGHUP (a scheduler, `timeout`, a closed terminal) act like Ctrl-C
            trainer = Trainer(cfg, resume=args.resume)
            history = trainer.fit()
    except (TrainingError, ShardFormatError, CheckpointError, PretrainedWeightsError, FileNotFoundError,
            KeyError, ValueError) as e:
        print(f"error: {first_line(e, None)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(_save_on_stop(trainer, e), file=sys.stderr)
        return interrupt_exit_code(e)
    if trainer.dist.distributed:
        import torch.distributed as dist

        dist.destroy_process_group()
    if not trainer.dist.is_main:
        return 0
    if history:
        print(f"trained {trainer.step} steps; last loss {history[-1]['loss']:.4f}; "
              f"checkpoints in {trainer.out} (last.pt, final.pt)")
    if args.export:
        from instanthmr.training.export import ExportError, export_onnx, format_report
        from instanthmr.training.model import load_checkpoint

        try:
            with stop_signals():
                model = load_checkpoint(trainer.out / "final.pt")
                report = export_onnx(model, args.export, metadata={"train_data": list(cfg.data.train)})
        except (ExportError, CheckpointError, OSError) as e:
            print(f"error: export: {first_line(e, None)} (final.pt is kept; retry with tools/export_onnx.py)",
                  file=sys.stderr)
            return 1
        except KeyboardInterrupt as e:
            print(f"{stop_reason(e)} during the export; nothing written to {args.export} (final.pt is kept)",
                  file=sys.stderr)
            return interrupt_exit_code(e)
        print(f"exported {args.export}; {format_report(report)}")
    return 0
