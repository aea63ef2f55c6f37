"""Cross-checks our safetensors files against Python (PyTorch, and the safetensors package when present).

Usage: python3 safetensors_interop.py probe
       python3 safetensors_interop.py read  FILE SPEC.json   -> checks FILE holds exactly what SPEC describes
       python3 safetensors_interop.py write FILE SPEC.json   -> writes SPEC's tensors to FILE
SPEC: {"metadata": {str: str}, "tensors": {name: {"dtype": "F32", "shape": [..], "values": [..]}}}
Values are converted in PyTorch (float32 source, then .to(dtype)), so the reader also checks that our
F16/BF16 rounding matches PyTorch's bit for bit. Prints one JSON line: {"ok": bool, ...}.
"""
import json
import os
import struct
import sys

import torch

try:
    if os.environ.get("MIMIR_SAFETENSORS_BY_HAND"):  # exercise the fallback where the package is installed
        raise ImportError("safetensors bypassed")
    import safetensors.torch as st_torch
    from safetensors import safe_open

    IMPLEMENTATION = "safetensors"
except ImportError:  # Debian ships PyTorch but not safetensors: fall back to the format spec, by hand.
    st_torch = None
    IMPLEMENTATION = "torch+spec"

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "U8": torch.uint8,
}
NAMES = {v: k for k, v in DTYPES.items()}


def expected_tensor(spec):
    dtype = DTYPES[spec["dtype"]]
    if dtype.is_floating_point:
        source = torch.tensor(spec["values"], dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    else:
        source = torch.tensor(spec["values"], dtype=torch.int64)
    return source.to(dtype).reshape(spec["shape"])


def load_by_hand(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        chunk = bytearray(raw[8 + n + begin : 8 + n + end])
        dtype = DTYPES[info["dtype"]]
        flat = torch.frombuffer(chunk, dtype=dtype) if chunk else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(info["shape"])
    return tensors, metadata


def save_by_hand(tensors, path, metadata):
    header = {"__metadata__": metadata} if metadata else {}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        data = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def same_bits(a, b):
    if a.dtype != b.dtype or list(a.shape) != list(b.shape):
        return False
    if a.dtype in (torch.float16, torch.bfloat16):
        return torch.equal(a.view(torch.int16), b.view(torch.int16))
    if a.dtype == torch.float32:
        return torch.equal(a.view(torch.int32), b.view(torch.int32))
    if a.dtype == torch.float64:
        return torch.equal(a.view(torch.int64), b.view(torch.int64))
    return torch.equal(a, b)


def main():
    command = sys.argv[1]
    if command == "probe":
        print(json.dumps({"ok": True, "implementation": IMPLEMENTATION, "torch": torch.__version__}))
        return
    path, spec_path = sys.argv[2], sys.argv[3]
    with open(spec_path) as f:
        spec = json.load(f)
    if command == "write":
        tensors = {name: expected_tensor(t) for name, t in spec["tensors"].items()}
        if st_torch:
            st_torch.save_file(tensors, path, metadata=spec.get("metadata") or None)
        else:
            save_by_hand(tensors, path, spec.get("metadata") or {})
        print(json.dumps({"ok": True, "implementation": IMPLEMENTATION}))
        return
    if st_torch:
        tensors = st_torch.load_file(path)
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    else:
        tensors, metadata = load_by_hand(path)
    problems = []
    if set(tensors) != set(spec["tensors"]):
        problems.append(f"names differ: {sorted(tensors)} vs {sorted(spec['tensors'])}")
    for name, t in spec["tensors"].items():
        if name in tensors and not same_bits(tensors[name], expected_tensor(t)):
            problems.append(f"{name}: got {tensors[name].dtype} {list(tensors[name].shape)} {tensors[name].flatten()[:8].tolist()}")
    if metadata != (spec.get("metadata") or {}):
        problems.append(f"metadata differs: {metadata}")
    print(json.dumps({"ok": not problems, "implementation": IMPLEMENTATION, "problems": problems, "count": len(tensors)}))


if __name__ == "__main__":
    main()
