"""Model size and cost without running it: parameters and FLOPs counted on the meta device."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .registry import create_model


def profile_config(config: dict[str, Any]) -> dict[str, Any]:
    """:func:`profile_model` for a saved model config (a checkpoint's JSON ``model`` entry)."""
    from .clear import CLEAR
    from .config import ModelConfig

    return _profile(lambda: CLEAR(ModelConfig.from_dict(config)))


def profile_model(name: str, **kwargs: Any) -> dict[str, Any]:
    """Parameter count, FLOPs per image (2 x multiply-adds, torch's FlopCounterMode) and token grids.

    The model is built on the ``meta`` device, so even the paper-size model costs no memory
    and no arithmetic: shapes flow through the graph and FLOPs are counted from them.
    """
    return _profile(lambda: create_model(name, **kwargs))


def _profile(build) -> dict[str, Any]:
    with torch.device("meta"):
        model = build()
    model.eval()
    cfg = model.cfg
    x = torch.empty(1, 3, *cfg.img_size, device="meta")
    with torch.no_grad():
        model(x)  # warm-up: per-model constants cached in eval (PromptPAR's text features) are not per-image cost
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    by_part = {n: sum(p.numel() for p in m.parameters()) for n, m in model.par.named_children()}
    return {
        "name": cfg.name,
        "arch": cfg.arch,
        "variant": cfg.variant,
        "input_size": list(cfg.img_size),
        "num_attrs": cfg.num_attrs,
        "parameters": params,
        "trainable_parameters": trainable,
        "trainable_fraction": trainable / params if params else 0.0,
        "parameters_by_part": by_part,
        "flops_per_image": int(counter.get_total_flops()),
        "token_grids": model.token_grids(),
    }
