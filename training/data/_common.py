"""Helpers shared by the dataset loaders: MATLAB files, label checks, image spot checks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import DatasetError, PARDataset, Record


def load_mat(path: Path) -> dict[str, Any]:
    """``scipy.io.loadmat`` with errors that name the file (scipy is imported here, not at package import)."""
    try:
        import scipy.io
    except ImportError as e:  # pragma: no cover - scipy is in the [train] extra
        raise ImportError("reading .mat annotations needs scipy: pip install 'clear-sdk[train]'") from e
    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError as e:  # MATLAB v7.3 (HDF5) files
        raise DatasetError(f"{path} is a MATLAB v7.3 (HDF5) file; re-save it with MATLAB's -v7 flag") from e
    except (ValueError, OSError) as e:
        raise DatasetError(f"{path} is not a readable MATLAB .mat file ({e})") from e


def mat_str(x: Any) -> str:
    """One MATLAB string as scipy returns it inside a cell (``array(['name'])``, nested any depth)."""
    while isinstance(x, np.ndarray):
        if x.size != 1:
            if x.dtype.kind == "U" and x.size == 0:
                return ""
            raise ValueError(f"expected one string, got an array of shape {x.shape}")
        x = x.reshape(-1)[0]
    return str(x)


def cellstr(cell: np.ndarray) -> list[str]:
    """A MATLAB cell array of strings (any shape, e.g. (N,1) or (1,N)) as a Python list."""
    return [mat_str(c) for c in np.asarray(cell, dtype=object).reshape(-1)]


def struct_get(struct: np.ndarray, field: str, where: str) -> Any:
    """A field of a (1,1) MATLAB struct, unwrapped from scipy's nesting, or a DatasetError naming it."""
    s = struct
    while isinstance(s, np.ndarray) and s.dtype.names is None and s.size == 1 and s.dtype == object:
        s = s.reshape(-1)[0]
    names = getattr(getattr(s, "dtype", None), "names", None)
    if not names or field not in names:
        raise DatasetError(f"{where}: no field {field!r} (fields: {', '.join(names or [])})")
    value = s[field]
    if isinstance(value, np.ndarray) and value.dtype.names is None and value.size == 1 and value.dtype == object:
        value = value.reshape(-1)[0]
    return value


def one_based_index(x: Any, n: int, where: str) -> np.ndarray:
    """A MATLAB 1-based index vector as 0-based int64, range-checked against ``n``."""
    idx = np.asarray(x).reshape(-1).astype(np.int64) - 1
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise DatasetError(f"{where}: index out of range 1..{n} (got {idx.min() + 1}..{idx.max() + 1})")
    return idx


def binary_labels(labels: np.ndarray, where: str, uncertain_as_zero: bool = False) -> np.ndarray:
    """Labels as contiguous uint8 0/1; value 2 (uncertain in RAP/Rethinking pkl files) becomes 0 when allowed."""
    lab = np.asarray(labels)
    if uncertain_as_zero:
        lab = np.where(lab == 2, 0, lab)
    bad = ~np.isin(lab, (0, 1))
    if bad.any():
        vals = np.unique(lab[bad])[:5].tolist()
        raise DatasetError(f"{where}: labels must be 0/1, found {vals}")
    return np.ascontiguousarray(lab, dtype=np.uint8)


def check_names(
    found: Sequence[str], expected: Sequence[str], where: str, aliases: dict[str, str] | None = None
) -> None:
    """The file's attribute names must match the packaged schema (same order), else training mislabels silently."""
    aliases = aliases or {}

    def norm(s: str) -> str:
        s = s.strip().lower()
        return aliases.get(s, s)

    if len(found) != len(expected) or [norm(a) for a in found] != [norm(a) for a in expected]:
        diff = [(i, f, e) for i, (f, e) in enumerate(zip(found, expected, strict=False)) if norm(f) != norm(e)]
        raise DatasetError(
            f"{where}: attribute names do not match the clear-sdk schema "
            f"({len(found)} found, {len(expected)} expected; first differences (index, file, schema): {diff[:5]}). "
            "Is this the right file for this dataset?"
        )


def make_records(
    image_dir: Path, names: Sequence[str], labels: np.ndarray, index: np.ndarray | None = None
) -> list[Record]:
    """Records for ``names[i]``/``labels[i]`` over ``index`` (all rows when None)."""
    rows = range(len(names)) if index is None else index.tolist()
    return [Record(str(image_dir / names[i]), labels[i]) for i in rows]


def spot_check_images(ds: PARDataset, hint: str = "") -> None:
    """Check that the first image of every split exists.

    Checking all files (19,000 PETA or 100,000 PA100K stat calls) costs seconds on network disks at
    every start; the first image per split catches the usual mistakes (wrong folder, wrong extension,
    wrong root) immediately. A single missing file later fails when the trainer decodes it.
    """
    for split, recs in ds.splits.items():
        if recs and not Path(recs[0].path).is_file():
            raise DatasetError(
                f"{ds.name}: image {recs[0].path} (first of split {split!r}) does not exist. "
                f"{hint or 'Check that --root is the dataset folder.'} Get the dataset from {ds.homepage}."
            )


def mat_struct(mat_path: Path, variable: str, dataset: str) -> np.ndarray:
    """The annotation struct ``variable`` of a PETA/RAPv2-style ``.mat`` file; an error naming the file otherwise."""
    mat = load_mat(mat_path)
    if variable not in mat:
        raise DatasetError(f"{mat_path}: no variable {variable!r}; is this {dataset}'s annotation file?")
    return mat[variable]


def partition_indices(
    struct: np.ndarray, field: str, partition: int, count: int, n: int, where: str, key: str = "{split}"
) -> dict[str, np.ndarray]:
    """0-based train/val/test (and trainval) row indices of one of the ``count`` random partitions.

    PETA and RAPv2 store them alike: ``struct.<field>`` holds ``count`` structs whose fields (named by
    ``key``, e.g. ``"{split}_index"``) are 1-based index vectors into the ``n`` images.
    """
    parts = np.asarray(struct_get(struct, field, where), dtype=object).reshape(-1)
    if parts.size != count:
        raise DatasetError(f"{where}: expected {count} partitions in {field}, found {parts.size}")
    pwhere = f"{where} {field}[{partition}]"
    idx = {
        s: one_based_index(struct_get(parts[partition], key.format(split=s), pwhere), n, pwhere)
        for s in ("train", "val", "test")
    }
    idx["trainval"] = np.concatenate([idx["train"], idx["val"]])
    return idx
