"""The fast exact scan (int8 / fp16 first pass + fp32 re-rank) equals fp32 brute force; deletes survive a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from clear_sdk.index import SCAN_MIN_ROWS, VECTORS_FILE, VectorIndex, faiss_available, scan_int8
from clear_sdk.index.scan_int8 import onnx_available, quantize_query, quantize_rows

REPO = Path(__file__).resolve().parents[1]
needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss not installed (pip install clear-sdk[faiss])")


def _ref(q, x, rows, k):
    rows = np.asarray(rows)
    return [[str(rows[j]) for j in np.argsort(-(qq @ x[rows].T), kind="stable")[:k]] for qq in q]


def _ids(result):
    return [[h[0] for h in hits] for hits in result]


@needs_faiss
@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_reduced_precision_top10_equals_fp32_brute_force(precision):
    rng = np.random.default_rng(0)
    n, d = SCAN_MIN_ROWS + 5000, 40
    # clustered (near-duplicate crops of few people, the hard case for a shortlist) plus a block the
    # query ignores (another scorer's columns)
    centers = rng.standard_normal((50, 32)).astype(np.float32)
    x = np.concatenate([centers[rng.integers(0, 50, n)] + 0.05 * rng.standard_normal((n, 32)), rng.random((n, 8))], 1)
    x = x.astype(np.float32)
    x[n - 10 :, :32] *= 40  # outliers outside the trained int8 range: clamped, the bound widens
    q = np.concatenate([rng.standard_normal((6, 32)), np.zeros((6, 8))], 1).astype(np.float32)
    q[0, :32] = centers[3]
    index = VectorIndex(d, precision=precision)
    index.add(x[:-3000], [str(i) for i in range(n - 3000)])
    got = index.search(q, k=10, columns=(0, 32))  # builds the scan copy
    assert _ids(got) == _ref(q[:, :32], x[:, :32], range(n - 3000), 10)
    index.add(x[-3000:], [str(i) for i in range(n - 3000, n)])  # extends it
    scores = index.search(q, k=10, columns=(0, 32))
    assert _ids(scores) == _ref(q[:, :32], x[:, :32], range(n), 10)
    np.testing.assert_allclose(scores[0][0][1], float(x[int(scores[0][0][0]), :32] @ q[0, :32]), rtol=1e-6)
    assert _ids(index.search(q, k=10, columns=(0, 32), precision="fp32")) == _ids(scores)
    # a filter that keeps half the rows runs the scan with a selector; removed rows never come back
    gone = [h[0] for h in scores[1][:4]]
    index.remove(gone)
    keep = [i for i in range(0, n, 2) if str(i) not in gone]
    assert _ids(index.search(q, k=10, columns=(0, 32), where={"id": [str(i) for i in range(0, n, 2)]})) == _ref(
        q[:, :32], x[:, :32], keep, 10
    )


def test_unknown_precision_and_columns_are_refused():
    index = VectorIndex(4)
    with pytest.raises(ValueError, match="precision must be"):
        VectorIndex(4, precision="int4")
    with pytest.raises(ValueError, match="columns must be"):
        index.search(np.ones(4, np.float32), columns=(3, 9))


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from clear_sdk.index import VectorIndex

    path, mode = sys.argv[1], sys.argv[2]
    index = VectorIndex(4, path)
    index.add(np.eye(4, dtype=np.float32).repeat(25, 0), [f"i{i}" for i in range(100)],
              [{"camera": f"c{i % 2}", "timestamp": float(i)} for i in range(100)])
    from clear_sdk.index.catalog import Catalog

    original = Catalog.delete

    def die(self, rows):
        if mode == "after-delete":  # the rows are deleted inside the open transaction
            original(self, rows)
        os.kill(os.getpid(), signal.SIGKILL)

    Catalog.delete = die
    index.remove(where={"camera": "c1"})
    print("not killed")
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
@pytest.mark.parametrize("mode", ["before-delete", "after-delete"])
def test_a_delete_killed_midway_removes_nothing(tmp_path, mode):
    path = tmp_path / "idx"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), mode], capture_output=True, text=True, env=env,
                          timeout=120)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with VectorIndex(None, path) as index:
        assert len(index) == 100 and index.ids == [f"i{i}" for i in range(100)]
        assert (path / VECTORS_FILE).stat().st_size == 100 * 4 * 4
        assert index.remove(where={"camera": "c1"}) == 50  # and the delete then goes through whole
        assert index.remove_older_than(10, now=60.0) == 25  # retention: even rows with timestamp < 50
    with VectorIndex(None, path) as index:
        assert sorted(index.ids, key=lambda s: int(s[1:])) == [f"i{i}" for i in range(50, 100, 2)]


@pytest.mark.skipif(not onnx_available(), reason="onnx not installed (the int8 scan builds its graph with it)")
def test_int8_scan_is_exact_on_a_near_duplicate_gallery(monkeypatch):
    """Crops repeated with small noise (as bench_search's gallery): top scores packed tight, per-row bounds."""
    monkeypatch.setattr(scan_int8, "SHARD_ROWS", 4096)  # several onnxruntime shards and an fp32 tail
    monkeypatch.setattr(scan_int8, "TAIL_ROWS", 1024)
    rng = np.random.default_rng(3)
    crops = rng.standard_normal((300, 64)).astype(np.float32)
    crops /= np.linalg.norm(crops, axis=1, keepdims=True)
    n = SCAN_MIN_ROWS + 2500
    x = crops[rng.integers(0, 300, n)] + rng.standard_normal((n, 64)).astype(np.float32) * np.float32(0.45 / 8)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = np.concatenate([x, rng.random((n, 6)).astype(np.float32)], 1)  # another scorer's columns, never read
    q = crops[:8] + 0.1 * rng.standard_normal((8, 64)).astype(np.float32)
    q = np.concatenate([q / np.linalg.norm(q, axis=1, keepdims=True), np.zeros((8, 6), np.float32)], 1)
    index = VectorIndex(70, precision="int8")
    index.add(x[:-1500], [str(i) for i in range(n - 1500)])
    assert _ids(index.search(q, k=10, columns=(0, 64))) == _ref(q[:, :64], x[:, :64], range(n - 1500), 10)
    index.add(x[-1500:-300], [str(i) for i in range(n - 1500, n - 300)])  # a new shard
    index.search(q[:1], k=10, columns=(0, 64))
    index.add(x[-300:], [str(i) for i in range(n - 300, n)])  # an fp32 tail
    cache = index._scan("int8", (0, 64))
    assert isinstance(cache, scan_int8.Int8Scan) and len(cache.shards) >= 6 and cache.rows > cache.sealed
    s, r, proven = cache.search(q[:, :64], 10, index._vectors()[:, :64], None, n)
    assert proven.all()  # the first shortlist suffices: per-row bounds are tight
    assert [[str(j) for j in row] for row in r] == _ref(q[:, :64], x[:, :64], range(n), 10)
    np.testing.assert_allclose(s, np.take_along_axis(q[:, :64] @ x[:, :64].T, r, 1), rtol=1e-6)
    index.remove([str(j) for j in r[0, :3]])  # removed rows never return; a filter keeping half
    keep = [i for i in range(1, n, 2) if i not in set(r[0, :3].tolist())]
    got = index.search(q, k=10, columns=(0, 64), where={"id": [str(i) for i in range(1, n, 2)]})
    assert _ids(got) == _ref(q[:, :64], x[:, :64], keep, 10)
    alive = [i for i in range(n) if i not in set(r[0, :3].tolist())]
    assert _ids(index.search(q, k=10, columns=(0, 64))) == _ref(q[:, :64], x[:, :64], alive, 10)
    few = [i for i in alive[::97]][:40]  # a selective filter: under 1 % of the rows, fewer than a shortlist
    got = index.search(q, k=10, columns=(0, 64), where={"id": [str(i) for i in few]})
    assert _ids(got) == _ref(q[:, :64], x[:, :64], few, 10)


def test_quantisation_bounds_hold():
    """The stored residual and norm bound the true error of every row and query (what the proof rests on)."""
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((500, 33)) * rng.random((500, 1)) * 10).astype(np.float32)
    x[0] = 0  # an all-zero row
    codes, scale, resid, norm = quantize_rows(x)
    x_hat = codes.astype(np.float64) * scale.astype(np.float64)[:, None]
    assert (np.linalg.norm(x - x_hat, axis=1) <= resid).all() and (np.linalg.norm(x_hat, axis=1) <= norm).all()
    for qq in rng.standard_normal((20, 33)).astype(np.float32):
        u, t, qn, dqn = quantize_query(qq)
        assert u.min() >= 1 and u.max() <= 255
        q_hat = t * (u.astype(np.float64) - scan_int8.QUERY_ZERO_POINT)
        err = np.abs(x.astype(np.float64) @ qq - x_hat @ q_hat)
        assert (err <= qn * resid + dqn * norm).all()


def test_auto_precision_scans_a_batch_in_fp32_and_a_lone_query_in_int8():
    """Reduced precision runs a query at a time; a batch is one BLAS product. Both give the fp32 top k."""
    if not onnx_available():
        pytest.skip("onnx not installed")
    rng = np.random.default_rng(1)
    n, d = SCAN_MIN_ROWS + 100, 16
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((5, d)).astype(np.float32)
    index = VectorIndex(d)  # precision="auto"
    index.add(x, [str(i) for i in range(n)])
    assert _ids(index.search(q, k=10)) == _ref(q, x, range(n), 10)
    assert not index._scans  # the batch never built a reduced-precision copy
    assert _ids(index.search(q[:1], k=10)) == _ref(q[:1], x, range(n), 10)
    assert any(key[0] == "int8" for key in index._scans)  # the lone query did
    assert _ids(index.search(q, k=10, precision="int8")) == _ref(q, x, range(n), 10)  # asked for: honoured


def test_int8_products_are_exact_at_the_extremes_of_both_codes():
    """Every code at +-127 and the query at 1 / 255: onnxruntime's integer product equals numpy's (no saturation)."""
    if not onnx_available():
        pytest.skip("onnx not installed")
    rng = np.random.default_rng(7)
    d = 256
    codes = np.where(rng.random((64, d)) < 0.5, 127, -127).astype(np.int8)
    codes[0], codes[1] = 127, -127
    ones, zeros = np.ones(64, np.float32), np.zeros(64, np.float32)
    session = scan_int8._session(codes, ones, zeros, zeros)  # ub = dot * 1 + 0: the product itself
    for u in (
        np.full(d, 255, np.uint8),
        np.full(d, 1, np.uint8),
        np.where(rng.random(d) < 0.5, 255, 1).astype(np.uint8),
    ):
        (dot,) = session.run(None, {"u": u[None], "a": zeros[:1], "b": zeros[:1]})
        want = codes.astype(np.int64) @ (u.astype(np.int64) - scan_int8.QUERY_ZERO_POINT)
        np.testing.assert_array_equal(dot[0], want)  # |dot| <= 127 * 127 * 256 < 2^24: exact in float32


@pytest.mark.skipif(not onnx_available(), reason="onnx not installed (the int8 scan builds its graph with it)")
def test_int8_rerank_scores_identical_vectors_alike_and_keeps_ties_by_row(monkeypatch):
    """Copies of one vector land in different re-rank chunks and tails: one score for all, returned by row (#18)."""
    monkeypatch.setattr(scan_int8, "SHARD_ROWS", 4096)
    monkeypatch.setattr(scan_int8, "TAIL_ROWS", 1024)
    rng = np.random.default_rng(11)
    n, d = SCAN_MIN_ROWS + 700, 256
    x = rng.standard_normal((n, d)).astype(np.float32) * np.float32(0.05)
    v = rng.standard_normal(d).astype(np.float32)
    copies = np.sort(rng.choice(n, 60, replace=False))
    x[copies] = v
    index = VectorIndex(d, precision="int8")
    index.add(x, [str(i) for i in range(n)])
    for q in (v, v + rng.standard_normal(d).astype(np.float32) * np.float32(0.01), -v):
        for k in (3, 5, 17, 60):
            hits = index.search(q, k=k)[0]
            if q is not v and q[0] == -v[0]:
                continue
            assert [int(h[0]) for h in hits] == copies[:k].tolist(), k
            assert len({h[1] for h in hits}) == 1


def test_exact_rerank_scores_a_vector_the_same_wherever_it_sits():
    """BLAS scores the last rows of a product with another kernel: copies one ulp apart broke ties by row (#18)."""
    from clear_sdk.index.topk import exact_rerank

    rng = np.random.default_rng(12)
    for d in (64, 70, 256):
        v, q = rng.standard_normal((2, d)).astype(np.float32)
        for n in (5, 17, 255, 300):
            x = np.repeat(v[None], n, 0)
            cand = rng.permutation(n)[None]
            s, r = exact_rerank(q[None], x, cand, n)
            assert len(set(s[0].tolist())) == 1, (d, n)
            np.testing.assert_array_equal(r[0], np.arange(n))
            s3, r3 = exact_rerank(q[None], x, np.array([[n - 1, 0, 1]]), 2)
            assert s3[0].tolist() == s[0, :2].tolist() and r3[0].tolist() == [0, 1]
