"""A seeded share of a training set (src/engine/data/subset.ts datasetFraction; the paper's Table XX):
round(fraction x length) distinct indices (at least one), drawn with the seed by Floyd's algorithm as
rng.ts distinctSample, in increasing order; the whole dataset when the fraction is 1."""
from __future__ import annotations

import math
from typing import Any, List, Mapping, Sequence, Tuple

import numpy as np

from ..rng import Rng


def distinct_sample(length: int, n: int, seed: int) -> List[int]:
    rng = Rng(seed)
    count = min(n, length)
    chosen: set = set()
    for j in range(length - count, length):
        t = rng.int(j + 1)
        chosen.add(j if t in chosen else t)
    return sorted(chosen)


class DatasetFraction:
    """The dataset seen through `indices` (index i of the share is the dataset's indices[i])."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.num_classes = dataset.num_classes
        self.image_size = dataset.image_size

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def batch(self, indices: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
        wanted = np.asarray(indices, dtype=np.int64)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= len(self)):
            raise IndexError(f"index out of range for a {len(self)}-image share of the dataset")
        return self.dataset.batch(self.indices[wanted].tolist())


def dataset_fraction(dataset: Any, share: Mapping[str, Any]):
    """share: the run config's trainFraction {fraction, seed}."""
    fraction = float(share["fraction"])
    if fraction >= 1:
        return dataset
    # JavaScript's Math.round: halves up (Python's round() would round them to even).
    n = max(1, math.floor(fraction * len(dataset) + 0.5))
    return DatasetFraction(dataset, distinct_sample(len(dataset), n, int(share["seed"])))
