"""Export of a ConvNeXt or Swin checkpoint with timm's names, on the PyTorch engine (the tfjs engine's
exporter, src/engine/export, has no ConvNeXt or Swin): the checkpoint's parameters go into the encoder's
module (the names and layouts are already timm's: the checkpoint holds the module's own tensors) and
encoders/export.py writes the state dict and the config JSON. A fine-tuning checkpoint exports the whole
classifier; a pre-training one its encoder only (num_classes 0: SparK's and GreenMIM's decoders have no
timm model to load into).

job config (written by src/torch/export.ts): {"checkpoint": the checkpoint directory, "file": the
.safetensors target, "config": the JSON's fields beside timm's (format, version, naming, num_classes,
global_pool, pretrained_cfg, mimir)}. Whether the targets may be replaced is decided on the Node side
(src/engine/export/targets.ts) before this starts; both files are written atomically. The Node side reads
the JSON back and validates it (HierExportConfig).
"""
from __future__ import annotations

import time
from typing import Any, Dict, Mapping, Optional

import torch
import torch.nn as nn

from . import model as M
from .checkpoint import load_checkpoint
from .config import ConfigError, ModelConfig
from .distributed import World
from .encoders.export import export_timm
from .events import Emitter
from .precision import Precision
from .runtime import RunFailed, Stop

HIERARCHICAL = ("convnext", "swin")


def encoder_module(params: Mapping[str, torch.Tensor], config: ModelConfig, kind: str, outputs: int) -> nn.Module:
    """The encoder's module (timm's names) holding the checkpoint's parameters: all of a fine-tuning
    checkpoint's (exactly its classifier's names and shapes), the encoder's of a pre-training one."""
    encoder = M.encoder_for(config)
    if kind == "finetune":
        M.check_params(dict(params), M.classifier_param_specs(config, outputs))
    module = encoder.module(config, outputs if kind == "finetune" else 0)
    wanted = dict(module.named_parameters())
    for name, p in wanted.items():
        if name not in params:
            raise ConfigError(f'the checkpoint has no "{name}" for its {config.encoder_kind} encoder')
        if list(params[name].shape) != list(p.shape):
            raise ConfigError(f'"{name}" has shape {list(params[name].shape)} in the checkpoint, the encoder needs {list(p.shape)}')
    with torch.no_grad():
        for name, p in wanted.items():
            p.copy_(params[name])
    return module.eval()


def run_export(job: Mapping[str, Any], _resume: bool, _epochs: Optional[int], _out_dir: str, _device: torch.device, _precision: Precision, world: World, emitter: Emitter, _stop: Stop) -> Dict[str, Any]:
    started = time.perf_counter()
    try:
        ckpt = load_checkpoint(job["checkpoint"])
        config = ModelConfig.parse(ckpt.manifest["modelConfig"], "modelConfig")
        if config.encoder_kind not in HIERARCHICAL:
            raise ConfigError(f"the PyTorch engine exports ConvNeXt and Swin checkpoints; {job['checkpoint']} holds a {config.encoder_kind} encoder, which the workbench's own exporter writes")
        fields = dict(job["config"])
        kind = ckpt.manifest["kind"]
        if fields["mimir"]["kind"] != kind:
            raise ConfigError(f"{job['checkpoint']} is a {kind} checkpoint, the export was planned for a {fields['mimir']['kind']} one")
        module = encoder_module(ckpt.params, config, kind, int(fields["num_classes"]))
    except (ConfigError, ValueError, KeyError) as error:
        emitter.emit({"type": "failed", "message": f"export of {job['checkpoint']}: {error}", "step": None, "lastCheckpoint": None, "cause": "config"})
        raise RunFailed(str(error)) from error
    if world.rank == 0:
        export_timm(module, job["file"], fields)
    tensors = len(module.state_dict())
    emitter.emit({"type": "done", "step": 0, "epoch": 0, "output": None, "seconds": time.perf_counter() - started, "summary": {"tensors": tensors}})
    return {"tensors": tensors}
