"""The exact int8 scan: an int8 GEMV in onnxruntime with a per-row error bound, then an fp32 re-rank.

Why not FAISS here: ``IndexScalarQuantizer`` decodes every code to float before the product (about
one cycle per dimension), so on 1M x 256 it is no faster than the fp32 BLAS product (measured:
~65 ms both, 2 cores). onnxruntime's ``MatMulInteger`` multiplies int8 codes directly (MLAS, VNNI /
AVX2 integer dot products) with the codes prepacked once at session creation; no other library we
ship does an int8 GEMV, so the graph is built here (a few ONNX nodes, needs the ``onnx`` package).

Exactness. Row ``j`` is stored as ``x_hat_j = s_j * c_j`` (per-row scale, ``c_j`` int8 in
[-127, 127], kept as ``c_j + 128`` in uint8) and the query as ``q_hat = t * (u - 64)`` (``u`` uint8 in
[1, 127], i.e. 7 bits: a pair sum of products then stays below 2^15, so no kernel can saturate). Then
``|q . x_j - q_hat . x_hat_j| <= ||q|| ||x_j - x_hat_j|| + ||q - q_hat|| ||x_hat_j||``, and the graph
returns the top ``m`` of the upper bound ``ub_j = q_hat . x_hat_j + ||q|| r_j + ||q - q_hat|| n_j``
(``r_j``, ``n_j`` stored per row, rounded up). Every row outside the shortlist has true score <=
the m-th ``ub``; when the exact fp32 k-th best of the shortlist is above it, the top k equals fp32
brute force (ties by row included). Otherwise ``m`` grows, and after a few rounds the caller scans in
fp32. A per-row bound (not the global max residual) keeps the shortlist small on galleries of
near-duplicates, where the top scores are packed tight.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from clear_sdk.index.topk import exact_rerank

SHARD_ROWS = 1 << 18  # rows per onnxruntime session built in bulk; two threads search the shards
TAIL_ROWS = 1 << 15  # rows added after the last shard are scored in fp32 until there are this many
_ROUNDS = 3  # shortlist growths (x8) before the caller falls back to the fp32 scan
_FIRST_M = 512  # shortlist per shard in the first round
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


def quantize_query(q: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """(u uint8 [D] in [1, 127], step t, ||q|| (up), ||q - q_hat|| (up)) of one fp32 query."""
    q64 = q.astype(np.float64)
    t = float(np.abs(q64).max()) / 63.0 or 1.0
    t = float(np.float32(t))
    u = np.clip(np.rint(q64 / t) + 64, 1, 127).astype(np.uint8)
    err = q64 - t * (u.astype(np.float64) - 64)
    qn = float(_up(np.array([np.linalg.norm(q64) * (1 + 1e-12)]))[0])
    dqn = float(_up(np.array([np.linalg.norm(err) * (1 + 1e-12)]))[0])
    return u, t, qn, dqn


def _session(codes: np.ndarray) -> Any:
    """An onnxruntime session holding ``codes`` [S, D] prepacked: uint8 query u [1, D] -> int32 dots [1, S].

    Only the integer product runs in onnxruntime. The bound arithmetic and the shortlist are numpy on
    the shard's 1 MB of scores: onnxruntime's ``TopK`` (k = 512 of 262,144) and its element-wise
    nodes cost more than the product itself (measured: 26 ms per shard with them, 12 ms without).
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    s = len(codes)
    d = codes.shape[1]
    inits = [
        # the codes stored as uint8 c + 128 (zero point 128): MLAS's u8 x u8 kernel ran 6.9 ms per shard
        # against 9.7 ms for u8 x s8 (262,144 x 256, one thread, interleaved); the int32 dots are identical
        numpy_helper.from_array((np.ascontiguousarray(codes.T).astype(np.int16) + 128).astype(np.uint8), "B"),
        numpy_helper.from_array(np.array(64, np.uint8), "zp"),
        numpy_helper.from_array(np.array(128, np.uint8), "bzp"),
    ]
    nodes = [helper.make_node("MatMulInteger", ["u", "B", "zp", "bzp"], ["dot"])]  # exact int32
    graph = helper.make_graph(
        nodes,
        "clear_int8_scan",
        [helper.make_tensor_value_info("u", TensorProto.UINT8, [1, d])],
        [helper.make_tensor_value_info("dot", TensorProto.INT32, [1, s])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # one thread per shard; the pool runs the shards in parallel
    opts.inter_op_num_threads = 1
    del onnx  # imported for its helpers only
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


class _Shard:
    """Rows [lo, lo + n) as int8 codes in an onnxruntime session, with their per-row scale and bounds."""

    __slots__ = ("lo", "n", "session", "scale", "resid", "norm")

    def __init__(self, lo: int, part: np.ndarray) -> None:
        codes, self.scale, self.resid, self.norm = quantize_rows(part)
        self.lo, self.n = lo, len(part)
        self.session = _session(codes)

    def upper_bounds(self, u: np.ndarray, t: float, qn: float, dqn: float) -> np.ndarray:
        """ub_j / t = dot_j * s_j + r_j * (||q|| / t) + n_j * (||q - q_hat|| / t), float32 (t > 0 keeps the order).

        The caller multiplies the boundary it keeps by t; float32 rounding is covered by ``_SLACK``. Plain
        element-wise numpy (no BLAS call, which would start its own threads inside the shard pool).
        """
        (dot,) = self.session.run(None, {"u": u})
        ub = np.multiply(dot[0], self.scale, dtype=np.float32)  # exact: |dot| <= 63 * 127 * D < 2^24 for D <= 2,096
        bound = self.resid * np.float32(qn / t)
        ub += bound
        np.multiply(self.norm, np.float32(dqn / t), out=bound)
        ub += bound
        return ub


class Int8Scan:
    """int8 copy of columns [c0, c1) of rows [0, rows) in onnxruntime shards, plus an fp32 tail; exact search."""

    precision = "int8"

    def __init__(self, c0: int, c1: int, threads: int = 2) -> None:
        self.c0, self.c1 = c0, c1
        self.dim = c1 - c0
        self.rows = 0  # rows covered: shards, then the tail
        self.shards: list[_Shard] = []
        self.sealed = 0  # rows in shards
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="clear-int8")

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
            self.shards.append(_Shard(start, part))
            start = end
        self.sealed, self.rows = start, upto  # rows [sealed, rows): the tail, re-ranked in fp32 from the master

    def _first_pass(self, q: np.ndarray, m: int, allowed: np.ndarray | None):
        """Per shard, the rows of the m best upper bounds: (candidate rows [C], boundary = max m-th bound)."""
        u, t, qn, dqn = quantize_query(q)
        u = u[None]

        def one(shard: _Shard) -> tuple[np.ndarray, float]:
            lo, n = shard.lo, shard.n
            ub = shard.upper_bounds(u, t, qn, dqn)
            if allowed is not None:
                mask = allowed[lo : lo + n]
                ub = np.where(mask, ub, np.float32(-np.inf))
                n = int(np.count_nonzero(mask))
            kk = min(m, n)
            if kk == 0:
                return np.empty(0, np.int64), -np.inf
            idx = np.argpartition(ub, len(ub) - kk)[len(ub) - kk :]  # the kk largest bounds
            bound = float(ub[idx].min()) * t if kk < n else -np.inf  # every row not returned has ub <= this
            return idx.astype(np.int64) + lo, bound

        parts = list(self._pool.map(one, self.shards)) if len(self.shards) > 1 else [one(s) for s in self.shards]
        rows = [p[0] for p in parts]
        tail = np.arange(self.sealed, self.rows, dtype=np.int64)  # the tail is re-ranked whole (fp32)
        if allowed is not None:
            tail = tail[allowed[self.sealed : self.rows]]
        cand = np.concatenate([*rows, tail]) if rows else tail
        boundary = max((p[1] for p in parts), default=-np.inf)
        return cand, boundary

    def search(
        self, q: np.ndarray, k: int, master: np.ndarray, allowed: np.ndarray | None, n_allowed: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact top-k for the queries it can prove: (scores, rows, proven [Q] bool); ``master``: fp32 columns."""
        nq = len(q)
        k = min(k, n_allowed)
        out_s = np.full((nq, k), -np.inf, np.float32)
        out_r = np.full((nq, k), -1, np.int64)
        proven = np.zeros(nq, dtype=bool)
        if k == 0 or self.rows == 0:
            return out_s, out_r, np.ones(nq, dtype=bool)
        for i in range(nq):
            m = max(_FIRST_M, 4 * k)
            for _ in range(_ROUNDS):
                cand, boundary = self._first_pass(q[i], m, allowed)
                s, r = exact_rerank(q[i : i + 1], master, cand[None], k)
                kth = float(s[0, k - 1])
                if not np.isfinite(boundary) or kth > boundary + _SLACK * (1.0 + abs(boundary)):
                    out_s[i], out_r[i], proven[i] = s[0], r[0], True
                    break
                m *= 8
        return out_s, out_r, proven

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.shards = []


__all__ = ["Int8Scan", "onnx_available", "quantize_query", "quantize_rows"]
