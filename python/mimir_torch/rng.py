"""The workbench's random generator (src/engine/rng.ts: xoshiro128**, seeded by splitmix32) and its
integer hashes (src/engine/data/hash.ts), bit for bit, so the PyTorch engine draws the built-in
dataset's images, data order and per-example streams exactly as the tfjs engine does, and a
checkpoint's four-word rng state means the same in both."""
from __future__ import annotations

import math
from typing import List, MutableSequence, Sequence, Tuple, TypeVar

import numpy as np

M32 = 0xFFFFFFFF
T = TypeVar("T")
RngState = Tuple[int, int, int, int]


def _imul(a: int, b: int) -> int:
    return (a * b) & M32


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & M32


def _splitmix32(seed: int):
    s = seed & M32

    def next_value() -> int:
        nonlocal s
        s = (s + 0x9E3779B9) & M32
        z = s
        z = _imul(z ^ (z >> 16), 0x85EBCA6B)
        z = _imul(z ^ (z >> 13), 0xC2B2AE35)
        return (z ^ (z >> 16)) & M32

    return next_value


class Rng:
    def __init__(self, seed: int) -> None:
        nxt = _splitmix32(seed)
        self.s: List[int] = [nxt(), nxt(), nxt(), nxt()]

    @staticmethod
    def from_state(state: Sequence[int]) -> "Rng":
        rng = Rng(0)
        rng.restore(state)
        return rng

    def state(self) -> RngState:
        return (self.s[0], self.s[1], self.s[2], self.s[3])

    def restore(self, state: Sequence[int]) -> None:
        if len(state) != 4 or any(not 0 <= int(w) <= M32 for w in state):
            raise ValueError(f"an rng state is four 32-bit words, got {list(state)}")
        self.s = [int(w) for w in state]

    def next_uint32(self) -> int:
        s = self.s
        result = _imul(_rotl(_imul(s[1], 5), 7), 9)
        t = (s[1] << 9) & M32
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 11)
        return result

    def uniform(self) -> float:
        """Uniform in [0, 1), 53 bits."""
        high = self.next_uint32() >> 5
        low = self.next_uint32() >> 6
        return (high * 67108864 + low) / 9007199254740992

    def int(self, n: int) -> int:
        return math.floor(self.uniform() * n)

    def normal(self) -> float:
        u = 0.0
        while u == 0:
            u = self.uniform()
        return math.sqrt(-2 * math.log(u)) * math.cos(2 * math.pi * self.uniform())

    def seed(self) -> int:
        return self.next_uint32()

    def shuffle(self, items: MutableSequence[T]) -> MutableSequence[T]:
        for i in range(len(items) - 1, 0, -1):
            j = self.int(i + 1)
            items[i], items[j] = items[j], items[i]
        return items

    def fork(self) -> "Rng":
        return Rng(self.next_uint32())


def fmix32(h: int) -> int:
    h &= M32
    h = _imul(h ^ (h >> 16), 0x85EBCA6B)
    h = _imul(h ^ (h >> 13), 0xC2B2AE35)
    return (h ^ (h >> 16)) & M32


def hash_seed(*parts: int) -> int:
    h = 0x2545F491
    for part in parts:
        h = fmix32(h ^ fmix32((part & M32) + 0x9E3779B9))
        h = (_imul(h, 5) + 0xE6546B64) & M32
    return fmix32(h)


def _mix(h: int, value: int) -> int:
    x = (h ^ (value & M32)) & M32
    x = _imul(x ^ (x >> 16), 0x7FEB352D)
    x = _imul(x ^ (x >> 15), 0x846CA68B)
    return (x ^ (x >> 16)) & M32


def _hash_tag(tag: str) -> int:
    h = 0x811C9DC5
    for ch in tag:
        h = _imul(h ^ ord(ch), 0x01000193)
    return h


def stream_seed(seed: int, example_id: int, tag: str, round_: int) -> int:
    """src/engine/attacks/streams.ts streamSeed: an example's own stream for an attack stage and round."""
    return _mix(_mix(_mix(_mix(0x9E3779B9, seed), example_id), _hash_tag(tag)), round_)


class RngLanes:
    """Many independent generators advanced in lockstep with numpy (one lane per example): lane i draws
    exactly what Rng(seeds[i]) draws, in the same order, about a hundred times faster than a Python loop
    over the generators for the per-example attack streams."""

    def __init__(self, seeds: Sequence[int]) -> None:
        states = np.array([Rng(int(seed)).state() for seed in seeds], dtype=np.uint64).reshape(-1, 4)
        self.s = [states[:, k].copy() for k in range(4)]

    def next_uint32(self) -> np.ndarray:
        s0, s1, s2, s3 = self.s
        mask = np.uint64(M32)
        result = (((s1 * np.uint64(5)) & mask) << np.uint64(7) | ((s1 * np.uint64(5)) & mask) >> np.uint64(25)) & mask
        result = (result * np.uint64(9)) & mask
        t = (s1 << np.uint64(9)) & mask
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        self.s[3] = ((s3 << np.uint64(11)) | (s3 >> np.uint64(21))) & mask
        return result

    def uniform(self) -> np.ndarray:
        high = self.next_uint32() >> np.uint64(5)
        low = self.next_uint32() >> np.uint64(6)
        return (high.astype(np.float64) * 67108864 + low.astype(np.float64)) / 9007199254740992

    def normal(self) -> np.ndarray:
        u = self.uniform()
        zero = u == 0
        while zero.any():  # Rng.normal redraws a zero; vanishingly rare, so redrawn lane by lane
            for lane in np.flatnonzero(zero):
                rng = Rng.from_state([int(self.s[k][lane]) for k in range(4)])
                value = rng.uniform()
                for k in range(4):
                    self.s[k][lane] = rng.s[k]
                u[lane] = value
            zero = u == 0
        # libm's log and cos (as Rng.normal), not numpy's: those may differ in the last bit.
        log_u = np.array([math.log(x) for x in u.tolist()])
        angle = np.array([math.cos(2 * math.pi * x) for x in self.uniform().tolist()])
        return np.sqrt(-2 * log_u) * angle
