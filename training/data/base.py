"""Plain dataset records and the dataset registry.

A dataset class declares the files it needs and checks them before anything runs
(torchreid-style); it produces plain :class:`Record` lists per split. Decoding and
augmentation happen later, in the trainer, so the loaders stay torch-free and testable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from clear_sdk.errors import ClearSDKError
from clear_sdk.metrics import UNKNOWN


@dataclasses.dataclass(frozen=True)
class Record:
    """One image: its path, its binary attribute vector and, where known, identity and camera."""

    path: str
    labels: np.ndarray  # uint8 [A], 0/1, or 255 (clear_sdk.metrics.UNKNOWN) where the dataset does not annotate it
    pid: int | None = None
    camid: int | None = None
    source: str | None = None  # the dataset an image comes from, in a multi-dataset ("unified") set


class DatasetError(ClearSDKError, FileNotFoundError):
    """A dataset's files are missing or malformed; the message says what and where to get it."""


class PARDataset:
    """Base class: subclasses name their packaged ``schema`` (or set ``attributes`` and ``groups``) and fill ``splits``.

    ``schema = "peta"`` resolves, when the class is defined, to ``attributes`` (ordered), ``groups``,
    ``homepage`` and ``schema_meta`` (the rest of that dataset's entry in ``clear_sdk/data/attributes.json``:
    raw indices, colour groups, ...), as torchreid's datasets declare their files. ``splits`` maps split
    name ("train", "val", "test", and "trainval" where the dataset defines it) to a list of :class:`Record`.
    """

    name: str = ""
    #: the dataset's entry in clear_sdk/data/attributes.json, resolved by __init_subclass__
    schema: str | None = None
    attributes: list[str] = []
    groups: dict[str, list[str]] = {}
    schema_meta: dict = {}
    #: where users obtain the data (shown in errors; nothing is downloaded)
    homepage: str = ""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.schema is not None and "attributes" not in cls.__dict__:
            from clear_sdk.schema import load_schema

            s = load_schema(cls.schema)
            cls.attributes, cls.groups, cls.schema_meta = s.attributes, s.groups, s.meta
            cls.homepage = cls.__dict__.get("homepage") or s.meta.get("homepage", "")

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.splits: dict[str, list[Record]] = {}

    # -- helpers for subclasses -------------------------------------------------
    def require(self, *relpaths: str) -> None:
        """Raise :class:`DatasetError` listing every required file that is absent under ``root``."""
        missing = [p for p in relpaths if not (self.root / p).exists()]
        if missing:
            raise DatasetError(
                f"{self.name}: missing under {self.root}: {', '.join(missing)}. "
                f"Get the dataset from {self.homepage or 'its authors'} and pass its folder with --root."
            )

    def split(self, name: str) -> list[Record]:
        if name not in self.splits:
            raise KeyError(f"{self.name} has no split {name!r}; it has: {', '.join(self.splits)}")
        return self.splits[name]

    def labels(self, split: str) -> np.ndarray:
        """All label vectors of a split as uint8 [N, A]."""
        recs = self.split(split)
        if not recs:
            return np.zeros((0, len(self.attributes)), np.uint8)
        return np.stack([r.labels for r in recs]).astype(np.uint8)

    def positive_ratio(self, split: str = "train") -> np.ndarray:
        """Per-attribute positive ratio r over the samples that annotate it, used by the weighted BCE (DESIGN §3)."""
        labels = self.labels(split)
        known = labels != UNKNOWN
        return (labels == 1).sum(axis=0) / np.maximum(known.sum(axis=0), 1)


_REGISTRY: dict[str, Callable[..., PARDataset]] = {}


def register_dataset(name: str) -> Callable[[type[PARDataset]], type[PARDataset]]:
    def deco(cls: type[PARDataset]) -> type[PARDataset]:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} registered twice")
        _REGISTRY[name] = cls
        return cls

    return deco


def list_datasets() -> list[str]:
    return sorted(_REGISTRY)


def create_dataset(name: str, root: str | Path, split_file: str | Path | None = None, **kwargs) -> PARDataset:
    """Build a registered dataset; an unknown name is an error that lists the valid ones.

    ``split_file`` re-partitions it (e.g. a zero-shot split; see :mod:`.splits`).
    """
    key = name.lower()
    if key not in _REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; valid names: {', '.join(list_datasets())}")
    ds = _REGISTRY[key](root, **kwargs)
    if split_file:
        from .splits import apply_split_file

        apply_split_file(ds, split_file)
    return ds
