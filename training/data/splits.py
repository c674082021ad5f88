"""Split files: re-partition any dataset, e.g. into a zero-shot (PETA-ZS / RAP-ZS style) protocol.

In the zero-shot protocol of Jia et al. ("Rethinking of PAR", used by PromptPAR) the identities of
the test split never occur in training, so a model is scored on people it has not seen. Their
published splits ship as ``dataset_zs_run*.pkl`` and load with ``--dataset pkl``; any other split
is a *split file* given with ``split_file=`` (``--split-file`` on the command line):

* JSON: ``{"train": [image, ...], "val": [...], "test": [...], "identities": {image: id, ...}}``
  (``identities`` optional), or
* CSV with a header: ``image,split[,identity]``.

An image is named by its path relative to the dataset root, or by its file name when that is
unique. Every named image must exist in the dataset; images not named are left out. Identities
come from the file or from the dataset's own records; when known, a test identity that also
appears in train or val is an error, because the numbers would no longer be zero-shot.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np

from .base import DatasetError, PARDataset, Record

SPLITS = ("train", "val", "test")


def read_split_file(path: str | Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(split -> image names, image -> identity) from a JSON or CSV split file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"split file not found: {path}")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path} is not valid JSON ({e})") from e
        if not isinstance(data, dict) or not any(s in data for s in SPLITS):
            raise DatasetError(f"{path}: expected an object with 'train', 'val' and/or 'test' lists of image names")
        splits = {s: [str(x) for x in data.get(s, [])] for s in SPLITS}
        identities = {str(k): str(v) for k, v in (data.get("identities") or {}).items()}
        return splits, identities
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"image", "split"} <= set(reader.fieldnames):
            raise DatasetError(f"{path}: a CSV split file needs the header image,split[,identity]")
        splits: dict[str, list[str]] = {s: [] for s in SPLITS}
        identities = {}
        for line, row in enumerate(reader, start=2):
            if row["split"] not in SPLITS:
                raise DatasetError(f"{path}:{line}: split {row['split']!r} is not one of {', '.join(SPLITS)}")
            splits[row["split"]].append(row["image"])
            if row.get("identity"):
                identities[row["image"]] = row["identity"]
    return splits, identities


def apply_split_file(ds: PARDataset, path: str | Path) -> PARDataset:
    """Replace ``ds.splits`` with the split file's train/val/test (in the file's order); returns ``ds``."""
    splits, identities = read_split_file(path)
    by_rel: dict[str, Record] = {}
    for rec in (r for recs in ds.splits.values() for r in recs):
        p = Path(rec.path)
        by_rel.setdefault(p.relative_to(ds.root).as_posix() if p.is_relative_to(ds.root) else p.as_posix(), rec)
    name_count = Counter(Path(k).name for k in by_rel)
    by_name = {Path(k).name: r for k, r in by_rel.items() if name_count[Path(k).name] == 1}

    def find(name: str) -> Record | None:
        return by_rel.get(Path(name).as_posix()) or by_name.get(name)

    seen: dict[str, str] = {}
    new: dict[str, list[Record]] = {}
    for split, names in splits.items():
        unknown = [n for n in names if find(n) is None]
        if unknown:
            raise DatasetError(
                f"{path}: {len(unknown)} {split} image(s) are not in {ds.name} under {ds.root}, e.g. "
                f"{', '.join(unknown[:5])}; name images by their path relative to the root (or a unique file name)"
            )
        records = []
        for n in names:
            rec = find(n)
            if rec.path in seen:
                raise DatasetError(f"{path}: {n} is in both {seen[rec.path]} and {split}")
            seen[rec.path] = split
            records.append(rec)
        new[split] = records
    _check_zero_shot(new, identities, find, path)
    ds.splits = {**new, "trainval": new["train"] + new["val"]}
    return ds


def _check_zero_shot(splits: dict[str, list[Record]], identities: dict[str, str], find, path) -> None:
    ident = {find(k).path: v for k, v in identities.items() if find(k) is not None}

    def ids(split: str) -> set[str]:
        out = set()
        for r in splits[split]:
            pid = ident.get(r.path, None if r.pid is None else str(r.pid))
            if pid is not None:
                out.add(pid)
        return out

    overlap = ids("test") & (ids("train") | ids("val"))
    if overlap:
        raise DatasetError(
            f"{path}: {len(overlap)} test identities also appear in train/val (e.g. {', '.join(sorted(overlap)[:5])}); "
            "a zero-shot split keeps identities disjoint"
        )


def make_zero_shot_split(
    ds: PARDataset, out: str | Path, val_fraction: float = 0.1, test_fraction: float = 0.3, seed: int = 0
) -> Path:
    """Write a JSON split whose train, val and test identities are disjoint (from the records' ``pid``)."""
    records = [r for recs in (ds.splits.get(s, []) for s in SPLITS) for r in recs]
    if not records or any(r.pid is None for r in records):
        raise DatasetError(f"{ds.name} does not record an identity for every image: a zero-shot split needs them")
    pids = np.array(sorted({r.pid for r in records}))
    rng = np.random.default_rng(seed)
    rng.shuffle(pids)
    n_test, n_val = round(len(pids) * test_fraction), round(len(pids) * val_fraction)
    which = {int(p): "test" for p in pids[:n_test]}
    which.update({int(p): "val" for p in pids[n_test : n_test + n_val]})
    splits: dict[str, list[str]] = {s: [] for s in SPLITS}
    identities = {}
    for r in records:
        name = Path(r.path).relative_to(ds.root).as_posix() if Path(r.path).is_relative_to(ds.root) else r.path
        splits[which.get(int(r.pid), "train")].append(name)
        identities[name] = str(r.pid)
    out = Path(out)
    out.write_text(json.dumps({**splits, "identities": identities}, indent=1))
    return out
