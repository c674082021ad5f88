"""The synthetic dataset as a training dataset: the folder written by ``generate_synthetic``, read back.

The renderer itself (drawing, compositing, writing a dataset, street video) is the torch-free
:mod:`clear_sdk.synthetic`; import its names from there.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from clear_sdk.synthetic import LABELS_FILE, META_FILE, SYNTHETIC_ATTRIBUTES, SyntheticConfig, generate_synthetic
from clear_sdk.synthetic.identity import _SPLITS

from .base import DatasetError, PARDataset, Record, register_dataset

logger = logging.getLogger(__name__)

__all__ = ["SyntheticDataset"]


@register_dataset("synthetic")
class SyntheticDataset(PARDataset):
    """The folder written by :func:`generate_synthetic`, read back like any labelled dataset.

    ``generate=True`` renders the dataset into ``root`` first when ``labels.csv`` is missing
    (with ``config``, or the default config).
    """

    name = "synthetic"
    schema = "synthetic"  # attributes, groups and homepage: the synthetic entry of attributes.json

    def __init__(self, root: str | Path, generate: bool = False, config: SyntheticConfig | None = None) -> None:
        super().__init__(root)
        if not (self.root / LABELS_FILE).is_file():
            if not generate:
                raise DatasetError(
                    f"synthetic: no {LABELS_FILE} under {self.root}. The synthetic dataset is generated, not "
                    f"downloaded: run `clear-sdk demo`, call generate_synthetic('{self.root}'), "
                    "or pass generate=True."
                )
            generate_synthetic(self.root, config)
        elif generate and config is not None:
            self._warn_if_other_config(config)
        self.attributes, self.splits = _read_labels(self.root)

    def _warn_if_other_config(self, config: SyntheticConfig) -> None:
        try:
            saved = json.loads((self.root / META_FILE).read_text()).get("config")
        except (OSError, ValueError):
            return
        if saved != json.loads(json.dumps(dataclasses.asdict(config))):
            logger.warning(
                "%s already holds a synthetic dataset with another config; delete it to regenerate", self.root
            )


def _read_labels(root: Path) -> tuple[list[str], dict[str, list[Record]]]:
    """Parse labels.csv generically (header -> attribute columns), checking it against SYNTHETIC_ATTRIBUTES."""
    path = root / LABELS_FILE
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:3] != ["image", "pid", "split"]:
        raise DatasetError(f"{path}: the header must start with image,pid,split; regenerate with generate_synthetic")
    attributes = rows[0][3:]
    if attributes != SYNTHETIC_ATTRIBUTES:
        missing = [a for a in SYNTHETIC_ATTRIBUTES if a not in attributes]
        extra = [a for a in attributes if a not in SYNTHETIC_ATTRIBUTES]
        raise DatasetError(
            f"{path}: attribute columns do not match the synthetic schema (missing {missing}, unexpected {extra}"
            f"{', or out of order' if not (missing or extra) else ''}); regenerate with generate_synthetic"
        )
    splits: dict[str, list[Record]] = {s: [] for s in _SPLITS}
    missing_files: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise DatasetError(f"{path}:{line}: expected {len(rows[0])} columns, found {len(row)}")
        image, pid, split, values = row[0], row[1], row[2], row[3:]
        if split not in splits:
            raise DatasetError(f"{path}:{line}: unknown split {split!r}; expected one of {', '.join(_SPLITS)}")
        if any(v not in ("0", "1") for v in values):
            raise DatasetError(f"{path}:{line}: attribute values must be 0 or 1")
        try:
            pid_int = int(pid)
        except ValueError:
            raise DatasetError(f"{path}:{line}: pid {pid!r} is not an integer") from None
        img_path = root / image
        if not img_path.is_file():
            missing_files.append(image)
        labels = np.array([int(v) for v in values], np.uint8)
        splits[split].append(Record(path=str(img_path), labels=labels, pid=pid_int, camid=None))
    if missing_files:
        raise DatasetError(
            f"{root}: {len(missing_files)} image(s) named in {LABELS_FILE} are missing (first: {missing_files[0]}); "
            "regenerate with generate_synthetic"
        )
    splits["trainval"] = splits["train"] + splits["val"]
    return list(attributes), splits
