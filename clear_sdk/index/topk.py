"""Exact top-k by inner product in numpy, over a matrix or a memory map, in bounded memory.

At 1M items the top-k selection, not the matrix product, is the cost (DESIGN §7): a full
``argpartition`` per query touches every score several times. Here the first small block seeds a
per-query threshold (the running k-th best score); every later block only needs ``scores >
threshold`` and ``np.nonzero`` to find the few entries that can still enter the top k, which are
merged with one small ``lexsort``. Results are sorted by score (descending), ties by row (insertion
order), so the output equals a stable full sort.
"""

from __future__ import annotations

import numpy as np


def unproven(nq: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The empty answer of a reduced-precision scan: scores -inf [nq, k], rows -1, and no query proven yet."""
    return np.full((nq, k), -np.inf, np.float32), np.full((nq, k), -1, np.int64), np.zeros(nq, dtype=bool)


_QUERY_CHUNK = 256  # queries scored together; with block_rows=65536 the score block is 64 MiB at most


def _block_topk(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row top-k of a score block, ties broken by ascending row: ([Q, k'], [Q, k']), k' = min(k, B)."""
    q, b = scores.shape
    if np.isnan(scores).any():  # a corrupted stored row: rank it last instead of breaking the selection
        scores = np.where(np.isnan(scores), np.float32(-np.inf), scores)
    if b <= k:
        order = np.lexsort((np.broadcast_to(rows, scores.shape), -scores), axis=1)
        return np.take_along_axis(scores, order, axis=1), rows[order]
    kth = np.partition(scores, b - k, axis=1)[:, b - k : b - k + 1]  # k-th largest score per query
    qi, ci = np.nonzero(scores >= kth)  # >= k entries per query (more when the k-th score is tied)
    return _take_first_k(qi, scores[qi, ci], rows[ci], q, k)


def _take_first_k(qi: np.ndarray, s: np.ndarray, r: np.ndarray, q: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """From entries (query, score, row) with at least k per query, the k best per query, in order."""
    order = np.lexsort((r, -s, qi))
    counts = np.bincount(qi, minlength=q)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    take = order[(starts[:, None] + np.arange(k)[None, :]).ravel()]
    return s[take].reshape(q, k), r[take].reshape(q, k)


def topk_inner_product(
    queries: np.ndarray,
    vectors: np.ndarray,
    k: int,
    rows: np.ndarray | None = None,
    block_rows: int = 65536,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product: (scores float32 [Q, k'], rows int64 [Q, k']), k' = min(k, candidates).

    ``vectors`` may be a memory map; ``rows`` (sorted) restricts the search to those rows. Sorted by
    score descending, ties by row ascending, i.e. the first k of a stable full sort.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n_total = vectors.shape[0] if rows is None else len(rows)
    k_eff = min(int(k), n_total)
    nq = queries.shape[0]
    if k_eff <= 0 or nq == 0:
        return np.empty((nq, 0), np.float32), np.empty((nq, 0), np.int64)
    out_s = np.empty((nq, k_eff), np.float32)
    out_r = np.empty((nq, k_eff), np.int64)
    for q0 in range(0, nq, _QUERY_CHUNK):
        s, r = _topk_chunk(queries[q0 : q0 + _QUERY_CHUNK], vectors, k_eff, rows, n_total, block_rows)
        out_s[q0 : q0 + len(s)] = s
        out_r[q0 : q0 + len(s)] = r
    return out_s, out_r


def _topk_chunk(
    q: np.ndarray, vectors: np.ndarray, k: int, rows: np.ndarray | None, n_total: int, block_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    nq = q.shape[0]
    best_s: np.ndarray | None = None
    best_r: np.ndarray | None = None
    # threshold mask of one block, padded to whole 8-byte words (see below)
    mask_buf = np.zeros(nq * min(block_rows, n_total) + 8, dtype=bool)
    lanes = np.arange(8)
    # a small first block seeds the thresholds cheaply; the partition there is the only O(B) selection
    first = min(block_rows, max(4096, 32 * k))
    start = 0
    while start < n_total:
        end = min(n_total, start + (first if start == 0 else block_rows))
        if rows is None:
            block = vectors[start:end]
            block_ids = np.arange(start, end, dtype=np.int64)
        else:
            block_ids = rows[start:end]
            block = vectors[block_ids]
        scores = q @ block.T  # (nq, B) float32
        b = end - start
        start = end
        if best_s is None or best_s.shape[1] < k:
            bs, br = _block_topk(scores, block_ids, k)
            if best_s is not None:
                bs, br = _merge(best_s, best_r, bs, br, k)
            best_s, best_r = bs, br
            continue
        # only entries strictly above the running k-th score can enter (an equal score loses the tie:
        # its row is larger than every row already kept)
        n_flat = nq * b
        np.greater(scores, best_s[:, k - 1 : k], out=mask_buf[:n_flat].reshape(nq, b))
        pad = (-n_flat) % 8
        mask_buf[n_flat : n_flat + pad] = False
        # np.nonzero over the whole bool block costs as much as the comparison several times over; the
        # candidates are few, so find the non-zero 8-byte words first and look inside those only
        words = np.flatnonzero(mask_buf[: n_flat + pad].view(np.uint64))
        if words.size == 0:
            continue
        flat = (words[:, None] * 8 + lanes).ravel()
        flat = flat[mask_buf[flat]]
        qi, ci = np.divmod(flat, b)
        if qi.size > 8 * nq * k:  # adversarial order (e.g. scores rising with row): select in the block first
            bs, br = _block_topk(scores, block_ids, k)
            best_s, best_r = _merge(best_s, best_r, bs, br, k)
            continue
        all_q = np.concatenate((np.repeat(np.arange(nq), k), qi))
        all_s = np.concatenate((best_s.ravel(), scores[qi, ci]))
        all_r = np.concatenate((best_r.ravel(), block_ids[ci]))
        best_s, best_r = _take_first_k(all_q, all_s, all_r, nq, k)
    assert best_s is not None and best_r is not None
    return best_s, best_r


def _merge(a_s: np.ndarray, a_r: np.ndarray, b_s: np.ndarray, b_r: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    nq = a_s.shape[0]
    s = np.concatenate((a_s, b_s), axis=1)
    r = np.concatenate((a_r, b_r), axis=1)
    kk = min(k, s.shape[1])
    qi = np.repeat(np.arange(nq), s.shape[1])
    return _take_first_k(qi, s.ravel(), r.ravel(), nq, kk)


def exact_rerank(
    queries: np.ndarray, vectors: np.ndarray, candidates: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact fp32 scores of candidate rows [Q, C] (-1 = none) and the k best per query, ties by row.

    The second pass of a reduced-precision scan: ``vectors`` is the fp32 master (matrix or memory
    map); only the candidates' rows are read.
    """
    nq = len(queries)
    out_s = np.full((nq, k), -np.inf, np.float32)
    out_r = np.full((nq, k), -1, np.int64)
    for i in range(nq):
        rows = np.unique(candidates[i][candidates[i] >= 0])  # sorted: the stable tie order
        if rows.size == 0:
            continue
        # einsum runs one kernel per row, so a vector scores the same wherever it sits (BLAS's GEMV scores
        # the last rows of a block with another kernel: copies came out one ulp apart, out of row order)
        s = np.einsum("ij,j->i", np.asarray(vectors[rows], dtype=np.float32), queries[i])
        s = np.where(np.isnan(s), np.float32(-np.inf), s)
        order = np.argsort(-s, kind="stable")[:k]
        out_s[i, : len(order)], out_r[i, : len(order)] = s[order], rows[order]
    return out_s, out_r
