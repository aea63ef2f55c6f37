"""Run events (src/shared/run-events.ts) as JSON lines on stdout, from rank 0 only; the Node side
validates each with the same zod schemas. Logs for people go to stderr."""
from __future__ import annotations

import json
import math
import sys
from typing import Any, Callable, Dict, Mapping, Optional


class Emitter:
    def __init__(self, rank: int) -> None:
        self.rank = rank

    def emit(self, event: Mapping[str, Any]) -> None:
        if self.rank != 0:
            return
        sys.stdout.write(json.dumps(event, allow_nan=False) + "\n")
        sys.stdout.flush()

    def log(self, level: str, message: str) -> None:
        self.emit({"type": "log", "level": level, "message": message})


def non_finite_stop(values: Mapping[str, float], step: int, epoch: int, last_checkpoint: Optional[str]) -> Optional[str]:
    """step-events.ts's nonFiniteStop: the message that stops a run on a NaN or infinite value."""
    for key, value in values.items():
        if not math.isfinite(value):
            shown = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            where = f" ({last_checkpoint})" if last_checkpoint else " (none was written yet: start again)"
            return (
                f"{key} became {shown} at step {step} (epoch {epoch + 1}); training stopped. "
                "Lower the learning rate (optimizer.baseLr) or set optimizer.clipGrad, then resume from the last good checkpoint"
                f"{where}."
            )
    return None


class StepEvents:
    """step-events.ts's StepEvents: throughput (the run's first step left out) and the per-step events."""

    def __init__(self, emitter: Emitter, batch_size: int, epochs: int, steps_per_epoch: int, log_every: int, system: Optional[Callable[[], Dict[str, float]]] = None) -> None:
        self.emitter = emitter
        self.system = system  # system metrics (GPU utilisation and memory), sampled with each metrics event
        self.batch_size, self.epochs, self.steps_per_epoch, self.log_every = batch_size, epochs, steps_per_epoch, log_every
        self.images = 0
        self.seconds = 0.0

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def after(self, step: int, epoch: int, b: int, seconds: float, values: Dict[str, float], lr: float, extra: Dict[str, float]) -> None:
        if step > 1 or epoch > 0:
            self.images += self.batch_size
            self.seconds += seconds
        ips = self.images_per_second if self.seconds > 0 else self.batch_size / max(seconds, 1e-9)
        if step % self.log_every == 0 or b == self.steps_per_epoch - 1:
            self.emitter.emit(
                {
                    "type": "metrics",
                    "step": step,
                    "epoch": epoch + (b + 1) / self.steps_per_epoch,
                    "values": {**values, "lr": lr, "images_per_s": ips, **extra, **(self.system() if self.system else {})},
                }
            )
        total = self.steps_per_epoch * self.epochs
        self.emitter.emit(
            {
                "type": "progress",
                "epoch": epoch + 1,
                "epochs": self.epochs,
                "step": step,
                "totalSteps": total,
                "imagesPerSecond": ips,
                "etaSeconds": (total - step) * self.batch_size / max(ips, 1e-9),
            }
        )
