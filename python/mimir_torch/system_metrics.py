"""GPU utilisation and memory as a run's system metrics (rank 0, CUDA runs only), recorded with each
metrics event as W&B records its system charts:

  sys_gpu_mem_allocated_mib  torch.cuda.memory_allocated on rank 0's device
  sys_gpu_mem_peak_mib       torch.cuda.max_memory_allocated (the run's peak so far)
  sys_gpu_util_pct           nvidia-smi utilization.gpu of that device (where nvidia-smi exists)
  sys_gpu_mem_used_mib       nvidia-smi memory.used of that device (every process on it)

A failing nvidia-smi never stops training: its error is logged once and its values are left out."""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Callable, Dict, Optional, Tuple

import torch

MIB = 1024 * 1024
SMI_QUERY = "--query-gpu=index,utilization.gpu,memory.used"
SMI_TIMEOUT_S = 10


class NvidiaSmiError(RuntimeError):
    pass


def parse_nvidia_smi(text: str) -> Dict[int, Dict[str, float]]:
    """`nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits` lines
    ("0, 87, 12034") by GPU index; a value nvidia-smi cannot read ("[N/A]", "[Not Supported]") is left out."""
    out: Dict[int, Dict[str, float]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 3:
            raise NvidiaSmiError(f"nvidia-smi line {number} has {len(fields)} fields, expected index, utilization.gpu, memory.used: {line!r}")
        try:
            index = int(fields[0])
        except ValueError:
            raise NvidiaSmiError(f"nvidia-smi line {number}: GPU index {fields[0]!r} is not a number") from None
        values: Dict[str, float] = {}
        for key, field in (("sys_gpu_util_pct", fields[1]), ("sys_gpu_mem_used_mib", fields[2])):
            if field.startswith("["):
                continue
            try:
                values[key] = float(field)
            except ValueError:
                raise NvidiaSmiError(f"nvidia-smi line {number}: {key} {field!r} is not a number") from None
        out[index] = values
    return out


def physical_gpu_index(local_index: int, visible: Optional[str]) -> int:
    """nvidia-smi's index of torch's cuda:local_index, through CUDA_VISIBLE_DEVICES when it lists indices."""
    if visible:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        if local_index < len(ids) and ids[local_index].isdigit():
            return int(ids[local_index])
    return local_index


def _torch_memory(index: int) -> Tuple[int, int]:
    return torch.cuda.memory_allocated(index), torch.cuda.max_memory_allocated(index)


class GpuMonitor:
    """sample() -> the system metrics of one GPU; `warn` receives nvidia-smi's first failure."""

    def __init__(
        self,
        local_index: int,
        warn: Callable[[str], None],
        memory: Callable[[int], Tuple[int, int]] = _torch_memory,
        smi: Optional[str] = None,
    ) -> None:
        self.local_index = local_index
        self.physical_index = physical_gpu_index(local_index, os.environ.get("CUDA_VISIBLE_DEVICES"))
        self.memory = memory
        self.smi = smi if smi is not None else shutil.which("nvidia-smi")
        self.warn = warn

    def _smi_values(self) -> Dict[str, float]:
        if not self.smi:
            return {}
        try:
            run = subprocess.run([self.smi, SMI_QUERY, "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=SMI_TIMEOUT_S)
            if run.returncode != 0:
                raise NvidiaSmiError(f"exit {run.returncode}: {run.stderr.strip()[:200]}")
            values = parse_nvidia_smi(run.stdout).get(self.physical_index)
            if values is None:
                raise NvidiaSmiError(f"no line for GPU {self.physical_index}")
            return values
        except (OSError, subprocess.TimeoutExpired, NvidiaSmiError) as error:
            self.warn(f"GPU utilisation is not recorded: nvidia-smi failed ({error}); GPU memory still is.")
            self.smi = None
            return {}

    def sample(self) -> Dict[str, float]:
        allocated, peak = self.memory(self.local_index)
        return {"sys_gpu_mem_allocated_mib": allocated / MIB, "sys_gpu_mem_peak_mib": peak / MIB, **self._smi_values()}


def system_metrics(device: torch.device, rank: int, warn: Callable[[str], None]) -> Optional[Callable[[], Dict[str, float]]]:
    """What StepEvents records beside each metrics event: GPU metrics on rank 0 of a CUDA run, else nothing."""
    if device.type != "cuda" or rank != 0:
        return None
    return GpuMonitor(device.index or 0, warn).sample


