"""Batches as src/engine/data/batch-iterator.ts makes them: the same per-epoch order (the Rng's
Fisher-Yates shuffle), the same augmentation draws (src/engine/data/augment.ts), the same iterator
state ({epoch, batch, epochRng}), so a run's data and a checkpoint's dataIterator mean the same in
both engines."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

import numpy as np

from ..rng import Rng, hash_seed


class Dataset(Protocol):
    num_classes: int
    image_size: int

    def __len__(self) -> int: ...

    def batch(self, indices: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]: ...


# ---------------------------------------------------------------- augmentation (augment.ts)
def sample_resized_crop_box(height: int, width: int, scale: Sequence[float], ratio: Sequence[float], rng: Rng) -> Tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params as augment.ts draws it: (top, left, height, width)."""
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * (scale[0] + (scale[1] - scale[0]) * rng.uniform())
        aspect = math.exp(log_lo + (log_hi - log_lo) * rng.uniform())
        w = _js_round(math.sqrt(target_area * aspect))
        h = _js_round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return rng.int(height - h + 1), rng.int(width - w + 1), h, w
    in_ratio = width / height
    w, h = width, height
    if in_ratio < ratio[0]:
        h = _js_round(w / ratio[0])
    elif in_ratio > ratio[1]:
        w = _js_round(h * ratio[1])
    return (height - h) // 2, (width - w) // 2, h, w


def _js_round(x: float) -> int:
    """Math.round: halves go up (Python's round() goes to even)."""
    return math.floor(x + 0.5)


def resize_crop(src: np.ndarray, box: Tuple[int, int, int, int], out_size: int, flip: bool) -> np.ndarray:
    """Bilinear resize of a box of one HWC image (half-pixel centres, edges clamped), as augment.ts
    computes it: weights along x stored as float32, the rest in float64, the result stored as float32."""
    top, left, bh, bw = box
    sy, sx = bh / out_size, bw / out_size
    xs = np.arange(out_size, dtype=np.float64)
    fx = np.minimum(np.maximum((xs + 0.5) * sx - 0.5, 0), bw - 1)
    x0 = np.floor(fx).astype(np.int64)
    x0s = left + x0
    x1s = left + np.minimum(x0 + 1, bw - 1)
    wx = (fx - x0).astype(np.float32).astype(np.float64)
    fy = np.minimum(np.maximum((xs + 0.5) * sy - 0.5, 0), bh - 1)
    y0 = np.floor(fy).astype(np.int64)
    wy = (fy - y0).reshape(-1, 1, 1)
    rows0 = top + y0
    rows1 = top + np.minimum(y0 + 1, bh - 1)
    if flip:
        x0s, x1s, wx = x0s[::-1], x1s[::-1], wx[::-1]
    s = src.astype(np.float64)
    w = wx.reshape(1, -1, 1)
    upper = s[rows0][:, x0s] * (1 - w) + s[rows0][:, x1s] * w
    lower = s[rows1][:, x0s] * (1 - w) + s[rows1][:, x1s] * w
    return (upper * (1 - wy) + lower * wy).astype(np.float32)


def pad_crop(src: np.ndarray, padding: int, dy: int, dx: int, flip: bool) -> np.ndarray:
    size = src.shape[0]
    padded = np.zeros((size + 2 * padding, size + 2 * padding, src.shape[2]), dtype=np.float32)
    padded[padding : padding + size, padding : padding + size] = src
    xs = np.arange(size)
    cols = (size - 1 - xs if flip else xs) + dx
    return padded[dy : dy + size][:, cols]


def augment_batch(images: np.ndarray, config: Mapping[str, Any], rng: Rng) -> np.ndarray:
    """images [N, S, S, 3] float32; every random choice from `rng` in image order (augmentBatch)."""
    kind = config["kind"]
    if kind == "none":
        return images
    out = np.empty_like(images)
    size = images.shape[1]
    for i in range(images.shape[0]):
        if kind == "random-resized-crop":
            box = sample_resized_crop_box(size, size, config["scale"], config["ratio"], rng)
            flip = bool(config["flip"]) and rng.uniform() < 0.5
            out[i] = resize_crop(images[i], box, size, flip)
        elif kind == "pad-crop":
            span = 2 * int(config["padding"]) + 1
            dy = rng.int(span)
            dx = rng.int(span)
            flip = bool(config["flip"]) and rng.uniform() < 0.5
            out[i] = pad_crop(images[i], int(config["padding"]), dy, dx, flip)
        else:
            raise ValueError(f"unknown augmentation kind {kind!r}")
    return out


# ---------------------------------------------------------------- the iterator (batch-iterator.ts)
@dataclass
class _EpochPlan:
    epoch: int
    order: List[int]
    augment_seed: int
    start_rng: Tuple[int, int, int, int]
    next_rng: Tuple[int, int, int, int]


class BatchIterator:
    """Shuffled batches of `batch_size` (the last incomplete one dropped), augmented. `state()` is
    batch-iterator.ts's BatchIteratorState: {epoch, batch, epochRng}."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, augmentation: Mapping[str, Any], state: Optional[Mapping[str, Any]] = None) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.augmentation = augmentation
        self.batches_per_epoch = len(dataset) // batch_size
        if self.batches_per_epoch < 1:
            raise ValueError(f"the dataset has {len(dataset)} images, fewer than one batch of {batch_size}")
        start = state or {"epoch": 0, "batch": 0, "epochRng": Rng(seed).state()}
        self.epoch, self.batch = int(start["epoch"]), int(start["batch"])
        self.plan = self._plan(self.epoch, tuple(int(w) for w in start["epochRng"]))  # type: ignore[arg-type]

    def _plan(self, epoch: int, start_rng: Tuple[int, int, int, int]) -> _EpochPlan:
        rng = Rng.from_state(start_rng)
        order = list(range(len(self.dataset)))
        for i in range(len(order) - 1, 0, -1):
            j = rng.int(i + 1)
            order[i], order[j] = order[j], order[i]
        return _EpochPlan(epoch, order, rng.next_uint32(), start_rng, rng.state())

    def state(self) -> Dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "epochRng": list(self.plan.start_rng)}

    def indices(self, start: int, count: int) -> List[int]:
        return self.plan.order[start : start + count]

    def next(self) -> Tuple[np.ndarray, np.ndarray, List[int]]:
        """(images [B, S, S, 3] float32, labels [B] int64, dataset indices)."""
        start = self.batch * self.batch_size
        indices = self.plan.order[start : start + self.batch_size]
        images, labels = self.dataset.batch(indices)
        images = augment_batch(images, self.augmentation, Rng(hash_seed(self.plan.augment_seed, self.batch)))
        if self.batch + 1 < self.batches_per_epoch:
            self.batch += 1
        else:
            self.epoch, self.batch = self.epoch + 1, 0
            self.plan = self._plan(self.epoch, self.plan.next_rng)
        return images, labels, indices
