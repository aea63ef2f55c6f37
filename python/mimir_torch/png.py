"""PNG strips of NHWC images in [0, 1] (src/engine/io/png.ts's layout: all images side by side),
written with zlib alone (no Pillow needed), atomically."""
from __future__ import annotations

import os
import struct
import zlib

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png_strip(images: np.ndarray) -> bytes:
    """images [N, S, S, 3] float in [0, 1] -> an 8-bit RGB PNG N*S wide, S high (Math.round of value * 255)."""
    n, size, _, channels = images.shape
    if channels != 3:
        raise ValueError(f"PNG strips are RGB; got {channels} channels")
    pixels = np.floor(np.clip(images.astype(np.float64), 0, 1) * 255 + 0.5).astype(np.uint8)
    strip = pixels.transpose(1, 0, 2, 3).reshape(size, n * size * 3)
    raw = b"".join(b"\x00" + row.tobytes() for row in strip)
    header = struct.pack(">IIBBBBB", n * size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def write_png_strip(path: str, images: np.ndarray) -> None:
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "wb") as f:
        f.write(encode_png_strip(images))
    os.replace(temporary, path)
