"""The one place the PyTorch engine maps model.encoder.kind to its implementation (as
src/engine/model/encoders.ts does for the tfjs engine); model.py's mae_param_specs,
classifier_param_specs, mae_input, encode_visible_with_layer and classifier_forward ask here.

What an encoder supplies (an object with these methods; the MAE decoder, the `norm` before it and the
losses stay shared in model.py):
- backbone_specs(c): [(name, shape, role)] up to the last block (tokens, embedding, blocks), in the
  order of params.ts's specs: the part fine-tuning copies from the pre-trained MAE. Roles: model.py's
  init (and export) read them: "weight" [in, out], "patch-weight", "conv-weight" [kh, kw, in, out]
  (torch's default init, U(+-1/sqrt(kh*kw*in))), "bias", "norm", "token".
- head_specs(c, outputs): the classifier's own parameters after the backbone (fresh at fine-tuning).
- mae_input(c, images, visible_ids): what the MAE's encoder reads, [N, M, p*p*C]: the visible patches
  (M = Lv), or every patch (M = L) when the embedding sees the whole image (ConvStem).
- encode_visible_with_layer(params, c, inp, visible_ids, block_number, final_norm): (latent
  [N, 1 + Lv, D] after `norm`, the features MI takes: block `block_number`'s output, counted from 1,
  0 the last, through `norm` when final_norm). visible_ids index the full grid (image / patch).
- classifier_forward(params, c, images, drop_path, rng): logits for NHWC images in [0, 1].
- frozen_in_pretraining(c, name): parameters pre-training keeps at their initial values.
- adjust_init(c, params) (optional): initial values that are not plain draws (model.adjust_init runs it
  after init_params_rng, as params.ts runs the tfjs adjustInit): ConViT's local init, CaiT's LayerScale.
The tfjs and torch versions of an encoder must agree (test/torch/golden-steps.test.ts).

The hierarchical encoders (issue 18) are nn.Modules with timm's module names: ConvNeXt with SparK-style
sparse masked pre-training (convnext.py, sparse_conv.py, spark.py) and Swin with GreenMIM-style group
window attention (swin.py, group_window_attention.py, green.py); hier_dispatch.py puts them behind
this dispatch (classifier specs and forward on parameter dicts, and pretrainer(c): their own masked
autoencoders, which pretrain_run.py uses in place of the ViT MAE); hier_pretrain.py is their MIMIR step.
"""
from __future__ import annotations

from typing import Any, Dict

from ..config import ConfigError, ModelConfig

TORCH_ONLY = ("convnext", "swin")


def _registry() -> Dict[str, Any]:
    # Imported at call time: the implementations use model.py, which calls encoder_for.
    from .cait import CAIT
    from .convit import CONVIT
    from .convstem import CONVSTEM
    from .hier_dispatch import CONVNEXT, SWIN
    from .vit import VIT

    return {"vit": VIT, "convstem": CONVSTEM, "convit": CONVIT, "cait": CAIT, "convnext": CONVNEXT, "swin": SWIN}


def encoder_for(c: ModelConfig) -> Any:
    kind = c.encoder_kind
    impl = _registry().get(kind)
    if impl is None:
        raise ConfigError(f"The {kind} encoder is not implemented on the PyTorch engine yet")
    return impl
