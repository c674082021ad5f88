"""PromptPAR as an f_par of the SDK (Wang et al., "Pedestrian Attribute Recognition via CLIP based
Prompt Vision-Language Fusion"; ../shared/seeds/promptpar-summary.txt).

CLIP's image and text towers (open_clip's modules, so OpenAI / open_clip checkpoints load
unchanged) encode the image and one sentence per attribute; a multi-modal Transformer fuses
[attribute text tokens; visual tokens]; a classifier per attribute reads its own text token.
Region-aware prompt tuning trains only the prompts and the heads.

Choices made where the summary is silent (each can be changed in :class:`PromptPARConfig`):

* **Deep visual prompts** (VPT-deep): every layer up to ``prompt_depth`` gets its own learnable
  prompt tokens, which replace the previous layer's prompt outputs.
* **Region-aware**: the prompts are ``global_prompts`` that attend everywhere plus
  ``region_prompts`` for each of ``regions`` horizontal bands of the patch grid (head ... feet).
  An attention mask lets a band's prompts see only the class token, themselves and that band's
  patches, and lets a patch see only its own band's region prompts, so each group summarises one
  body region. (The paper's auxiliary part-to-text similarity loss is not implemented.)
* **Text prompts** (CoOp-style): ``text_prompts`` learnable context vectors after the start token
  of every attribute sentence, shared by all attributes.
* **Multi-modal Transformer**: ``mm_layers`` timm ViT blocks at CLIP's embedding width over
  [word_embed(text features); projected visual tokens], then a LayerNorm. The paper takes it from an
  ImageNet ViT-B and freezes it; :func:`load_pretrained` fills it from a timm ViT file.
* **Heads**: one Linear(E, 1) per attribute on its fused text token (held as one [A, E] weight),
  then BatchNorm1d over the A logits, as in the authors' code.
* **Trainable** in ``tune="prompt"``: visual and text prompts, ``word_embed``, the heads and their
  BatchNorm; CLIP and the multi-modal Transformer are frozen. ``tune="full"`` trains everything,
  for users who have no CLIP weights (prompts on a random frozen tower learn little).

At inference the text features do not depend on the image: in eval mode they are computed once
and cached, so an exported ONNX graph holds them as a constant and has no text tower.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn

from clear_sdk.description import attribute_sentence

from .blocks import MASK_VALUE
from .config import ModelConfig, PromptPARConfig

#: parameter-name prefixes that stay trainable with ``tune="prompt"``
PROMPT_TRAINABLE = ("visual_prompts", "text_prompts", "word_embed.", "head_", "head_bn.")
#: CLIP's contrastive temperature: kept for checkpoint compatibility, unused by PAR, never trained
UNUSED = ("clip.logit_scale", "clip.logit_bias")


def _build_clip(pc: PromptPARConfig, img_size: tuple[int, int]) -> nn.Module:
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    if pc.width % pc.heads:
        raise ValueError(f"vision width {pc.width} is not divisible by {pc.heads} heads")
    return CLIP(
        embed_dim=pc.embed_dim,
        vision_cfg=CLIPVisionCfg(
            layers=pc.layers,
            width=pc.width,
            head_width=pc.width // pc.heads,
            patch_size=pc.patch_size,
            image_size=tuple(img_size),
        ),
        text_cfg=CLIPTextCfg(
            context_length=pc.context_length,
            vocab_size=pc.vocab_size,
            width=pc.text_width,
            heads=pc.text_heads,
            layers=pc.text_layers,
        ),
        quick_gelu=pc.quick_gelu,
    )


def region_attention_mask(grid: tuple[int, int], pc: PromptPARConfig, with_prompts: bool) -> torch.Tensor:
    """Additive [L, L] mask over [CLS; global prompts; region prompts; patches] (0 = attend).

    Region r covers patch rows ``[r*gh/R, (r+1)*gh/R)``; its prompts and those rows' patches see
    each other, the class token and the global prompts; everything else sees everything.
    """
    gh, gw = grid
    n_prompt = pc.num_prompts if with_prompts else 0
    length = 1 + n_prompt + gh * gw
    mask = np.zeros((length, length), np.float32)  # numpy: built the same on the meta device
    if with_prompts and pc.regions and pc.region_prompts:
        if pc.regions > gh:
            raise ValueError(f"{pc.regions} prompt regions need at least as many patch rows; the grid has {gh}")
        band = np.full(length, -1)  # -1: sees and is seen by everything
        first = 1 + pc.global_prompts
        for r in range(pc.regions):
            band[first + r * pc.region_prompts : first + (r + 1) * pc.region_prompts] = r
        band[1 + n_prompt :] = (np.arange(gh * gw) // gw) * pc.regions // gh
        is_prompt = np.zeros(length, bool)
        is_prompt[first : first + pc.regions * pc.region_prompts] = True
        # region prompts see only their band (+ CLS, global prompts); a patch sees only its band's region prompts
        differ = (band[:, None] != band[None, :]) & (band[:, None] >= 0) & (band[None, :] >= 0)
        mask[differ & (is_prompt[:, None] | is_prompt[None, :])] = MASK_VALUE
    return torch.from_numpy(mask)


class PromptPAR(nn.Module):
    """The recognition network f_par of PromptPAR: ``forward(x)`` returns attribute logits [B, A]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from open_clip.tokenizer import tokenize

        pc = cfg.promptpar or PromptPARConfig()
        if pc.sentences is None:
            names = cfg.attribute_names or [f"attribute {i + 1}" for i in range(cfg.num_attrs)]
            pc.sentences = [attribute_sentence(n) for n in names]  # saved with the checkpoint's config
        if len(pc.sentences) != cfg.num_attrs:
            raise ValueError(f"{len(pc.sentences)} attribute sentences for {cfg.num_attrs} attributes")
        self.cfg, self.pc = cfg, pc
        self.clip = _build_clip(pc, cfg.img_size)
        e, a = pc.embed_dim, cfg.num_attrs
        depth = pc.layers if pc.prompt_depth is None else pc.prompt_depth
        width = pc.width
        self.prompt_depth = depth
        self.visual_prompts = nn.Parameter(torch.zeros(depth, pc.num_prompts, width)) if depth else None
        self.text_prompts = nn.Parameter(torch.zeros(pc.text_prompts, pc.text_width)) if pc.text_prompts else None
        # tokens of each sentence, leaving room for the text prompts inside the context length
        self.register_buffer(
            "text_tokens", tokenize(pc.sentences, context_length=pc.context_length - pc.text_prompts), persistent=False
        )
        self.register_buffer(
            "visual_mask", region_attention_mask(self.clip.visual.grid_size, pc, depth > 0), persistent=False
        )
        self.word_embed = nn.Linear(e, e)
        self.mm_blocks = nn.ModuleList(
            Block(dim=e, num_heads=max(1, e // 64), mlp_ratio=4.0, qkv_bias=True) for _ in range(pc.mm_layers)
        )
        self.mm_norm = nn.LayerNorm(e)
        self.head_weight = nn.Parameter(torch.zeros(a, e))
        self.head_bias = nn.Parameter(torch.zeros(a))
        self.head_bn = nn.BatchNorm1d(a)
        self.num_features = a * e
        self._text_cache: torch.Tensor | None = None
        self._init_weights(width)
        self.set_tune(pc.tune)

    def _init_weights(self, width: int) -> None:
        # VPT's uniform init for prompts; timm's truncated normal for the layers added on top of CLIP
        bound = (6.0 / (3 * self.pc.patch_size**2 + width)) ** 0.5
        if self.visual_prompts is not None:
            nn.init.uniform_(self.visual_prompts, -bound, bound)
        if self.text_prompts is not None:
            nn.init.normal_(self.text_prompts, std=0.02)
        for m in [self.word_embed, self.mm_blocks, self.mm_norm]:
            for sub in m.modules():
                if isinstance(sub, nn.Linear):
                    trunc_normal_(sub.weight, std=0.02)
                    nn.init.zeros_(sub.bias)
        trunc_normal_(self.head_weight, std=0.02)

    def set_tune(self, mode: str) -> None:
        """``prompt``: only prompts and heads keep gradients (the paper); ``full``: every parameter."""
        if mode not in ("prompt", "full"):
            raise ValueError(f"unknown tune mode {mode!r}; choose 'prompt' or 'full'")
        self.pc.tune = mode
        for name, p in self.named_parameters():
            p.requires_grad_((mode == "full" and name not in UNUSED) or name.startswith(PROMPT_TRAINABLE))

    # text ------------------------------------------------------------------------------------
    def encode_attributes(self) -> torch.Tensor:
        """CLIP text features [A, E] of the attribute sentences, with the learnable text prompts."""
        c, k = self.clip, self.pc.text_prompts
        tokens = self.text_tokens.to(c.token_embedding.weight.device)
        x = c.token_embedding(tokens)
        if self.text_prompts is not None:
            ctx = self.text_prompts.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
            x = torch.cat([x[:, :1], ctx, x[:, 1:]], dim=1)
        x = x + c.positional_embedding.to(x.dtype)
        x = c.transformer(x, attn_mask=c.attn_mask)
        x = c.ln_final(x)
        eot = tokens.argmax(dim=-1) + k  # the end token has the highest id; prompts shifted it by k
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        return x @ c.text_projection

    def attribute_text_features(self) -> torch.Tensor:
        """Training: recomputed every call (prompts learn). Eval: computed once and cached."""
        if self.training:
            return self.encode_attributes()
        if self._text_cache is None:
            with torch.no_grad():
                self._text_cache = self.encode_attributes()
        return self._text_cache

    def train(self, mode: bool = True) -> PromptPAR:
        if mode:  # entering training: the prompts will change (eval -> eval keeps the cache, as export needs)
            self._text_cache = None
        return super().train(mode)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> PromptPAR:
        self._text_cache = None  # .to(device/dtype) must not keep a cache on the old device
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._text_cache = None
        super()._load_from_state_dict(*args, **kwargs)

    # vision ----------------------------------------------------------------------------------
    def visual_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """All visual tokens [B, 1 + P + N, E] after CLIP's ln_post and projection."""
        v = self.clip.visual
        x = v._embeds(x)  # patch embed, class token, positions, ln_pre
        b, n_prompt = x.shape[0], self.pc.num_prompts
        mask = self.visual_mask.to(device=x.device, dtype=x.dtype)
        for i, block in enumerate(v.transformer.resblocks):
            if self.visual_prompts is not None and i < self.prompt_depth:
                prompts = self.visual_prompts[i].to(x.dtype).unsqueeze(0).expand(b, -1, -1)
                rest = x[:, 1:] if i == 0 else x[:, 1 + n_prompt :]
                x = torch.cat([x[:, :1], prompts, rest], dim=1)
            x = block(x, attn_mask=mask)
        return v.ln_post(x) @ v.proj

    # f_par interface -------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The fused attribute tokens, flattened: [B, A * E] (the pre-logit features)."""
        vis = self.visual_tokens(x)
        text = self.word_embed(self.attribute_text_features().to(vis.dtype))
        z = torch.cat([text.unsqueeze(0).expand(vis.shape[0], -1, -1), vis], dim=1)
        for block in self.mm_blocks:
            z = block(z)
        return self.mm_norm(z[:, : self.cfg.num_attrs]).flatten(1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return features
        z = features.view(features.shape[0], self.cfg.num_attrs, -1)
        return self.head_bn((z * self.head_weight).sum(-1) + self.head_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def no_weight_decay(self) -> set[str]:
        return {"visual_prompts", "text_prompts", "clip.positional_embedding", "clip.visual.positional_embedding"}

    def token_grids(self) -> dict[str, object]:
        gh, gw = self.clip.visual.grid_size
        return {
            "clip_patches": [gh, gw],
            "visual_prompts_per_layer": self.pc.num_prompts if self.visual_prompts is not None else 0,
            "fusion_tokens": self.cfg.num_attrs + int(self.visual_mask.shape[0]),
        }

    # weights -----------------------------------------------------------------------------------
    def load_clip_state(self, sd: dict[str, torch.Tensor], source: str) -> None:
        """Load an OpenAI / open_clip CLIP state dict into the towers (positions resampled to our grid)."""
        from open_clip.model import resize_pos_embed

        sd = {k: v for k, v in sd.items() if k not in ("input_resolution", "context_length", "vocab_size")}
        resize_pos_embed(sd, self.clip)
        pos = sd.get("positional_embedding")
        if pos is not None and pos.shape[0] > self.pc.context_length:
            sd["positional_embedding"] = pos[: self.pc.context_length]  # a shorter text context keeps the first
        own = self.clip.state_dict()
        missing = sorted(k for k in set(own) - set(sd) if k != "logit_bias")
        unexpected = sorted(set(sd) - set(own))
        shared = set(own) & set(sd)
        mismatched = sorted(
            f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in shared if sd[k].shape != own[k].shape
        )
        if missing or unexpected or mismatched:
            raise ValueError(
                f"{source} does not fit {self.cfg.name}'s CLIP towers: missing {missing[:8]}, "
                f"unexpected {unexpected[:8]}, shape mismatch {mismatched[:8]}; pick the registered model "
                "of that CLIP size (promptpar-vit-b16 for ViT-B/16, promptpar-vit-l14 for ViT-L/14)"
            )
        self.clip.load_state_dict(sd, strict=False)
        self._text_cache = None

    def load_mm_state(self, sd: dict[str, torch.Tensor], source: str) -> None:
        """Fill the multi-modal Transformer from a timm ViT state dict: its last ``mm_layers`` blocks + norm."""
        depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
        first = depth - len(self.mm_blocks)
        own: dict[str, torch.Tensor] = {}
        for k, v in sd.items():
            if k.startswith("blocks.") and int(k.split(".")[1]) >= first:
                i = int(k.split(".")[1]) - first
                own[f"mm_blocks.{i}." + k.split(".", 2)[2]] = v
            elif k.startswith("norm."):
                own["mm_norm." + k[5:]] = v
        target = {k: v for k, v in self.state_dict().items() if k.startswith(("mm_blocks.", "mm_norm."))}
        bad = sorted(set(target) ^ set(own))
        bad += sorted(k for k in set(target) & set(own) if target[k].shape != own[k].shape)
        if bad:
            raise ValueError(
                f"{source}: its last {len(self.mm_blocks)} ViT block(s) do not fit the multi-modal Transformer "
                f"(width {self.pc.embed_dim}): {bad[:8]}"
            )
        self.load_state_dict(own, strict=False)


def trainable_fraction(model: nn.Module) -> dict[str, float | int]:
    """Trainable and total parameters (the paper reports 0.75% trainable for PromptPAR)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total, "fraction": trainable / total if total else 0.0}
