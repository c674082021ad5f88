"""Torch datasets over plain records, with the runtime's own preprocessing.

Images are decoded and resized by ``clear_sdk.preprocess`` — the exact code the runtime runs —
so training and deployment see identical pixels. Augmentation (pad + random crop, horizontal
flip; no colour jitter, since colours are attributes) is applied after that, in tensor space.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Dataset

from clear_sdk.preprocess import Preprocessing, load_image, preprocess

from .data.base import Record

logger = logging.getLogger(__name__)

# Decoded images are cached in memory below this many bytes (uint8 HxWx3 after resizing).
CACHE_LIMIT_BYTES = 4 << 30


class ImageDataset(Dataset):
    """Records -> (image tensor [3,H,W], labels float [A], index)."""

    def __init__(
        self,
        records: list[Record],
        pp: Preprocessing,
        train: bool,
        pad: int = 10,
        flip: bool = True,
        cache: bool = True,
    ) -> None:
        self.records = records
        self.pp = pp
        self.train = train
        self.pad = pad
        self.flip = flip
        h, w = pp.input_size
        self.cache: dict[int, np.ndarray] | None = (
            {} if cache and len(records) * h * w * 3 * 4 < CACHE_LIMIT_BYTES else None
        )
        self.labels = torch.from_numpy(np.stack([r.labels for r in records]).astype(np.float32)) if records else None

    def __len__(self) -> int:
        return len(self.records)

    def _tensor(self, i: int) -> torch.Tensor:
        if self.cache is not None and i in self.cache:
            return torch.from_numpy(self.cache[i])
        arr = preprocess(load_image(self.records[i].path), self.pp)
        if self.cache is not None:
            self.cache[i] = arr
        return torch.from_numpy(arr)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        x = self._tensor(i)
        if self.train:
            x = augment(x, self.pad, self.flip)
        return x, self.labels[i], i


def augment(x: torch.Tensor, pad: int, flip: bool) -> torch.Tensor:
    """Zero-pad (zero = the mean colour after normalisation), random crop back, random h-flip."""
    if pad > 0:
        _, h, w = x.shape
        xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        top, left = np.random.randint(0, 2 * pad + 1, size=2)
        x = xp[:, top : top + h, left : left + w]
    if flip and np.random.rand() < 0.5:
        x = torch.flip(x, dims=[2])
    return x.contiguous()
