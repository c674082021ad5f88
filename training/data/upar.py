"""UPAR (Cormier et al., WACV 2024 challenge): the challenge's annotation CSVs, 40 attributes.

Each CSV has a header ``# image, <40 attribute names>`` (the packaged schema's order) and one row
per image: a path relative to ``root`` and 40 0/1 values. The header is checked against the schema
so that a column shift cannot mislabel silently. Defaults are the challenge layout: ``train`` =
``phase1/annotations/phase1/train/train.csv`` and ``val`` (the dev-test set CLEAR reports) =
``phase2/annotations/val_gt/val_gt.csv``; either path can be changed, or set to None to skip it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ._common import spot_check_images
from .base import DatasetError, PARDataset, Record, register_dataset

TRAIN_CSV = "phase1/annotations/phase1/train/train.csv"
VAL_CSV = "phase2/annotations/val_gt/val_gt.csv"


@register_dataset("upar")
class UPAR(PARDataset):
    name = "upar"
    schema = "upar"

    def __init__(self, root: str | Path, train_csv: str | None = TRAIN_CSV, val_csv: str | None = VAL_CSV) -> None:
        super().__init__(root)
        csvs = {s: p for s, p in (("train", train_csv), ("val", val_csv)) if p is not None}
        if not csvs:
            raise ValueError("upar: give at least one of train_csv / val_csv")
        self.require(*csvs.values())
        for split, rel in csvs.items():
            self.splits[split] = self._read(self.root / rel)
        spot_check_images(self, hint="Image paths in the CSV are relative to --root.")

    def _read(self, path: Path) -> list[Record]:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
        if not rows:
            raise DatasetError(f"{path} is empty; expected a header '# image,{','.join(self.attributes[:2])},...'")
        header = [h.strip() for h in rows[0][1]]
        expected = ["# image", *self.attributes]
        if len(header) != len(expected) or header[0].lower() != "# image" or header[1:] != expected[1:]:
            diff = [(i, h, e) for i, (h, e) in enumerate(zip(header, expected, strict=False)) if h.lower() != e.lower()]
            raise DatasetError(
                f"{path}: header does not match the UPAR schema ({len(header)} columns, expected {len(expected)}: "
                f"'# image' then the 40 attributes in clear_sdk/data/attributes.json order; "
                f"first differences (column, file, expected): {diff[:5]})"
            )
        body = rows[1:]
        for line, row in body:
            if len(row) != len(expected):
                raise DatasetError(f"{path}:{line}: {len(row)} columns, expected {len(expected)}")
        try:
            values = np.array([row[1:] for _, row in body], dtype=np.float64).reshape(len(body), len(self.attributes))
        except ValueError as e:
            raise DatasetError(f"{path}: non-numeric label ({e})") from e
        bad = np.flatnonzero(~np.isin(values, (0.0, 1.0)).all(axis=1))
        if bad.size:
            raise DatasetError(f"{path}:{body[bad[0]][0]}: labels must be 0 or 1")
        labels = values.astype(np.uint8)
        return [Record(str(self.root / row[0].strip()), labels[i]) for i, (_, row) in enumerate(body)]
