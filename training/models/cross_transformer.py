"""f_par: the CLEAR cross-transformers (paper Sec. 3.2, Eq. 1-5) and its Table 5 ablation variants.

Variants (``ModelConfig.variant``):
- ``vit``: ViT branch only (CLS -> LN_v -> FC).
- ``swin``: Swin branch only (Flatten + FC -> z^s -> LN_s -> FC).
- ``swin+casa``: Swin with CASA before every stage.
- ``concat``: LN_s(z^s) ++ LN_v(CLS) -> FC (Swin with CASA).
- ``cross`` (default): SVCF / VSCF cross fusion, LN_s, LN_v, concat, FC.

Which tokens enter the cross attention: SVCF attends over the ViT *patch* tokens (not the CLS),
giving the h_v w_v + 1 keys of Eq. 3; VSCF attends over the Swin final-stage tokens. "Flatten"
flattens the final-stage Swin tokens after Swin's final LayerNorm.

Ours, not the paper's (options of :class:`~.config.ModelConfig`, off by default): ``head="bn"`` puts a
BatchNorm over the logits after the FC (the lite* baseline's head), and ``pooled_trunk=True`` appends a
CNN trunk's pooled final feature to the fused vector. On a trunk, its maps replace the patch embeddings
(see :mod:`.lite`).
"""

from __future__ import annotations

import torch
from timm.layers import PatchEmbed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .blocks import CrossFusion, SwinStage, init_weights
from .config import ModelConfig, SwinConfig


def stage_grids(img_size: tuple[int, int], patch_size: int, num_stages: int) -> list[tuple[int, int]]:
    """Token grid of each Swin stage: the patch grid, then halved (rounded up) by each patch merging."""
    g = (img_size[0] // patch_size, img_size[1] // patch_size)
    grids = [g]
    for _ in range(num_stages - 1):
        g = ((g[0] + 1) // 2, (g[1] + 1) // 2)
        grids.append(g)
    return grids


class SwinBranch(nn.Module):
    """F_s: patch 4 embedding, four Swin stages (optional CASA), final norm, Flatten + FC -> z^s."""

    def __init__(
        self,
        cfg: SwinConfig,
        img_size: tuple[int, int],
        casa: bool,
        drop_path_rate: float = 0.0,
        in_chans: int = 3,
    ) -> None:
        """``img_size``/``in_chans``: the image, or a trunk's feature map (then ``cfg.patch_size`` is 1)."""
        super().__init__()
        self.grids = stage_grids(img_size, cfg.patch_size, len(cfg.dims))
        self.patch_embed = PatchEmbed(
            img_size=img_size,
            patch_size=cfg.patch_size,
            in_chans=in_chans,
            embed_dim=cfg.dims[0],
            norm_layer=nn.LayerNorm,
            output_fmt="NHWC",
        )
        n = sum(cfg.depths)
        dpr = [drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # stochastic depth rule of Swin
        stages, start, in_dim = [], 0, cfg.dims[0]
        for i, (dim, depth, heads, grid) in enumerate(zip(cfg.dims, cfg.depths, cfg.num_heads, self.grids)):
            stages.append(
                SwinStage(
                    in_dim,
                    dim,
                    grid,
                    depth,
                    heads,
                    cfg.window_size,
                    downsample=i > 0,
                    casa=casa,
                    mlp_ratio=cfg.mlp_ratio,
                    drop_path=dpr[start : start + depth],
                )
            )
            start += depth
            in_dim = dim
        self.layers = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(cfg.dims[-1])
        last = self.grids[-1]
        self.num_tokens = last[0] * last[1]
        self.token_dim = cfg.dims[-1]
        self.head_fc = nn.Linear(self.num_tokens * self.token_dim, cfg.out_dim)
        self.out_dim = cfg.out_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image [B,3,H,W] -> (z^s [B, out_dim], final tokens [B, h*w, C])."""
        x = self.norm(self.layers(self.patch_embed(x)))
        tokens = x.flatten(1, 2)
        return self.head_fc(tokens.flatten(1)), tokens


def build_vit(cfg: ModelConfig, img_size: tuple[int, int] | None = None, in_chans: int = 3) -> VisionTransformer:
    """F_v: timm's ViT at the model's input size (patch 14 at 256x128 -> 18x9 tokens + CLS).

    On a trunk, ``img_size``/``in_chans`` are its stride-16 map and ``cfg.vit.patch_size`` is 1: every
    cell of the map is one token (the hybrid ViT).
    """
    v = cfg.vit
    return VisionTransformer(
        img_size=img_size or cfg.img_size,
        patch_size=v.patch_size,
        in_chans=in_chans,
        embed_dim=v.dim,
        depth=v.depth,
        num_heads=v.num_heads,
        mlp_ratio=v.mlp_ratio,
        num_classes=0,
        global_pool="token",
        class_token=True,
        drop_path_rate=cfg.drop_path_rate,
    )


class CrossTransformer(nn.Module):
    """f_par for every Table 5 variant; ``forward_features`` gives the pre-logit vector [M^s; M^v]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        variant = cfg.variant
        self.use_vit = variant in ("vit", "concat", "cross")
        self.use_swin = variant in ("swin", "swin+casa", "concat", "cross")
        # image-size inputs of each branch, or the trunk's maps (ViT: stride 16, Swin: stride 8)
        vit_in, swin_in = (cfg.img_size, 3), (cfg.img_size, 3)
        self.trunk = None
        if cfg.trunk:
            from .lite import LiteTrunk

            strides = tuple(s for s, used in ((8, self.use_swin), (16, self.use_vit)) if used)
            self.trunk = LiteTrunk(cfg.trunk, cfg.img_size, strides, pooled=cfg.pooled_trunk)
            taps = {s: (g, c) for s, g, c in zip(self.trunk.strides, self.trunk.grids, self.trunk.channels)}
            vit_in, swin_in = taps.get(16, vit_in), taps.get(8, swin_in)
        self.vit = build_vit(cfg, *vit_in) if self.use_vit else None
        if self.use_swin:
            self.swin = SwinBranch(
                cfg.swin, swin_in[0], casa=variant != "swin", drop_path_rate=cfg.drop_path_rate, in_chans=swin_in[1]
            )
        else:
            self.swin = None
        if variant == "cross":
            s, v = self.swin, cfg.vit
            self.svcf = CrossFusion(s.out_dim, v.dim, cfg.fusion_dim, cfg.fusion_heads, out_dim=s.out_dim)
            self.vscf = CrossFusion(v.dim, s.token_dim, cfg.fusion_dim, cfg.fusion_heads, out_dim=v.dim)
        self.norm_s = nn.LayerNorm(self.swin.out_dim) if self.use_swin else None
        self.norm_v = nn.LayerNorm(cfg.vit.dim) if self.use_vit else None
        self.num_features = (self.swin.out_dim if self.use_swin else 0) + (cfg.vit.dim if self.use_vit else 0)
        if cfg.pooled_trunk:
            self.num_features += self.trunk.num_pooled
        self.head = nn.Linear(self.num_features, cfg.num_attrs)
        self.head_bn = nn.BatchNorm1d(cfg.num_attrs) if cfg.head == "bn" else None
        for name, m in self.named_children():
            if name not in ("vit", "trunk"):  # timm initialised the ViT and trunk; the rest follows timm's init
                m.apply(init_weights)
        if cfg.head == "bn":  # the lite* baseline's init of its Linear + BatchNorm head
            nn.init.normal_(self.head.weight, std=0.01)

    def load_imagenet(self, path=None) -> None:
        """ImageNet weights for the trunk (``clear-lite*`` only)."""
        if self.trunk is None:
            raise ValueError(f"{self.cfg.name} has no CNN trunk; pretrained='imagenet' applies to clear-lite*/lite*")
        self.trunk.load_imagenet(path)

    def token_grids(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.trunk is not None:
            out["trunk"] = {
                f"stride{s}": [*g, c] for s, g, c in zip(self.trunk.strides, self.trunk.grids, self.trunk.channels)
            }
        if self.vit is not None:
            out["vit"] = list(self.vit.patch_embed.grid_size)
            out["vit_tokens"] = self.vit.patch_embed.num_patches + 1
        if self.swin is not None:
            out["swin"] = [list(g) for g in self.swin.grids]
            out["swin_windows"] = [[list(b.window_size) for b in stage.blocks][:2] for stage in self.swin.layers]
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.trunk is None:
            return self.forward_maps(x, x)
        out = self.trunk(x)
        maps = dict(zip(self.trunk.strides, out))
        return self.forward_maps(maps.get(8), maps.get(16), out[-1] if self.cfg.pooled_trunk else None)

    def forward_maps(
        self, x_swin: torch.Tensor | None, x_vit: torch.Tensor | None, pooled: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The branches on their inputs (the image, or a trunk's stride-8 / stride-16 maps and its pooled
        feature): the pre-logit vector [M^s; M^v (; pooled)]. Table 5's ablation trains these on cached maps."""
        parts = []
        if self.swin is not None:
            zs, s_tokens = self.swin(x_swin)
        if self.vit is not None:
            v_tokens = self.vit.forward_features(x_vit)  # [B, 1 + N, D], normed
            cls = v_tokens[:, 0]
        if self.cfg.variant == "cross":
            zs = self.svcf(zs, v_tokens[:, 1:])
            cls = self.vscf(cls, s_tokens)
        if self.swin is not None:
            parts.append(self.norm_s(zs))
        if self.vit is not None:
            parts.append(self.norm_v(cls))
        if pooled is not None:
            parts.append(pooled)
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return features
        logits = self.head(features)
        return self.head_bn(logits) if self.head_bn is not None else logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"vit.pos_embed", "vit.cls_token"} if self.vit is not None else set()


class ResNet50Baseline(nn.Module):
    """The paper's ResNet-50 baseline: a timm ResNet-50 trunk, global average pool, one Linear head."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        import timm

        self.cfg = cfg
        self.trunk = timm.create_model(
            "resnet50", pretrained=False, num_classes=0, global_pool="avg", zero_init_last=False
        )
        self.num_features = self.trunk.num_features
        self.head = nn.Linear(self.num_features, cfg.num_attrs)
        init_weights(self.head)

    def token_grids(self) -> dict[str, object]:
        h, w = self.cfg.img_size
        return {"resnet_final_map": [-(-h // 32), -(-w // 32)]}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def no_weight_decay(self) -> set[str]:
        return set()
