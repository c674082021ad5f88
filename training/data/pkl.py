"""``dataset_all.pkl`` files written by the Rethinking_of_PAR preprocessing scripts.

Many PAR projects (Rethinking_of_PAR, PromptPAR, the UPAR baseline) ship their splits as one
pickled ``EasyDict`` with ``image_name`` (N), ``label`` (N × A_raw, 2 = uncertain, read as 0),
``attr_name`` (A_raw), ``partition`` (``train``/``val``/``trainval``/``test``: an index array, or a
list with one per random partition, whose entries may themselves be lists of index arrays, as in
UPAR's per-sub-dataset test sets), ``label_idx.eval`` (the evaluated columns, in evaluation order;
absent in zero-shot files, where every column is evaluated) and ``root`` (the image folder on the
machine that made it).

Unpickling runs code named by the file, so this loader uses :class:`SafeUnpickler`, which
reconstructs only numpy arrays/scalars/dtypes, builtin containers and ``easydict.EasyDict`` (read as a
plain dict, so ``easydict`` need not be installed) and refuses everything else.

Images are looked up in ``image_root`` when given; otherwise in the pkl's ``root`` when that folder
exists (a relative ``root`` is taken relative to the pkl's folder); otherwise in ``root``.
"""

from __future__ import annotations

import codecs
import collections
import copyreg
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from clear_sdk.schema import GROUP_ORDER, list_schemas, load_schema

from ._common import binary_labels, spot_check_images
from .base import DatasetError, PARDataset, Record, register_dataset

SPLITS = ("train", "val", "trainval", "test")


class _EasyDict(dict):
    """Stand-in for ``easydict.EasyDict`` while unpickling.

    The pickle restores the items (its ``__dict__`` copy of them lands in this instance's ``__dict__``
    and is dropped by :func:`_plain`).
    """


def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    found: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core", "numpy._core"):  # pickles name the module of the numpy that wrote them
        found[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        found[(f"{mod}.multiarray", "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):  # protocol-5 arrays
            found[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    return found


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {}
    for mod in ("builtins", "__builtin__"):  # protocol <= 2 pickles say __builtin__
        for cls in (dict, list, tuple, set, frozenset, bytearray, bytes, str, int, float, bool, complex):
            allowed[(mod, cls.__name__)] = cls
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    allowed[("_codecs", "encode")] = codecs.encode  # how protocol 2 stores bytes
    # protocol 0/1 objects: _reconstructor(cls, base, state); cls and base pass through find_class too.
    allowed[("copyreg", "_reconstructor")] = copyreg._reconstructor
    allowed[("copy_reg", "_reconstructor")] = copyreg._reconstructor
    allowed[("easydict", "EasyDict")] = _EasyDict
    allowed.update(_numpy_globals())
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that can build data (numpy arrays, containers, EasyDict) but never call other code."""

    _ALLOWED = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} from a pickle: only numpy arrays, builtin containers and "
                "easydict.EasyDict are allowed in a dataset file (loading anything else could run arbitrary code)"
            ) from None


def safe_load(data: bytes | io.BufferedIOBase) -> Any:
    """Unpickle with :class:`SafeUnpickler`; EasyDicts come back as plain dicts."""
    f = io.BytesIO(data) if isinstance(data, bytes) else data
    return _plain(SafeUnpickler(f, encoding="latin1").load())


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def _is_index_vector(x: Any) -> bool:
    """An index array or a flat list of ints (as opposed to a list of per-partition index arrays)."""
    if isinstance(x, np.ndarray):
        return x.dtype != object
    return isinstance(x, (list, tuple)) and all(isinstance(v, (int, np.integer)) for v in x)


def infer_groups(attributes: list[str]) -> dict[str, list[str]]:
    """Groups for attribute names taken from a file, by looking each name up in the packaged schemas.

    Names found in no schema go to ``other``; the first schema (alphabetically) that knows a name wins.
    """
    lookup: dict[str, str] = {}
    for schema_name in list_schemas():
        schema = load_schema(schema_name)
        for group, names in schema.groups.items():
            for a in names:
                lookup.setdefault(a, group)
    groups: dict[str, list[str]] = {g: [] for g in GROUP_ORDER}
    for a in attributes:
        groups[lookup.get(a, "other")].append(a)
    return {g: names for g, names in groups.items() if names}


@register_dataset("pkl")
class PicklePAR(PARDataset):
    name = "pkl"
    homepage = "https://github.com/valencebond/Rethinking_of_PAR (its dataset/preprocess scripts write the pkl)"

    def __init__(
        self,
        root: str | Path,
        pkl_path: str | Path | None = None,
        partition: int = 0,
        image_root: str | Path | None = None,
    ) -> None:
        super().__init__(root)
        if not isinstance(partition, int) or partition < 0:
            raise ValueError(f"pkl: partition must be an int >= 0, got {partition!r}")
        self.partition = partition
        # pkl_path is an ordinary path (relative to the working directory), the default lives in root.
        self.pkl_path = self.root / "dataset_all.pkl" if pkl_path is None else Path(pkl_path).expanduser()
        if not self.pkl_path.is_file():
            raise DatasetError(
                f"pkl: {self.pkl_path} does not exist. Make it with the Rethinking_of_PAR preprocessing script for "
                f"your dataset ({self.homepage}), or pass pkl_path=."
            )
        try:
            with self.pkl_path.open("rb") as f:
                info = safe_load(f)
        except pickle.UnpicklingError as e:
            raise DatasetError(f"pkl: cannot load {self.pkl_path}: {e}") from e
        if not isinstance(info, dict):
            raise DatasetError(f"pkl: {self.pkl_path} holds a {type(info).__name__}, expected a dict/EasyDict")
        missing = [k for k in ("image_name", "label", "attr_name", "partition") if k not in info]
        if missing:
            raise DatasetError(f"pkl: {self.pkl_path} lacks keys {missing}; it has {sorted(info)}")

        names = [str(n) for n in np.asarray(info["image_name"], dtype=object).reshape(-1)]
        raw_attr = [str(a) for a in np.asarray(info["attr_name"], dtype=object).reshape(-1)]
        label = np.asarray(info["label"])
        if label.shape != (len(names), len(raw_attr)):
            raise DatasetError(
                f"pkl: label has shape {label.shape}, expected ({len(names)}, {len(raw_attr)}) = (images, attr_name)"
            )
        eval_idx = list(range(len(raw_attr)))
        label_idx = info.get("label_idx")
        if isinstance(label_idx, dict) and label_idx.get("eval") is not None:
            eval_idx = [int(i) for i in np.asarray(label_idx["eval"]).reshape(-1)]
        self.attributes = [raw_attr[i] for i in eval_idx]
        self.groups = infer_groups(self.attributes)
        labels = binary_labels(label[:, eval_idx], f"{self.pkl_path} label", uncertain_as_zero=True)

        self.image_root = self._image_root(image_root, info.get("root"))
        parts = info["partition"]
        if not isinstance(parts, dict):
            raise DatasetError(f"pkl: partition is a {type(parts).__name__}, expected a dict of splits")
        for split, value in parts.items():
            if split not in SPLITS:
                continue
            idx = self._indices(split, value, len(names))
            self.splits[split] = [Record(str(self.image_root / names[i]), labels[i]) for i in idx.tolist()]
        if not self.splits:
            raise DatasetError(f"pkl: partition has none of {SPLITS}; it has {sorted(parts)}")
        spot_check_images(self, hint=f"Images are read from {self.image_root}; pass image_root= to change it.")

    def _indices(self, split: str, value: Any, n: int) -> np.ndarray:
        if not _is_index_vector(value):
            seq = list(value)
            if self.partition >= len(seq):
                raise ValueError(f"pkl: partition {self.partition} out of range; this file has {len(seq)} ({split})")
            value = seq[self.partition]
            if not _is_index_vector(value):  # e.g. UPAR test: one index array per sub-dataset
                value = np.concatenate([np.asarray(v).reshape(-1) for v in value])
        elif self.partition != 0:
            raise ValueError(f"pkl: this file has a single partition for {split!r}; use partition=0")
        idx = np.asarray(value).reshape(-1).astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise DatasetError(f"pkl: partition {split!r} indexes outside 0..{n - 1}")
        return idx

    def _image_root(self, image_root: str | Path | None, pkl_root: Any) -> Path:
        if image_root is not None:
            return Path(image_root).expanduser()
        if isinstance(pkl_root, str) and pkl_root:
            candidate = self.pkl_path.parent / Path(pkl_root).expanduser()
            if candidate.is_dir():
                return candidate
        return self.root
