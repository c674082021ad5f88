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

from ._common import (
    binary_labels,
    cellstr,
    check_names,
    make_records,
    mat_struct,
    one_based_index,
    partition_indices,
    spot_check_images,
    struct_get,
)
from .base import DatasetError, PARDataset, register_dataset

NUM_PARTITIONS = 5


@register_dataset("rapv2")
class RAPv2(PARDataset):
    name = "rapv2"
    schema = "rapv2"

    def __init__(self, root: str | Path, partition: int = 0) -> None:
        if partition not in range(NUM_PARTITIONS):
            raise ValueError(f"rapv2: partition must be 0..{NUM_PARTITIONS - 1}, got {partition!r}")
        super().__init__(root)
        self.partition = partition
        self.require("RAP_annotation.mat", "RAP_dataset")
        mat_path = self.root / "RAP_annotation.mat"
        where = str(mat_path)
        ann = mat_struct(mat_path, "RAP_annotation", "RAPv2")
        names = cellstr(struct_get(ann, "name", where))
        raw_names = cellstr(struct_get(ann, "attribute", where))
        data = np.asarray(struct_get(ann, "data", where))
        if data.shape != (len(names), len(raw_names)):
            raise DatasetError(f"{mat_path}: data has shape {data.shape}, expected ({len(names)}, {len(raw_names)})")
        selected = one_based_index(struct_get(ann, "selected_attribute", where), len(raw_names), where)
        order = self.schema_meta["selected_group_order"]
        if selected.size != len(order):
            raise DatasetError(f"{mat_path}: selected_attribute has {selected.size} entries, expected {len(order)}")
        cols = selected[order]
        # The raw .mat is reported to spell the gender attribute 'Femal'; accept 'Female' as well.
        check_names([raw_names[i] for i in cols], self.attributes, where, aliases={"female": "femal"})
        labels = binary_labels(data[:, cols], f"{mat_path} data", uncertain_as_zero=True)

        idx = partition_indices(
            ann, "partition_attribute", partition, NUM_PARTITIONS, len(names), where, key="{split}_index"
        )
        image_dir = self.root / "RAP_dataset"
        for split in ("train", "val", "trainval", "test"):
            self.splits[split] = make_records(image_dir, names, labels, idx[split])
        spot_check_images(self)
