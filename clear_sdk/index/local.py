"""``VectorIndex``: the one-machine gallery index (the store of :mod:`.store` + exact / FAISS search).

Search paths, all behind :meth:`VectorIndex.search`:

- exact fp32: numpy blocked top-k (:mod:`.topk`), no dependency beyond numpy;
- exact int8 (the default above ``SCAN_MIN_ROWS``): an onnxruntime int8 scan of only the columns the
  query uses with per-row error bounds, an fp32 re-rank and a proof that the top k equals fp32 brute
  force (:mod:`.scan_int8`); fp16 (and int8 without the ``onnx`` package) scan in FAISS (:mod:`.scan`);
- approximate (``faiss_type="ivf" | "hnsw"``, or ``"auto"`` above ``ANN_AUTO_ROWS``): :mod:`.ann`.

``where`` filters are evaluated on a numpy mirror of camera / timestamp / track (SQLite for the
other keys); a filter that keeps few rows scores those rows exactly in fp32, one that keeps many
runs the reduced-precision scan with the filter as a FAISS selector, so a selective filter is never
slower than none.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clear_sdk.index.ann import ANN_TYPES, AnnIndex
from clear_sdk.index.metadata import Metadata, retention_where
from clear_sdk.index.scan import PRECISIONS, ScanCache, faiss_available, import_faiss
from clear_sdk.index.scan import _threads as scan_threads
from clear_sdk.index.scan_int8 import Int8Scan, onnx_available
from clear_sdk.index.store import VERIFY_ON_OPEN_MAX_BYTES, IndexStore
from clear_sdk.index.topk import as_rows, topk_inner_product
from clear_sdk.index.where import SQL_CHUNK as _SQL_CHUNK
from clear_sdk.index.where import ColumnMirror, parse_where, to_sql

#: Below this many rows the fp32 numpy scan is as fast as any other: no reduced-precision copy is made.
SCAN_MIN_ROWS = 20_000
#: ``faiss_type="auto"`` switches to IVF above this many rows. Measured (bench_search.py, 1M x 256, 2 cores):
#: the exact int8 scan costs ~20-45 ns per item (21-45 ms at 1M, by how busy the machine is) and IVF
#: nprobe=24 2.6-4 ms at recall@10 0.987, so past 2M items an exact lone query nears 100 ms, where
#: approximate search starts to pay for its recall.
ANN_AUTO_ROWS = 2_000_000
#: ``precision="auto"`` scans a batch of more queries than this in fp32: the reduced-precision scans run one
#: query at a time (20-45 ms each at 1M), one BLAS product serves a whole batch (1M x 256, 2 cores: 6-12 ms
#: per query in batches of 100).
_REDUCED_MAX_QUERIES = 2
#: A filter keeping at most this fraction of the rows scores them directly (fp32 gather) instead of scanning.
_GATHER_MAX_FRACTION = 0.05

Columns = tuple[int, int]


class VectorIndex(IndexStore):
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
        if backend not in ("auto", "numpy", "faiss"):
            raise ValueError(f"backend must be 'auto', 'numpy' or 'faiss', got {backend!r}")
        if faiss_type not in ("auto", *ANN_TYPES):
            raise ValueError(f"faiss_type must be 'auto', 'flat', 'ivf' or 'hnsw', got {faiss_type!r}")
        if precision not in ("auto", *PRECISIONS):
            raise ValueError(f"precision must be 'auto', 'fp32', 'fp16' or 'int8', got {precision!r}")
        if backend == "numpy" and faiss_type in ("ivf", "hnsw"):
            raise ValueError(f"faiss_type={faiss_type!r} is a FAISS index; use backend='faiss' or 'auto'")
        if backend == "numpy" and precision in ("fp16", "int8"):
            raise ValueError(f"precision={precision!r} scans in FAISS; use backend='faiss' or 'auto'")
        if backend == "faiss" or faiss_type in ("ivf", "hnsw") or precision in ("fp16", "int8"):
            import_faiss()  # fail now, with the install hint, rather than at the first search
        self._faiss_ok = backend != "numpy" and faiss_available()
        self._int8_ok = backend != "numpy" and onnx_available()  # the onnxruntime int8 scan (no FAISS needed)
        if dim is not None and (isinstance(dim, bool) or int(dim) != dim or dim < 1):
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, got {block_rows}")
        if not busy_timeout >= 0:
            raise ValueError(f"busy_timeout must be >= 0 seconds, got {busy_timeout}")
        self.busy_timeout = float(busy_timeout)
        self.backend = "faiss" if backend == "faiss" or faiss_type in ("ivf", "hnsw") else "numpy"
        self.faiss_type = faiss_type
        self.precision = precision
        self.nlist, self.nprobe, self.hnsw_m, self.ef_search = nlist, nprobe, hnsw_m, ef_search
        self.block_rows = int(block_rows)
        self.path = None if path is None else Path(path)
        self._scans: dict[tuple[str, int, int], ScanCache | Int8Scan] = {}
        self._blocks: dict[Columns, np.ndarray] = {}  # contiguous fp32 copies of a scorer's columns
        self._anns: dict[tuple[str, int, int], AnnIndex] = {}
        self._mirror: ColumnMirror | None = None
        self._excluded_cache: np.ndarray | None = None
        self._open_store(dim)
        if self.path is not None:
            size = self._count * self.dim * 4
            if verify or (verify is None and size <= VERIFY_ON_OPEN_MAX_BYTES):
                self.verify()

    @property
    def precisions(self) -> tuple[str, ...]:
        """The precisions exact search can use here (int8 / fp16 need FAISS)."""
        if self._faiss_ok:
            return PRECISIONS
        return ("fp32", "int8") if self._int8_ok else ("fp32",)

    def __repr__(self) -> str:
        where = "in memory" if self.path is None else str(self.path)
        return f"VectorIndex(dim={self.dim}, items={len(self)}, {where}, backend={self.backend!r})"

    # ------------------------------------------------------------------- keeping derived data in step

    def _after_add(self, first_row: int, rows_md: list[Metadata]) -> None:
        self._excluded_cache = None
        if self._mirror is not None and self._mirror.rows == first_row:
            cams, ts, tracks = zip(*(m[:3] for m in rows_md)) if rows_md else ((), (), ())
            self._mirror.extend(first_row, cams, ts, tracks)

    def _after_remove(self, rows: np.ndarray) -> None:
        self._excluded_cache = None

    def _after_refresh(self) -> None:
        self._excluded_cache = None
        if any(len(b) > self._count for b in self._blocks.values()):
            self._blocks.clear()
        if self._mirror is not None and self._mirror.rows > self._count:
            self._mirror = None

    def _after_close(self) -> None:
        for cache in self._scans.values():
            cache.close()
        self._scans.clear()
        self._anns.clear()
        self._blocks.clear()

    def verify(self, start: int = 0) -> list[str]:
        self._excluded_cache = None
        return super().verify(start)

    def _excluded(self) -> np.ndarray:
        """Bool mask over rows [0, count) that search must skip (removed or corrupt); cached between changes."""
        ex = self._excluded_cache
        if ex is None or len(ex) != self._count:
            ex = np.zeros(self._count, dtype=bool)
            if self._alive is not None:
                ex[: len(self._alive)] |= ~self._alive[: self._count]
            if self._corrupt.any():
                n = min(len(self._corrupt), self._count)
                ex[:n] |= self._corrupt[:n]
            self._excluded_cache = ex
        return ex

    # ------------------------------------------------------------------------------------- search

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
    ) -> list[list[tuple[str, float, dict[str, Any]]]]:
        """Top-k items per query by inner product: one list of (id, score, metadata) per query.

        ``where`` filters on metadata before scoring (``{"camera": "c1"}``, ``{"camera": ["c1", "c2"]}``,
        ``{"timestamp": (t0, t1)}``, ``{"extra.zone": "A"}``); ``exclude`` is a collection of ids never
        returned. ``columns=(c0, c1)``: the queries are zero outside those columns, so only they are read
        (AttributeSearcher passes its scorer's block). ``exact=False`` asks for the approximate index,
        ``True`` forbids it. Fewer than k results when fewer items match.
        """
        q = as_rows(queries, self.dim, "queries", rows="Q")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        c0, c1 = self._check_columns(columns)
        if precision is not None and precision not in ("auto", *PRECISIONS):
            raise ValueError(f"precision must be 'auto', 'fp32', 'fp16' or 'int8', got {precision!r}")
        clauses = parse_where(where) if where is not None else None  # a bad filter fails even on an empty index
        for attempt in (0, 1):
            with self._lock:
                self._check_open()
                try:
                    scores, rows = self._search_rows(q, (c0, c1), int(k), clauses, exclude, precision, exact,
                                                     nprobe, ef_search)  # fmt: skip
                    rows = self._hits(scores, rows)
                    md = self._metadata_by_row([int(r) for r in rows.ravel() if r >= 0])
                except sqlite3.OperationalError as exc:
                    raise self._busy(exc, "searching") from exc
                if attempt == 0 and any(int(r) not in md for r in rows.ravel() if r >= 0):
                    self.refresh()  # another process removed some of these items: search what is there now
                    continue
            break
        return [
            [(md[int(r)][0], float(s), dict(md[int(r)][1])) for s, r in zip(qs, qr) if r >= 0 and int(r) in md]
            for qs, qr in zip(scores, rows, strict=True)
        ]

    def _hits(self, scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``rows`` with -1 where the score marks no hit: NaN / -inf from a corrupt stored row, never from a finite
        vector whose fp32 score overflowed to +-inf (that is a real hit)."""
        odd = ~np.isfinite(scores) & (rows >= 0)
        if not odd.any():
            return rows
        rows = rows.copy()
        vectors = self._vectors()
        for i, j in zip(*np.nonzero(odd)):
            if np.isnan(scores[i, j]) or not np.isfinite(vectors[rows[i, j]]).all():
                rows[i, j] = -1
        return rows

    def _check_columns(self, columns: Columns | None) -> Columns:
        if columns is None:
            return 0, self.dim
        c0, c1 = (columns.start or 0, columns.stop or self.dim) if isinstance(columns, slice) else columns
        if not (0 <= int(c0) < int(c1) <= self.dim):
            raise ValueError(f"columns must be (start, stop) with 0 <= start < stop <= {self.dim}, got {columns!r}")
        return int(c0), int(c1)

    def _allowed(self, clauses: list | None, exclude: Iterable[str] | None) -> np.ndarray | None:
        """Bool mask of the rows search may return (None: all of them)."""
        mask = None
        ex = self._excluded()
        if ex.any():
            mask = ~ex
        if exclude is not None:
            ex_ids = [exclude] if isinstance(exclude, str) else list(exclude)
            mask = np.ones(self._count, dtype=bool) if mask is None else mask
            for i in range(0, len(ex_ids), _SQL_CHUNK):
                chunk = ex_ids[i : i + _SQL_CHUNK]
                rows = self._fetch_rows(f"SELECT row FROM items WHERE id IN ({','.join('?' * len(chunk))})", chunk)
                mask[rows[rows < self._count]] = False
        if clauses:
            mirrored = [c for c in clauses if c.key in ColumnMirror.MIRRORED]
            other = [c for c in clauses if c.key not in ColumnMirror.MIRRORED]
            keep = np.ones(self._count, dtype=bool)
            if mirrored:
                if self._mirror is None:
                    self._mirror = ColumnMirror()
                self._mirror.load(self._db, self._count)
                keep &= self._mirror.mask(mirrored)[: self._count]
            if other:
                cond, params = to_sql(other)
                sel = np.zeros(self._count, dtype=bool)
                rows = self._fetch_rows(f"SELECT row FROM items WHERE {cond}", params)
                sel[rows[rows < self._count]] = True
                keep &= sel
            mask = keep if mask is None else mask & keep
        return mask

    def _search_rows(
        self,
        q: np.ndarray,
        cols: Columns,
        k: int,
        clauses: list | None,
        exclude: Iterable[str] | None,
        precision: str | None,
        exact: bool | None,
        nprobe: int | None,
        ef_search: int | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        # every path reads only the scorer's columns: fp32 from a contiguous in-memory copy of them (one
        # BLAS product per block), the reduced-precision scans from their own copies
        vectors = self._vectors()
        q = np.ascontiguousarray(q[:, cols[0] : cols[1]])
        master = vectors[:, cols[0] : cols[1]]
        allowed = self._allowed(clauses, exclude)
        n_allowed = self._count if allowed is None else int(allowed.sum())
        empty = (np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64))
        if n_allowed == 0:
            return empty
        ann = self._ann_kind(exact, bool(clauses))
        if ann is not None:
            index = self._ann(ann, cols)
            nprobe, ef_search = nprobe or self.nprobe, ef_search or self.ef_search
            return index.search(q, k, master, allowed, nprobe=nprobe, ef_search=ef_search)
        if allowed is not None and n_allowed <= _GATHER_MAX_FRACTION * self._count:  # few rows: score them all
            block = self._block(cols) if self._blocks.get(cols) is not None else master
            return topk_inner_product(q, block, k, rows=np.flatnonzero(allowed), block_rows=self.block_rows)
        prec = self._precision(precision)
        if prec != "fp32" and (precision or self.precision) == "auto" and len(q) > _REDUCED_MAX_QUERIES:
            prec = "fp32"  # a batch: one BLAS product reads the fp32 block once for all queries
        if prec != "fp32":
            cache = self._scan(prec, cols)
            s, r, proven = cache.search(q, k, master, allowed, n_allowed)
            if proven.all():
                return s, r
            # not proven (very many near-equal scores): the fp32 scan answers those queries
            todo = np.flatnonzero(~proven)
            s2, r2 = self._fp32(q[todo], self._block(cols), k, allowed)
            s[todo, : s2.shape[1]], r[todo, : r2.shape[1]] = s2, r2
            return s, r
        return self._fp32(q, self._block(cols), k, allowed)

    def _fp32(self, q: np.ndarray, master: np.ndarray, k: int, allowed: np.ndarray | None):
        if allowed is None:
            return topk_inner_product(q, master, k, block_rows=self.block_rows)
        n_ex = self._count - int(allowed.sum())
        if n_ex > 4096:
            return topk_inner_product(q, master, k, rows=np.flatnonzero(allowed), block_rows=self.block_rows)
        # a few excluded rows: ask for k + their number and drop them
        scores, rows = topk_inner_product(q, master, k + n_ex, block_rows=self.block_rows)
        keep = allowed[np.maximum(rows, 0)] & (rows >= 0)
        out_s = np.full((len(q), min(k, scores.shape[1])), -np.inf, np.float32)
        out_r = np.full(out_s.shape, -1, np.int64)
        for i in range(len(q)):
            s, r = scores[i][keep[i]][:k], rows[i][keep[i]][:k]
            out_s[i, : len(s)], out_r[i, : len(r)] = s, r
        return out_s, out_r

    def _block(self, cols: Columns) -> np.ndarray:
        """Columns ``cols`` of every committed row as one C-contiguous fp32 array (built once, extended on add).

        Scanning a column slice of the [N, dim] memory map made BLAS copy strided blocks at every query;
        the copy costs 4 B per item per column and makes a lone fp32 query one contiguous GEMV per block.
        """
        block = self._blocks.get(cols)
        n = 0 if block is None else len(block)
        if n < self._count:
            new = np.asarray(self._vectors()[n : self._count, cols[0] : cols[1]], dtype=np.float32)
            new = np.array(new, dtype=np.float32)
            new[~np.isfinite(new).all(axis=1)] = np.nan  # a corrupt row scores NaN: ranked last, never returned
            block = np.ascontiguousarray(new if block is None else np.concatenate((block, new)))
            self._blocks[cols] = block
        assert block is not None
        return block

    def _precision(self, precision: str | None) -> str:
        p = precision or self.precision
        if p == "auto":
            fast = self._int8_ok or self._faiss_ok
            return "int8" if fast and self._count >= SCAN_MIN_ROWS else "fp32"
        if p == "int8" and self._int8_ok:
            return p
        if p != "fp32" and not self._faiss_ok:
            import_faiss()  # the install hint
        return p

    def _ann_kind(self, exact: bool | None, filtered: bool) -> str | None:
        kind = self.faiss_type
        if kind == "auto":
            kind = "ivf" if self._faiss_ok and self._count >= ANN_AUTO_ROWS else "flat"
        if self.backend == "faiss" and kind == "flat" and exact is not False:
            return "flat" if not filtered else None  # backend="faiss": FAISS's exact IndexFlatIP
        if exact is False:  # approximate on request: the configured type, else one built by build_ann(), else IVF
            if kind in ("ivf", "hnsw"):
                return kind
            return next((t for (t, _, _) in self._anns if t != "flat"), "ivf")
        if exact is True or filtered or kind == "flat":
            return None  # filters are exact: they may keep rows an approximate index would never visit
        return kind

    def _scan(self, precision: str, cols: Columns) -> ScanCache:
        key = (precision, *cols)
        cache = self._scans.get(key)
        vectors = self._vectors()
        if cache is None and precision == "int8" and self._int8_ok:
            cache = self._scans[key] = Int8Scan(*cols, threads=scan_threads())
        if cache is None:
            sample = np.asarray(vectors[:: max(1, self._count // 65536), cols[0] : cols[1]], dtype=np.float32)
            cache = self._scans[key] = ScanCache(precision, *cols, np.where(np.isfinite(sample), sample, 0))
        cache.extend(vectors, self._count)
        return cache

    def _ann(self, kind: str, cols: Columns) -> AnnIndex:
        key = (kind, *cols)
        index = self._anns.get(key)
        if index is None:
            index = self._anns[key] = AnnIndex(kind, *cols, self._vectors(), self._count, nlist=self.nlist,
                                               hnsw_m=self.hnsw_m)  # fmt: skip
        index.extend(self._vectors(), self._count)
        return index

    def build_ann(self, kind: str | None = None, columns: Columns | None = None) -> None:
        """Build (or extend) the approximate index for ``columns`` now instead of at the first search."""
        kind = kind or (self.faiss_type if self.faiss_type in ("ivf", "hnsw") else "ivf")
        with self._lock:
            self._check_open()
            self._ann(kind, self._check_columns(columns))

    def memory_per_item(self) -> dict[str, float]:
        """Bytes per item of each structure in memory now (the fp32 master is on disk unless in memory)."""
        out = {"fp32_master": 4.0 * self.dim if self.path is None else 0.0}
        out.update({f"scan_{p}_{c0}:{c1}": float(s.bytes_per_row) for (p, c0, c1), s in self._scans.items()})
        out.update({f"ann_{t}_{c0}:{c1}": float(a.bytes_per_item) for (t, c0, c1), a in self._anns.items()})
        return out

    # --------------------------------------------------------------------------------- retention

    def remove_older_than(self, seconds: float, now: float | None = None) -> int:
        """Retention: remove every item whose timestamp is more than ``seconds`` before ``now``; returns how many.

        Items without a timestamp are kept. One transaction, like :meth:`remove`.
        """
        return self.remove(where=retention_where(seconds, now))
