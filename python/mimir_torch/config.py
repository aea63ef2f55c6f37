"""Typed views of the run configs the Node side validated (src/shared/*-config.ts).

Every value is read from the JSON as given: a missing key is an error naming it, never a default
chosen here (the Node side's zod schemas own every default).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence


class ConfigError(ValueError):
    """A config JSON that lacks a key or holds a value of the wrong kind."""


def need(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise ConfigError(
            f"{where}.{key} is missing: write the config with the workbench (mimir pretrain/finetune), "
            "which fills every default"
        )
    return obj[key]


def need_map(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = need(obj, key, where)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}.{key} must be an object, got {type(value).__name__}")
    return value


class Fields:
    """One object of a config and where it sits: reads its fields by name, each error naming `where.key`."""

    def __init__(self, obj: Mapping[str, Any], where: str) -> None:
        self.obj = obj
        self.where = where

    def section(self, key: str) -> "Fields":
        return Fields(need_map(self.obj, key, self.where), f"{self.where}.{key}")

    def raw(self, key: str) -> Any:
        return need(self.obj, key, self.where)

    def integer(self, key: str) -> int:
        return int(self.raw(key))

    def number(self, key: str) -> float:
        return float(self.raw(key))

    def text(self, key: str) -> str:
        return str(self.raw(key))

    def flag(self, key: str) -> bool:
        return bool(self.raw(key))


@dataclass(frozen=True)
class Normalization:
    mean: Sequence[float]
    std: Sequence[float]


@dataclass(frozen=True)
class ModelConfig:
    """src/shared/model-config.ts ModelConfig (a resolved preset or a full config)."""

    image_size: int
    patch_size: int
    channels: int
    width: int
    depth: int
    heads: int
    mlp_ratio: float
    decoder_width: int
    decoder_depth: int
    decoder_heads: int
    normalize: Optional[Normalization]
    # src/shared/encoder-config.ts EncoderConfig: {"kind": "vit"} or the kind's fields (camelCase, as written).
    encoder: Mapping[str, Any] = field(default_factory=lambda: {"kind": "vit"})

    @property
    def encoder_kind(self) -> str:
        return str(self.encoder["kind"])

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    @property
    def patch_dim(self) -> int:
        return self.patch_size * self.patch_size * self.channels

    @staticmethod
    def parse(obj: Mapping[str, Any], where: str = "model") -> "ModelConfig":
        fields = Fields(obj, where)
        norm = obj.get("normalize")
        config = ModelConfig(
            image_size=fields.integer("imageSize"),
            patch_size=fields.integer("patchSize"),
            channels=fields.integer("channels"),
            width=fields.integer("width"),
            depth=fields.integer("depth"),
            heads=fields.integer("heads"),
            mlp_ratio=fields.number("mlpRatio"),
            decoder_width=fields.integer("decoderWidth"),
            decoder_depth=fields.integer("decoderDepth"),
            decoder_heads=fields.integer("decoderHeads"),
            normalize=Normalization(mean=list(norm["mean"]), std=list(norm["std"])) if norm else None,
            # Configs and checkpoints written before encoders existed have no key: a plain ViT.
            encoder=dict(obj.get("encoder") or {"kind": "vit"}),
        )
        if "kind" not in config.encoder:
            raise ConfigError(f"{where}.encoder has no kind")
        if config.image_size % config.patch_size != 0:
            raise ConfigError(f"{where}: imageSize {config.image_size} is not divisible by patchSize {config.patch_size}")
        return config


@dataclass(frozen=True)
class MiSettings:
    """src/shared/mi-config.ts MiConfig plus pre-training's lambda and token order."""

    estimator: str
    sigma: float
    bandwidth: str
    alpha: float
    eps_r: float
    lam: float
    token_order: str
    # mi.layer (Table XXI): block index counted from 1, 0 for the last; and whether the final norm applies.
    layer_block: int = 0
    layer_final_norm: bool = True

    @staticmethod
    def parse(obj: Mapping[str, Any], where: str = "mi") -> "MiSettings":
        fields = Fields(obj, where)
        estimator = fields.text("estimator")
        if estimator not in ("hsic", "nhsic", "renyi"):
            raise ConfigError(f"{where}.estimator must be 'hsic', 'nhsic' or 'renyi', got {estimator!r}")
        bandwidth = fields.text("bandwidth")
        if bandwidth not in ("fixed", "median"):
            raise ConfigError(f"{where}.bandwidth must be 'fixed' or 'median', got {bandwidth!r}")
        return MiSettings(
            estimator=estimator,
            sigma=fields.number("sigma"),
            bandwidth=bandwidth,
            alpha=fields.number("alpha"),
            eps_r=fields.number("epsR"),
            lam=float(obj.get("lambda", 0.0)),
            token_order=str(obj.get("tokenOrder", "spatial")),
            **_mi_layer(obj.get("layer", {}), f"{where}.layer"),
        )


def _mi_layer(obj: Any, where: str) -> Dict[str, Any]:
    if not isinstance(obj, Mapping):
        raise ConfigError(f"{where} must be an object")
    block = obj.get("block", "last")
    if block != "last" and (not isinstance(block, int) or isinstance(block, bool) or block < 1):
        raise ConfigError(f"{where}.block must be 'last' or a block number from 1, got {block!r}")
    return {"layer_block": 0 if block == "last" else block, "layer_final_norm": bool(obj.get("finalNorm", True))}


@dataclass(frozen=True)
class PretrainAttack:
    steps: int
    eps: float  # 1/255 units
    alpha: float  # 1/255 units
    perturb: str  # visible | image
    attack_mask: str  # shared | fresh


@dataclass(frozen=True)
class PretrainSettings:
    """The step-level part of src/shared/pretrain-config.ts PretrainConfig."""

    mode: str
    mask_ratio: float
    norm_pix_loss: bool
    attack: PretrainAttack
    mi: MiSettings

    @staticmethod
    def parse(obj: Mapping[str, Any], where: str = "pretrain") -> "PretrainSettings":
        fields = Fields(obj, where)
        mode = fields.text("mode")
        if mode not in ("mae", "adv-mae", "mimir"):
            raise ConfigError(f"{where}.mode must be 'mae', 'adv-mae' or 'mimir', got {mode!r}")
        attack = fields.section("attack")
        return PretrainSettings(
            mode=mode,
            mask_ratio=fields.number("maskRatio"),
            norm_pix_loss=fields.flag("normPixLoss"),
            attack=PretrainAttack(
                steps=attack.integer("steps"),
                eps=attack.number("eps"),
                alpha=attack.number("alpha"),
                perturb=attack.text("perturb"),
                attack_mask=attack.text("attackMask"),
            ),
            mi=MiSettings.parse(need_map(obj, "mi", where), f"{where}.mi"),
        )


FINETUNE_METHODS_TORCH = ("natural", "pgd-at", "fast-at", "trades", "mart", "generalist", "dbat", "apgd-at")


@dataclass(frozen=True)
class GeneralistSettings:
    """src/shared/finetune-config.ts GeneralistSettings."""

    ema_decay: float
    robust_weight_start: float
    robust_weight_end: float
    mix_ramp_start: float
    sync_start: float
    sync_every: int

    @staticmethod
    def parse(obj: Mapping[str, Any], where: str) -> "GeneralistSettings":
        fields = Fields(obj, where)
        return GeneralistSettings(
            ema_decay=fields.number("emaDecay"),
            robust_weight_start=fields.number("robustWeightStart"),
            robust_weight_end=fields.number("robustWeightEnd"),
            mix_ramp_start=fields.number("mixRampStart"),
            sync_start=fields.number("syncStart"),
            sync_every=fields.integer("syncEvery"),
        )


@dataclass(frozen=True)
class FinetuneSettings:
    """The step-level part of src/shared/finetune-config.ts ResolvedFinetuneConfig."""

    method: str
    threat: str
    eps: float  # 1/255 units
    attack_steps: int
    attack_alpha: float  # 1/255 units
    random_start: bool
    fast_at_alpha_factor: float
    trades_beta: float
    mart_beta: float
    drop_path: float
    label_smoothing: float
    epochs: int
    dbat_attack: str
    dbat_real_target_epochs: float
    dbat_merge: str
    dbat_label_smoothing: Optional[float]  # None: the run's label_smoothing
    apgd_steps: int
    apgd_rho: float
    generalist: GeneralistSettings

    @property
    def effective_label_smoothing(self) -> float:
        """finetune-config.ts effectiveLabelSmoothing: DBAT's own smoothing for dbat, the run's otherwise."""
        if self.method == "dbat" and self.dbat_label_smoothing is not None:
            return self.dbat_label_smoothing
        return self.label_smoothing

    @staticmethod
    def parse(obj: Mapping[str, Any], where: str = "finetune") -> "FinetuneSettings":
        fields = Fields(obj, where)
        method = fields.text("method")
        if method not in FINETUNE_METHODS_TORCH:
            raise ConfigError(
                f"{where}.method {method!r} is not a fine-tuning method of the PyTorch engine "
                f"(it offers {', '.join(FINETUNE_METHODS_TORCH)})"
            )
        threat = fields.section("threat")
        attack = fields.section("attack")
        dbat = fields.section("dbat")
        apgd = fields.section("apgdAt")
        eps = threat.obj.get("eps")
        if eps is None:
            raise ConfigError(f"{where}.threat.eps is missing: the Node side resolves it (resolveFinetuneConfig)")
        dbat_smoothing = dbat.raw("labelSmoothing")
        return FinetuneSettings(
            method=method,
            threat=threat.text("norm"),
            eps=float(eps),
            attack_steps=attack.integer("steps"),
            attack_alpha=attack.number("alpha"),
            random_start=attack.flag("randomStart"),
            fast_at_alpha_factor=fields.section("fastAt").number("alphaFactor"),
            trades_beta=fields.section("trades").number("beta"),
            mart_beta=fields.section("mart").number("beta"),
            drop_path=fields.number("dropPath"),
            label_smoothing=fields.number("labelSmoothing"),
            epochs=fields.integer("epochs"),
            dbat_attack=dbat.text("attack"),
            dbat_real_target_epochs=dbat.number("realTargetEpochs"),
            dbat_merge=dbat.text("merge"),
            dbat_label_smoothing=None if dbat_smoothing is None else float(dbat_smoothing),
            apgd_steps=apgd.integer("steps"),
            apgd_rho=apgd.number("rho"),
            generalist=GeneralistSettings.parse(need_map(obj, "generalist", where), f"{where}.generalist"),
        )
