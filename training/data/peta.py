"""PETA (Deng et al., ACM MM 2014): 19,000 images, the standard 35-attribute evaluation subset.

Layout under ``root``: ``PETA.mat`` and ``images/NNNNN.png`` (1-based image number, 5 digits).
``PETA.mat['peta'][0][0]`` holds ``data`` (19000×109: image number, three id columns, then 105
raw 0/1 labels), ``attribute`` (105 names), ``selected_attribute`` and ``partion_attribute`` (sic:
5 random partitions, each a struct of 1-based ``train``/``val``/``test`` index vectors,
9500/1900/7600). The 35 attributes are taken from the raw labels with the indices in the packaged
schema (group order, as Rethinking_of_PAR and PromptPAR evaluate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clear_sdk.schema import load_schema

from ._common import (
    binary_labels,
    cellstr,
    check_names,
    load_mat,
    make_records,
    one_based_index,
    spot_check_images,
    struct_get,
)
from .base import DatasetError, PARDataset, register_dataset

_SCHEMA = load_schema("peta")
NUM_PARTITIONS = 5


@register_dataset("peta")
class PETA(PARDataset):
    name = "peta"
    attributes = _SCHEMA.attributes
    groups = _SCHEMA.groups
    homepage = _SCHEMA.meta["homepage"]

    def __init__(self, root: str | Path, partition: int = 0) -> None:
        if partition not in range(NUM_PARTITIONS):
            raise ValueError(f"peta: partition must be 0..{NUM_PARTITIONS - 1}, got {partition!r}")
        super().__init__(root)
        self.partition = partition
        self.require("PETA.mat", "images")
        mat_path = self.root / "PETA.mat"
        mat = load_mat(mat_path)
        if "peta" not in mat:
            raise DatasetError(f"{mat_path}: no variable 'peta'; is this PETA's PETA.mat?")
        peta = mat["peta"]
        data = np.asarray(struct_get(peta, "data", str(mat_path)))
        if data.ndim != 2 or data.shape[1] != 109:
            raise DatasetError(f"{mat_path}: peta.data has shape {data.shape}, expected (19000, 109)")
        raw_names = cellstr(struct_get(peta, "attribute", str(mat_path)))
        raw_idx = _SCHEMA.meta["raw_mat_indices"]
        check_names([raw_names[i] for i in raw_idx], self.attributes, str(mat_path))
        labels = binary_labels(data[:, 4:][:, raw_idx], f"{mat_path} peta.data")
        n = data.shape[0]
        names = [f"{int(i):05d}.png" for i in data[:, 0]]

        parts = np.asarray(struct_get(peta, "partion_attribute", str(mat_path)), dtype=object).reshape(-1)
        if parts.size != NUM_PARTITIONS:
            raise DatasetError(f"{mat_path}: expected {NUM_PARTITIONS} partitions, found {parts.size}")
        where = f"{mat_path} partion_attribute[{partition}]"
        idx = {s: one_based_index(struct_get(parts[partition], s, where), n, where) for s in ("train", "val", "test")}
        idx["trainval"] = np.concatenate([idx["train"], idx["val"]])
        image_dir = self.root / "images"
        for split in ("train", "val", "trainval", "test"):
            self.splits[split] = make_records(image_dir, names, labels, idx[split])
        spot_check_images(self, hint="PETA images are expected as images/00001.png ... images/19000.png.")
