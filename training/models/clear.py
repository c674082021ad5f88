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
        half = cfg.embed_dim // 2
        self.cfg = cfg
        self.f_vis = Adapter(feature_dim, cfg.hidden_dim, cfg.embed_dim)
        self.f_attr = Adapter(num_attrs, cfg.hidden_dim, half)
        self.f_text = Adapter(cfg.soft_dim, cfg.hidden_dim, half)
        self.apply(init_weights)


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
        e = self._heads().f_vis(features)
        return _halves_normalized(e) if normalize else e

    def encode_image(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """E^v = f_vis(f_par(x)) [B, D]."""
        return self.image_embedding(self.forward_features(x), normalize)

    def encode_query(self, hard: torch.Tensor, soft: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """[E^h; E^s] = [f_attr(hard); f_text(soft)] [Q, D]."""
        h = self._heads()
        e = torch.cat([h.f_attr(hard), h.f_text(soft)], dim=-1)
        return _halves_normalized(e) if normalize else e

    def token_grids(self) -> dict[str, object]:
        return self.par.token_grids()
