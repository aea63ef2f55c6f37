"""The built-in dataset (src/engine/data/procedural.ts), drawn identically: the same Rng draws in the
same order, the same float64 arithmetic, and float32 stores where the TypeScript stores into a
Float32Array (array('f') here). Images are HWC float32 in [0, 1]; label = index % classes.
Math functions come from Python's libm, V8's from fdlibm: they agree to the last bit almost always,
and a test checks the images are within 1 float32 ulp."""
from __future__ import annotations

import math
from array import array
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..rng import Rng, hash_seed

TAU = 2 * math.pi
CHANNELS = 3


def _clamp01(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x


def _between(rng: Rng, lo: float, hi: float) -> float:
    return lo + (hi - lo) * rng.uniform()


def _colour_pair(rng: Rng) -> Tuple[List[float], List[float]]:
    low = _between(rng, 0.05, 0.45)
    high = _between(rng, low + 0.3, 0.95)
    bright_foreground = rng.uniform() < 0.7

    def tint(level: float) -> List[float]:
        return [_clamp01(level + (rng.uniform() - 0.5) * 0.5) for _ in range(3)]

    fg = tint(high if bright_foreground else low)
    bg = tint(low if bright_foreground else high)
    return fg, bg


def _draw_mask(label: int, size: int, rng: Rng, mask: "array[float]") -> None:
    px = 1 / size

    def edge(d: float) -> float:
        return _clamp01(0.5 - d * size)

    def each(f: Callable[[float, float], float]) -> None:
        for y in range(size):
            v = (y + 0.5) * px
            for x in range(size):
                mask[y * size + x] = f((x + 0.5) * px, v)

    def centre() -> Tuple[float, float]:
        return _between(rng, 0.3, 0.7), _between(rng, 0.3, 0.7)

    def grating(theta: float) -> None:
        f = TAU * _between(rng, 1.5, 4)
        phase = TAU * rng.uniform()
        sharp = _between(rng, 1, 4)
        c = math.cos(theta) * f
        s = math.sin(theta) * f
        each(lambda u, v: 0.5 + 0.5 * max(-1.0, min(1.0, sharp * math.sin(c * u + s * v + phase))))

    def jitter(deg: float) -> float:
        return (rng.uniform() * 2 - 1) * deg * math.pi / 180

    if label == 0:
        grating(math.pi / 2 + jitter(15))
    elif label == 1:
        grating(jitter(15))
    elif label == 2:
        grating((math.pi / 4 if rng.uniform() < 0.5 else 3 * math.pi / 4) + jitter(10))
    elif label == 3:
        f = TAU * _between(rng, 1.5, 3.5)
        theta = rng.uniform() * (math.pi / 2)
        c, s = math.cos(theta) * f, math.sin(theta) * f
        p1 = TAU * rng.uniform()
        p2 = TAU * rng.uniform()
        sharp = _between(rng, 2, 6)
        each(lambda u, v: 0.5 + 0.5 * max(-1.0, min(1.0, sharp * math.sin(c * u + s * v + p1) * math.sin(-s * u + c * v + p2))))
    elif label == 4:
        cx, cy = _between(rng, 0.25, 0.75), _between(rng, 0.25, 0.75)
        f = TAU * _between(rng, 2.5, 4.5)
        phase = TAU * rng.uniform()
        sharp = _between(rng, 1, 4)
        each(lambda u, v: 0.5 + 0.5 * max(-1.0, min(1.0, sharp * math.cos(f * _hypot(u - cx, v - cy) + phase))))
    elif label == 5:
        cx, cy = centre()
        r = _between(rng, 0.14, 0.3)
        aspect = _between(rng, 0.85, 1.15)
        psi = rng.uniform() * math.pi
        cs, sn = math.cos(psi), math.sin(psi)
        ra, rb = r * aspect, r / aspect

        def ellipse(u: float, v: float) -> float:
            du, dv = u - cx, v - cy
            a = (cs * du + sn * dv) / ra
            b = (-sn * du + cs * dv) / rb
            return edge((math.sqrt(a * a + b * b) - 1) * r)

        each(ellipse)
    elif label == 6:
        cx, cy = centre()
        h = _between(rng, 0.12, 0.25)
        psi = rng.uniform() * (math.pi / 2)
        cs, sn = math.cos(psi), math.sin(psi)
        each(lambda u, v: edge(max(abs(cs * (u - cx) + sn * (v - cy)), abs(-sn * (u - cx) + cs * (v - cy))) - h))
    elif label == 7:
        cx, cy = centre()
        r = _between(rng, 0.17, 0.32)
        psi = rng.uniform() * TAU
        n = [(math.cos(psi + k * TAU / 3), math.sin(psi + k * TAU / 3)) for k in range(3)]
        each(lambda u, v: edge(max(n[0][0] * (u - cx) + n[0][1] * (v - cy), n[1][0] * (u - cx) + n[1][1] * (v - cy), n[2][0] * (u - cx) + n[2][1] * (v - cy)) - r / 2))
    elif label == 8:
        cx, cy = centre()
        length = _between(rng, 0.18, 0.32)
        half = _between(rng, 0.04, 0.07)
        psi = rng.uniform() * (math.pi / 2)
        cs, sn = math.cos(psi), math.sin(psi)

        def cross(u: float, v: float) -> float:
            du, dv = u - cx, v - cy
            a = abs(cs * du + sn * dv)
            b = abs(-sn * du + cs * dv)
            return edge(min(max(a - length, b - half), max(a - half, b - length)))

        each(cross)
    elif label == 9:
        count = 4 + rng.int(5)
        r = _between(rng, 0.04, 0.07)
        dots: List[float] = []
        for _ in range(count):
            dots.append(_between(rng, 0.1, 0.9))
            dots.append(_between(rng, 0.1, 0.9))

        def nearest(u: float, v: float) -> float:
            d = math.inf
            for k in range(0, len(dots), 2):
                d = min(d, _hypot(u - dots[k], v - dots[k + 1]))
            return edge(d - r)

        each(nearest)
    else:
        raise ValueError(f"The built-in dataset has no class {label}.")


def _hypot(a: float, b: float) -> float:
    """V8's Math.hypot for two arguments: scale by the larger magnitude, Kahan-summed squares."""
    a, b = abs(a), abs(b)
    if math.isinf(a) or math.isinf(b):
        return math.inf
    maximum = max(a, b)
    if maximum == 0:
        return 0.0
    total, compensation = 0.0, 0.0
    for value in (a, b):
        x = value / maximum
        summand = x * x - compensation
        preliminary = total + summand
        compensation = (preliminary - total) - summand
        total = preliminary
    return math.sqrt(total) * maximum


def _segment_distance(u: float, v: float, ax: float, ay: float, bx: float, by: float) -> float:
    dx, dy = bx - ax, by - ay
    t = _clamp01(((u - ax) * dx + (v - ay) * dy) / (dx * dx + dy * dy))
    return _hypot(u - ax - t * dx, v - ay - t * dy)


def draw_image(label: int, size: int, rng: Rng) -> "array[float]":
    out = array("f", bytes(4 * size * size * CHANNELS))
    mask = array("f", bytes(4 * size * size))
    fg, bg = _colour_pair(rng)
    contrast = _between(rng, 0.6, 1)
    gradient = _between(rng, 0, 0.2)
    beta = TAU * rng.uniform()
    gu, gv = math.cos(beta) * gradient, math.sin(beta) * gradient
    _draw_mask(label, size, rng, mask)

    px = 1 / size
    for y in range(size):
        v = (y + 0.5) * px - 0.5
        for x in range(size):
            g = ((x + 0.5) * px - 0.5) * gu + v * gv
            w = mask[y * size + x] * contrast
            o = (y * size + x) * CHANNELS
            for ch in range(3):
                out[o + ch] = bg[ch] + (fg[ch] - bg[ch]) * w + g

    strokes = rng.int(3)
    half_width = 0.6 * px
    for _ in range(strokes):
        ax, ay = rng.uniform(), rng.uniform()
        angle = TAU * rng.uniform()
        length = _between(rng, 0.12, 0.3)
        bx, by = ax + math.cos(angle) * length, ay + math.sin(angle) * length
        colour = [rng.uniform(), rng.uniform(), rng.uniform()]
        x0 = max(0, math.floor((min(ax, bx) - 2 * px) * size))
        x1 = min(size - 1, math.ceil((max(ax, bx) + 2 * px) * size))
        y0 = max(0, math.floor((min(ay, by) - 2 * px) * size))
        y1 = min(size - 1, math.ceil((max(ay, by) + 2 * px) * size))
        for y in range(y0, y1 + 1):
            for x in range(x0, x1 + 1):
                a = _clamp01(0.5 - (_segment_distance((x + 0.5) * px, (y + 0.5) * px, ax, ay, bx, by) - half_width) * size)
                if a == 0:
                    continue
                o = (y * size + x) * CHANNELS
                for ch in range(CHANNELS):
                    out[o + ch] = out[o + ch] * (1 - a) + colour[ch] * a

    noise = _between(rng, 0.01, 0.06) * math.sqrt(3) * (2 / 4294967296)
    for o in range(size * size * CHANNELS):
        out[o] = _clamp01(out[o] + (rng.next_uint32() - 2147483648) * noise)
    return out


CACHE_BYTES = 512 * 2**20


class BuiltinDataset:
    """Images drawn on demand from (seed, split, index); the Node side gives the resolved size. Drawing
    one costs milliseconds of Python, so a split that fits in CACHE_BYTES keeps its images after the
    first draw (every epoch after the first reads them back)."""

    def __init__(self, split: str, size: int, seed: int, classes: int, image_size: int) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.length = size
        self.num_classes = classes
        self.image_size = image_size
        self.seed = seed
        self.split_id = 1 if split == "train" else 2
        self.cache: Optional[Dict[int, np.ndarray]] = {} if size * image_size * image_size * CHANNELS * 4 <= CACHE_BYTES else None

    def __len__(self) -> int:
        return self.length

    def label_of(self, index: int) -> int:
        return index % self.num_classes

    def image(self, index: int) -> np.ndarray:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} is outside the built-in set's {self.length} images")
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        rng = Rng(hash_seed(self.seed, self.split_id, index))
        pixels = draw_image(self.label_of(index), self.image_size, rng)
        image = np.frombuffer(pixels, dtype=np.float32).reshape(self.image_size, self.image_size, CHANNELS).copy()
        image.setflags(write=False)
        if self.cache is not None:
            self.cache[index] = image
        return image

    def batch(self, indices: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
        images = np.stack([self.image(int(i)) for i in indices]) if len(indices) else np.zeros((0, self.image_size, self.image_size, CHANNELS), np.float32)
        return images, np.array([self.label_of(int(i)) for i in indices], dtype=np.int64)
