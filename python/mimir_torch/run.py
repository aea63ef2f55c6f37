"""The PyTorch engine's run entry point:

  python3 -m mimir_torch.run --config job.json --out DIR [--device auto|cpu|cuda] [--precision auto|fp32|bf16|fp16]

job.json (written by the workbench, src/torch/job.ts): {"kind": "pretrain" | "finetune" | "evaluate" | "export", "config": the
run config validated by the Node side's zod schema and filled with every default (model presets and
the built-in set's size resolved), "epochsOverride"?: raise a resumed run's epochs}. Starts the run in
DIR, or continues it from DIR/checkpoints' newest checkpoint (the stored config wins, as in the tfjs
engine). Prints run events (src/shared/run-events.ts) as JSON lines, rank 0 only. SIGTERM / SIGINT stop
the run at the next step boundary (the last checkpoint is kept). Exit status: 0 done, 1 failed (a
`failed` event says why), 2 bad invocation, 130 cancelled.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List

import torch

from .checkpoint import find_latest
from .distributed import close_world, init_world
from .events import Emitter
from .evaluate_run import run_evaluation
from .export_run import run_export
from .finetune_run import run_finetuning
from .pretrain_run import run_pretraining
from .runtime import (
    CHECKPOINTS_DIR,
    EXIT_CANCELLED,
    EXIT_DONE,
    EXIT_FAILED,
    Cancelled,
    RunFailed,
    Stop,
    die_with_parent,
    pick_device,
)
from .config import ConfigError
from .precision import CHOICES, make_precision
from .rng import hash_seed


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m mimir_torch.run", description="Run a MIMIR training job on the PyTorch engine.")
    parser.add_argument("--config", required=True, help="job JSON written by the workbench: {kind, config}")
    parser.add_argument("--out", required=True, help="the run's folder (resumes from its checkpoints)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=list(CHOICES), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per process (0: torch's default)")
    args = parser.parse_args(argv)
    with open(args.config) as f:
        job = json.load(f)
    die_with_parent()
    stop = Stop()
    device = pick_device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    world = init_world(device)
    emitter = Emitter(world.rank)
    # torch's own generator serves what the workbench Rng does not draw (ConvNeXt's and Swin's drop path):
    # seeded from the run and the rank, so a run repeats and ranks draw different masks.
    seed = job.get("config", {}).get("seed") if isinstance(job.get("config"), dict) else None
    if isinstance(seed, int):
        torch.manual_seed(hash_seed(seed, world.rank))
    try:
        kind = job.get("kind")
        runner = {"pretrain": run_pretraining, "finetune": run_finetuning, "evaluate": run_evaluation, "export": run_export}.get(kind)
        if runner is None:
            emitter.emit({"type": "failed", "message": f"job kind {kind!r} is not available on the PyTorch engine (pretrain, finetune, evaluate, export): use --engine tfjs", "step": None, "lastCheckpoint": None})
            return EXIT_FAILED
        try:
            precision = make_precision(args.precision, device)
        except ConfigError as error:
            emitter.emit({"type": "failed", "message": str(error), "step": None, "lastCheckpoint": None})
            return EXIT_FAILED
        runner(job["config"], bool(job.get("resume", False)), job.get("epochsOverride"), os.path.abspath(args.out), device, precision, world, emitter, stop)
        return EXIT_DONE
    except RunFailed:
        return EXIT_FAILED
    except Cancelled:
        emitter.log("warn", "Cancelled at a step boundary; the last checkpoint is kept.")
        return EXIT_CANCELLED
    except Exception as error:  # anything unexpected: a failed event with the reason, then the traceback on stderr
        emitter.emit({"type": "failed", "message": f"The PyTorch engine stopped: {type(error).__name__}: {error}", "step": None, "lastCheckpoint": find_latest(os.path.join(args.out, CHECKPOINTS_DIR))})
        raise
    finally:
        close_world(world)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
