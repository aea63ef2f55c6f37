"""The safetensors format (as src/engine/io/safetensors.ts reads and writes it), without the
safetensors package: an 8-byte little-endian header length, a JSON header, then raw little-endian data."""
from __future__ import annotations

import json
import os
import struct
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import torch

_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "U8": np.uint8,
}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
MAX_HEADER_BYTES = 100_000_000


class SafetensorsError(ValueError):
    pass


def read_safetensors(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Tensors (BF16 widened to float32) and the metadata of a .safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise SafetensorsError(f"{path}: {len(data)} bytes, too short for a safetensors file")
    (length,) = struct.unpack("<Q", data[:8])
    if length > MAX_HEADER_BYTES or 8 + length > len(data):
        raise SafetensorsError(f"{path}: header length {length} does not fit the file's {len(data)} bytes")
    header = json.loads(data[8 : 8 + length].decode("utf-8"))
    metadata = header.pop("__metadata__", {}) or {}
    start = 8 + length
    tensors: Dict[str, torch.Tensor] = {}
    for name, entry in header.items():
        dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
        raw = data[start + begin : start + end]
        if dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif dtype in _DTYPES:
            array = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<"))
        else:
            raise SafetensorsError(f'{path}: tensor "{name}" has dtype {dtype}, which this reader does not know')
        count = int(np.prod(shape)) if shape else 1
        if array.size != count:
            raise SafetensorsError(f'{path}: tensor "{name}" holds {array.size} values for shape {shape}')
        tensors[name] = torch.from_numpy(array.reshape(shape).copy())
    return tensors, dict(metadata)


def write_safetensors(path: str, tensors: Mapping[str, torch.Tensor], metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write atomically (a temporary sibling, fsync, rename), in the order given."""
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for name, tensor in tensors.items():
        array = np.ascontiguousarray(tensor.detach().cpu().numpy())
        if array.dtype not in _NAMES:
            raise SafetensorsError(f'tensor "{name}" has dtype {array.dtype}, which safetensors here cannot hold')
        blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _NAMES[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
