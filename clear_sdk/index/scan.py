"""The fast exact scan: a reduced-precision first pass in FAISS, an exact fp32 re-rank, and a proof.

A lone query over 1M x 256 fp32 reads 1 GiB: about 44 ms at this machine's memory bandwidth before
any work. :class:`ScanCache` keeps a copy of the columns a scorer reads at int8 (256 B per item at
D = 256) or fp16 (512 B), held in FAISS flat-code indexes (``IndexScalarQuantizer``: SIMD decode and
a heap top-k inside the scan, so no [N] score vector is ever materialised in Python) in shards that
threads search in parallel (FAISS releases the GIL), so one query uses every core.

The result is still exact. Each stored row's quantisation residual ``r = ||x - x_hat||`` is known,
so for every row the true score is within ``||q|| * r_max`` of the approximate one
(Cauchy-Schwarz). After the first pass returns the best ``m`` rows by approximate score, whose
m-th score is ``b``, the exact fp32 scores of those ``m`` rows are computed from the master
vectors. Any row outside them has true score ``<= b + eps``; when the exact k-th best is above
that, no outside row can enter the top k and the answer equals fp32 brute force (ties by row
included). Otherwise ``m`` grows and the pass repeats; after a few rounds the caller falls back
to the fp32 scan.

int8 codes are FAISS's ``QT_8bit`` (a range per column, trained on the rows present when the copy is
built); the residual of every row is measured on what FAISS decodes, so rows added later outside the
trained range (clamped) only widen the bound, never break it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from clear_sdk.index.topk import exact_rerank, unproven

PRECISIONS = ("fp32", "fp16", "int8")
SHARD_ROWS = 1 << 18  # rows per FAISS shard: 1M items are 4 shards, searched by the thread pool
_ENCODE_CHUNK = 65536
_ROUNDS = 3  # shortlist growths (x4 each) before the caller falls back to the fp32 scan


def import_faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "this index type needs the faiss package: pip install clear-sdk[faiss] (or faiss-cpu / faiss-gpu)"
        ) from exc
    return faiss


def faiss_available() -> bool:
    """Whether the optional FAISS package can be imported."""
    try:
        import_faiss()
    except ImportError:
        return False
    return True


def _threads() -> int:
    return max(1, min(8, len(_affinity())))


def _affinity() -> set[int]:
    import os

    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


class ScanCache:
    """A reduced-precision copy of columns [c0, c1) of rows [0, rows), searchable approximately in FAISS."""

    def __init__(self, precision: str, c0: int, c1: int, sample: np.ndarray) -> None:
        if precision not in ("fp16", "int8"):
            raise ValueError(f"precision must be fp16 or int8 for a scan cache, got {precision!r}")
        self.faiss = import_faiss()
        self.precision, self.c0, self.c1 = precision, c0, c1
        self.dim = c1 - c0
        self.rows = 0
        self.r_max = 0.0
        self.shards: list[Any] = []
        self._sample = np.ascontiguousarray(sample, dtype=np.float32)  # int8 ranges: per column, from the build
        self._pool = ThreadPoolExecutor(_threads(), thread_name_prefix="clear-scan")

    @property
    def bytes_per_row(self) -> int:
        return self.dim * (1 if self.precision == "int8" else 2)

    def _new_shard(self) -> Any:
        f = self.faiss
        qt = f.ScalarQuantizer.QT_8bit if self.precision == "int8" else f.ScalarQuantizer.QT_fp16
        shard = f.IndexScalarQuantizer(self.dim, qt, f.METRIC_INNER_PRODUCT)
        if self.shards:  # every shard shares the first one's trained ranges
            shard.sq.trained = self.shards[0].sq.trained
            shard.is_trained = True
        else:
            shard.train(self._sample if len(self._sample) else np.zeros((1, self.dim), np.float32))
        return shard

    def extend(self, vectors: np.ndarray, upto: int) -> None:
        """Encode rows [rows, upto) of ``vectors`` (the full fp32 matrix or memory map)."""
        while self.rows < upto:
            if not self.shards or self.shards[-1].ntotal >= SHARD_ROWS:
                self.shards.append(self._new_shard())
            shard = self.shards[-1]
            end = min(upto, self.rows + _ENCODE_CHUNK, self.rows + SHARD_ROWS - shard.ntotal)
            x = np.asarray(vectors[self.rows : end, self.c0 : self.c1], dtype=np.float32)
            x = np.ascontiguousarray(np.where(np.isfinite(x), x, 0), dtype=np.float32)  # corrupt: verify() drops it
            codes = shard.sa_encode(x)
            shard.add_sa_codes(codes)
            # the residual of what FAISS stored (values outside the trained range are clamped: larger residual)
            resid = np.linalg.norm(x - shard.sa_decode(codes), axis=1)
            if len(resid):
                self.r_max = max(self.r_max, float(resid.max()))
            self.rows = end

    def _first_pass(self, q: np.ndarray, m: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-m per query over every shard: (scores [Q, m], rows [Q, m], -1 padded)."""
        f = self.faiss
        qs = np.ascontiguousarray(q, dtype=np.float32)
        starts = np.cumsum([0] + [s.ntotal for s in self.shards])

        def one(i: int) -> tuple[np.ndarray, np.ndarray]:
            shard, lo = self.shards[i], int(starts[i])
            params = None
            if allowed is not None:
                bits = np.packbits(allowed[lo : lo + shard.ntotal], bitorder="little")
                params = f.SearchParameters(sel=f.IDSelectorBitmap(shard.ntotal, f.swig_ptr(bits)))
                d, r = shard.search(qs, min(m, shard.ntotal), params=params)
                del bits  # kept alive until the search returned
            else:
                d, r = shard.search(qs, min(m, shard.ntotal))
            return d, np.where(r >= 0, r + lo, -1)

        if len(q) < len(self.shards) and len(self.shards) > 1:  # lone queries: shards in parallel
            parts = list(self._pool.map(one, range(len(self.shards))))
        else:  # batches: FAISS already spreads the queries over its OpenMP threads
            parts = [one(i) for i in range(len(self.shards))]
        d = np.concatenate([p[0] for p in parts], axis=1)
        r = np.concatenate([p[1] for p in parts], axis=1)
        d = np.where(r >= 0, d, -np.inf)
        order = np.argsort(-d, axis=1, kind="stable")[:, :m]
        return np.take_along_axis(d, order, 1), np.take_along_axis(r, order, 1)

    def search(
        self, q: np.ndarray, k: int, master: np.ndarray, allowed: np.ndarray | None, n_allowed: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact top-k for the queries it can prove: (scores, rows, proven [Q] bool).

        ``master`` is the fp32 matrix restricted to columns [c0, c1); ``allowed`` a bool mask over rows
        (None: all rows) and ``n_allowed`` its count.
        """
        nq = len(q)
        k = min(k, n_allowed)
        out_s, out_r, proven = unproven(nq, k)
        if k == 0 or self.rows == 0:
            return out_s, out_r, np.ones(nq, dtype=bool)
        eps = np.linalg.norm(q, axis=1).astype(np.float64) * self.r_max
        todo = np.arange(nq)
        m = max(64, 8 * k)
        for _ in range(_ROUNDS):
            m = min(m, n_allowed)
            approx, cand = self._first_pass(q[todo], m, allowed)
            s, r = exact_rerank(q[todo], master, cand, k)
            kth_exact = s[:, k - 1].astype(np.float64)
            boundary = approx[:, m - 1].astype(np.float64)
            slack = 1e-5 * (1.0 + np.abs(boundary))  # FAISS's float accumulation order differs from ours
            ok = (m >= n_allowed) | (kth_exact > boundary + eps[todo] + slack) | ~np.isfinite(boundary)
            out_s[todo[ok]], out_r[todo[ok]] = s[ok], r[ok]
            proven[todo[ok]] = True
            todo = todo[~ok]
            if todo.size == 0 or m >= n_allowed:
                break
            m = int(min(n_allowed, 4 * m))
        return out_s, out_r, proven

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.shards = []


__all__ = ["PRECISIONS", "ScanCache", "faiss_available", "import_faiss"]
