"""VectorIndex: exact search against a brute-force reference, filters, persistence, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from clear_sdk.errors import BundleError, QueryError
from clear_sdk.index import VECTORS_FILE, VectorIndex, faiss_available, topk_inner_product

REPO = Path(__file__).resolve().parents[1]


def _brute_force(queries: np.ndarray, vectors: np.ndarray, k: int, rows: np.ndarray | None = None):
    """Reference: full matmul + stable argsort (ties by row), optionally over a subset of rows."""
    rows = np.arange(len(vectors)) if rows is None else np.asarray(rows)
    scores = queries @ vectors[rows].T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), rows[order]


def _int_vectors(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Small-integer vectors: every inner product is exact in float32, so ties are real ties."""
    return rng.integers(-2, 3, size=(n, d)).astype(np.float32)


def _ids(result) -> list[list[str]]:
    return [[item_id for item_id, _, _ in hits] for hits in result]


# --------------------------------------------------------------------------------------- exact top-k


@pytest.mark.parametrize("block_rows", [1, 7, 512, 65536])
def test_topk_equals_stable_brute_force_with_ties(block_rows):
    rng = np.random.default_rng(0)
    x = _int_vectors(rng, 3000, 6)  # 5^6 combinations for 3000 rows: many exact ties
    q = _int_vectors(rng, 9, 6)
    for k in (1, 10, 37):
        s, r = topk_inner_product(q, x, k, block_rows=block_rows)
        ref_s, ref_r = _brute_force(q, x, k)
        np.testing.assert_array_equal(r, ref_r)
        np.testing.assert_array_equal(s, ref_s)


def test_topk_on_float_data_and_adversarial_order():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[[5, 17, 19999]] + 0.01
    s, r = topk_inner_product(q, x, 10, block_rows=4096)
    ref_s, ref_r = _brute_force(q, x, 10)
    np.testing.assert_array_equal(r, ref_r)
    np.testing.assert_allclose(s, ref_s, rtol=1e-5)
    # scores rising with the row: every block beats the running top-k (the fallback path)
    rising = np.arange(30000, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    s, r = topk_inner_product(np.ones((2, 2), np.float32), rising, 5, block_rows=1000)
    np.testing.assert_array_equal(r, [[29999, 29998, 29997, 29996, 29995]] * 2)
    # all scores equal: row order decides
    s, r = topk_inner_product(np.ones((1, 3), np.float32), np.zeros((9000, 3), np.float32), 4, block_rows=1000)
    np.testing.assert_array_equal(r, [[0, 1, 2, 3]])


def test_topk_subset_and_small_inputs():
    rng = np.random.default_rng(2)
    x = _int_vectors(rng, 500, 4)
    q = _int_vectors(rng, 3, 4)
    subset = np.sort(rng.choice(500, size=123, replace=False))
    s, r = topk_inner_product(q, x, 20, rows=subset, block_rows=16)
    ref_s, ref_r = _brute_force(q, x, 20, rows=subset)
    np.testing.assert_array_equal(r, ref_r)
    s, r = topk_inner_product(q, x, 1000, rows=subset[:5])  # k > candidates: all of them
    assert r.shape == (3, 5)
    s, r = topk_inner_product(q, x, 10, rows=subset[:0])
    assert r.shape == (3, 0)


# ------------------------------------------------------------------------------------------ the index


def test_index_search_equals_brute_force_and_k_larger_than_n():
    rng = np.random.default_rng(3)
    x = _int_vectors(rng, 2000, 5)
    q = _int_vectors(rng, 4, 5)
    index = VectorIndex(5, block_rows=300)
    ids = [f"p{i}" for i in range(len(x))]
    index.add(x[:700], ids[:700])
    index.add(x[700:], ids[700:])
    assert len(index) == 2000
    result = index.search(q, k=15)
    _, ref_r = _brute_force(q, x, 15)
    assert _ids(result) == [[ids[j] for j in row] for row in ref_r]
    assert all(isinstance(score, float) for hits in result for _, score, _ in hits)
    small = VectorIndex(5)
    small.add(x[:3], ["a", "b", "c"])
    hits = small.search(q[0], k=10)[0]
    assert len(hits) == 3
    assert [h[1] for h in hits] == sorted((h[1] for h in hits), reverse=True)
    assert VectorIndex(5).search(q, k=3) == [[], [], [], []]


def test_auto_ids_metadata_and_validation():
    index = VectorIndex(3)
    auto = index.add(np.eye(3, dtype=np.float32))
    assert len(set(auto)) == 3 and all(isinstance(i, str) and i for i in auto)
    md = {"camera": 4, "timestamp": 12.5, "track": 7, "bbox": (1, 2, 30, 40), "source": "cam4/f12.jpg", "zone": "A"}
    index.add(np.ones((1, 3), np.float32), ["x"], [md])
    assert index.get_metadata(["x"]) == [
        {
            "camera": "4",
            "timestamp": 12.5,
            "track": 7,
            "bbox": [1.0, 2.0, 30.0, 40.0],
            "source": "cam4/f12.jpg",
            "zone": "A",
        }
    ]
    assert "x" in index and "y" not in index
    np.testing.assert_array_equal(index.get_vectors(["x"]), np.ones((1, 3)))
    with pytest.raises(KeyError, match="'nope'"):
        index.get_metadata(["nope"])
    bad = [
        ({"bbox": [1, 2, 3]}, "bbox must be 4 numbers"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"track": 1.5}, "track must be an int"),
        ({"zone": object()}, "JSON"),
        ({"id": "z"}, "ids argument"),
    ]
    for metadata, match in bad:
        with pytest.raises(ValueError, match=match):
            index.add(np.ones((1, 3), np.float32), ["new"], [metadata])
    assert len(index) == 4


def test_duplicate_ids_and_dim_errors_write_nothing(tmp_path):
    index = VectorIndex(4, tmp_path / "idx")
    index.add(np.ones((2, 4), np.float32), ["a", "b"])
    size = (tmp_path / "idx" / VECTORS_FILE).stat().st_size
    with pytest.raises(ValueError, match="'b' is already in the index"):
        index.add(np.zeros((3, 4), np.float32), ["c", "b", "d"])
    with pytest.raises(ValueError, match="duplicate id 'c' within this add"):
        index.add(np.zeros((2, 4), np.float32), ["c", "c"])
    with pytest.raises(ValueError, match=r"shape \[N, 4\]"):
        index.add(np.zeros((2, 5), np.float32), ["c", "d"])
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.full((1, 4), np.nan, np.float32), ["c"])
    with pytest.raises(ValueError, match="2 embeddings but 1 ids"):
        index.add(np.zeros((2, 4), np.float32), ["c"])
    with pytest.raises(ValueError, match=r"shape \[Q, 4\]"):
        index.search(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="k must be"):
        index.search(np.zeros(4, np.float32), k=0)
    assert len(index) == 2 and index.ids == ["a", "b"]
    assert (tmp_path / "idx" / VECTORS_FILE).stat().st_size == size
    index.close()
    with pytest.raises(BundleError, match="holds 4-d vectors, not 8-d"):
        VectorIndex(8, tmp_path / "idx")
    with pytest.raises(BundleError, match="pass dim"):
        VectorIndex(None, tmp_path / "empty")


def test_where_filters_and_exclude():
    rng = np.random.default_rng(4)
    n = 3000
    x = _int_vectors(rng, n, 6)
    q = _int_vectors(rng, 3, 6)
    cameras = [f"c{i % 4}" for i in range(n)]
    md = [
        {"camera": cameras[i], "timestamp": float(i), "track": i % 10, "zone": "in" if i % 3 else "out"}
        if i % 50
        else {"camera": cameras[i]}  # no timestamp/track/zone
        for i in range(n)
    ]
    ids = [f"i{i}" for i in range(n)]
    index = VectorIndex(6, block_rows=64)
    index.add(x, ids, md)

    def check(where, selected, k=12, exclude=None):
        rows = np.array(
            [i for i in range(n) if selected(i) and (exclude is None or ids[i] not in exclude)], dtype=np.int64
        )
        _, ref = _brute_force(q, x, k, rows=rows)
        got = index.search(q, k=k, where=where, exclude=exclude)
        assert _ids(got) == [[ids[j] for j in r] for r in ref], where

    check({"camera": "c1"}, lambda i: i % 4 == 1)
    check({"camera": ["c1", "c3"]}, lambda i: i % 4 in (1, 3))
    check({"timestamp": (100, 199.5)}, lambda i: 100 <= i <= 199 and i % 50)
    check({"timestamp": (None, 30)}, lambda i: i <= 30 and i % 50)
    check({"track": 3, "camera": "c3"}, lambda i: i % 10 == 3 and i % 4 == 3 and i % 50)
    check({"track": [1, 2]}, lambda i: i % 10 in (1, 2) and i % 50)
    check({"extra.zone": "out"}, lambda i: i % 3 == 0 and i % 50)
    check({"timestamp": None}, lambda i: i % 50 == 0)
    check({"camera": "c2"}, lambda i: i % 4 == 2, exclude={"i2", "i6", "i10"})
    check(None, lambda i: True, exclude=["i0", "i1", "unknown-id"])
    check({"camera": []}, lambda i: False)
    check({"id": ids[::3]}, lambda i: i % 3 == 0)  # more values than SQLite's bound-parameter chunk
    hits = index.search(q[0], k=3, where={"camera": "c1"})[0]
    assert all(h[2]["camera"] == "c1" for h in hits)
    with pytest.raises(QueryError, match="valid filter keys: id, camera, source, timestamp, track"):
        index.search(q, where={"cam": "c1"})
    with pytest.raises(QueryError, match="range is a 2-tuple"):
        index.search(q, where={"timestamp": (1, 2, 3)})


def test_remove_skips_items_and_persists(tmp_path):
    rng = np.random.default_rng(5)
    x = _int_vectors(rng, 50, 4)
    q = _int_vectors(rng, 2, 4)
    ids = [f"r{i}" for i in range(50)]
    index = VectorIndex(4, tmp_path)
    index.add(x, ids)
    gone = ids[:40:3]
    index.remove(gone)
    assert len(index) == 50 - len(gone) and not any(g in index for g in gone)
    keep = np.array([i for i in range(50) if ids[i] not in gone])
    _, ref = _brute_force(q, x, 10, rows=keep)
    assert _ids(index.search(q, 10)) == [[ids[j] for j in r] for r in ref]
    with pytest.raises(KeyError, match="'zzz'"):
        index.remove(["r45", "zzz"])
    assert "r45" in index
    index.close()
    reopened = VectorIndex(None, tmp_path)
    assert len(reopened) == 50 - len(gone)
    assert _ids(reopened.search(q, 10)) == [[ids[j] for j in r] for r in ref]
    reopened.add(np.zeros((1, 4), np.float32), [gone[0]])  # a removed id may be used again
    assert gone[0] in reopened


def test_persistence_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    q = rng.standard_normal((5, 16)).astype(np.float32)
    ids = [f"g{i}" for i in range(300)]
    md = [{"camera": f"c{i % 3}", "timestamp": 1000.0 + i, "bbox": [0, 0, 10, 20 + i]} for i in range(300)]
    with VectorIndex(16, tmp_path / "gallery") as index:
        index.add(x[:100], ids[:100], md[:100])
        index.add(x[100:], ids[100:], md[100:])
        before = index.search(q, k=7, where={"camera": ["c0", "c2"]})
        before_all = index.search(q, k=7)
    reopened = VectorIndex(None, tmp_path / "gallery")
    assert reopened.dim == 16 and len(reopened) == 300 and reopened.ids == ids
    assert isinstance(reopened._vectors(), np.memmap)
    np.testing.assert_array_equal(reopened.get_vectors(ids), x)
    assert reopened.get_metadata(["g42"]) == [md[42]]
    assert reopened.search(q, k=7, where={"camera": ["c0", "c2"]}) == before
    assert reopened.search(q, k=7) == before_all
    reopened.close()
    with pytest.raises(Exception, match="closed"):
        reopened.search(q)


def test_two_writers_on_one_directory(tmp_path):
    a = VectorIndex(2, tmp_path)
    b = VectorIndex(2, tmp_path)
    a.add(np.ones((2, 2), np.float32), ["a1", "a2"])
    b.add(np.zeros((1, 2), np.float32), ["b1"])  # b notices a's commit and appends after it
    a.add(np.full((1, 2), 2, np.float32), ["a3"])
    for index in (a, b):
        index.refresh()
        assert index.ids == ["a1", "a2", "b1", "a3"]
        np.testing.assert_array_equal(index.get_vectors(["b1", "a3"]), [[0, 0], [2, 2]])


def test_not_an_index_is_reported(tmp_path):
    (tmp_path / "index.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(BundleError, match="not a readable SQLite database"):
        VectorIndex(4, tmp_path)
    with pytest.raises(BundleError, match="is a file"):
        VectorIndex(4, tmp_path / "index.sqlite")


def test_short_vector_file_is_reported(tmp_path):
    index = VectorIndex(2, tmp_path)
    index.add(np.ones((3, 2), np.float32), ["a", "b", "c"])
    index.close()
    with open(tmp_path / VECTORS_FILE, "r+b") as f:
        f.truncate(8)
    with pytest.raises(BundleError, match="holds 1 vectors but the index committed 3"):
        VectorIndex(None, tmp_path)


# ------------------------------------------------------------------------------------------- crash safety

_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from clear_sdk.index import VectorIndex

    path, mode = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(7)
    index = VectorIndex(8, path)
    index.add(rng.standard_normal((40, 8)).astype(np.float32), [f"a{i}" for i in range(40)])
    index.add(rng.standard_normal((25, 8)).astype(np.float32), [f"b{i}" for i in range(25)])
    from clear_sdk.index.catalog import Catalog

    original = Catalog.finish_add

    def die(self, *args):
        # the vectors of this add are written and fsynced, its rows inserted; its SQLite transaction is still open
        if mode == "inside-transaction":
            original(self, *args)
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    Catalog.finish_add = die
    index.add(rng.standard_normal((5000, 8)).astype(np.float32), [f"c{i}" for i in range(5000)])
    print("not killed")
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
@pytest.mark.parametrize("mode", ["after-vector-append", "inside-transaction"])
def test_crash_during_add_loses_only_that_add(tmp_path, mode):
    path = tmp_path / "idx"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), mode], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "not killed" not in proc.stdout
    # the killed add had appended its vectors: the file is longer than the committed rows
    assert (path / VECTORS_FILE).stat().st_size == (65 + 5000) * 8 * 4

    index = VectorIndex(None, path)  # reopening discards the uncommitted tail
    assert (path / VECTORS_FILE).stat().st_size == 65 * 8 * 4
    expected_ids = [f"a{i}" for i in range(40)] + [f"b{i}" for i in range(25)]
    assert len(index) == 65 and index.ids == expected_ids
    rng = np.random.default_rng(7)
    committed = np.concatenate([rng.standard_normal((40, 8)), rng.standard_normal((25, 8))]).astype(np.float32)
    np.testing.assert_array_equal(index.get_vectors(expected_ids), committed)
    q = committed[[3, 50]]
    _, ref = _brute_force(q, committed, 5)
    assert _ids(index.search(q, k=5)) == [[expected_ids[j] for j in r] for r in ref]
    index.add(np.ones((2, 8), np.float32), ["c0", "c1"])  # the killed add's ids are free again
    index.close()
    again = VectorIndex(None, path)
    assert len(again) == 67 and again.ids[-2:] == ["c0", "c1"]


# ------------------------------------------------------------------------------------------------ FAISS


def test_faiss_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` raise ImportError
    assert not faiss_available()
    with pytest.raises(ImportError, match=r"pip install clear-sdk\[faiss\]"):
        VectorIndex(4, backend="faiss")
    with pytest.raises(ImportError, match=r"pip install clear-sdk\[faiss\]"):
        VectorIndex(4, faiss_type="hnsw")
    with pytest.raises(ValueError, match="FAISS index"):
        VectorIndex(4, backend="numpy", faiss_type="ivf")


@pytest.mark.skipif(not faiss_available(), reason="faiss not installed (pip install clear-sdk[faiss])")
@pytest.mark.parametrize("faiss_type", ["flat", "ivf", "hnsw"])
def test_faiss_backends_agree_with_exact(faiss_type):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:20] + 0.05 * rng.standard_normal((20, 16)).astype(np.float32)
    ids = [str(i) for i in range(3000)]
    index = VectorIndex(16, backend="faiss", faiss_type=faiss_type, nprobe=64, ef_search=256)
    index.add(x[:2000], ids[:2000])
    index.search(q, k=10)  # builds the FAISS index
    index.add(x[2000:], ids[2000:])  # and then extends it
    got = _ids(index.search(q, k=10, exclude=["0"]))
    _, ref = _brute_force(q, x, 11)
    ref_ids = [[ids[j] for j in r if j != 0][:10] for r in ref]
    recall = np.mean([len(set(g) & set(r)) / 10 for g, r in zip(got, ref_ids)])
    assert recall >= (1.0 if faiss_type == "flat" else 0.9)
    assert all("0" not in g for g in got)
    # filters are always exact (numpy over the matching rows)
    got = _ids(index.search(q, k=5, where={"id": ids[:500]}))
    _, ref = _brute_force(q, x, 5, rows=np.arange(500))
    assert got == [[ids[j] for j in r] for r in ref]


def test_an_index_made_with_sql_camera_and_time_indexes_drops_them_at_its_next_add(tmp_path):
    """Filters read the numpy mirror; the two B-trees older indexes kept only slowed every add."""
    import sqlite3

    index = VectorIndex(4, path=tmp_path / "idx")
    index.add(np.eye(4, dtype=np.float32), ["a", "b", "c", "d"], [{"camera": "c1", "timestamp": 1.0}] * 4)
    index.close()
    db = sqlite3.connect(tmp_path / "idx" / "index.sqlite")
    db.execute("CREATE INDEX items_camera ON items(camera)")
    db.execute("CREATE INDEX items_timestamp ON items(timestamp)")
    db.commit()
    db.close()

    def sql_indexes() -> set[str]:
        with sqlite3.connect(tmp_path / "idx" / "index.sqlite") as con:
            return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")}

    assert {"items_camera", "items_timestamp"} <= sql_indexes()
    index = VectorIndex(None, path=tmp_path / "idx")
    index.add(np.ones((1, 4), np.float32), ["e"], [{"camera": "c2", "timestamp": 2.0}])
    assert not {"items_camera", "items_timestamp"} & sql_indexes()
    hits = index.search(np.eye(4, dtype=np.float32)[:1], k=5, where={"camera": "c1"})[0]
    assert sorted(h[0] for h in hits) == ["a", "b", "c", "d"] and hits[0][0] == "a"
    assert index.remove(where={"timestamp": (0.0, 1.5)}) == 4 and len(index) == 1


def test_a_finite_vector_whose_score_overflows_is_still_a_hit():
    """fp32 scores past 3.4e38 are +-inf; the vector is fine, only a non-finite stored row is corrupt (#19)."""
    big = np.full((3, 4), 1e20, np.float32)
    big[1] *= -1
    for precision in ("fp32", "auto"):
        index = VectorIndex(4, precision=precision)
        index.add(big, ["up", "down", "up2"])
        hits = index.search(np.full(4, 1e20, np.float32), k=3)[0]
        assert [h[0] for h in hits] == ["up", "up2", "down"]
        assert [h[1] for h in hits] == [np.inf, np.inf, -np.inf]
        assert [h[0] for h in index.search(np.full(4, 1e20, np.float32), k=3, where={"id": ["down", "up"]})[0]] == [
            "up",
            "down",
        ]
