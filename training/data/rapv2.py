"""RAPv2 (Li et al., TIP 2019): 84,928 images, the 54-attribute evaluation subset.

Layout under ``root``: ``RAP_annotation.mat`` and ``RAP_dataset/<name>``. The struct
``RAP_annotation`` holds ``name`` (image file names), ``attribute`` (152 raw names), ``data``
(N×152 labels, 2 = uncertain and read as 0, as Rethinking_of_PAR does), ``selected_attribute``
(1-based indices of the 54 evaluated attributes) and ``partition_attribute`` (5 structs of 1-based
``train_index``/``val_index``/``test_index``). The 54 selected attributes are reordered into group
order (``selected_group_order`` in the packaged schema), which is the order Rethinking_of_PAR and
PromptPAR report.
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

_SCHEMA = load_schema("rapv2")
NUM_PARTITIONS = 5


@register_dataset("rapv2")
class RAPv2(PARDataset):
    name = "rapv2"
    attributes = _SCHEMA.attributes
    groups = _SCHEMA.groups
    homepage = _SCHEMA.meta["homepage"]

    def __init__(self, root: str | Path, partition: int = 0) -> None:
        if partition not in range(NUM_PARTITIONS):
            raise ValueError(f"rapv2: partition must be 0..{NUM_PARTITIONS - 1}, got {partition!r}")
        super().__init__(root)
        self.partition = partition
        self.require("RAP_annotation.mat", "RAP_dataset")
        mat_path = self.root / "RAP_annotation.mat"
        where = str(mat_path)
        mat = load_mat(mat_path)
        if "RAP_annotation" not in mat:
            raise DatasetError(f"{mat_path}: no variable 'RAP_annotation'; is this RAPv2's annotation file?")
        ann = mat["RAP_annotation"]
        names = cellstr(struct_get(ann, "name", where))
        raw_names = cellstr(struct_get(ann, "attribute", where))
        data = np.asarray(struct_get(ann, "data", where))
        if data.shape != (len(names), len(raw_names)):
            raise DatasetError(f"{mat_path}: data has shape {data.shape}, expected ({len(names)}, {len(raw_names)})")
        selected = one_based_index(struct_get(ann, "selected_attribute", where), len(raw_names), where)
        order = _SCHEMA.meta["selected_group_order"]
        if selected.size != len(order):
            raise DatasetError(f"{mat_path}: selected_attribute has {selected.size} entries, expected {len(order)}")
        cols = selected[order]
        # The raw .mat is reported to spell the gender attribute 'Femal'; accept 'Female' as well.
        check_names([raw_names[i] for i in cols], self.attributes, where, aliases={"female": "femal"})
        labels = binary_labels(data[:, cols], f"{mat_path} data", uncertain_as_zero=True)

        parts = np.asarray(struct_get(ann, "partition_attribute", where), dtype=object).reshape(-1)
        if parts.size != NUM_PARTITIONS:
            raise DatasetError(f"{mat_path}: expected {NUM_PARTITIONS} partitions, found {parts.size}")
        pwhere = f"{mat_path} partition_attribute[{partition}]"
        idx = {
            s: one_based_index(struct_get(parts[partition], f"{s}_index", pwhere), len(names), pwhere)
            for s in ("train", "val", "test")
        }
        idx["trainval"] = np.concatenate([idx["train"], idx["val"]])
        image_dir = self.root / "RAP_dataset"
        for split in ("train", "val", "trainval", "test"):
            self.splits[split] = make_records(image_dir, names, labels, idx[split])
        spot_check_images(self)
