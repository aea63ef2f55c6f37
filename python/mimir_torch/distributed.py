"""Several processes on one batch (DDP semantics, written out for functional parameters): each rank
trains rows [rank * B/W, (rank + 1) * B/W) of every global batch of B, with the masks and attack
starts drawn for the whole batch from the same generators on every rank (so the data, masks and
starts are the single-process run's, split), then gradients are averaged with all_reduce (gloo on
CPUs, NCCL on CUDA). MI is estimated on each rank's local batch, as the authors' code does under
DDP: with W > 1, a MIMIR step equals the single-process step except for the MI term's batch.

Ranks come from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT);
where torchrun cannot start (Debian's torch 1.13 on Python 3.11), the launcher sets the same variables."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def rows(self, batch: int) -> slice:
        if batch % self.size != 0:
            raise ValueError(f"batch {batch} does not split over {self.size} processes: make it a multiple of --nproc x nodes")
        per = batch // self.size
        return slice(self.rank * per, (self.rank + 1) * per)


def init_world(device: torch.device) -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=size)
    return World(rank, size, local_rank)


def average_gradients(grads: Dict[str, torch.Tensor], world: World) -> Dict[str, torch.Tensor]:
    """The mean over ranks of each gradient (what DistributedDataParallel's all-reduce computes)."""
    if not world.distributed:
        return grads
    names = sorted(grads)
    flat = torch.cat([grads[n].reshape(-1) for n in names])
    dist.all_reduce(flat)
    flat /= world.size
    out, offset = {}, 0
    for n in names:
        size = grads[n].numel()
        out[n] = flat[offset : offset + size].reshape(grads[n].shape)
        offset += size
    return out


def average_scalars(values: Dict[str, float], world: World, device: torch.device) -> Dict[str, float]:
    if not world.distributed:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / world.size for k, v in zip(keys, t.tolist())}


def any_rank(flag: bool, world: World, device: torch.device) -> bool:
    """True when `flag` is true on any rank (a cancel seen by one stops all at the same step)."""
    if not world.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
