#!/usr/bin/env python
"""Annotate people with the LLM 2D-to-3D lifter: 133 COCO-WholeBody 2D keypoints in, normalised 3D out.

    python tools/annotate_llm.py --input people.npz --out labels/llm --base-model <hf id or folder> \\
        --adapter <LoRA folder> --batch-size 16

Input formats (.npz, .json lists, COCO-WholeBody, shard folders), what is written and how a run resumes:
instanthmr/training/annotate_llm.py. Ctrl-C, SIGTERM and SIGHUP keep every finished person (exit 130 / 143 /
129); bad input: one line, exit 2.
"""

from __future__ import annotations

import argparse
import sys

from instanthmr.teachers.lifter import protocol
from instanthmr.training.annotate_llm import AnnotateError, LifterJob, annotate


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True, help=".npz / .json of 2D whole-body keypoints, or a shard folder")
    ap.add_argument("--out", required=True, help="shard folder to write (resumable)")
    ap.add_argument("--base-model", required=True, help="Hugging Face id or local folder of the base causal LM")
    ap.add_argument("--adapter", help="PEFT LoRA adapter (id or folder)")
    ap.add_argument("--coord-format", choices=protocol.COORD_FORMATS, default="bins")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=2048)
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cuda, cuda:1, cpu")
    ap.add_argument("--dtype", default="auto", help="auto (bfloat16 on GPU, float32 on CPU), float16, ...")
    ap.add_argument("--min-fraction", type=float, default=protocol.DEFAULT_MIN_FRACTION,
                    help="an output is kept when at least this fraction of joints parsed")
    ap.add_argument("--score-threshold", type=float, default=0.3, help="2D keypoint score below which a joint is missing")
    ap.add_argument("--shard-size", type=int, default=512)
    ap.add_argument("--limit", type=int, default=0, help="annotate only the first N people")
    args = ap.parse_args(argv)
    for name in ("batch_size", "max_new_tokens", "shard_size"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.limit < 0 or not 0.0 <= args.min_fraction <= 1.0:
        ap.error("--limit must be >= 0 and --min-fraction within [0, 1]")
    from instanthmr.core.faults import interrupt_exit_code, stop_reason, stop_signals
    from instanthmr.teachers.lifter.llm import LifterLoadError
    from instanthmr.training.data.shards import ShardFormatError

    try:
        with stop_signals():  # SIGTERM / SIGHUP like Ctrl-C: the shard writer keeps every finished person
            s = annotate(LifterJob(**{f: getattr(args, f) for f in LifterJob.__dataclass_fields__}))
    except (AnnotateError, LifterLoadError, ShardFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"{stop_reason(e)}: finished people are saved in {args.out}; run the same command to continue",
              file=sys.stderr)
        return interrupt_exit_code(e)
    print(f"samples {s['samples']}  parse rate {100 * s['parse_rate']:.1f}%  mean joints parsed "
          f"{s['mean_joints_parsed']:.1f}/133  truncated {s['truncated']}  time/sample {s['seconds_per_sample']:.2f} s  "
          f"(already done {s['skipped_done']}, unusable input {s['skipped_bad_input']})")
    return 0
