"""Losses: (weighted) BCE for recognition (Eq. 6) and the additive-angular margin loss L_MA (Eq. 8-10)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def bce_loss(
    logits: torch.Tensor, targets: torch.Tensor, pos_ratio: torch.Tensor | None = None, balanced: bool = False
) -> torch.Tensor:
    """Binary cross-entropy of Eq. 6; with ``pos_ratio`` r, a class-weighted BCE.

    Weighted form (Jia et al., DESIGN §3): positives weigh exp(1 - r), negatives exp(r), so a rare
    attribute's positives count more. ``balanced=True`` weighs them 1/(2r) and 1/(2(1 - r)) instead:
    over the training set positives and negatives then carry equal total weight, which is what mA
    (the mean of the positive and negative recalls) scores; the exp form only halves the imbalance
    (r = 0.18: 1.9x for positives where the ratio of negatives to positives is 4.6x).

    Targets of 255 (``clear_sdk.metrics.UNKNOWN``: not annotated by the sample's dataset) are masked out:
    the loss is the mean over the annotated entries, so an unknown is never a negative.
    """
    known = targets <= 1  # UNKNOWN (255): a unified attribute the sample's dataset does not annotate
    targets = torch.where(known, targets, torch.zeros_like(targets)).to(logits.dtype)
    weight = None
    if pos_ratio is not None:
        r = pos_ratio.to(logits)
        if balanced:
            r = r.clamp(1e-3, 1 - 1e-3)  # an attribute with no positives (or negatives) in train keeps a finite weight
            weight = torch.where(targets > 0.5, 0.5 / r, 0.5 / (1.0 - r))
        else:
            weight = torch.where(targets > 0.5, torch.exp(1.0 - r), torch.exp(r))
    if bool(known.all()):
        return F.binary_cross_entropy_with_logits(logits, targets, weight=weight)
    per = F.binary_cross_entropy_with_logits(logits, targets, weight=weight, reduction="none")
    return (per * known).sum() / known.sum().clamp_min(1)


def margin_loss(
    features: torch.Tensor, proxies: torch.Tensor, targets: torch.Tensor, scale: float = 30.0, margin: float = 0.2
) -> torch.Tensor:
    """L_MA (Eq. 8): ArcFace's additive angular margin between embeddings and class proxies.

    ``features`` [B, d] are person embeddings f, ``proxies`` [C, d] the query embeddings g of the
    C classes (unique attribute combinations), ``targets`` [B] the class of each person. The
    positive logit is s*cos(theta + m), negatives s*cos(theta). Eq. 8 prints sigma twice
    (exp(sigma * phi) with phi = sigma cos(...)); we apply the scale once, as ArcFace does.
    Where theta + m would pass pi, cos is no longer monotonic; ArcFace's fallback
    cos(theta) - m sin(m) is used there.
    """
    cos = F.normalize(features, dim=-1) @ F.normalize(proxies, dim=-1).t()
    cos = cos.clamp(-1.0, 1.0)
    pos = cos.gather(1, targets[:, None])
    sin = torch.sqrt((1.0 - pos * pos).clamp_min(1e-12))
    phi = pos * math.cos(margin) - sin * math.sin(margin)
    phi = torch.where(pos > math.cos(math.pi - margin), phi, pos - math.sin(math.pi - margin) * margin)
    logits = cos.scatter(1, targets[:, None], phi) * scale
    return F.cross_entropy(logits, targets)


def retrieval_loss(
    image_emb: torch.Tensor,
    hard_emb: torch.Tensor,
    soft_emb: torch.Tensor,
    targets: torch.Tensor,
    scale: float = 30.0,
    margin: float = 0.2,
    hard_weight: float = 0.3,
    soft_weight: float = 0.7,
) -> torch.Tensor:
    """Eq. 10: beta_1 L_MA(E^v_1, E^h) + beta_2 L_MA(E^v_2, E^s), E^v split into its two halves.

    ``image_emb`` [B, D] (unnormalised f_vis output), ``hard_emb`` / ``soft_emb`` [C, D/2] the
    query embeddings of the C classes, ``targets`` [B] each image's class.
    """
    v1, v2 = image_emb.chunk(2, dim=-1)
    return hard_weight * margin_loss(v1, hard_emb, targets, scale, margin) + soft_weight * margin_loss(
        v2, soft_emb, targets, scale, margin
    )


def collapsed_margin_loss(num_classes: float, scale: float = 30.0, margin: float = 0.2) -> float:
    """L_MA when every embedding and proxy points one way (all cosines 1): ln(1 + (C-1) e^{s(1 - cos m)}).

    A stage-2 loss that sits at this value has learned nothing (DESIGN §3; 5.45 for C=128, s=30, m=0.2).
    """
    return math.log1p(max(num_classes - 1.0, 0.0) * math.exp(scale * (1.0 - math.cos(margin))))
