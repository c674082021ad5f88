"""How the local index answers a search: which rows are allowed, and which scan finds their top k.

Paths, all returning the fp32 brute-force top k (ties by row) unless approximate search is asked for:

- exact fp32: numpy blocked top-k (:mod:`.topk`) over a contiguous copy of the scorer's columns;
- exact int8 (the default above ``SCAN_MIN_ROWS``): the onnxruntime int8 scan with per-row error bounds
  and an fp32 re-rank (:mod:`.scan_int8`); fp16 (and int8 without ``onnx``) in FAISS (:mod:`.scan`);
- approximate (``faiss_type="ivf" | "hnsw"``, or ``"auto"`` above ``ANN_AUTO_ROWS``): :mod:`.ann`.

``where`` filters on camera / timestamp / track are evaluated on a numpy mirror
(:class:`~clear_sdk.index.where.ColumnMirror`), the rest in SQLite; a filter that keeps few rows scores
them directly in fp32, one that keeps many runs the reduced-precision scan with the filter as a mask.
Every structure here is derived data, built at the first search that needs it and extended after adds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from clear_sdk.index.ann import AnnIndex
from clear_sdk.index.metadata import Metadata
from clear_sdk.index.scan import PRECISIONS, ScanCache, import_faiss
from clear_sdk.index.scan import _threads as scan_threads
from clear_sdk.index.scan_int8 import Int8Scan
from clear_sdk.index.store import IndexStore
from clear_sdk.index.topk import topk_inner_product
from clear_sdk.index.where import Clause, ColumnMirror

#: Below this many rows the fp32 numpy scan is as fast as any other: no reduced-precision copy is made.
SCAN_MIN_ROWS = 20_000
#: ``faiss_type="auto"`` switches to IVF above this many rows. Measured (bench_search.py, 1M x 256, 2 cores):
#: the exact int8 scan costs ~20-45 ns per item and IVF nprobe=24 2.6-4 ms at recall@10 0.987, so past 2M
#: items an exact lone query nears 100 ms, where approximate search starts to pay for its recall.
ANN_AUTO_ROWS = 2_000_000
#: ``precision="auto"`` scans a batch of more queries than this in fp32: the reduced-precision scans run one
#: query at a time, one BLAS product serves a whole batch.
_REDUCED_MAX_QUERIES = 2
#: A filter keeping at most this fraction of the rows scores them directly (fp32 gather) instead of scanning.
_GATHER_MAX_FRACTION = 0.05

Columns = tuple[int, int]


@dataclass
class SearchOptions:
    """The index's search configuration (see :class:`~clear_sdk.index.VectorIndex`)."""

    backend: str
    faiss_type: str
    precision: str
    faiss_ok: bool
    int8_ok: bool
    nlist: int | None
    nprobe: int
    hnsw_m: int
    ef_search: int
    block_rows: int

    @property
    def precisions(self) -> tuple[str, ...]:
        if self.faiss_ok:
            return PRECISIONS
        return ("fp32", "int8") if self.int8_ok else ("fp32",)


def real_hits(scores: np.ndarray, rows: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``rows`` with -1 where the score marks no hit: NaN / -inf from a corrupt stored row, never from a finite
    vector whose fp32 score overflowed to +-inf (that is a real hit)."""
    odd = ~np.isfinite(scores) & (rows >= 0)
    if not odd.any():
        return rows
    rows = rows.copy()
    for i, j in zip(*np.nonzero(odd)):
        if np.isnan(scores[i, j]) or not np.isfinite(vectors[rows[i, j]]).all():
            rows[i, j] = -1
    return rows


class SearchPlanner:
    """The search side of the local index: masks, scan caches and ANN structures over an :class:`IndexStore`."""

    def __init__(self, store: IndexStore, options: SearchOptions) -> None:
        self.store, self.o = store, options
        self.scans: dict[tuple[str, int, int], ScanCache | Int8Scan] = {}
        self.blocks: dict[Columns, np.ndarray] = {}  # contiguous fp32 copies of a scorer's columns
        self.anns: dict[tuple[str, int, int], AnnIndex] = {}
        self.mirror: ColumnMirror | None = None

    # ------------------------------------------------------------------- keeping derived data in step

    def added(self, first_row: int, rows: list[Metadata]) -> None:
        if self.mirror is not None and self.mirror.rows == first_row:
            cams, ts, tracks = zip(*(m[:3] for m in rows)) if rows else ((), (), ())
            self.mirror.extend(first_row, list(cams), list(ts), list(tracks))

    def refreshed(self) -> None:
        count = self.store.count
        if any(len(b) > count for b in self.blocks.values()):
            self.blocks.clear()
        if self.mirror is not None and self.mirror.rows > count:
            self.mirror = None

    def close(self) -> None:
        for cache in self.scans.values():
            cache.close()
        self.scans.clear()
        self.anns.clear()
        self.blocks.clear()

    # ------------------------------------------------------------------------------------- search

    def allowed(self, clauses: list[Clause] | None, exclude: Iterable[str] | None) -> np.ndarray | None:
        """Bool mask of the rows search may return (None: all of them)."""
        store, count = self.store, self.store.count
        ex = store.excluded()
        mask = ~ex if ex.any() else None
        if exclude is not None:
            ex_ids = [exclude] if isinstance(exclude, str) else [i for i in exclude if isinstance(i, str)]
            rows = np.fromiter(store.catalog.id_rows(ex_ids).values(), np.int64)
            mask = np.ones(count, dtype=bool) if mask is None else mask
            mask[rows[rows < count]] = False
        if clauses:
            keep = np.ones(count, dtype=bool)
            mirrored = [c for c in clauses if c.key in ColumnMirror.MIRRORED]
            other = [c for c in clauses if c.key not in ColumnMirror.MIRRORED]
            if mirrored:
                if self.mirror is None:
                    self.mirror = ColumnMirror()
                self.mirror.load(store.catalog.db, count)
                keep &= self.mirror.mask(mirrored)[:count]
            if other:
                sel = np.zeros(count, dtype=bool)
                rows = store.catalog.matching(other)
                sel[rows[rows < count]] = True
                keep &= sel
            mask = keep if mask is None else mask & keep
        return mask

    def search(
        self, q: np.ndarray, cols: Columns, k: int, allowed: np.ndarray | None, filtered: bool,
        precision: str | None, exact: bool | None, nprobe: int | None, ef_search: int | None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """(scores, rows) [Q, <=k] of the allowed rows; every path reads only the scorer's columns."""
        count = self.store.count
        q = np.ascontiguousarray(q[:, cols[0] : cols[1]])
        master = self.store.view()[:, cols[0] : cols[1]]
        n_allowed = count if allowed is None else int(allowed.sum())
        if n_allowed == 0:
            return np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64)
        ann = self._ann_kind(exact, filtered)
        if ann is not None:
            nprobe, ef_search = nprobe or self.o.nprobe, ef_search or self.o.ef_search
            return self.ann(ann, cols).search(q, k, master, allowed, nprobe=nprobe, ef_search=ef_search)
        if allowed is not None and n_allowed <= _GATHER_MAX_FRACTION * count:  # few rows: score them all
            block = self.block(cols) if self.blocks.get(cols) is not None else master
            return topk_inner_product(q, block, k, rows=np.flatnonzero(allowed), block_rows=self.o.block_rows)
        prec = self.precision(precision)
        if prec != "fp32" and (precision or self.o.precision) == "auto" and len(q) > _REDUCED_MAX_QUERIES:
            prec = "fp32"  # a batch: one BLAS product reads the fp32 block once for all queries
        if prec == "fp32":
            return self._fp32(q, self.block(cols), k, allowed)
        s, r, proven = self.scan(prec, cols).search(q, k, master, allowed, n_allowed)
        if not proven.all():  # very many near-equal scores: the fp32 scan answers those queries
            todo = np.flatnonzero(~proven)
            s2, r2 = self._fp32(q[todo], self.block(cols), k, allowed)
            s[todo, : s2.shape[1]], r[todo, : r2.shape[1]] = s2, r2
        return s, r

    def _fp32(self, q: np.ndarray, master: np.ndarray, k: int, allowed: np.ndarray | None):
        block_rows = self.o.block_rows
        if allowed is None:
            return topk_inner_product(q, master, k, block_rows=block_rows)
        n_ex = len(allowed) - int(allowed.sum())
        if n_ex > 4096:
            return topk_inner_product(q, master, k, rows=np.flatnonzero(allowed), block_rows=block_rows)
        # a few excluded rows: ask for k + their number and drop them
        scores, rows = topk_inner_product(q, master, k + n_ex, block_rows=block_rows)
        keep = allowed[np.maximum(rows, 0)] & (rows >= 0)
        out_s = np.full((len(q), min(k, scores.shape[1])), -np.inf, np.float32)
        out_r = np.full(out_s.shape, -1, np.int64)
        for i in range(len(q)):
            s, r = scores[i][keep[i]][:k], rows[i][keep[i]][:k]
            out_s[i, : len(s)], out_r[i, : len(r)] = s, r
        return out_s, out_r

    def block(self, cols: Columns) -> np.ndarray:
        """Columns ``cols`` of every committed row as one C-contiguous fp32 array (built once, extended on add).

        Scanning a column slice of the [N, dim] memory map made BLAS copy strided blocks at every query;
        the copy costs 4 B per item per column and makes a lone fp32 query one contiguous GEMV per block.
        """
        block = self.blocks.get(cols)
        n = 0 if block is None else len(block)
        count = self.store.count
        if n < count:
            new = np.array(self.store.view()[n:count, cols[0] : cols[1]], dtype=np.float32)
            new[~np.isfinite(new).all(axis=1)] = np.nan  # a corrupt row scores NaN: ranked last, never returned
            block = np.ascontiguousarray(new if block is None else np.concatenate((block, new)))
            self.blocks[cols] = block
        assert block is not None
        return block

    def precision(self, precision: str | None) -> str:
        p = precision or self.o.precision
        if p == "auto":
            fast = self.o.int8_ok or self.o.faiss_ok
            return "int8" if fast and self.store.count >= SCAN_MIN_ROWS else "fp32"
        if p == "int8" and self.o.int8_ok:
            return p
        if p != "fp32" and not self.o.faiss_ok:
            import_faiss()  # the install hint
        return p

    def _ann_kind(self, exact: bool | None, filtered: bool) -> str | None:
        kind = self.o.faiss_type
        if kind == "auto":
            kind = "ivf" if self.o.faiss_ok and self.store.count >= ANN_AUTO_ROWS else "flat"
        if self.o.backend == "faiss" and kind == "flat" and exact is not False:
            return "flat" if not filtered else None  # backend="faiss": FAISS's exact IndexFlatIP
        if exact is False:  # approximate on request: the configured type, else one built by build_ann(), else IVF
            if kind in ("ivf", "hnsw"):
                return kind
            return next((t for (t, _, _) in self.anns if t != "flat"), "ivf")
        if exact is True or filtered or kind == "flat":
            return None  # filters are exact: they may keep rows an approximate index would never visit
        return kind

    def scan(self, precision: str, cols: Columns) -> ScanCache | Int8Scan:
        key = (precision, *cols)
        cache = self.scans.get(key)
        vectors, count = self.store.view(), self.store.count
        if cache is None and precision == "int8" and self.o.int8_ok:
            cache = self.scans[key] = Int8Scan(*cols, threads=scan_threads())
        if cache is None:
            sample = np.asarray(vectors[:: max(1, count // 65536), cols[0] : cols[1]], dtype=np.float32)
            cache = self.scans[key] = ScanCache(precision, *cols, np.where(np.isfinite(sample), sample, 0))
        cache.extend(vectors, count)
        return cache

    def ann(self, kind: str, cols: Columns) -> AnnIndex:
        key = (kind, *cols)
        vectors, count = self.store.view(), self.store.count
        index = self.anns.get(key)
        if index is None:
            index = self.anns[key] = AnnIndex(kind, *cols, vectors, count, nlist=self.o.nlist, hnsw_m=self.o.hnsw_m)
        index.extend(vectors, count)
        return index

    def memory_per_item(self) -> dict[str, float]:
        """Bytes per item of each structure in memory now (the fp32 master is on disk unless in memory)."""
        out = {"fp32_master": 4.0 * self.store.dim if self.store.path is None else 0.0}
        out.update({f"scan_{p}_{c0}:{c1}": float(s.bytes_per_row) for (p, c0, c1), s in self.scans.items()})
        out.update({f"ann_{t}_{c0}:{c1}": float(a.bytes_per_item) for (t, c0, c1), a in self.anns.items()})
        return out


__all__ = ["ANN_AUTO_ROWS", "PRECISIONS", "SCAN_MIN_ROWS", "SearchOptions", "SearchPlanner"]
