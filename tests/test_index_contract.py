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
_NEEDS_MILVUS = pytest.mark.skipif(not HAS_MILVUS, reason="pip install clear-sdk[milvus]")
# Milvus plain, and partitioned by camera / by day (a partition key field; filters also prune partitions)
BACKENDS = ["local", *(pytest.param(k, marks=_NEEDS_MILVUS) for k in ("milvus", "milvus-camera", "milvus-day"))]
N, D = 400, 12


def _location(kind, tmp_path):
    return str(tmp_path / ("gallery.db" if kind.startswith("milvus") else "gallery"))


def _open(kind, tmp_path, dim):
    part = {"partition_by": kind.split("-")[1]} if kind.startswith("milvus-") else {}
    return open_index(_location(kind, tmp_path), dim, **part)


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
    index = _open(request.param, tmp_path, D)
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
    again = open_index(_location(kind, tmp_path), None)  # the partitioning is read from the collection
    assert getattr(again, "partition_by", None) == (kind.split("-")[1] if "-" in kind else None)
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


@_NEEDS_MILVUS
@pytest.mark.parametrize("partition_by", ["camera", "day"])
def test_milvus_partitions_prune_and_answer_as_the_local_index(tmp_path, partition_by):
    """Items over 5 days and 6 cameras: filters on the partition field add a partition condition, same results."""
    from clear_sdk.index import MilvusIndex

    rng = np.random.default_rng(5)
    n, d, day = 1200, 16, 86400.0
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((4, d)).astype(np.float32)
    ids = [f"i{i}" for i in range(n)]
    t0 = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
    md = [{"camera": f"c{i % 6}", "timestamp": t0 + (i % 5) * day + i} for i in range(n)]
    md[7], md[8] = {"timestamp": t0 + 7}, {"camera": "c1"}  # no camera / no timestamp: partition ""
    local = open_index(None, d)
    milvus = open_index(str(tmp_path / "p.db"), d, partition_by=partition_by, num_partitions=8)
    for index in (local, milvus):
        index.add(x, ids, md)
    filters = [
        {"camera": "c3"},
        {"camera": ["c1", "c4"], "timestamp": (t0 + day, t0 + 3 * day)},
        {"timestamp": (t0 + 2 * day - 100, t0 + 2 * day + 5000)},
        {"camera": None},
        {"timestamp": None},
        {"timestamp": (t0 + 3 * day, t0 + day)},  # empty range
    ]
    for where in filters:
        assert _ids(milvus.search(q, k=7, where=where)) == _ids(local.search(q, k=7, where=where)), where
    field = "camera" if partition_by == "camera" else "timestamp"
    narrowing = [w for w in filters if field in w]
    assert all("partition in [" in milvus._expression(w) or milvus._expression(w) == "false" for w in narrowing)
    assert "partition" not in milvus._expression({"extra.zone": "a"})  # nothing to prune on
    # every item sits in the partition its metadata names
    want = "c2" if partition_by == "camera" else "2026-05-30"
    rows = milvus._client.query(
        milvus.collection, filter=f'partition == "{want}"', output_fields=["camera", "timestamp"]
    )
    assert rows and (
        all(r["camera"] == "c2" for r in rows)
        if partition_by == "camera"
        else len(rows)
        == sum(1 for m in md if m.get("timestamp") and t0 + 2 * day - 73600 <= m["timestamp"] < t0 + 3 * day - 73600)
    )
    where = {"camera": "c5"} if partition_by == "camera" else {"timestamp": (t0 + 4 * day - 73600, t0 + 5 * day)}
    assert milvus.remove(where=where) == local.remove(where=where) > 0
    assert _ids(milvus.search(q, k=10)) == _ids(local.search(q, k=10))
    milvus.close()
    with pytest.raises(BundleError, match="partitioning is fixed"):
        MilvusIndex(None, str(tmp_path / "p.db"), partition_by="day" if partition_by == "camera" else "camera")
    with pytest.raises(ValueError, match="partition_by must be"):
        MilvusIndex(d, str(tmp_path / "q.db"), partition_by="hour")


# ------------------------------------------------------------- hostile input: both backends, same answers
# (issue 25: #2, #3, #8, #14, #15, #20, #23, #25; the rules: values typed and escaped by one function per
# backend, any Unicode survives, both backends answer or refuse the same inputs the same way)

HOSTILE = [
    "C:\\crops\\a.jpg",  # backslashes (Windows paths)
    "it's",
    'z" or seq >= 0 or pk == "',  # an expression injection
    "z' or seq >= 0 or pk == '",
    "café",
    "前门",
    "nul\x00byte",
    "tab\tnew\nline\rcr",
    "emoji \U0001f600",
    "{braces} $dollar %pct",
]


@pytest.fixture(params=["local", *(pytest.param(k, marks=_NEEDS_MILVUS) for k in ("milvus", "milvus-day"))])
def empty(request, tmp_path):
    index = _open(request.param, tmp_path, D)
    yield request.param, index
    index.close()


def _vectors(n, seed=7):
    return np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)


def test_any_unicode_id_camera_and_value_survives(empty):
    _, index = empty
    x = _vectors(len(HOSTILE))
    md = [{"camera": s, "source": s, "tag": s, "timestamp": 1000.0 + i} for i, s in enumerate(HOSTILE)]
    assert index.add(x, HOSTILE, md) == HOSTILE
    assert index.ids == HOSTILE  # terminates (the injection id once made it loop forever)
    assert all(s in index for s in HOSTILE)
    assert index.get_metadata(HOSTILE) == md
    np.testing.assert_allclose(index.get_vectors(HOSTILE[::-1]), x[::-1], atol=1e-6)
    for i, s in enumerate(HOSTILE):
        for where in ({"id": s}, {"camera": s}, {"camera": [s, "other"]}, {"source": s}, {"extra.tag": s},
                      {"extra.tag": [s]}):  # fmt: skip
            assert [h for h, _ in index.select(where)] == [s], (s, where)
            assert _ids(index.search(x[i], k=3, where=where)) == [[s]], (s, where)
        top = _ids(index.search(x[i], k=len(HOSTILE), exclude=[s]))[0]
        assert s not in top and len(top) == len(HOSTILE) - 1
    assert index.select({"extra.tag": "nul"}) == [] and index.select({"camera": "nul"}) == []
    assert index.remove([HOSTILE[2], HOSTILE[6]]) == 2
    assert index.remove(where={"camera": HOSTILE[0]}) == 1
    assert index.ids == [s for j, s in enumerate(HOSTILE) if j not in (0, 2, 6)]


def test_numpy_scalars_filter_as_python_numbers(empty):
    _, index = empty
    x = _vectors(6)
    index.add(x, [f"t{i}" for i in range(6)], [{"track": i, "timestamp": 10.0 * i, "n": i} for i in range(6)])
    for where in ({"track": np.int64(3)}, {"track": np.int32(3)}, {"track": [np.int64(3), np.uint8(9)]},
                  {"track": (np.int64(3), np.int16(3))}, {"timestamp": np.float32(30.0)},
                  {"timestamp": (np.float64(25.0), np.int64(30))}, {"extra.n": np.int64(3)}):  # fmt: skip
        assert [i for i, _ in index.select(where)] == ["t3"], where
        assert _ids(index.search(x[3], k=6, where=where)) == [["t3"]], where
    assert index.remove(where={"track": np.int64(3)}) == 1 and "t3" not in index


def test_big_tracks_compare_exactly_and_out_of_range_ones_are_refused(empty):
    _, index = empty
    x = _vectors(3)
    big = 2**53
    index.add(x, ["a", "b", "c"], [{"track": big}, {"track": big + 1}, {"track": -(2**63)}])
    assert _ids(index.search(x[0], k=3, where={"track": big})) == [["a"]]
    assert _ids(index.search(x[0], k=3, where={"track": [big + 1]})) == [["b"]]
    assert _ids(index.search(x[0], k=3, where={"track": (big + 1, None)})) == [["b"]]
    assert [i for i, _ in index.select({"track": big})] == ["a"]
    with pytest.raises(ValueError, match="track must be an int in the 64-bit range"):
        index.add(x[:1], ["d"], [{"track": 2**70}])
    for where in ({"track": 2**70}, {"track": [1, -(2**64)]}, {"track": (0, 2**63)}):
        with pytest.raises(QueryError, match="64-bit range"):
            index.search(x[0], where=where)
        with pytest.raises(QueryError, match="64-bit range"):
            index.select(where)
    assert "d" not in index and len(index) == 3


def test_nan_and_infinite_filters_answer_alike(empty):
    _, index = empty
    x = _vectors(4)
    index.add(x, list("abcd"), [{"timestamp": 100.0 * i, "track": i} for i in range(4)])
    for where in ({"timestamp": float("nan")}, {"timestamp": (float("nan"), None)}, {"track": float("nan")},
                  {"track": [1, float("nan")]}):  # fmt: skip
        with pytest.raises(QueryError, match="NaN"):
            index.search(x[0], where=where)
        with pytest.raises(QueryError, match="NaN"):
            index.remove(where=where)
    inf = float("inf")
    assert [i for i, _ in index.select({"timestamp": (None, inf)})] == list("abcd")
    assert [i for i, _ in index.select({"timestamp": (150.0, inf)})] == list("cd")
    assert [i for i, _ in index.select({"timestamp": (-inf, 150.0)})] == list("ab")
    assert index.select({"timestamp": (inf, None)}) == [] and index.select({"timestamp": (None, -inf)}) == []
    assert index.select({"timestamp": inf}) == [] and index.select({"timestamp": [inf, 200.0]})[0][0] == "c"
    assert _ids(index.search(x[0], k=4, where={"timestamp": (-inf, inf)}))[0][0] == "a"
    assert index.remove_older_than(inf, now=1000.0) == 0 and index.remove_older_than(1e308, now=1000.0) == 0
    assert len(index) == 4
    with pytest.raises(ValueError, match="retention"):
        index.remove_older_than(float("nan"))


def test_timestamps_beyond_the_calendar_are_stored_and_filtered(empty):
    _, index = empty
    x = _vectors(3)
    far = [1e15, -1e14, 1e300]  # years past 9999 / before 1: no calendar day (Milvus day partitions)
    index.add(x, ["f", "p", "h"], [{"timestamp": t} for t in far])
    assert [i for i, _ in index.select({"timestamp": 1e15})] == ["f"]
    assert [i for i, _ in index.select({"timestamp": (-1e15, 0.0)})] == ["p"]
    assert _ids(index.search(x[2], k=3, where={"timestamp": (1e16, None)})) == [["h"]]
    assert index.remove(where={"timestamp": [1e300]}) == 1


def test_extra_filters_with_lists_and_nul(empty):
    _, index = empty
    x = _vectors(4)
    index.add(x, list("abcd"), [{"zone": "A"}, {"zone": "B"}, {"zone": "a\x00b"}, {"zone": "a"}])
    assert [i for i, _ in index.select({"extra.zone": ["A", "B"]})] == ["a", "b"]
    assert [i for i, _ in index.select({"extra.zone": "a"})] == ["d"]  # not "a\0b"
    assert [i for i, _ in index.select({"extra.zone": "a\x00b"})] == ["c"]
    assert [i for i, _ in index.select({"extra.zone": ["a\x00b", "zz"]})] == ["c"]
    assert _ids(index.search(x[0], k=4, where={"extra.zone": ["B", "a"]})) == [["b", "d"]] or sorted(
        _ids(index.search(x[0], k=4, where={"extra.zone": ["B", "a"]}))[0]
    ) == ["b", "d"]


def test_remove_everything_must_be_explicit(empty):
    _, index = empty
    x = _vectors(3)
    index.add(x, list("abc"))
    with pytest.raises(QueryError, match="everything=True"):
        index.remove(where={})
    assert len(index) == 3
    with pytest.raises(ValueError, match="either ids or where= .*everything=True"):
        index.remove(["a"], everything=True)
    assert index.remove(everything=True) == 3 and len(index) == 0


# ----------------------------------------------------------------------------- the written interface (issue 26)


def test_every_backend_implements_the_gallery_index_protocol(empty):
    """The protocol in clear_sdk/index/base.py is the interface: every method, with every parameter it names."""
    import inspect

    from clear_sdk.index import GalleryIndex

    _, index = empty
    assert isinstance(index, GalleryIndex)
    members = [n for n in dir(GalleryIndex) if not n.startswith("_") or n in ("__len__", "__contains__")]
    for name in members:
        want = inspect.getattr_static(GalleryIndex, name)
        got = inspect.getattr_static(type(index), name, None)
        assert got is not None, f"{type(index).__name__} lacks {name}"
        if inspect.isfunction(want):
            named = [p.name for p in inspect.signature(want).parameters.values() if p.kind != p.VAR_KEYWORD]
            assert set(named) <= set(inspect.signature(got).parameters), (type(index).__name__, name)
        elif isinstance(want, property):
            assert isinstance(got, property), (type(index).__name__, name)
    assert index.corrupt_ids == [] and index.verify() == []
    assert not hasattr(index, "backend") or type(index).__name__ == "VectorIndex"  # no "milvus" shim


def test_a_duplicate_id_is_a_typed_error(empty):
    from clear_sdk.errors import DuplicateIdError

    _, index = empty
    index.add(_vectors(2), ["a", "b"])
    with pytest.raises(DuplicateIdError, match="'b' is already in the index") as err:
        index.add(_vectors(2), ["c", "b"])
    assert err.value.item_id == "b" and "c" not in index
