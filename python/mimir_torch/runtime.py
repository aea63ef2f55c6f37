"""What every PyTorch-engine run shares: datasets, device and precision, the stop flag, the rank's
life tied to its launcher, the engine description for the started event, the outcomes."""
from __future__ import annotations

import os
import signal
import sys
from typing import Any, Dict, Mapping

import torch

from .config import ConfigError
from .data.cifar10 import Cifar10Dataset
from .data.image_folder import ImageFolderDataset
from .data.procedural import BuiltinDataset
from .distributed import World
from .precision import Precision

CHECKPOINTS_DIR = "checkpoints"
PREVIEWS_DIR = "previews"
EXIT_DONE, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
GRAD_DUMP_ENV = "MIMIR_TORCH_DUMP_GRADS"


class RunFailed(Exception):
    pass


class Cancelled(Exception):
    pass


def open_dataset(source: Mapping[str, Any]):
    kind = source.get("kind")
    if kind == "builtin":
        if source.get("size") is None:
            raise ConfigError("dataset.size is missing: the Node side resolves the built-in set's size before starting the PyTorch engine")
        return BuiltinDataset(source["split"], int(source["size"]), int(source["seed"]), int(source["classes"]), int(source["imageSize"]))
    if kind == "cifar10":
        root = source.get("root") or os.path.join(os.environ.get("MIMIR_DATA", os.path.expanduser("~/.mimir/datasets")), "cifar10")
        return Cifar10Dataset(root, source["split"])
    if kind == "folder":
        return ImageFolderDataset(source)
    raise ConfigError(f"dataset kind {kind!r} is not available on the PyTorch engine yet (builtin, cifar10, folder): use --engine tfjs")


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: this torch sees no CUDA device (torch.cuda.is_available() is False)")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def die_with_parent() -> None:
    """When the process that launched the ranks dies (even by SIGKILL), the ranks die too (Linux:
    PR_SET_PDEATHSIG), so a killed `mimir pretrain` leaves no orphan training on; a resume then
    continues from the last checkpoint."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() == 1:  # the parent is already gone
        os._exit(EXIT_CANCELLED)


class Stop:
    """SIGTERM / SIGINT set a flag that the loop reads at step boundaries."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True


def describe_engine(device: torch.device, precision: Precision, world: World) -> Dict[str, Any]:
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if device.type == "cuda" else ["cpu"]
    return {
        "name": "torch",
        "version": torch.__version__,
        "device": device.type,
        "devices": devices,
        "precision": precision.name,
        "worldSize": world.size,
    }
