"""PA100K (Liu et al., ICCV 2017): 100,000 pedestrian crops, 26 binary attributes.

Layout under ``root``: ``annotation.mat`` (``attributes``, ``{train,val,test}_images_name``,
``{train,val,test}_label``) and ``data/<image name>``. Attributes keep the raw ``annotation.mat``
order (as PromptPAR trains and evaluates); splits are the official 80,000 / 10,000 / 10,000, plus
``trainval`` = train + val.
"""

from __future__ import annotations

from pathlib import Path

from ._common import binary_labels, cellstr, check_names, load_mat, make_records, spot_check_images
from .base import DatasetError, PARDataset, register_dataset


@register_dataset("pa100k")
class PA100K(PARDataset):
    name = "pa100k"
    schema = "pa100k"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.require("annotation.mat", "data")
        mat_path = self.root / "annotation.mat"
        mat = load_mat(mat_path)
        wanted = ["attributes"] + [f"{s}_{k}" for s in ("train", "val", "test") for k in ("images_name", "label")]
        missing = [k for k in wanted if k not in mat]
        if missing:
            raise DatasetError(f"{mat_path}: missing variables {missing}; is this PA100K's annotation.mat?")
        check_names(cellstr(mat["attributes"]), self.attributes, str(mat_path))
        image_dir = self.root / "data"
        for split in ("train", "val", "test"):
            names = cellstr(mat[f"{split}_images_name"])
            labels = binary_labels(mat[f"{split}_label"], f"{mat_path} {split}_label")
            expected = (len(names), len(self.attributes))
            if labels.shape != expected:
                raise DatasetError(f"{mat_path}: {split}_label has shape {labels.shape}, expected {expected}")
            self.splits[split] = make_records(image_dir, names, labels)
        self.splits["trainval"] = self.splits["train"] + self.splits["val"]
        spot_check_images(self)
