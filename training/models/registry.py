"""Named model configs, timm-style: thin registered entry points that hold only a dict of arguments."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .clear import CLEAR
from .config import ModelConfig, RetrievalConfig, SwinConfig, ViTConfig

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

    ``pretrained`` is a local weights file: our own checkpoint or timm/ImageNet weights for the
    branches (nothing is downloaded). Loading is strict: an error lists missing and unexpected keys.
    """
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    model = _MODELS[name](**kwargs)
    if pretrained:
        from .checkpoint import load_pretrained

        load_pretrained(model, pretrained)
    return model


def build_config(base: ModelConfig, **kwargs: Any) -> ModelConfig:
    """Override fields of a named config; ``vit``/``swin``/``retrieval`` accept dicts of sub-fields."""
    for key, typ in (("vit", ViTConfig), ("swin", SwinConfig), ("retrieval", RetrievalConfig)):
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
