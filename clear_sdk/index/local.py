"""``VectorIndex``: the one-machine gallery index, composed of a store (:mod:`.store`) and a planner (:mod:`.planner`).

The store keeps the vectors, ids and metadata crash-safe on disk (or in memory); the planner keeps the
derived search structures (contiguous column blocks, reduced-precision scans, FAISS indexes, a numpy
mirror of the hot metadata) and picks the path of each search. :class:`VectorIndex` checks the inputs
once (:mod:`.base`, :mod:`.metadata`, :mod:`.where`), takes the lock, and tells the planner what changed.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clear_sdk.index.ann import ANN_TYPES
from clear_sdk.index.base import Columns, Hit, Ids, IndexBase, MetadataIn, Where, as_rows, check_columns, check_k
from clear_sdk.index.metadata import as_id_list, check_ids, check_remove, metadata_list
from clear_sdk.index.planner import ANN_AUTO_ROWS, SCAN_MIN_ROWS, SearchOptions, SearchPlanner, real_hits
from clear_sdk.index.scan import PRECISIONS, faiss_available, import_faiss
from clear_sdk.index.scan_int8 import onnx_available
from clear_sdk.index.store import VERIFY_ON_OPEN_MAX_BYTES, IndexStore
from clear_sdk.index.where import parse_where


def _options(backend: str, faiss_type: str, precision: str, **rest: Any) -> SearchOptions:
    """The checked search configuration (FAISS imported now when it is required: the install hint comes early)."""
    if backend not in ("auto", "numpy", "faiss"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'faiss', got {backend!r}")
    if faiss_type not in ("auto", *ANN_TYPES):
        raise ValueError(f"faiss_type must be 'auto', 'flat', 'ivf' or 'hnsw', got {faiss_type!r}")
    _check_precision(precision)
    if backend == "numpy" and faiss_type in ("ivf", "hnsw"):
        raise ValueError(f"faiss_type={faiss_type!r} is a FAISS index; use backend='faiss' or 'auto'")
    if backend == "numpy" and precision in ("fp16", "int8"):
        raise ValueError(f"precision={precision!r} scans in FAISS; use backend='faiss' or 'auto'")
    if backend == "faiss" or faiss_type in ("ivf", "hnsw") or precision in ("fp16", "int8"):
        import_faiss()
    if rest["block_rows"] < 1:
        raise ValueError(f"block_rows must be >= 1, got {rest['block_rows']}")
    return SearchOptions(
        backend="faiss" if backend == "faiss" or faiss_type in ("ivf", "hnsw") else "numpy",
        faiss_type=faiss_type, precision=precision, faiss_ok=backend != "numpy" and faiss_available(),
        int8_ok=backend != "numpy" and onnx_available(), **rest,
    )  # fmt: skip


def _check_store(dim: int | None, busy_timeout: float) -> None:
    """The vectors' width (None: the stored one) and how long a write waits for another writer's lock."""
    if dim is not None and (isinstance(dim, bool) or int(dim) != dim or dim < 1):
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    if not busy_timeout >= 0:
        raise ValueError(f"busy_timeout must be >= 0 seconds, got {busy_timeout}")


def _check_precision(precision: str) -> None:
    if precision not in ("auto", *PRECISIONS):
        raise ValueError(f"precision must be 'auto', 'fp32', 'fp16' or 'int8', got {precision!r}")


def _hits(scores: np.ndarray, rows: np.ndarray, md: dict[int, tuple[str, Any]]) -> list[list[Hit]]:
    """Per query, (id, score, metadata) of each row found (-1: none) whose metadata was read."""
    return [
        [(md[int(r)][0], float(s), dict(md[int(r)][1])) for s, r in zip(qs, qr) if r >= 0 and int(r) in md]
        for qs, qr in zip(scores, rows, strict=True)
    ]


class VectorIndex(IndexBase):
    """Embeddings with string ids and metadata; exact (or FAISS approximate) inner-product search; persistence.

    ``path=None`` keeps everything in memory; a directory path creates or reopens a persisted index
    (``dim=None`` takes the stored dimension). ``precision``: how exact search reads the vectors:
    ``"auto"`` (int8 with FAISS installed and at least ``SCAN_MIN_ROWS`` items, else fp32), ``"int8"``,
    ``"fp16"`` or ``"fp32"``; every precision returns the fp32 brute-force top k (reduced precision only
    shortlists). ``faiss_type``: ``"auto"`` (exact below ``ANN_AUTO_ROWS``, IVF above, when FAISS is
    installed), ``"flat"`` (always exact), ``"ivf"`` / ``"hnsw"`` (approximate by default; recall tuned by
    ``nprobe`` / ``ef_search``). ``backend="faiss"`` requires FAISS; ``"numpy"`` never uses it. FAISS
    structures are derived data, built at the first search that needs them and never saved.
    """

    def __init__(
        self,
        dim: int | None,
        path: str | os.PathLike | None = None,
        *,
        backend: Literal["auto", "numpy", "faiss"] = "auto",
        faiss_type: Literal["auto", "flat", "ivf", "hnsw"] = "auto",
        precision: Literal["auto", "fp32", "fp16", "int8"] = "auto",
        nlist: int | None = None,
        nprobe: int = 24,
        hnsw_m: int = 32,
        ef_search: int = 128,
        block_rows: int = 65536,
        busy_timeout: float = 30.0,
        verify: bool | None = None,
    ) -> None:
        o = _options(backend, faiss_type, precision, nlist=nlist, nprobe=nprobe, hnsw_m=hnsw_m,
                     ef_search=ef_search, block_rows=int(block_rows))  # fmt: skip
        _check_store(dim, busy_timeout)
        self.path = None if path is None else Path(path)
        self.backend, self.faiss_type, self.precision = o.backend, faiss_type, precision
        self.nlist, self.nprobe, self.hnsw_m, self.ef_search = nlist, nprobe, hnsw_m, ef_search
        self.block_rows, self.busy_timeout = o.block_rows, float(busy_timeout)
        self._store = IndexStore(self.path, dim, busy_timeout=self.busy_timeout, block_rows=o.block_rows)
        self._lock = self._store.lock
        self.dim = self._store.dim
        self._planner = SearchPlanner(self._store, o)
        small = self.dim * 4 * self._store.count <= VERIFY_ON_OPEN_MAX_BYTES
        if self.path is not None and (verify or (verify is None and small)):
            self.verify()

    @property
    def precisions(self) -> tuple[str, ...]:
        """The precisions exact search can use here (fp16 needs FAISS, int8 FAISS or onnx)."""
        return self._planner.o.precisions

    @property
    def read_only(self) -> bool:
        """Opened read-only (this process cannot write the folder): search works, writes raise."""
        return self._store.read_only

    def __repr__(self) -> str:
        where = "in memory" if self.path is None else str(self.path)
        return f"VectorIndex(dim={self.dim}, items={len(self)}, {where}, backend={self.backend!r})"

    # -------------------------------------------------------------------------------- writing

    def add(
        self, embeddings: np.ndarray, ids: Ids = None, metadata: MetadataIn = None, *, replace: bool = False
    ) -> list[str]:
        """Append embeddings [N, dim] with ids (uuid4 hex when None) and metadata dicts; returns the ids.

        All-or-nothing: a duplicate id, a bad value or a crash leaves the index as it was before the call.
        ``replace=True``: ids already in the index are replaced in the same transaction (a re-indexed track
        is never missing, nor there twice).
        """
        emb = as_rows(embeddings, self.dim, "embeddings").astype("<f4", copy=False)  # the on-disk byte order
        ids = check_ids(ids, len(emb))
        rows = metadata_list(metadata, len(emb))
        if not ids:
            return []
        with self._lock:
            self._store.check_open()
            first = self._store.add(emb, ids, rows, replace)
            self._planner.added(first, rows)
        return ids

    def remove(self, ids: Ids = None, *, where: Where = None, everything: bool = False) -> int:
        """Remove items by id (unknown ids are a KeyError), every item matching ``where``, or ``everything``.

        All-or-nothing and durable (one SQLite transaction). The vectors stay in ``vectors.f32`` as
        tombstones skipped by search; the space is not reclaimed (rebuild the index to compact it).
        """
        where = check_remove(ids, where, everything)
        clauses = parse_where(where) if where is not None else None
        with self._lock:
            self._store.check_open()
            return self._store.remove(as_id_list(ids) if ids is not None else None, clauses)

    def set_meta_default(self, key: str, value: str) -> str:
        with self._lock:
            self._store.check_open()
            return self._store.catalog.set_meta(key, value)

    def refresh(self) -> None:
        """Pick up items that another process added to (or removed from) the same directory."""
        with self._lock:
            self._store.check_open()
            self._store.refresh()
            self._planner.refreshed()

    def verify(self, start: int = 0) -> list[str]:
        """Check the stored vectors against the crc32 recorded with each add; returns the ids that fail.

        Rows that fail (changed on disk) are left out of every search from now on, with a warning.
        """
        with self._lock:
            self._store.check_open()
            return self._store.verify(start)

    def close(self) -> None:
        """Release the database and the memory map (idempotent)."""
        with self._lock:
            self._planner.close()
            self._store.close()

    # ---------------------------------------------------------------------------------- search

    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        where: Mapping[str, Any] | None = None,
        exclude: Iterable[str] | None = None,
        *,
        columns: Columns | None = None,
        precision: str | None = None,
        exact: bool | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> list[list[Hit]]:
        """Top-k items per query by inner product: one list of (id, score, metadata) per query.

        ``where`` filters on metadata before scoring; ``exclude``: ids never returned. ``columns=(c0, c1)``:
        the queries are zero outside those columns, so only they are read (AttributeSearcher passes its
        scorer's block). ``exact=False`` asks for the approximate index, ``True`` forbids it.
        """
        q = as_rows(queries, self.dim, "queries", rows="Q")
        k = check_k(k)
        cols = check_columns(columns, self.dim)
        if precision is not None:
            _check_precision(precision)
        clauses = parse_where(where) if where is not None else None  # a bad filter fails even on an empty index
        for attempt in (0, 1):
            with self._lock:
                self._store.check_open()
                try:
                    allowed = self._planner.allowed(clauses, exclude)
                    scores, rows = self._planner.search(q, cols, k, allowed, bool(clauses), precision, exact,
                                                        nprobe, ef_search)  # fmt: skip
                    rows = real_hits(scores, rows, self._store.view())
                    md = self._store.catalog.metadata_by_row([int(r) for r in rows.ravel() if r >= 0])
                except sqlite3.OperationalError as exc:
                    raise self._store.catalog.busy(exc, "searching") from exc
                if attempt == 0 and any(int(r) not in md for r in rows.ravel() if r >= 0):
                    self.refresh()  # another process removed some of these items: search what is there now
                    continue
            break
        return _hits(scores, rows, md)

    def build_ann(self, kind: str | None = None, columns: Columns | None = None) -> None:
        """Build (or extend) the approximate index for ``columns`` now instead of at the first search."""
        kind = kind or (self.faiss_type if self.faiss_type in ("ivf", "hnsw") else "ivf")
        with self._lock:
            self._store.check_open()
            self._planner.ann(kind, check_columns(columns, self.dim))

    def memory_per_item(self) -> dict[str, float]:
        """Bytes per item of each structure in memory now (the fp32 master is on disk unless in memory)."""
        return self._planner.memory_per_item()

    # -------------------------------------------------------------------------------- reading

    def _read(self, fn: Any, *args: Any) -> Any:
        with self._lock:
            self._store.check_open()
            try:
                return fn(*args)
            except sqlite3.OperationalError as exc:
                raise self._store.catalog.busy(exc, "reading metadata") from exc

    @property
    def ids(self) -> list[str]:
        """Ids of the items, in insertion order."""
        return self._read(self._store.catalog.ids)

    @property
    def corrupt_ids(self) -> list[str]:
        """Ids whose vectors failed :meth:`verify` (left out of search)."""
        rows = np.flatnonzero(self._store.corrupt).tolist()
        return [i for i, _ in self._read(self._store.catalog.metadata_by_row, rows).values()]

    def select(self, where: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(id, metadata) of every item that matches a ``where`` filter (as in :meth:`search`), in add order."""
        clauses = parse_where(where)

        def run() -> list[tuple[str, dict[str, Any]]]:
            rows = self._store.catalog.matching(clauses).tolist()
            md = self._store.catalog.metadata_by_row(rows)
            return [md[r] for r in rows]

        return self._read(run)

    def get_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored embeddings of ``ids`` (float32 [len(ids), dim]; unknown ids are a KeyError)."""
        return self._read(
            lambda: np.array(self._store.view()[self._store.catalog.rows_of(as_id_list(ids))], np.float32)
        )

    def get_metadata(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Metadata dicts of ``ids`` (unknown ids are a KeyError naming them)."""
        catalog = self._store.catalog

        def run() -> list[dict[str, Any]]:
            rows = catalog.rows_of(as_id_list(ids)).tolist()
            md = catalog.metadata_by_row(rows)
            return [md[r][1] for r in rows]

        return self._read(run)

    def get_meta(self, key: str) -> str | None:
        """A value of the index's own key-value table (``meta``), or None."""
        return self._read(self._store.catalog.get_meta, key)

    def time_span(self) -> tuple[float, float] | None:
        """(earliest, latest) timestamp of the items, or None when none has one."""
        return self._read(self._store.catalog.time_span)

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and bool(self._read(self._store.catalog.id_rows, [item_id]))

    def __len__(self) -> int:
        with self._lock:
            return len(self._store)

    # ------------------------------------------------------- the planner's caches, for tests and benchmarks

    @property
    def _scans(self) -> dict:
        return self._planner.scans

    def _scan(self, precision: str, cols: Columns) -> Any:
        return self._planner.scan(precision, cols)

    def _vectors(self) -> np.ndarray:
        return self._store.view()


__all__ = ["ANN_AUTO_ROWS", "SCAN_MIN_ROWS", "VectorIndex"]
