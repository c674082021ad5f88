"""PETA (Deng et al., ACM MM 2014): 19,000 images, the standard 35-attribute evaluation subset.

Layout under ``root``: ``PETA.mat`` and ``images/NNNNN.png`` or ``.jpg`` (1-based image number, 5
digits). A root may hold only some splits' images (``../shared/data/peta-trainval`` has train and val):
asking for a split whose images are missing is the error, naming how many and which.
``PETA.mat['peta'][0][0]`` holds ``data`` (19000×109: image number, three id columns, then 105
raw 0/1 labels), ``attribute`` (105 names), ``selected_attribute`` and ``partion_attribute`` (sic:
5 random partitions, each a struct of 1-based ``train``/``val``/``test`` index vectors,
9500/1900/7600). The 35 attributes are taken from the raw labels with the indices in the packaged
schema (group order, as Rethinking_of_PAR and PromptPAR evaluate). ``colours=True`` appends PETA's
11 upper- and 11 lower-body colour labels (groups ``upper_colour``/``lower_colour``), so that a model
answers "red top, black trousers"; the standard protocol's mA stays the one over the 35.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._common import (
    binary_labels,
    cellstr,
    check_names,
    make_records,
    mat_struct,
    partition_indices,
    struct_get,
)
from .base import DatasetError, PARDataset, Record, register_dataset

NUM_PARTITIONS = 5


@register_dataset("peta")
class PETA(PARDataset):
    name = "peta"
    schema = "peta"

    def __init__(
        self, root: str | Path, partition: int = 0, colours: bool = False, annotation: str | Path | None = None
    ) -> None:
        """``annotation``: PETA.mat when it is not ``root/PETA.mat``."""
        if partition not in range(NUM_PARTITIONS):
            raise ValueError(f"peta: partition must be 0..{NUM_PARTITIONS - 1}, got {partition!r}")
        super().__init__(root)
        self.partition = partition
        self.colours = bool(colours)
        self.attributes = list(type(self).attributes)
        self.groups = {g: list(v) for g, v in type(self).groups.items()}
        if self.colours:
            for group, names in self.schema_meta["colour_groups"].items():
                self.groups[group] = list(names)
                self.attributes += names
        self._missing: dict[str, list[str]] = {}
        if annotation is None:
            self.require("PETA.mat", "images")
            mat_path = self.root / "PETA.mat"
        else:
            self.require("images")
            mat_path = Path(annotation).expanduser()
            if not mat_path.is_file():
                raise DatasetError(f"peta: annotation file {mat_path} does not exist; pass the path of PETA.mat")
        peta = mat_struct(mat_path, "peta", "PETA")
        data = np.asarray(struct_get(peta, "data", str(mat_path)))
        if data.ndim != 2 or data.shape[1] != 109:
            raise DatasetError(f"{mat_path}: peta.data has shape {data.shape}, expected (19000, 109)")
        raw_names = cellstr(struct_get(peta, "attribute", str(mat_path)))
        raw_idx = self.schema_meta["raw_mat_indices"]
        check_names([raw_names[i] for i in raw_idx], type(self).attributes, str(mat_path))
        if self.colours:
            where_col = {name: i for i, name in enumerate(raw_names)}
            wanted = self.attributes[len(raw_idx) :]
            absent = [a for a in wanted if a not in where_col]
            if absent:
                raise DatasetError(f"{mat_path}: no colour attributes {absent[:4]} in peta.attribute")
            raw_idx = list(raw_idx) + [where_col[a] for a in wanted]
        labels = binary_labels(data[:, 4:][:, raw_idx], f"{mat_path} peta.data")
        n = data.shape[0]
        names = _image_names(self.root / "images", [int(i) for i in data[:, 0]])

        idx = partition_indices(peta, "partion_attribute", partition, NUM_PARTITIONS, n, str(mat_path))
        image_dir = self.root / "images"
        for split in ("train", "val", "trainval", "test"):
            rows = idx[split].tolist()
            self.splits[split] = make_records(image_dir, names, labels, idx[split])
            self._missing[split] = [names[i] for i in rows if not names[i].endswith(_EXTENSIONS)]

    def split(self, name: str) -> list[Record]:
        """A split's records; an error when some of its images are not under ``images/``."""
        records = super().split(name)
        missing = self._missing.get(name)
        if missing:
            raise DatasetError(
                f"peta: {len(missing)} of {len(records)} images of split {name!r} are missing under "
                f"{self.root / 'images'} (e.g. {', '.join(m + '.png/.jpg' for m in missing[:3])}); PETA images are "
                f"images/00001.png (or .jpg) ... images/19000.png. Get the dataset from {self.homepage}."
            )
        return records


_EXTENSIONS = (".png", ".jpg")


def _image_names(image_dir: Path, numbers: list[int]) -> list[str]:
    """``NNNNN.png`` or ``NNNNN.jpg`` for each image number, whichever exists; a bare ``NNNNN`` when neither.

    One directory listing, not 19,000 stat calls.
    """
    present = {e.name for e in os.scandir(image_dir) if e.name.endswith(_EXTENSIONS)} if image_dir.is_dir() else set()
    out = []
    for i in numbers:
        stem = f"{i:05d}"
        out.append(next((stem + ext for ext in _EXTENSIONS if stem + ext in present), stem))
    return out
