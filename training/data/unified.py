"""Several datasets in one attribute schema: the packaged ``unified`` schema and each dataset's view.

``create_dataset("unified", root, sources={...})`` loads each source dataset with its own loader and
maps its labels into the unified attributes through the view in ``clear_sdk/data/attributes.json``
(:func:`clear_sdk.views.to_unified`): an attribute the source does not annotate is ``UNKNOWN`` (255)
for its images, which the loss and the metrics mask out. ``Record.source`` names the dataset of each
image, so the trainer can balance them and report each one.

``sources`` maps a dataset name to its loader's arguments; ``root`` (and ``annotation``) in them are
relative to this dataset's ``root``. The default is the layout of the project's shared data folder
(``--root ../shared/data``): PETA partition 0 with its colours and Market-1501's training identities.

Splits: ``train``, ``val`` and ``trainval`` join every source's; ``"<source>:<split>"`` (``peta:val``,
``market1501:val``) is one source's split in unified labels; ``test`` joins the sources' test splits
and is an error, from the source's own loader, when a root does not hold them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clear_sdk.schema import load_view
from clear_sdk.views import to_unified

from .base import DatasetError, PARDataset, Record, create_dataset, register_dataset

DEFAULT_SOURCES: dict[str, dict[str, Any]] = {
    "peta": {"root": "peta-trainval", "annotation": "annotations/PETA.mat", "colours": True},
    "market1501": {"root": "market1501-train", "annotation": "annotations/market_attribute.mat"},
}
_PATH_KEYS = ("root", "annotation")


@register_dataset("unified")
class Unified(PARDataset):
    name = "unified"
    schema = "unified"

    def __init__(self, root: str | Path, sources: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__(root)
        sources = DEFAULT_SOURCES if sources is None else sources
        if not sources:
            raise DatasetError("unified: no sources; pass sources={dataset: {root: ..., ...}}")
        self.sources: dict[str, PARDataset] = {}
        for name, kwargs in sources.items():
            kw = {k: (str(self.root / v) if k in _PATH_KEYS else v) for k, v in dict(kwargs).items()}
            self.sources[name] = create_dataset(name, kw.pop("root", str(self.root)), **kw)
        for split in ("train", "val", "trainval"):
            self.splits[split] = [r for name in self.sources for r in self._mapped(name, split)]

    def _mapped(self, name: str, split: str) -> list[Record]:
        ds = self.sources[name]
        records = ds.split(split)
        if not records:
            return []
        labels = to_unified(load_view(name), list(ds.attributes), ds.labels(split))
        return [Record(r.path, y, r.pid, r.camid, source=name) for r, y in zip(records, labels)]

    def split(self, name: str) -> list[Record]:
        """A joined split, or ``"<source>:<split>"`` for one source's split in unified labels."""
        if ":" in name:
            source, _, sub = name.partition(":")
            if source not in self.sources:
                raise KeyError(f"unified has no source {source!r}; it has: {', '.join(self.sources)}")
            return self._mapped(source, sub)
        if name not in self.splits and name == "test":
            self.splits[name] = [r for source in self.sources for r in self._mapped(source, name)]
        return super().split(name)
