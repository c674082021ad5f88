"""The exact int8 scan: an int8 GEMV in onnxruntime with a per-row error bound, then an fp32 re-rank.

Why not FAISS here: ``IndexScalarQuantizer`` decodes every code to float before the product (about
one cycle per dimension), so on 1M x 256 it is no faster than the fp32 BLAS product (measured:
~65 ms both, 2 cores). onnxruntime's ``MatMulInteger`` multiplies int8 codes directly (MLAS, VNNI /
AVX2 integer dot products) with the codes prepacked once at session creation; no other library we
ship does an int8 GEMV, so the graph is built here (a few ONNX nodes, needs the ``onnx`` package).

Exactness. Row ``j`` is stored as ``x_hat_j = s_j * c_j`` (per-row scale, ``c_j`` int8 in
[-127, 127], kept as ``c_j + 128`` in uint8) and the query as ``q_hat = t * (u - 128)`` (``u`` uint8
in [1, 255]; see ``QUERY_ZERO_POINT``). Then
``|q . x_j - q_hat . x_hat_j| <= ||q|| ||x_j - x_hat_j|| + ||q - q_hat|| ||x_hat_j||``, so
``ub_j = q_hat . x_hat_j + ||q|| r_j + ||q - q_hat|| n_j`` (``r_j``, ``n_j`` stored per row, rounded
up) bounds row ``j``'s true score from above. One pass computes every ``ub``; each shard's ``m``
best bounds form the shortlist, and every row outside it has ``ub`` <= the boundary (the largest
of the shards' m-th bounds). The shortlist is re-ranked in fp32 best bound first, a chunk at a
time, until the exact k-th best beats the bound of everything not re-ranked: then the top k equals
fp32 brute force (ties by row included). If the shortlist runs out first, ``m`` grows (from the same
bounds, no second pass), and after a few rounds the caller scans in fp32. A per-row bound (not the
global max residual) keeps the shortlist small on galleries of near-duplicates, where the top
scores are packed tight.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clear_sdk.index.topk import exact_rerank, unproven

SHARD_ROWS = 1 << 18  # rows per onnxruntime session built in bulk
TAIL_ROWS = 1 << 15  # rows added after the last shard are scored in fp32 until there are this many
_ROUNDS = 3  # shortlist growths (x8) before the caller falls back to the fp32 scan
_FIRST_M = 512  # shortlist per shard in the first round
_CHUNK = 256  # candidates re-ranked in fp32 at a time, best bound first
_SLACK = 1e-5  # relative float32 rounding allowance of the bound (the integer product itself is exact)


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return True


def _up(x: np.ndarray) -> np.ndarray:
    """float64 -> float32 rounded towards +inf (a bound must never shrink)."""
    f = x.astype(np.float32)
    return np.where(f.astype(np.float64) < x, np.nextafter(f, np.float32(np.inf)), f).astype(np.float32)


def quantize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-row symmetric int8 codes of ``x`` [S, D]: (codes int8, scale, residual norm (up), code norm (up))."""
    x = np.where(np.isfinite(x), x, 0).astype(np.float32)
    scale = np.abs(x).max(axis=1) / np.float32(127)
    scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
    codes = np.clip(np.rint(x / scale[:, None]), -127, 127).astype(np.int8)
    x_hat = codes.astype(np.float64) * scale.astype(np.float64)[:, None]
    resid = np.linalg.norm(x.astype(np.float64) - x_hat, axis=1) * (1 + 1e-12)
    norm = np.linalg.norm(x_hat, axis=1) * (1 + 1e-12)
    return codes, scale, _up(resid), _up(norm)


#: The query's uint8 zero point. The gallery codes are uint8 too (``c + 128``), and u8 x u8 kernels widen
#: both to 16 bits before multiplying (there is no u8 x s8 pair sum that could saturate int16), so the
#: query uses all 8 bits: half the quantisation error of 7 bits, so a tighter bound and shorter shortlists.
QUERY_ZERO_POINT = 128


def quantize_query(q: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """(u uint8 [D] in [1, 255], step t, ||q|| (up), ||q - q_hat|| (up)) of one fp32 query; q_hat = t (u - 128)."""
    q64 = q.astype(np.float64)
    t = float(np.abs(q64).max()) / 127.0 or 1.0
    t = float(np.float32(t))
    u = np.clip(np.rint(q64 / t) + QUERY_ZERO_POINT, 1, 255).astype(np.uint8)
    err = q64 - t * (u.astype(np.float64) - QUERY_ZERO_POINT)
    qn = float(_up(np.array([np.linalg.norm(q64) * (1 + 1e-12)]))[0])
    dqn = float(_up(np.array([np.linalg.norm(err) * (1 + 1e-12)]))[0])
    return u, t, qn, dqn


def _top(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (score, row) of merged :func:`exact_rerank` lists (-1 = padding), ties by row as fp32 brute force."""
    keep = rows >= 0
    rows, scores = rows[keep], scores[keep]
    order = np.lexsort((rows, -scores))[:k]
    return scores[order], rows[order]


def _select(ub: np.ndarray, n: int, m: int, t: float, lo: int) -> tuple[np.ndarray, np.ndarray, float]:
    """About the m best bounds of one shard (``n`` rows allowed): (rows, their ub / t, boundary).

    Every row not returned has ub <= boundary. The cut is the (m / 16)-th best of every 16th bound,
    then one comparison pass: ~m rows, without ``argpartition`` over the whole shard.
    """
    kk = min(m, n)
    if kk == 0:
        return np.empty(0, np.int64), np.empty(0, ub.dtype), -np.inf
    if kk < n and len(ub) >= 64 * kk:
        sample = ub[::16]
        j = max(1, kk // 16)
        cut = sample[np.argpartition(sample, len(sample) - j)[len(sample) - j]]
        if np.isfinite(cut):
            idx = np.flatnonzero(ub > cut)
            return idx + lo, ub[idx], float(cut) * t
    if kk == n:  # every allowed row is shortlisted
        idx = np.flatnonzero(ub > -np.inf)
        return idx + lo, ub[idx], -np.inf
    idx = np.argpartition(ub, len(ub) - kk)[len(ub) - kk :]
    vals = ub[idx]
    return idx.astype(np.int64) + lo, vals, float(vals.min()) * t


def _merge(parts: list[tuple[np.ndarray, np.ndarray, float]], t: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The shards' shortlists as one, best bound first: (rows, ub, boundary = the largest shard boundary)."""
    if not parts:
        return np.empty(0, np.int64), np.empty(0), -np.inf
    rows = np.concatenate([p[0] for p in parts])
    vals = np.concatenate([p[1] for p in parts]).astype(np.float64) * t
    order = np.argsort(-vals, kind="stable")
    return rows[order], vals[order], max(p[2] for p in parts)


def _session(codes: np.ndarray, scale: np.ndarray, resid: np.ndarray, norm: np.ndarray, threads: int = 1) -> Any:
    """An onnxruntime session holding one shard's codes prepacked: (u, a, b) -> ub / t [1, S].

    ``ub_j / t = dot_j * s_j + r_j * a + n_j * b`` with ``a = ||q|| / t``, ``b = ||q - q_hat|| / t``
    (t > 0 keeps the order; the caller multiplies the boundary it keeps by t). The element-wise nodes
    run on onnxruntime's threads too (5.3-6.8 ms per 262,144-row shard with them, against 6.1-7.1 ms
    for the product here and the arithmetic in numpy). float32 while ``|dot| <= 127 * 127 * D`` converts
    exactly (D <= 1,040), else float64. The shortlist is chosen in numpy (``_select``): onnxruntime's
    ``TopK`` at k = 512 cost more than the product itself.
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    s = len(codes)
    d = codes.shape[1]
    real, elem = (np.float32, TensorProto.FLOAT) if d <= 1040 else (np.float64, TensorProto.DOUBLE)
    inits = [
        # the codes stored as uint8 c + 128 (zero point 128): MLAS's u8 x u8 kernel ran 6.9 ms per shard
        # against 9.7 ms for u8 x s8 (262,144 x 256, one thread, interleaved); the int32 dots are identical
        numpy_helper.from_array((np.ascontiguousarray(codes.T).astype(np.int16) + 128).astype(np.uint8), "B"),
        numpy_helper.from_array(np.array(QUERY_ZERO_POINT, np.uint8), "zp"),
        numpy_helper.from_array(np.array(128, np.uint8), "bzp"),
        *(numpy_helper.from_array(v.astype(real), n) for v, n in ((scale, "scale"), (resid, "resid"), (norm, "norm"))),
    ]
    nodes = [
        helper.make_node("MatMulInteger", ["u", "B", "zp", "bzp"], ["dot"]),  # exact int32
        helper.make_node("Cast", ["dot"], ["dotf"], to=elem),
        helper.make_node("Mul", ["dotf", "scale"], ["approx"]),
        helper.make_node("Mul", ["resid", "a"], ["b0"]),
        helper.make_node("Mul", ["norm", "b"], ["b1"]),
        helper.make_node("Add", ["approx", "b0"], ["c0"]),
        helper.make_node("Add", ["c0", "b1"], ["ub"]),
    ]
    graph = helper.make_graph(
        nodes,
        "clear_int8_scan",
        [helper.make_tensor_value_info("u", TensorProto.UINT8, [1, d]),
         helper.make_tensor_value_info("a", elem, [1]), helper.make_tensor_value_info("b", elem, [1])],
        [helper.make_tensor_value_info("ub", elem, [1, s])],
        inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    # onnxruntime's own pool splits one product over the cores (262,144 x 256: 13.9 -> 7.8 ms with two
    # threads); two sessions run from two Python threads did not overlap at all (29-34 ms for 4 shards
    # either way, measured), so shards run one after another, each on every thread
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    # no spinning: each shard's session has its own pool, and idle pools spinning after their run took
    # the cores from the next shard's (4 shards: 60-118 ms with spinning)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    del onnx  # imported for its helpers only
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


class _Shard:
    """Rows [lo, lo + n) as int8 codes in an onnxruntime session that also computes their bounds."""

    __slots__ = ("lo", "n", "session", "dtype")

    def __init__(self, lo: int, part: np.ndarray, threads: int) -> None:
        codes, scale, resid, norm = quantize_rows(part)
        self.dtype = np.float32 if part.shape[1] <= 1040 else np.float64
        self.lo, self.n = lo, len(part)
        self.session = _session(codes, scale, resid, norm, threads)

    def upper_bounds(self, u: np.ndarray, t: float, qn: float, dqn: float) -> np.ndarray:
        """ub_j / t for every row of the shard (see :func:`_session`); float rounding is covered by ``_SLACK``."""
        a, b = np.array([qn / t], self.dtype), np.array([dqn / t], self.dtype)
        (ub,) = self.session.run(None, {"u": u, "a": a, "b": b})
        return ub[0]


class Int8Scan:
    """int8 copy of columns [c0, c1) of rows [0, rows) in onnxruntime shards, plus an fp32 tail; exact search."""

    precision = "int8"

    def __init__(self, c0: int, c1: int, threads: int = 2) -> None:
        self.c0, self.c1 = c0, c1
        self.dim = c1 - c0
        self.rows = 0  # rows covered: shards, then the tail
        self.shards: list[_Shard] = []
        self.sealed = 0  # rows in shards
        self.threads = max(1, int(threads))

    @property
    def bytes_per_row(self) -> int:
        return self.dim + 12  # codes + scale, residual and norm (float32 each)

    def extend(self, vectors: np.ndarray, upto: int) -> None:
        """Cover rows [rows, upto) of ``vectors`` (the full fp32 matrix or memory map), one shard at a time."""
        if upto <= self.rows:
            return
        bulk = self.sealed == 0 and upto >= SHARD_ROWS  # the first build: big shards
        step = SHARD_ROWS if bulk else TAIL_ROWS
        start = self.sealed
        while upto - start >= step or (bulk and upto - start >= TAIL_ROWS):
            end = min(upto, start + SHARD_ROWS)
            part = np.asarray(vectors[start:end, self.c0 : self.c1], dtype=np.float32)
            self.shards.append(_Shard(start, part, self.threads))
            start = end
        self.sealed, self.rows = start, upto  # rows [sealed, rows): the tail, re-ranked in fp32 from the master

    def _bounds(self, q: np.ndarray, allowed: np.ndarray | None, m: int):
        """The one pass over the codes, shard by shard, each shard's first shortlist taken as it is done.

        Returns (per shard ub / t with the rows a filter drops at -inf, allowed counts, t, first shortlist).
        """
        u, t, qn, dqn = quantize_query(q)
        u = u[None]
        blocked = None if allowed is None else ~allowed[: self.sealed]

        def one(shard: _Shard) -> tuple[np.ndarray, int, tuple[np.ndarray, np.ndarray, float]]:
            ub = shard.upper_bounds(u, t, qn, dqn)
            n = shard.n
            if blocked is not None:
                drop = blocked[shard.lo : shard.lo + shard.n]
                np.copyto(ub, -np.inf, where=drop)
                n -= int(np.count_nonzero(drop))
            return ub, n, _select(ub, n, m, t, shard.lo)

        parts = [one(s) for s in self.shards]
        return [p[0] for p in parts], [p[1] for p in parts], t, _merge([p[2] for p in parts], t)

    def _shortlist(self, ubs: list[np.ndarray], counts: list[int], t: float, m: int):
        """The m best bounds of each shard, from bounds already computed (a later, longer shortlist)."""

        return _merge([_select(ub, n, m, t, sh.lo) for ub, n, sh in zip(ubs, counts, self.shards)], t)

    def _one(self, q: np.ndarray, k: int, master: np.ndarray, allowed: np.ndarray | None):
        """Exact top-k of one query, or None when the shortlists could not prove it (the caller scans fp32).

        Candidates are re-ranked in fp32 in order of their bound, a chunk at a time, and the search stops
        as soon as the exact k-th best beats the bound of everything not yet re-ranked (the rest of the
        shortlist, and the boundary below which every row outside it lies).
        """
        m = max(_FIRST_M, 4 * k)
        ubs, counts, t, first = self._bounds(q, allowed, m)
        tail = np.arange(self.sealed, self.rows, dtype=np.int64)  # no codes: always re-ranked (fp32)
        if allowed is not None:
            tail = tail[allowed[self.sealed : self.rows]]
        q1 = q[None]
        for round_ in range(_ROUNDS):
            rows, vals, boundary = first if round_ == 0 else self._shortlist(ubs, counts, t, m)
            best_s, best_r = (a[0] for a in exact_rerank(q1, master, tail[None], k))
            done = 0
            while True:
                take = rows[done : done + max(_CHUNK, 4 * k)]
                done += len(take)
                s_new, r_new = (a[0] for a in exact_rerank(q1, master, take[None], k))
                best_s, best_r = _top(np.concatenate([best_r, r_new]), np.concatenate([best_s, s_new]), k)
                rest = max(float(vals[done]) if done < len(rows) else -np.inf, boundary)
                if len(best_r) >= k:
                    if not np.isfinite(rest) or float(best_s[k - 1]) > rest + _SLACK * (1.0 + abs(rest)):
                        return best_s, best_r
                elif not np.isfinite(rest):  # fewer than k rows can match, and all are re-ranked
                    return best_s, best_r
                if done >= len(rows):
                    break
            m *= 8
        return None

    def search(
        self, q: np.ndarray, k: int, master: np.ndarray, allowed: np.ndarray | None, n_allowed: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact top-k for the queries it can prove: (scores, rows, proven [Q] bool); ``master``: fp32 columns."""
        nq = len(q)
        k = min(k, n_allowed)
        out_s, out_r, proven = unproven(nq, k)
        if k == 0 or self.rows == 0:
            return out_s, out_r, np.ones(nq, dtype=bool)
        for i in range(nq):
            got = self._one(q[i], k, master, allowed)
            if got is not None:
                s, r = got
                out_s[i, : len(s)], out_r[i, : len(r)], proven[i] = s, r, True
        return out_s, out_r, proven

    def close(self) -> None:
        self.shards = []


__all__ = ["Int8Scan", "onnx_available", "quantize_query", "quantize_rows"]
