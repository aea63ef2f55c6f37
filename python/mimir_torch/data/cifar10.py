"""CIFAR-10 in its official binary format (data_batch_1..5.bin, test_batch.bin: records of one label
byte then 3072 bytes, channel planes R, G, B of 32 x 32), as src/engine/data/cifar10.ts reads it:
HWC float32 = byte / 255."""
from __future__ import annotations

import os
from typing import List, Sequence, Tuple

import numpy as np

RECORD = 1 + 3072
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILES = ["test_batch.bin"]


def find_binary_dir(root: str) -> str:
    """The folder holding the .bin files: root itself or root/cifar-10-batches-bin."""
    for candidate in (root, os.path.join(root, "cifar-10-batches-bin")):
        if os.path.isfile(os.path.join(candidate, "test_batch.bin")):
            return candidate
    raise FileNotFoundError(
        f"no CIFAR-10 binary files under {root} (expected test_batch.bin there or in cifar-10-batches-bin/): "
        "run `mimir datasets download cifar10`, or give --data-root"
    )


class Cifar10Dataset:
    num_classes = 10
    image_size = 32

    def __init__(self, root: str, split: str) -> None:
        directory = find_binary_dir(root)
        files = TRAIN_FILES if split == "train" else TEST_FILES
        chunks: List[np.ndarray] = []
        for name in files:
            path = os.path.join(directory, name)
            raw = np.fromfile(path, dtype=np.uint8)
            if raw.size % RECORD != 0:
                raise ValueError(f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records")
            chunks.append(raw.reshape(-1, RECORD))
        records = np.concatenate(chunks)
        self.labels = records[:, 0].astype(np.int64)
        if self.labels.max(initial=0) > 9:
            raise ValueError(f"{directory}: a label above 9: not CIFAR-10 binary data")
        self.pixels = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, indices: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64)
        return (self.pixels[idx].astype(np.float64) / 255).astype(np.float32), self.labels[idx]
