"""Fine-tuning augmentations as src/engine/finetune/augment.ts does them, on batches of HWC float32
images in [0, 1] (numpy [N, S, S, 3]), drawing from the run's Rng in the same order so that a seed gives
the tfjs engine's batch:
- RandAugment as torchvision.transforms.RandAugment (numOps of its 14 ops per image, magnitude bin of
  bins, a random sign for signed ops, nearest-neighbour geometry, fill 0);
- MixUp / CutMix as timm's Mixup in batch mode (one lambda per batch, each image mixed with the batch
  reversed, CutMix's lambda corrected to the box's area).
The arithmetic is float64 stored as float32 where augment.ts stores into a Float32Array, and sums run
in the same order (np.cumsum, not np.sum's pairwise order)."""
from __future__ import annotations

import math
from typing import Any, List, Mapping, Optional, Tuple

import numpy as np

from ..rng import Rng

OPS = (
    "identity",
    "shear-x",
    "shear-y",
    "translate-x",
    "translate-y",
    "rotate",
    "brightness",
    "color",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "autocontrast",
    "equalize",
)
SIGNED = {"shear-x", "shear-y", "translate-x", "translate-y", "rotate", "brightness", "color", "contrast", "sharpness"}


def js_round(x):
    """JavaScript's Math.round: halves towards +infinity."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5)


def op_magnitude(op: str, bin_: int, bins: int, size: int) -> float:
    def linspace(lo: float, hi: float) -> float:
        return lo + ((hi - lo) * bin_) / (bins - 1) if bins > 1 else lo

    if op in ("shear-x", "shear-y"):
        return linspace(0, 0.3)
    if op in ("translate-x", "translate-y"):
        return linspace(0, (150 / 331) * size)
    if op == "rotate":
        return linspace(0, 30)
    if op in ("brightness", "color", "contrast", "sharpness"):
        return linspace(0, 0.9)
    if op == "posterize":
        return 8 - float(js_round(bin_ / ((bins - 1) / 4)))
    if op == "solarize":
        return linspace(1, 0)
    return 0.0


def _blend(img: np.ndarray, ratio: float, other) -> np.ndarray:
    """clamp01(ratio * img + (1 - ratio) * other) in float64, stored float32 (torchvision's _blend)."""
    return np.clip(ratio * img.astype(np.float64) + (1 - ratio) * other, 0.0, 1.0).astype(np.float32)


def _gray(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float64)
    return 0.2989 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def _smoothed(img: np.ndarray) -> np.ndarray:
    """3x3 [1 1 1; 1 5 1; 1 1 1] / 13, border kept, summed in augment.ts's order."""
    size = img.shape[0]
    out = img.copy()
    if size < 3:
        return out
    x = img.astype(np.float64)
    total = np.zeros((size - 2, size - 2, 3))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            w = 5 if dx == 0 and dy == 0 else 1
            total = total + w * x[1 + dy : size - 1 + dy, 1 + dx : size - 1 + dx]
    out[1:-1, 1:-1] = (total / 13).astype(np.float32)
    return out


def _equalize(img: np.ndarray) -> np.ndarray:
    out = img.copy()
    pixels = img.shape[0] * img.shape[1]
    for c in range(3):
        value = np.clip(js_round(img[..., c].astype(np.float64) * 255), 0, 255).astype(np.int64)
        hist = np.bincount(value.reshape(-1), minlength=256)
        nonzero = np.flatnonzero(hist)
        last = int(nonzero[-1]) if nonzero.size else 0
        step = (pixels - int(hist[last])) // 255
        if step == 0:
            continue
        cumulative = np.concatenate([[0], np.cumsum(hist)[:-1]])
        lut = np.minimum(255, (cumulative + step // 2) // step)
        out[..., c] = (lut[value].astype(np.float64) / 255).astype(np.float32)
    return out


def apply_op(img: np.ndarray, op: str, v: float) -> np.ndarray:
    """One RandAugment op of value v (signed where the op is) on one [S, S, 3] float32 image; a new array."""
    size = img.shape[0]
    if op == "identity":
        return img
    if op in ("shear-x", "shear-y", "translate-x", "translate-y", "rotate"):
        y, x = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
        centre = (size - 1) / 2
        if op == "shear-x":
            sx, sy = x + v * y, y
        elif op == "shear-y":
            sx, sy = x, y + v * x
        elif op == "translate-x":
            sx, sy = x - v, y
        elif op == "translate-y":
            sx, sy = x, y - v
        else:
            rad = (v * math.pi) / 180
            cos, sin = math.cos(rad), math.sin(rad)  # libm, as V8's Math.cos / Math.sin
            sx = cos * (x - centre) - sin * (y - centre) + centre
            sy = sin * (x - centre) + cos * (y - centre) + centre
        ix, iy = js_round(sx).astype(np.int64), js_round(sy).astype(np.int64)
        inside = (ix >= 0) & (iy >= 0) & (ix < size) & (iy < size)
        out = np.zeros_like(img)
        out[inside] = img[iy[inside], ix[inside]]
        return out
    if op == "brightness":
        return _blend(img, 1 + v, 0.0)
    if op == "color":
        gray = _gray(img).astype(np.float32).astype(np.float64)  # augment.ts keeps it in a Float32Array
        return _blend(img, 1 + v, gray[..., None])
    if op == "contrast":
        mean = float(np.cumsum(_gray(img).reshape(-1))[-1]) / (size * size)
        return _blend(img, 1 + v, mean)
    if op == "sharpness":
        if size < 3:
            return img
        return _blend(img, 1 + v, _smoothed(img).astype(np.float64))
    if op == "posterize":
        bits = max(0, min(8, int(js_round(v))))
        mask = (0xFF << (8 - bits)) & 0xFF
        q = np.clip(np.floor(img.astype(np.float64) * 255), 0, 255).astype(np.int64) & mask
        return (q.astype(np.float64) / 255).astype(np.float32)
    if op == "solarize":
        x = img.astype(np.float64)
        return np.where(x >= v, 1 - x, x).astype(np.float32)
    if op == "autocontrast":
        out = img.copy()
        for c in range(3):
            channel = img[..., c].astype(np.float64)
            lo, hi = channel.min(), channel.max()
            if hi > lo:
                out[..., c] = np.clip((channel - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
        return out
    if op == "equalize":
        return _equalize(img)
    raise ValueError(f"unknown RandAugment op {op!r}")


def rand_augment_batch(images: np.ndarray, config: Mapping[str, Any], rng: Rng) -> List[List[str]]:
    """RandAugment over the batch in place (config: numOps, magnitude, bins); returns the ops drawn."""
    size = images.shape[1]
    bins = int(config["bins"])
    bin_ = min(int(config["magnitude"]), bins - 1)
    drawn: List[List[str]] = []
    for i in range(images.shape[0]):
        ops: List[str] = []
        for _ in range(int(config["numOps"])):
            op = OPS[rng.int(len(OPS))]
            v = op_magnitude(op, bin_, bins, size)
            if op in SIGNED and rng.uniform() < 0.5:
                v = -v
            images[i] = apply_op(images[i], op, v)
            ops.append(op)
        drawn.append(ops)
    return drawn


def sample_gamma(shape: float, rng: Rng) -> float:
    """Gamma(shape, 1) by Marsaglia and Tsang, as augment.ts sampleGamma (the same draws)."""
    if shape < 1:
        u = 0.0
        while u == 0:
            u = rng.uniform()
        return sample_gamma(shape + 1, rng) * u ** (1 / shape)
    d = shape - 1 / 3
    c = 1 / math.sqrt(9 * d)
    while True:
        x = rng.normal()
        t = 1 + c * x
        if t <= 0:
            continue
        v = t * t * t
        u = rng.uniform()
        if u > 0 and math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return d * v


def sample_beta(a: float, b: float, rng: Rng) -> float:
    x = sample_gamma(a, rng)
    y = sample_gamma(b, rng)
    return x / (x + y) if x + y > 0 else 0.5


def mix_batch(
    images: np.ndarray, labels: np.ndarray, num_classes: int, config: Optional[Mapping[str, Any]], rng: Rng
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, float, str]:
    """timm's Mixup (batch mode, correct_lam): (images, targets [N, C] float32, dominant labels, lambda,
    'none' | 'mixup' | 'cutmix'); config None leaves the batch unmixed (one-hot targets)."""
    count = labels.shape[0]
    one_hot = np.zeros((count, num_classes), dtype=np.float32)
    one_hot[np.arange(count), labels] = 1
    if config is None or not rng.uniform() < float(config["prob"]):
        return images, one_hot, labels, 1.0, "none"
    mixup_alpha, cutmix_alpha = float(config["mixupAlpha"]), float(config["cutmixAlpha"])
    cutmix = False
    if mixup_alpha > 0 and cutmix_alpha > 0:
        cutmix = rng.uniform() < float(config["switchProb"])
        alpha = cutmix_alpha if cutmix else mixup_alpha
        lam = sample_beta(alpha, alpha, rng)
    elif mixup_alpha > 0:
        lam = sample_beta(mixup_alpha, mixup_alpha, rng)
    elif cutmix_alpha > 0:
        cutmix = True
        lam = sample_beta(cutmix_alpha, cutmix_alpha, rng)
    else:
        return images, one_hot, labels, 1.0, "none"
    size = images.shape[1]
    reversed_images = images[::-1]
    if cutmix:
        cut = math.floor(size * math.sqrt(1 - lam))
        cy, cx = rng.int(size), rng.int(size)

        def clip(v: int) -> int:
            return min(max(v, 0), size)

        yl, yh, xl, xh = clip(cy - cut // 2), clip(cy + cut // 2), clip(cx - cut // 2), clip(cx + cut // 2)
        out = images.copy()
        out[:, yl:yh, xl:xh] = reversed_images[:, yl:yh, xl:xh]
        lam = 1 - ((yh - yl) * (xh - xl)) / (size * size)
    else:
        out = (images.astype(np.float64) * lam + reversed_images.astype(np.float64) * (1 - lam)).astype(np.float32)
    targets = np.zeros((count, num_classes), dtype=np.float32)
    rows = np.arange(count)
    targets[rows, labels] = np.float32(lam)
    other = labels[::-1]
    # (t + 1) - lambda, in augment.ts's order (not t + (1 - lambda): they differ where a row mixes its own class).
    targets[rows, other] = ((targets[rows, other].astype(np.float64) + 1) - lam).astype(np.float32)
    dominant = labels if lam >= 0.5 else other
    return out, targets, dominant.copy(), lam, "cutmix" if cutmix else "mixup"
