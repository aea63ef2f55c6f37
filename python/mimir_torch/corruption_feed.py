"""The corrupted images of an evaluation, read from the folder the Node side fills (src/torch/corruption-feed.ts):
the corruptions have one implementation, the TypeScript one, so they are made there and handed over as .npy
files. File k holds batch k // cells under cell k % cells (the cells by type, then severity), float32
[n, size, size, 3]; each is deleted once read, which lets the writer go on (it stays a bounded number of files
ahead)."""
from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np

from .runtime import Cancelled

POLL_SECONDS = 0.02


def feed_file_name(index: int) -> str:
    return f"{index:06d}.npy"  # corruption-feed.ts feedFileName


class CorruptionFeed:
    def __init__(self, folder: str, stop_requested: Callable[[], bool]) -> None:
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"the corrupted images' folder {folder} is missing: the workbench makes it while it runs the evaluation")
        self.folder = folder
        self.index = 0
        self._stop_requested = stop_requested
        self._parent = os.getppid()

    def take(self, count: int, size: int) -> np.ndarray:
        """The next file's images, once the writer has renamed it into place; checked to be `count` images of
        size x size x 3 float32, then deleted."""
        file = os.path.join(self.folder, feed_file_name(self.index))
        while not os.path.exists(file):
            if self._stop_requested():
                raise Cancelled()
            if os.getppid() != self._parent:
                raise RuntimeError(f"the workbench that writes the corrupted images stopped before {file} came")
            time.sleep(POLL_SECONDS)
        images = np.load(file)
        if images.dtype != np.float32 or images.shape != (count, size, size, 3):
            raise ValueError(f"{file} holds {images.dtype} {images.shape}, not float32 ({count}, {size}, {size}, 3)")
        os.remove(file)
        self.index += 1
        return images
