"""Small file-system facts shared by the runtime, training, export and the CLI (one copy of each).

No torch, no training imports: training and export import these, never the other way round.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["CHECKPOINT_NAMES", "IMAGE_SUFFIXES", "RunFiles", "list_images", "package_versions", "resolve_checkpoint"]

#: Image file suffixes the tools collect from folders (all decoded by OpenCV).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """The files of a ``train --out`` folder, named once: the trainer writes them, the tools read them.

    A checkpoint ``X.safetensors`` has its config and metadata beside it in ``X.json``.
    """

    root: Path

    #: the checkpoint to use: stage 2's best epoch, or a copy of stage 1's when only stage 1 ran
    BEST = "best.safetensors"
    #: stage 1's best epoch (on val) and its last one, with the optimiser state to resume from
    PAR_BEST = "par_best.safetensors"
    PAR_LAST = "par_last.safetensors"
    PAR_STATE = "par_last.state.pt"
    CONFIG = "config.json"  # the resolved TrainConfig
    SUMMARY = "summary.json"

    best = property(lambda self: self.root / self.BEST)
    par_best = property(lambda self: self.root / self.PAR_BEST)
    par_last = property(lambda self: self.root / self.PAR_LAST)
    par_state = property(lambda self: self.root / self.PAR_STATE)
    config = property(lambda self: self.root / self.CONFIG)
    summary = property(lambda self: self.root / self.SUMMARY)

    def history(self, stage: str) -> Path:
        """Per-epoch losses and val metrics of ``stage`` ("par" or "retrieval")."""
        return self.root / f"history_{stage}.json"


#: Checkpoints a ``train --out`` folder may hold, in the order one is chosen from it.
CHECKPOINT_NAMES = (RunFiles.BEST, RunFiles.PAR_BEST, "last.safetensors")


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
        raise FileNotFoundError(f"{p} holds no checkpoint ({RunFiles.BEST}); pass a .safetensors file")
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
