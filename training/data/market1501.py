"""Market-1501 with the identity-level attributes of Lin et al. (Market-1501_Attribute).

Layout under ``root``: ``market_attribute.mat`` (or ``annotation=PATH``), ``bounding_box_train/`` and,
where the root has them, ``bounding_box_test/`` and ``query/``. Images are named
``<pid>_c<cam>s<seq>_<frame>_<idx>.jpg``; junk images (pid -1) and distractors (pid 0000) carry no attributes
and are skipped.

Labels are per identity (1 = no, 2 = yes; age 1..4) and are copied to every image of that
identity. The 27 .mat fields become 30 binary attributes (packaged schema ``market1501``,
``mat_fields``): every binary field is 1 when its value is 2, age is one-hot over
young/teenager/adult/old; order: gender, age, head, upper, upper colour, lower, lower colour, bag.
Fields are read by name, because the train and test structs store them in different orders.

Splits:
  * ``trainval``: every image of the 751 train identities in ``bounding_box_train``;
  * ``val``: the images of a held-out ``val_fraction`` of those identities (10 % = 75 IDs by
    default), drawn with ``numpy.random.default_rng(seed)`` over the sorted identity list, so it is
    the same on every machine; ``train`` is the rest. ``val_fraction=0`` gives an empty ``val``;
  * ``test``: the 750 test identities' images in ``bounding_box_test`` (the gallery, 13,115 images);
  * ``query``: the test identities' images in ``query/`` when that folder exists (3,368 images;
    test + query = the 16,483 test images of CLEAR's Table 1).

``Record.pid`` is the Market person id; ``Record.camid`` is the camera, 0-based (c1 -> 0).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ._common import cellstr, load_mat, struct_get
from .base import DatasetError, PARDataset, Record, register_dataset

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(-?\d+)_c(\d+)s\d+_\d+_\d+\.jpg$")


def parse_market_name(filename: str) -> tuple[int, int] | None:
    """``(pid, camid 0-based)`` from a Market-1501 image name, or None when it does not follow the pattern."""
    m = _NAME.match(filename)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)) - 1


def identity_labels(struct: np.ndarray, where: str) -> dict[int, np.ndarray]:
    """Person id -> 30-dim uint8 label vector from one struct (``train`` or ``test``) of market_attribute.mat."""
    ids = [int(s) for s in cellstr(struct_get(struct, "image_index", where))]
    columns = []
    for _attr, field, positive in Market1501.schema_meta["mat_fields"]:
        values = np.asarray(struct_get(struct, field, where)).reshape(-1)
        if values.size != len(ids):
            raise DatasetError(f"{where}: field {field!r} has {values.size} values for {len(ids)} identities")
        allowed = (1, 2, 3, 4) if field == "age" else (1, 2)
        if not np.isin(values, allowed).all():
            raise DatasetError(f"{where}: field {field!r} has values {np.unique(values).tolist()}, expected {allowed}")
        columns.append(values == positive)
    labels = np.stack(columns, axis=1).astype(np.uint8)
    return {pid: labels[i] for i, pid in enumerate(ids)}


@register_dataset("market1501")
class Market1501(PARDataset):
    name = "market1501"
    schema = "market1501"

    def __init__(
        self, root: str | Path, val_fraction: float = 0.1, seed: int = 0, annotation: str | Path | None = None
    ) -> None:
        """``annotation``: market_attribute.mat when it is not ``root/market_attribute.mat``.

        A root may hold only ``bounding_box_train/`` (``../shared/data/market1501-train``): its splits
        (train, val, trainval) work, and asking for ``test`` or ``query`` is the error that names the folder.
        """
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"market1501: val_fraction must be in [0, 1), got {val_fraction!r}")
        super().__init__(root)
        if annotation is None:
            self.require("market_attribute.mat", "bounding_box_train")
            mat_path = self.root / "market_attribute.mat"
        else:
            self.require("bounding_box_train")
            mat_path = Path(annotation).expanduser()
            if not mat_path.is_file():
                raise DatasetError(
                    f"market1501: annotation file {mat_path} does not exist; pass the path of market_attribute.mat"
                )
        mat = load_mat(mat_path)
        if "market_attribute" not in mat:
            raise DatasetError(f"{mat_path}: no variable 'market_attribute'; is this Market-1501_Attribute's file?")
        ma = mat["market_attribute"]
        self.train_ids = identity_labels(struct_get(ma, "train", str(mat_path)), f"{mat_path} train")
        self.test_ids = identity_labels(struct_get(ma, "test", str(mat_path)), f"{mat_path} test")

        trainval = self._images("bounding_box_train", self.train_ids)
        pids = sorted(self.train_ids)
        n_val = int(round(val_fraction * len(pids)))
        val_ids = set(np.random.default_rng(seed).permutation(pids)[:n_val].tolist())
        self.val_ids = sorted(val_ids)
        self.splits["train"] = [r for r in trainval if r.pid not in val_ids]
        self.splits["val"] = [r for r in trainval if r.pid in val_ids]
        self.splits["trainval"] = trainval
        self._absent: dict[str, str] = {}
        for split, folder in (("test", "bounding_box_test"), ("query", "query")):
            if (self.root / folder).is_dir():
                self.splits[split] = self._images(folder, self.test_ids)
            elif split == "test":
                self.splits[split] = []
                self._absent[split] = folder

    def split(self, name: str) -> list[Record]:
        """A split's records; an error naming the folder when its images are not under ``root``."""
        if name in self._absent:
            raise DatasetError(
                f"market1501: split {name!r} needs {self.root / self._absent[name]}/ (the 13,115 annotated gallery "
                f"images of the 750 test identities, {len(self.test_ids)} identities in the annotation); this root "
                f"holds only {', '.join(sorted(s for s in self.splits if s not in self._absent))}. "
                f"Get the images from {self.homepage}."
            )
        return super().split(name)

    def _images(self, folder: str, id_labels: dict[int, np.ndarray]) -> list[Record]:
        """Records for the annotated identities' images in ``folder``; junk, distractors and strays skipped."""
        records: list[Record] = []
        unknown: set[int] = set()
        for path in sorted((self.root / folder).glob("*.jpg")):
            parsed = parse_market_name(path.name)
            if parsed is None:
                logger.warning("market1501: skipping %s (name does not follow pid_cXsY_frame_idx.jpg)", path)
                continue
            pid, camid = parsed
            if pid <= 0:  # -1 junk, 0 distractor
                continue
            if pid not in id_labels:
                unknown.add(pid)
                continue
            records.append(Record(str(path), id_labels[pid], pid=pid, camid=camid))
        if unknown:
            logger.warning(
                "market1501: %d identities in %s have no attributes in this split and were skipped (e.g. %s)",
                len(unknown),
                folder,
                sorted(unknown)[:5],
            )
        if not records:
            raise DatasetError(
                f"market1501: no annotated images in {self.root / folder}. "
                f"Put the Market-1501 images there; get them from {self.homepage}."
            )
        return records
