"""Per-sample random patch masks (MAE's random_masking, src/engine/model/masking.ts)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .rng import Rng


@dataclass(frozen=True)
class PatchMask:
    visible_ids: torch.Tensor  # int64 [N, Lv]: spatial (ascending) or shuffled order
    masked_ids: torch.Tensor  # int64 [N, Lm], ascending

    @property
    def num_visible(self) -> int:
        return int(self.visible_ids.shape[1])

    def to(self, device: torch.device) -> "PatchMask":
        return PatchMask(self.visible_ids.to(device), self.masked_ids.to(device))


def random_masking(generator: torch.Generator, batch: int, num_patches: int, ratio: float, order: str = "spatial") -> PatchMask:
    """int(L * (1 - ratio)) visible patches per sample, a uniformly random subset."""
    if not 0 < ratio < 1:
        raise ValueError(f"mask ratio must be in (0, 1), got {ratio}")
    keep = int(num_patches * (1 - ratio))
    if keep < 1 or keep >= num_patches:
        raise ValueError(f"mask ratio {ratio} leaves {keep} of {num_patches} patches visible: need at least one of each")
    shuffle = torch.argsort(torch.rand(batch, num_patches, generator=generator), dim=1)
    visible = shuffle[:, :keep]
    if order != "shuffled":
        visible = torch.sort(visible, dim=1).values
    return PatchMask(visible, torch.sort(shuffle[:, keep:], dim=1).values)


def rng_masking(rng: Rng, batch: int, num_patches: int, ratio: float, order: str = "spatial") -> PatchMask:
    """masking.ts's randomMasking with the workbench Rng: the same masks as the tfjs engine draws."""
    if not 0 < ratio < 1:
        raise ValueError(f"mask ratio must be in (0, 1), got {ratio}")
    keep = int(num_patches * (1 - ratio))
    if keep < 1 or keep >= num_patches:
        raise ValueError(f"mask ratio {ratio} leaves {keep} of {num_patches} patches visible: need at least one of each")
    visible, masked = [], []
    for _ in range(batch):
        shuffled = list(rng.shuffle(list(range(num_patches))))
        vis = shuffled[:keep]
        visible.append(vis if order == "shuffled" else sorted(vis))
        masked.append(sorted(shuffled[keep:]))
    return PatchMask(torch.tensor(visible, dtype=torch.long), torch.tensor(masked, dtype=torch.long))
