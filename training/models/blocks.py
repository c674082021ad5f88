"""Building blocks of the CLEAR cross-transformers that timm does not provide.

timm supplies the patch embeddings, the ViT, window attention, patch merging, Mlp and
DropPath; this module adds what the paper needs on top: a Swin block whose padding is
masked, channel-aware self-attention (CASA), the cross-fusion attention (SVCF / VSCF) and
the three-layer retrieval adapters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_
from timm.models.swin_transformer import PatchMerging, WindowAttention, window_partition, window_reverse
from torch import nn

# Added to attention logits of masked keys. Finite (not -inf) so that a row never becomes all -inf
# and fp16 engines stay finite (|-2e4| < 65504); exp(-1e4) is exactly 0 in float32 and float16.
MASK_VALUE = -1.0e4


class CASA(nn.Module):
    """Channel-aware self-attention (paper Eq. 2), run before the (S)W-MSA blocks of each Swin stage.

    Choice made where the paper contradicts itself: Eq. 2 defines W^{q,k,v} in R^{hw x hw} but
    states att in R^{hw x hw}. With hw x hw projections the tokens must be the C channels
    (each a vector of the hw spatial values), so att is C x C: a channel attention, as the name
    and DESIGN §3 say. The paper defines v but writes ``z + att * z``; we use v, as standard
    self-attention does: ``out = z + softmax(q k^T / sqrt(hw)) v``, single head, no bias.
    CASA runs at the stage's working resolution (after patch merging), on the unpadded grid,
    so its weights are tied to the model's input size.
    """

    def __init__(self, dim: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.dim = dim
        self.grid = tuple(grid)
        hw = grid[0] * grid[1]
        self.q = nn.Linear(hw, hw, bias=False)
        self.k = nn.Linear(hw, hw, bias=False)
        self.v = nn.Linear(hw, hw, bias=False)
        self.scale = hw**-0.5
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """q, k as timm's Linear init; v near zero, so CASA starts close to the identity.

        ``v`` mixes every spatial position into every other (an hw x hw map): at the usual init
        it would add spatially scrambled noise as large as the features themselves before every
        Swin stage. Starting it near zero (ReZero / LayerScale style) lets the Swin stages learn
        first; it is not exactly zero so that q and k receive gradients from the first step.
        """
        trunc_normal_(self.q.weight, std=0.02)
        trunc_normal_(self.k.weight, std=0.02)
        trunc_normal_(self.v.weight, std=1e-4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, H, W, C] -> [B, H, W, C]."""
        B, H, W, C = x.shape
        if (H, W) != self.grid:
            raise ValueError(f"CASA built for a {self.grid} grid got {(H, W)}: rebuild the model for this input size")
        t = x.reshape(B, H * W, C).transpose(1, 2)  # [B, C, hw]: channels are the tokens
        q, k, v = self.q(t), self.k(t), self.v(t)
        att = torch.softmax((q @ k.transpose(1, 2)) * self.scale, dim=-1)  # [B, C, C]
        t = t + att @ v
        return t.transpose(1, 2).reshape(B, H, W, C)


def _window_and_shift(grid: tuple[int, int], window: int, shift: bool) -> tuple[tuple[int, int], tuple[int, int]]:
    """Clamp the window to the grid per axis; no shift along an axis the window already covers."""
    ws = (min(window, grid[0]), min(window, grid[1]))
    ss = tuple(w // 2 if (shift and w < g) else 0 for w, g in zip(ws, grid))
    return ws, ss


def build_attention_mask(grid: tuple[int, int], ws: tuple[int, int], ss: tuple[int, int]) -> torch.Tensor:
    """Additive mask [num_windows, N, N] for a grid padded up to a multiple of the window.

    Two things are masked: keys in another shifted region (Swin's cyclic-shift mask) and keys
    that are padding, so that padded tokens never change a real token's output.
    """
    H, W = grid
    Hp, Wp = math.ceil(H / ws[0]) * ws[0], math.ceil(W / ws[1]) * ws[1]
    pad = torch.ones(Hp, Wp)
    pad[:H, :W] = 0
    region = torch.zeros(Hp, Wp)
    if any(ss):
        cnt = 0
        hs = (slice(0, -ws[0]), slice(-ws[0], -ss[0]), slice(-ss[0], None)) if ss[0] else (slice(None),)
        wsl = (slice(0, -ws[1]), slice(-ws[1], -ss[1]), slice(-ss[1], None)) if ss[1] else (slice(None),)
        for h in hs:
            for w in wsl:
                region[h, w] = cnt
                cnt += 1
        pad = torch.roll(pad, shifts=(-ss[0], -ss[1]), dims=(0, 1))
    n = ws[0] * ws[1]
    region_w = window_partition(region[None, :, :, None], ws).reshape(-1, n)
    pad_w = window_partition(pad[None, :, :, None], ws).reshape(-1, n)
    mask = (region_w[:, :, None] != region_w[:, None, :]).float() * MASK_VALUE
    mask = mask + pad_w[:, None, :].expand(-1, n, -1) * MASK_VALUE
    return mask


class SwinBlock(nn.Module):
    """(Shifted-)window attention block for a fixed token grid, with the padding masked.

    Like Swin's detection backbone, the grid is padded to a multiple of the window and the
    window is clamped where the grid is smaller; unlike timm's classification Swin, padded
    tokens are masked as keys in every block (shifted or not). Parameter names follow timm's
    ``SwinTransformerBlock`` so that timm/ImageNet weights load.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        grid: tuple[int, int],
        window_size: int = 12,
        shift: bool = False,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        norm_layer: type[nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.window_size, self.shift_size = _window_and_shift(self.grid, window_size, shift)
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(dim, num_heads=num_heads, window_size=self.window_size, qkv_bias=True)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.register_buffer(
            "attn_mask", build_attention_mask(self.grid, self.window_size, self.shift_size), persistent=False
        )

    def _attn(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        wh, ww = self.window_size
        x = F.pad(x, (0, 0, 0, (-W) % ww, 0, (-H) % wh))
        Hp, Wp = x.shape[1], x.shape[2]
        if any(self.shift_size):
            x = torch.roll(x, shifts=(-self.shift_size[0], -self.shift_size[1]), dims=(1, 2))
        win = window_partition(x, self.window_size).reshape(-1, wh * ww, C)
        win = self.attn(win, mask=self.attn_mask)
        x = window_reverse(win.reshape(-1, wh, ww, C), self.window_size, Hp, Wp)
        if any(self.shift_size):
            x = torch.roll(x, shifts=self.shift_size, dims=(1, 2))
        return x[:, :H, :W, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, H, W, C] -> [B, H, W, C]."""
        x = x + self.drop_path1(self._attn(self.norm1(x)))
        B, H, W, C = x.shape
        y = x.reshape(B, -1, C)
        y = y + self.drop_path2(self.mlp(self.norm2(y)))
        return y.reshape(B, H, W, C)


class SwinStage(nn.Module):
    """Patch merging (stages 2-4), optional CASA, then blocks alternating W-MSA / SW-MSA."""

    def __init__(
        self,
        in_dim: int,
        dim: int,
        grid: tuple[int, int],
        depth: int,
        num_heads: int,
        window_size: int,
        downsample: bool,
        casa: bool,
        mlp_ratio: float = 4.0,
        drop_path: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.downsample = PatchMerging(in_dim, out_dim=dim) if downsample else nn.Identity()
        self.casa = CASA(dim, self.grid) if casa else nn.Identity()
        dpr = drop_path or [0.0] * depth
        self.blocks = nn.Sequential(
            *[
                SwinBlock(
                    dim, num_heads, self.grid, window_size, shift=(i % 2 == 1), mlp_ratio=mlp_ratio, drop_path=dpr[i]
                )
                for i in range(depth)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.casa(self.downsample(x)))


class CrossFusion(nn.Module):
    """Cross-fused attention of Eq. 3 (SVCF when the query is the Swin vector, VSCF for the ViT CLS).

    One query vector attends over [itself; the other branch's tokens], CrossViT-style, at the
    fusion width. W^{a,1} (``align_in``) maps the query to the fusion width, ``kv_align`` maps the
    other branch's tokens to it, and W^{a,2} (``align_out``) maps the result back. Eq. 3 writes
    the output as ``(z^{s,c} + z^{s,c} * att) W^{a,2}``, which is a token sequence, not the vector
    the next equations use; we take the attention-weighted sum of values (multi-head, then an
    output projection) plus the residual query token, as CrossViT does.
    """

    def __init__(self, query_dim: int, token_dim: int, width: int, num_heads: int, out_dim: int) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"fusion width {width} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.align_in = nn.Linear(query_dim, width)
        self.kv_align = nn.Linear(token_dim, width)
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.proj = nn.Linear(width, width)
        self.align_out = nn.Linear(width, out_dim)

    def forward(self, query: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """query [B, Dq], tokens [B, N, Dt] -> [B, out_dim]."""
        B = query.shape[0]
        za = self.align_in(query).unsqueeze(1)  # [B, 1, width]
        zc = torch.cat([za, self.kv_align(tokens)], dim=1)  # [B, 1 + N, width]
        h = self.num_heads
        q = self.q(za).reshape(B, 1, h, -1).transpose(1, 2)
        k = self.k(zc).reshape(B, zc.shape[1], h, -1).transpose(1, 2)
        v = self.v(zc).reshape(B, zc.shape[1], h, -1).transpose(1, 2)
        att = torch.softmax((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5, dim=-1)  # [B, h, 1, 1 + N]
        o = (att @ v).transpose(1, 2).reshape(B, 1, -1)
        return self.align_out(za + self.proj(o)).squeeze(1)


class Adapter(nn.Sequential):
    """Three Linear layers with ReLU between them and none after the last (the f_ret adapters)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, out_dim),
        )


def init_weights(module: nn.Module) -> None:
    """timm's ViT/Swin init for the layers we add: truncated normal Linear weights, zero biases."""
    if isinstance(module, CASA):  # nn.Module.apply visits children first, so this runs after its Linears
        module.reset_parameters()
    elif isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
