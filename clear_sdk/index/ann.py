"""Approximate search (FAISS IVF / HNSW) over the columns a scorer reads, re-ranked exactly in fp32.

An ANN index is derived data: built in memory from the fp32 master (IVF trains then), extended after
adds, never saved, so a reopened index rebuilds it. Its codes are int8 (``SQ8``): the first pass
finds ``refine x k`` candidates, and their exact fp32 scores from the master order the answer, so
the reported scores are exact and only recall is approximate (``benchmarks/bench_search.py``
measures it against exact fp32).
"""

from __future__ import annotations

import math

import numpy as np

from clear_sdk.index.scan import import_faiss
from clear_sdk.index.topk import exact_rerank

ANN_TYPES = ("ivf", "hnsw", "flat")
_ADD_CHUNK = 65536


class AnnIndex:
    """IVF (``IndexIVFScalarQuantizer``), HNSW (``IndexHNSWSQ``) or exact flat FAISS index of columns [c0, c1)."""

    def __init__(
        self,
        kind: str,
        c0: int,
        c1: int,
        vectors: np.ndarray,
        count: int,
        *,
        nlist: int | None = None,
        hnsw_m: int = 32,
        refine: int = 4,
    ) -> None:
        if kind not in ANN_TYPES:
            raise ValueError(f"index type must be one of {', '.join(ANN_TYPES)}, got {kind!r}")
        faiss = import_faiss()
        self.kind, self.c0, self.c1, self.refine = kind, c0, c1, int(refine)
        d = c1 - c0
        self.rows = 0
        ip = faiss.METRIC_INNER_PRODUCT
        if kind == "flat":
            self.index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            self.index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, int(hnsw_m), ip)
            self._train(vectors, count, 65536)
        else:
            # nlist ~ sqrt(N) lists (FAISS's guideline is 4-16 sqrt(N); fewer lists train in seconds here and
            # each probe is cheap at SQ8), trained on 40 points per list (FAISS warns below 39)
            nlist = nlist or max(1, int(math.sqrt(max(count, 1))))
            nlist = max(1, min(nlist, count // 39 or 1))
            self._quantizer = faiss.IndexFlatIP(d)
            self.index = faiss.IndexIVFScalarQuantizer(self._quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, ip)
            self._train(vectors, count, 40 * nlist)
        self.extend(vectors, count)

    def _train(self, vectors: np.ndarray, count: int, n_train: int) -> None:
        n_train = min(count, n_train)
        sample = np.sort(np.random.default_rng(0).choice(count, size=n_train, replace=False)) if count else []
        self.index.train(np.ascontiguousarray(vectors[sample, self.c0 : self.c1], dtype=np.float32))

    def extend(self, vectors: np.ndarray, upto: int) -> None:
        for start in range(self.rows, upto, _ADD_CHUNK):
            end = min(upto, start + _ADD_CHUNK)
            x = np.asarray(vectors[start:end, self.c0 : self.c1], dtype=np.float32)
            self.index.add(np.ascontiguousarray(np.where(np.isfinite(x), x, 0), dtype=np.float32))
        self.rows = max(self.rows, upto)

    def search(
        self,
        q: np.ndarray,
        k: int,
        master: np.ndarray,
        allowed: np.ndarray | None = None,
        *,
        nprobe: int = 24,
        ef_search: int = 128,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k with exact scores: (scores [Q, k], rows [Q, k], -1 padded); ``allowed``: bool mask."""
        faiss = import_faiss()
        m = min(self.rows, k * (1 if self.kind == "flat" else self.refine))
        if m == 0:
            return np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64)
        kw: dict = {}
        bits = None
        if allowed is not None:
            bits = np.packbits(allowed[: self.rows], bitorder="little")
            kw["sel"] = faiss.IDSelectorBitmap(self.rows, faiss.swig_ptr(bits))
        if self.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=int(nprobe), **kw)
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(int(ef_search), m), **kw)
        else:
            params = faiss.SearchParameters(**kw)
        _, cand = self.index.search(np.ascontiguousarray(q, dtype=np.float32), m, params=params)
        del bits  # alive until the search returned
        return exact_rerank(q, master, cand.astype(np.int64), min(k, m))

    @property
    def bytes_per_item(self) -> float:
        """Approximate memory per item of the FAISS structure (codes + ids / links)."""
        d = self.c1 - self.c0
        return {"flat": 4 * d, "ivf": d + 8, "hnsw": d + 8 * 2 * 32}[self.kind]


__all__ = ["ANN_TYPES", "AnnIndex"]
