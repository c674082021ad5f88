"""The CLEAR model: f_par for recognition plus the retrieval adapters of Sec. 3.3 (Eq. 8-10)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Adapter, init_weights
from .config import ModelConfig, RetrievalConfig
from .cross_transformer import CrossTransformer, ResNet50Baseline


class RetrievalHeads(nn.Module):
    """f_vis -> D, f_attr -> D/2, f_text -> D/2 (three Linear layers each, ReLU between)."""

    def __init__(self, feature_dim: int, num_attrs: int, cfg: RetrievalConfig) -> None:
        super().__init__()
        if cfg.embed_dim % 2:
            raise ValueError(f"retrieval embed_dim must be even (D = 2 * D/2), got {cfg.embed_dim}")
        # HA+SP: E^v's halves face E^h and E^s; a single query form faces all of E^v
        out = cfg.embed_dim // 2 if cfg.halves else cfg.embed_dim
        self.cfg = cfg
        if cfg.separate_vis and cfg.halves:
            self.f_vis: nn.Module = _HalfAdapters(feature_dim, cfg.hidden_dim, out)
        else:
            self.f_vis = Adapter(feature_dim, cfg.hidden_dim, cfg.embed_dim)
        self.f_attr = Adapter(num_attrs, cfg.hidden_dim, out) if cfg.uses_hard else None
        self.f_text = Adapter(cfg.soft_dim, cfg.hidden_dim, out) if cfg.uses_text else None
        self.apply(init_weights)
        if cfg.standardize:
            self.register_buffer("vis_mean", torch.zeros(feature_dim))
            self.register_buffer("vis_std", torch.ones(feature_dim))
            if cfg.uses_hard:
                self.register_buffer("hard_mean", torch.zeros(num_attrs))
                self.register_buffer("hard_std", torch.ones(num_attrs))
            if cfg.uses_text:
                self.register_buffer("soft_mean", torch.zeros(cfg.soft_dim))
                self.register_buffer("soft_std", torch.ones(cfg.soft_dim))

    def set_statistics(self, features: torch.Tensor, hard: torch.Tensor | None, soft: torch.Tensor | None) -> None:
        """Training-set mean and std of the adapters' inputs (``standardize``); std floored at 1e-3 of its mean."""
        for name, x in (("vis", features), ("hard", hard), ("soft", soft)):
            if x is None or not hasattr(self, f"{name}_mean"):
                continue
            std = x.std(0)
            getattr(self, f"{name}_mean").copy_(x.mean(0))
            getattr(self, f"{name}_std").copy_(std.clamp_min(1e-3 * float(std.mean()) + 1e-12))

    def vis(self, features: torch.Tensor) -> torch.Tensor:
        if self.cfg.standardize:
            features = (features - self.vis_mean) / self.vis_std
        return self.f_vis(features)

    def attr(self, hard: torch.Tensor) -> torch.Tensor:
        if self.cfg.standardize:
            hard = (hard - self.hard_mean) / self.hard_std
        return self.f_attr(hard)

    def text(self, soft: torch.Tensor) -> torch.Tensor:
        if self.cfg.standardize:
            soft = (soft - self.soft_mean) / self.soft_std
        return self.f_text(soft)

    def normalize(self, e: torch.Tensor) -> torch.Tensor:
        return _halves_normalized(e) if self.cfg.halves else F.normalize(e, dim=-1)


class _HalfAdapters(nn.Module):
    """f_vis as two adapters (``separate_vis``): E^v = [f_vis,1(x); f_vis,2(x)], each half its own layers."""

    def __init__(self, feature_dim: int, hidden_dim: int, half: int) -> None:
        super().__init__()
        self.hard = Adapter(feature_dim, hidden_dim, half)
        self.soft = Adapter(feature_dim, hidden_dim, half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.hard(x), self.soft(x)], dim=-1)


def _halves_normalized(e: torch.Tensor) -> torch.Tensor:
    """L2-normalise each half, then the whole (÷√2).

    The margin loss trains cos(E^v_1, E^h) and cos(E^v_2, E^s) separately; with both halves
    unit-norm, cos(E^v, [E^h; E^s]) is exactly the mean of those two trained cosines.
    """
    a, b = e.chunk(2, dim=-1)
    return torch.cat([F.normalize(a, dim=-1), F.normalize(b, dim=-1)], dim=-1) * (0.5**0.5)


def _build_par(cfg: ModelConfig) -> nn.Module:
    """The recognition network of ``cfg.arch``; every one exposes forward_features/forward_head."""
    if cfg.arch == "resnet50":
        return ResNet50Baseline(cfg)
    if cfg.arch == "lite":
        from .lite import LiteBaseline

        return LiteBaseline(cfg)
    if cfg.arch == "promptpar":
        from .promptpar import PromptPAR  # open_clip is imported only for this family

        return PromptPAR(cfg)
    return CrossTransformer(cfg)


class CLEAR(nn.Module):
    """Recognition network f_par plus (optionally) the retrieval adapters.

    ``forward(x)`` returns attribute logits [B, A]; ``encode_image`` / ``encode_query`` are the
    retrieval pair, whose cosine is the search score.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.par = _build_par(cfg)
        self.num_features = self.par.num_features
        self.num_classes = cfg.num_attrs
        self.retrieval = RetrievalHeads(self.num_features, cfg.num_attrs, cfg.retrieval) if cfg.retrieval else None

    # recognition --------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.par.forward_features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.par.forward_head(features, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.par(x)

    def no_weight_decay(self) -> set[str]:
        return {f"par.{n}" for n in self.par.no_weight_decay()}

    # retrieval ----------------------------------------------------------------
    def add_retrieval(self, cfg: RetrievalConfig) -> None:
        """Attach fresh adapters (stage 2 of training)."""
        self.cfg.retrieval = cfg
        self.retrieval = RetrievalHeads(self.num_features, self.cfg.num_attrs, cfg)

    def _heads(self) -> RetrievalHeads:
        if self.retrieval is None:
            raise RuntimeError("this model has no retrieval adapters: train stage 2 (--stage retrieval) first")
        return self.retrieval

    def image_embedding(self, features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        h = self._heads()
        e = h.vis(features)
        return h.normalize(e) if normalize else e

    def encode_image(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """E^v = f_vis(f_par(x)) [B, D]."""
        return self.image_embedding(self.forward_features(x), normalize)

    def encode_query(self, hard: torch.Tensor, soft: torch.Tensor | None, normalize: bool = True) -> torch.Tensor:
        """[E^h; E^s] = [f_attr(hard); f_text(soft)] [Q, D] (one of them for a single query form)."""
        h = self._heads()
        parts = ([h.attr(hard)] if h.f_attr is not None else []) + ([h.text(soft)] if h.f_text is not None else [])
        e = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
        return h.normalize(e) if normalize else e

    def token_grids(self) -> dict[str, object]:
        return self.par.token_grids()
