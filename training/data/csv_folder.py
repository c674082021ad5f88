"""``csv``: any folder with ``labels.csv`` (image, optional pid / split columns, one 0/1 column per attribute).

The generic path that custom data, the PA-100K 2k subset in ``../shared/data/pa100k-2k`` and
exported annotation tools all fit. Without a ``split`` column the rows are split by file order
(train / val / test fractions, default 0.8 / 0.1 / 0.1: 1600 / 200 / 200 for 2,000 images).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from .base import DatasetError, PARDataset, Record, register_dataset

RESERVED = ("image", "pid", "split", "camid")
logger = logging.getLogger(__name__)


@register_dataset("csv")
class CSVFolderDataset(PARDataset):
    name = "csv"
    homepage = "your own annotation export (labels.csv: image,<attr1>,<attr2>,...)"

    def __init__(
        self,
        root: str | Path,
        csv_name: str = "labels.csv",
        image_dir: str = "images",
        fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    ) -> None:
        super().__init__(root)
        self.require(csv_name)
        with open(self.root / csv_name, newline="") as f:
            rows = list(csv.reader(f))
        if len(rows) < 2:
            raise DatasetError(f"{self.root / csv_name} has no data rows")
        header = [h.strip() for h in rows[0]]
        if header[0] != "image":
            raise DatasetError(f"{self.root / csv_name}: the first column must be 'image', got {header[0]!r}")
        attr_cols = [i for i, h in enumerate(header) if h not in RESERVED]
        self.attributes = [header[i] for i in attr_cols]
        self.groups = _groups_for(self.attributes)
        col = {h: i for i, h in enumerate(header)}
        img_root = self.root / image_dir if (self.root / image_dir).is_dir() else self.root
        names = _image_names(rows[1:], img_root, csv_name)
        records, splits = [], []
        for line, (row, image) in enumerate(zip(rows[1:], names), start=2):
            try:
                labels = np.array([int(row[i]) for i in attr_cols], dtype=np.uint8)
            except (ValueError, IndexError) as e:
                raise DatasetError(f"{self.root / csv_name}:{line}: labels must be 0/1 integers ({e})") from e
            if labels.max(initial=0) > 1:
                raise DatasetError(f"{self.root / csv_name}:{line}: labels must be 0 or 1")
            pid = int(row[col["pid"]]) if "pid" in col else None
            records.append(Record(str(img_root / image), labels, pid=pid))
            splits.append(row[col["split"]] if "split" in col else None)
        if all(s is not None for s in splits):
            for name in sorted(set(splits)):
                self.splits[name] = [r for r, s in zip(records, splits) if s == name]
        else:
            n = len(records)
            a = int(round(fractions[0] * n))
            b = a + int(round(fractions[1] * n))
            self.splits = {"train": records[:a], "val": records[a:b], "test": records[b:]}
        if "trainval" not in self.splits and "train" in self.splits and "val" in self.splits:
            self.splits["trainval"] = self.splits["train"] + self.splits["val"]


def _image_names(rows: list[list[str]], img_root: Path, csv_name: str) -> list[str]:
    """The image file of each row: its ``image`` column, or, when those names are not on disk but the
    folder holds exactly one image per row, the folder's files in sorted order.

    The second case is a renamed export such as ``../shared/data/pa100k-2k``, whose CSV keeps the
    original PA-100K names (080001.jpg, ...) for files stored as 001601.jpg, ... in the same order.
    """
    listed = [row[0] for row in rows]
    missing = [n for n in listed if not (img_root / n).is_file()]
    if not missing:
        return listed
    files = sorted(p.name for p in img_root.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"})
    if len(files) == len(listed):
        logger.warning(
            "%d images named in %s are not in %s; pairing rows with the %d files there in sorted order",
            len(missing),
            csv_name,
            img_root,
            len(files),
        )
        return files
    raise DatasetError(
        f"{len(missing)} images named in {csv_name} are missing under {img_root} (first: {missing[0]}); "
        "fix the image column or the folder"
    )


def _groups_for(attributes: list[str]) -> dict[str, list[str]]:
    """The packaged schema's groups when the columns are a known schema, else one group per attribute."""
    try:
        from clear_sdk.schema import list_schemas, load_schema

        for name in list_schemas():
            schema = load_schema(name)
            if list(schema.attributes) == list(attributes):
                return {k: list(v) for k, v in schema.groups.items()}
    except (ImportError, KeyError, FileNotFoundError):
        pass
    return {"other": list(attributes)}
