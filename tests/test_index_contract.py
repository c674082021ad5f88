"""One contract for every index backend: the local VectorIndex and Milvus (Milvus Lite, a file on disk).

Add, search (equal to fp32 brute force), filters, exclude, removal by id / filter, retention, replace,
persistence, model identity, bad input. Milvus cases skip when pymilvus / milvus-lite is not installed.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from clear_sdk.errors import BundleError, QueryError
from clear_sdk.index import open_index

HAS_MILVUS = importlib.util.find_spec("pymilvus") is not None and importlib.util.find_spec("milvus_lite") is not None
BACKENDS = [
    "local",
    pytest.param("milvus", marks=pytest.mark.skipif(not HAS_MILVUS, reason="pip install clear-sdk[milvus]")),
]
N, D = 400, 12


def _location(kind, tmp_path):
    return str(tmp_path / ("gallery.db" if kind == "milvus" else "gallery"))


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D)).astype(np.float32)
    q = rng.standard_normal((3, D)).astype(np.float32)
    ids = [f"i{i}" for i in range(N)]
    md = [{"camera": f"c{i % 4}", "timestamp": 1000.0 + i, "zone": "in" if i % 3 else "out"} for i in range(N)]
    md[5] = {"camera": "c1"}  # no timestamp
    return x, q, ids, md


def _ref(q, x, rows, k):
    rows = np.asarray(rows)
    return [[f"i{rows[j]}" for j in np.argsort(-(qq @ x[rows].T), kind="stable")[:k]] for qq in q]


def _ids(result):
    return [[h[0] for h in hits] for hits in result]


@pytest.fixture(params=BACKENDS)
def gallery(request, tmp_path):
    x, q, ids, md = _data()
    index = open_index(_location(request.param, tmp_path), D)
    index.add(x, ids, md)
    yield request.param, index, (x, q, ids, md), tmp_path
    index.close()


def test_search_filters_and_exclude_equal_brute_force(gallery):
    _, index, (x, q, ids, md), _ = gallery
    assert len(index) == N and "i7" in index and "nope" not in index
    assert _ids(index.search(q, k=10)) == _ref(q, x, range(N), 10)
    cam = [i for i in range(N) if i % 4 == 1]
    assert _ids(index.search(q, k=5, where={"camera": "c1"})) == _ref(q, x, cam, 5)
    span = [i for i in range(N) if 1100 <= 1000 + i <= 1200 and i != 5]
    assert _ids(index.search(q, k=5, where={"timestamp": (1100, 1200)})) == _ref(q, x, span, 5)
    both = [i for i in cam if i % 3 == 0 and i != 5]
    assert _ids(index.search(q, k=5, where={"camera": ["c1"], "extra.zone": "out"})) == _ref(q, x, both, 5)
    assert _ids(index.search(q[:1], k=3, where={"timestamp": None})) == [["i5"]]
    ex = _ref(q[:1], x, range(N), 2)[0]
    assert _ids(index.search(q[:1], k=5, exclude=ex))[0] == _ref(q[:1], x, range(N), 7)[0][2:]
    hit = index.search(q[:1], k=1, where={"camera": "c2"})[0][0]
    assert hit[2]["camera"] == "c2" and hit[2]["zone"] == "in" or hit[2]["zone"] == "out"
    assert np.isclose(hit[1], float(x[int(hit[0][1:])] @ q[0]), atol=1e-4)
    assert index.get_metadata(["i9"]) == [md[9]]
    np.testing.assert_allclose(index.get_vectors(["i3"]), x[3:4], atol=1e-6)


def test_remove_retention_replace_and_persistence(gallery):
    kind, index, (x, q, ids, md), tmp_path = gallery
    assert index.remove(["i0", "i1"]) == 2
    with pytest.raises(KeyError, match="'zzz'"):
        index.remove(["i2", "zzz"])
    assert "i2" in index
    assert index.remove(where={"camera": "c3"}) == N // 4
    # retention: keep what is younger than 100 s at t = 1300 (items without a timestamp stay)
    assert index.remove_older_than(100, now=1300.0) > 0
    alive = [i for i in range(2, N) if i % 4 != 3 and (i == 5 or 1000 + i >= 1200)]
    assert sorted(index.ids) == sorted(f"i{i}" for i in alive)
    assert _ids(index.search(q, k=8)) == _ref(q, x, alive, 8)
    with pytest.raises(ValueError, match="already in the index"):
        index.add(x[:1], ["i201"])
    index.add(-x[:1], ["i201"], [{"camera": "moved", "timestamp": 1201.0}], replace=True)
    assert index.get_metadata(["i201"]) == [{"camera": "moved", "timestamp": 1201.0}]
    np.testing.assert_allclose(index.get_vectors(["i201"]), -x[:1], atol=1e-6)
    assert index.set_meta_default("model_identity", "A") == "A" and index.set_meta_default("model_identity", "B") == "A"
    index.close()
    again = open_index(_location(kind, tmp_path), None)
    assert sorted(again.ids) == sorted(f"i{i}" for i in alive) and again.get_meta("model_identity") == "A"
    x2 = x.copy()
    x2[201] = -x[0]
    assert _ids(again.search(q, k=8)) == _ref(q, x2, alive, 8)
    again.close()
    with pytest.raises(BundleError, match=f"{D}-d vectors, not 5-d"):
        open_index(_location(kind, tmp_path), 5)


def test_bad_input_is_refused_with_the_fix(gallery):
    _, index, (x, q, ids, md), _ = gallery
    with pytest.raises(ValueError, match=rf"shape \[N, {D}\]"):
        index.add(np.zeros((1, 3), np.float32), ["new"])
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.full((1, D), np.nan, np.float32), ["new"])
    with pytest.raises(ValueError, match="duplicate id"):
        index.add(np.zeros((2, D), np.float32), ["n", "n"])
    with pytest.raises(ValueError, match="bbox must be 4 numbers"):
        index.add(np.zeros((1, D), np.float32), ["new"], [{"bbox": [1, 2]}])
    with pytest.raises(QueryError, match="valid filter keys"):
        index.search(q, where={"cam": "c1"})
    with pytest.raises(ValueError, match="k must be"):
        index.search(q, k=0)
    with pytest.raises(ValueError, match="either ids or where"):
        index.remove()
    assert "new" not in index and len(index) == N


@pytest.mark.skipif(not HAS_MILVUS, reason="pip install clear-sdk[milvus]")
def test_milvus_exact_results_are_identical_to_ours(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 32)).astype(np.float32)
    q = rng.standard_normal((10, 32)).astype(np.float32)
    ids = [f"i{i}" for i in range(3000)]
    md = [{"camera": f"c{i % 10}", "timestamp": float(i)} for i in range(3000)]
    local = open_index(None, 32)
    milvus = open_index(str(tmp_path / "m.db"), 32)
    for index in (local, milvus):
        index.add(x, ids, md)
    for where in (None, {"camera": "c3"}, {"timestamp": (500, 2500)}):
        a, b = local.search(q, k=10, where=where), milvus.search(q, k=10, where=where)
        assert _ids(a) == _ids(b)
        np.testing.assert_allclose([[h[1] for h in r] for r in a], [[h[1] for h in r] for r in b], rtol=1e-5, atol=1e-5)
    milvus.close()
