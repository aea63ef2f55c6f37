"""Several processes on one batch, the PyTorch way: DistributedDataParallel all-reduces the gradients,
a DistributedSampler says which rows of each global batch a rank trains.

Each rank trains its B/W rows of every global batch of B, with the masks and attack starts drawn for
the whole batch from the same generators on every rank (so the data, masks and starts are the
single-process run's, split). MI is estimated on each rank's local batch, as the authors' code does
under DDP: with W > 1, a MIMIR step equals the single-process step except for the MI term's batch.

Why the rank still reads the whole global batch: the batch iterator (data/batches.py) is bit for bit
the tfjs engine's, whose augmentation draws crops and flips from one generator in batch order, so a
rank's rows depend on the draws of the rows before them. Decoding B images per rank costs little next
to the model; the model's forward and backward run on B/W rows.

Why the steps hand gradients to DDP instead of calling backward inside DDP's forward: the steps
(pretrain_step, finetune_step) are functional and return their gradients (torch.autograd.grad, the
inner attack loops need it, and the golden-step tests compare those gradients with the tfjs
engine's). DDP's reducer runs on the gradients that backward() accumulates into its module's
parameters, so the module's forward takes a rank's gradients g and returns sum_p <p, g_p>: its backward
puts exactly g_p into each parameter's grad (1.0 * g, no rounding), where DDP's hooks all-reduce them
in buckets (gloo on CPUs, NCCL on CUDA) and divide by W.

Ranks come from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT);
where torchrun cannot start (Debian's torch 1.13 on Python 3.11), the launcher sets the same variables."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Sequence

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: torch.device) -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=size)
    return World(rank, size, local_rank)


class _Sized:
    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length


class GlobalBatchSampler(DistributedSampler):
    """This rank's rows of every global batch, over the workbench's own epoch order (the batch
    iterator's permutation, the tfjs engine's): batch b of an epoch is order[b*B : (b+1)*B] as in one
    process, and rank r trains its rows [r*B/W, (r+1)*B/W). The W ranks' rows of a batch, in rank
    order, are that batch; the last incomplete batch is dropped, as the iterator drops it."""

    def __init__(self, dataset_size: int, batch_size: int, world: World) -> None:
        if batch_size % world.size != 0:
            raise ValueError(f"batch {batch_size} does not split over {world.size} processes: make it a multiple of --nproc x nodes")
        super().__init__(_Sized(dataset_size), num_replicas=world.size, rank=world.rank, shuffle=False, drop_last=True)
        self.batch_size = batch_size
        self.per_rank = batch_size // world.size
        self.batches = dataset_size // batch_size
        self.order: Sequence[int] = range(dataset_size)

    @property
    def rows(self) -> slice:
        """This rank's positions in every global batch."""
        return slice(self.rank * self.per_rank, (self.rank + 1) * self.per_rank)

    def set_order(self, order: Sequence[int]) -> None:
        """The epoch's permutation of the dataset (BatchIterator.plan.order)."""
        if len(order) != len(self.dataset):  # type: ignore[arg-type]
            raise ValueError(f"an epoch order of {len(order)} indices for a dataset of {len(self.dataset)}")  # type: ignore[arg-type]
        self.order = order

    def batch_indices(self, batch: int) -> List[int]:
        start = batch * self.batch_size
        return list(self.order[start : start + self.batch_size][self.rows])

    def __iter__(self) -> Iterator[int]:
        for b in range(self.batches):
            yield from self.batch_indices(b)

    def __len__(self) -> int:
        return self.batches * self.per_rank


class _GradientCarrier(torch.nn.Module):
    """The model's parameters (sharing their storage) as one module for DDP; forward(g) = sum_p <p, g_p>."""

    def __init__(self, params: Dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.names = list(params)
        self.weights = torch.nn.ParameterList([torch.nn.Parameter(params[n].detach()) for n in self.names])

    def forward(self, grads: Dict[str, torch.Tensor]) -> torch.Tensor:
        total = torch.zeros((), device=self.weights[0].device)
        for name, p in zip(self.names, self.weights):
            total = total + (p * grads[name].detach()).sum()
        return total


class GradientAverager:
    """The mean over ranks of each gradient, computed by DistributedDataParallel (one process: as given)."""

    def __init__(self, params: Dict[str, torch.Tensor], world: World) -> None:
        self.world = world
        self.ddp = DistributedDataParallel(_GradientCarrier(params)) if world.distributed else None

    @property
    def description(self) -> str:
        if self.ddp is None:
            return "one process"
        kind = type(self.ddp)
        return f"{kind.__module__}.{kind.__qualname__} over {dist.get_backend()} ({self.world.size} processes)"

    def __call__(self, grads: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        if self.ddp is None:
            return grads
        carrier = self.ddp.module
        self.ddp(grads).backward()
        averaged = {}
        for name, p in zip(carrier.names, carrier.weights):
            if p.grad is None:
                raise RuntimeError(f"DistributedDataParallel left no gradient for {name}")
            averaged[name] = p.grad
            p.grad = None
        return averaged


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
