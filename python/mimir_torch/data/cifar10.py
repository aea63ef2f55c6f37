"""CIFAR-10 in its official binary format (data_batch_1..5.bin, test_batch.bin: records of one label
byte then 3072 bytes, channel planes R, G, B of 32 x 32), as src/engine/data/cifar10.ts reads it, from
the extracted folder or the cifar-10-binary.tar.gz archive: HWC float32 = byte / 255."""
from __future__ import annotations

import os
import posixpath
import tarfile
from typing import Dict, List, Sequence, Tuple

import numpy as np

RECORD = 1 + 3072
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILES = ["test_batch.bin"]


ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def _expected(root: str) -> str:
    return (
        f"expected the CIFAR-10 binary version: {', '.join(TRAIN_FILES)} and {TEST_FILES[0]} in {root} or "
        f"{os.path.join(root, FOLDER)}, or the archive {ARCHIVE} there, or the path of that archive: "
        "run `mimir datasets download cifar10`, or give --data-root"
    )


def locate(root: str, split: str) -> Tuple[str, str]:
    """('folder', dir) or ('archive', file), as cifar10.ts locate: a .tar.gz given itself, a folder
    holding the split's first batch file (or its cifar-10-batches-bin/), else the archive in it."""
    if os.path.isfile(root):
        if root.lower().endswith(ARCHIVE_SUFFIXES):
            return "archive", root
        raise ValueError(f"CIFAR-10: {root} is a file but not a .tar.gz archive ({_expected(root)})")
    if not os.path.exists(root):
        raise FileNotFoundError(f"CIFAR-10 not found: {root} does not exist ({_expected(root)})")
    first = (TRAIN_FILES if split == "train" else TEST_FILES)[0]
    for candidate in (root, os.path.join(root, FOLDER)):
        if os.path.isfile(os.path.join(candidate, first)):
            return "folder", candidate
    if os.path.isfile(os.path.join(root, ARCHIVE)):
        return "archive", os.path.join(root, ARCHIVE)
    raise FileNotFoundError(f"CIFAR-10 not found in {root}: no {first} ({_expected(root)})")


def _read_batches(root: str, split: str) -> Tuple[str, Dict[str, bytes]]:
    """The split's batch files' bytes by name, from the folder or streamed out of the archive (tarfile)."""
    kind, where = locate(root, split)
    names = TRAIN_FILES if split == "train" else TEST_FILES
    contents: Dict[str, bytes] = {}
    if kind == "folder":
        for name in names:
            path = os.path.join(where, name)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"CIFAR-10: {name} is missing from {where} (the {split} split needs {', '.join(names)})")
            with open(path, "rb") as f:
                contents[name] = f.read()
        return where, contents
    try:
        with tarfile.open(where, "r:*") as archive:
            for member in archive:
                base = posixpath.basename(member.name)
                if member.isfile() and base in names:
                    extracted = archive.extractfile(member)
                    if extracted is not None:
                        contents[base] = extracted.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ValueError(f"CIFAR-10: cannot read the archive {where} ({error}): download it again") from error
    missing = [name for name in names if name not in contents]
    if missing:
        raise ValueError(f"CIFAR-10: the archive {where} has no {', '.join(missing)} (expected the official {ARCHIVE})")
    return where, contents


class Cifar10Dataset:
    num_classes = 10
    image_size = 32

    def __init__(self, root: str, split: str) -> None:
        where, contents = _read_batches(root, split)
        chunks: List[np.ndarray] = []
        for name in TRAIN_FILES if split == "train" else TEST_FILES:
            raw = np.frombuffer(contents[name], dtype=np.uint8)
            if raw.size % RECORD != 0:
                raise ValueError(f"{where}: {name} has {raw.size} bytes, not a whole number of {RECORD}-byte CIFAR-10 records")
            chunks.append(raw.reshape(-1, RECORD))
        records = np.concatenate(chunks)
        self.labels = records[:, 0].astype(np.int64)
        if self.labels.max(initial=0) > 9:
            raise ValueError(f"{where}: a label above 9: not CIFAR-10 binary data")
        self.pixels = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, indices: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64)
        return (self.pixels[idx].astype(np.float64) / 255).astype(np.float32), self.labels[idx]
