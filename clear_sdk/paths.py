"""Small file-system facts shared by the runtime, training, export and the CLI (one copy of each).

No torch, no training imports: training and export import these, never the other way round.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["CHECKPOINT_NAMES", "IMAGE_SUFFIXES", "list_images", "package_versions", "resolve_checkpoint"]

#: Image file suffixes the tools collect from folders (all decoded by OpenCV).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
#: Checkpoints a ``train --out`` folder may hold, in the order one is chosen from it.
CHECKPOINT_NAMES = ("best.safetensors", "par_best.safetensors", "last.safetensors")


def list_images(folder: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """The image files under ``folder`` (by suffix, any case), sorted; recursive by default."""
    root = Path(folder)
    found = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint ``.safetensors``, or a ``train --out`` folder (then its best checkpoint)."""
    p = Path(path)
    if p.is_dir():
        for name in CHECKPOINT_NAMES:
            if (p / name).is_file():
                return p / name
        raise FileNotFoundError(f"{p} holds no checkpoint (best.safetensors); pass a .safetensors file")
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    return p


def package_versions(dists: Iterable[str]) -> dict[str, str | None]:
    """The installed version of each distribution, ``None`` where it is not installed."""
    out: dict[str, str | None] = {}
    for dist in dists:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out
