"""Metrics against hand-worked cases, naive pure-Python references and the real Market-1501 annotation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clear_sdk import metrics
from clear_sdk.metrics import EPS, attribute_metrics, retrieval_metrics, retrieval_queries

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# 3 samples x 3 attributes. Attribute 2 has no positives; sample 2 has no positive labels and
# (0.5 is not > 0.5) no predictions.
LABELS = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]])
PROBS = np.array([[0.9, 0.2, 0.8], [0.4, 0.7, 0.3], [0.1, 0.5, 0.2]])
# predictions at 0.5: s0 [1,0,1], s1 [0,1,0], s2 [0,0,0]


def test_attribute_metrics_hand_worked() -> None:
    r = attribute_metrics(PROBS, LABELS)
    # attr0: P=2 N=1 TP=1 TN=1 -> tpr 1/2, tnr 1, mA 3/4, acc 2/3
    # attr1: P=1 N=2 TP=1 TN=2 -> tpr 1, tnr 1, mA 1, acc 1
    # attr2: P=0 N=3 TP=0 TN=2 -> tpr 0/(0+eps) = 0, tnr 2/3, mA 1/3, acc 2/3
    np.testing.assert_allclose(r["per_attribute_tpr"], [0.5, 1.0, 0.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(r["per_attribute_tnr"], [1.0, 1.0, 2 / 3], rtol=0, atol=1e-15)
    np.testing.assert_allclose(r["per_attribute_mA"], [0.75, 1.0, 1 / 3], rtol=0, atol=1e-15)
    np.testing.assert_allclose(r["per_attribute_accuracy"], [2 / 3, 1.0, 2 / 3], rtol=0, atol=1e-15)
    assert r["mA"] == pytest.approx(25 / 36, abs=1e-15)  # (3/4 + 1 + 1/3) / 3
    # s0: Y={0} Yhat={0,2}: acc 1/2, prec 1/2, rec 1, f1 2/3
    # s1: Y={0,1} Yhat={1}: acc 1/2, prec 1, rec 1/2, f1 2/3
    # s2: Y={} Yhat={}: every ratio 0/(0+eps) = 0
    assert r["accuracy"] == pytest.approx(1 / 3, abs=1e-15)
    assert r["precision"] == pytest.approx(0.5, abs=1e-15)
    assert r["recall"] == pytest.approx(0.5, abs=1e-15)
    assert r["f1"] == pytest.approx(0.5, abs=1e-15)  # 2*.5*.5/(.5+.5)
    assert r["f1_mean"] == pytest.approx(4 / 9, abs=1e-15)  # (2/3 + 2/3 + 0)/3
    for key in ("mA", "accuracy", "precision", "recall", "f1", "f1_mean"):
        assert type(r[key]) is float
    for key in ("per_attribute_mA", "per_attribute_tpr", "per_attribute_tnr", "per_attribute_accuracy"):
        assert isinstance(r[key], np.ndarray) and r[key].shape == (3,)


def test_empty_sample_scores_zero_not_nan() -> None:
    r = attribute_metrics(np.zeros((1, 4)), np.zeros((1, 4), dtype=np.uint8))
    assert (r["accuracy"], r["precision"], r["recall"], r["f1"], r["f1_mean"]) == (0.0, 0.0, 0.0, 0.0, 0.0)
    # every attribute: TP/P = 0 (eps), TN/N = 1 -> mA 1/2
    assert r["mA"] == 0.5


def test_per_attribute_threshold() -> None:
    r = attribute_metrics(PROBS, LABELS, threshold=np.array([0.5, 0.6, 0.85]))
    # only change vs 0.5: s0 attr2 (0.8) is no longer predicted.
    # attr2: TN=3 -> mA 1/2; overall mA (3/4 + 1 + 1/2)/3 = 3/4
    np.testing.assert_allclose(r["per_attribute_mA"], [0.75, 1.0, 0.5], rtol=0, atol=1e-15)
    assert r["mA"] == pytest.approx(0.75, abs=1e-15)
    # s0 now perfect (1,1,1,1); s1 (1/2, 1, 1/2, 2/3); s2 zeros
    assert r["accuracy"] == pytest.approx(0.5, abs=1e-15)
    assert r["precision"] == pytest.approx(2 / 3, abs=1e-15)
    assert r["recall"] == pytest.approx(0.5, abs=1e-15)
    assert r["f1"] == pytest.approx(4 / 7, abs=1e-15)  # 2*(2/3)(1/2)/(2/3+1/2)
    assert r["f1_mean"] == pytest.approx(5 / 9, abs=1e-15)
    # a constant per-attribute array equals the scalar threshold
    same = attribute_metrics(PROBS, LABELS, threshold=[0.5, 0.5, 0.5])
    base = attribute_metrics(PROBS, LABELS, threshold=0.5)
    for key, val in base.items():
        np.testing.assert_array_equal(same[key], val)


def test_threshold_is_strict() -> None:
    r = attribute_metrics(np.array([[0.5]]), np.array([[1]]))
    assert r["per_attribute_tpr"][0] == 0.0
    r = attribute_metrics(np.array([[0.5000001]]), np.array([[1]]))
    assert r["per_attribute_tpr"][0] == 1.0


def _naive_attribute_metrics(probs: list[list[float]], labels: list[list[int]], thr: list[float]) -> dict:
    n, a = len(labels), len(labels[0])
    pred = [[1 if probs[i][j] > thr[j] else 0 for j in range(a)] for i in range(n)]
    ma, tprs, tnrs, accs = [], [], [], []
    for j in range(a):
        p = sum(labels[i][j] for i in range(n))
        ng = n - p
        tp = sum(1 for i in range(n) if labels[i][j] == 1 and pred[i][j] == 1)
        tn = sum(1 for i in range(n) if labels[i][j] == 0 and pred[i][j] == 0)
        tprs.append(tp / (p + EPS))
        tnrs.append(tn / (ng + EPS))
        ma.append((tprs[-1] + tnrs[-1]) / 2)
        accs.append((tp + tn) / (n + EPS))
    acc = prec = rec = f1m = 0.0
    for i in range(n):
        y = {j for j in range(a) if labels[i][j] == 1}
        yh = {j for j in range(a) if pred[i][j] == 1}
        pi = len(y & yh) / (len(yh) + EPS)
        ri = len(y & yh) / (len(y) + EPS)
        acc += len(y & yh) / (len(y | yh) + EPS)
        prec += pi
        rec += ri
        f1m += 2 * pi * ri / (pi + ri + EPS)
    acc, prec, rec, f1m = acc / n, prec / n, rec / n, f1m / n
    return {
        "mA": sum(ma) / a,
        "accuracy": acc,
        "precision": prec,
        "recall": rec,
        "f1": 2 * prec * rec / (prec + rec + EPS),
        "f1_mean": f1m,
        "per_attribute_mA": ma,
        "per_attribute_tpr": tprs,
        "per_attribute_tnr": tnrs,
        "per_attribute_accuracy": accs,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_attribute_metrics_matches_naive_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, a = 60, 7
    labels = (rng.random((n, a)) < rng.random(a) * 0.6).astype(np.int64)
    labels[:, 0] = 0  # an attribute without positives
    labels[3] = 0  # a sample without positives
    probs = np.round(rng.random((n, a)), 1)  # rounded: many values exactly at a threshold
    thr = rng.choice([0.3, 0.5, 0.7], size=a)
    got = attribute_metrics(probs, labels, threshold=thr)
    want = _naive_attribute_metrics(probs.tolist(), labels.tolist(), thr.tolist())
    assert got.keys() == want.keys()
    for key, val in want.items():
        np.testing.assert_allclose(got[key], val, rtol=0, atol=1e-12, err_msg=key)


@pytest.mark.parametrize(
    ("probs", "labels", "threshold", "match"),
    [
        (np.zeros((2, 3)), np.zeros((2, 4)), 0.5, "does not match labels shape"),
        (np.zeros((2, 3)), np.array([[0, 1, 2], [0, 0, 0]]), 0.5, "only 0 and 1"),
        (np.array([[0.1, np.nan]]), np.array([[0, 1]]), 0.5, "NaN"),
        (np.zeros((0, 3)), np.zeros((0, 3)), 0.5, "empty"),
        (np.zeros(3), np.zeros(3), 0.5, "2-D"),
        (np.zeros((2, 3)), np.zeros((2, 3)), [0.5, 0.5], "3 attributes"),
        (np.zeros((2, 3)), np.zeros((2, 3)), [[0.5]], "threshold must be"),
        (np.zeros((2, 3)), np.zeros((2, 3)), float("nan"), "threshold contains NaN"),
        (np.array([["a", "b"]]), np.array([[0, 1]]), 0.5, "real numbers"),
    ],
)
def test_attribute_metrics_errors(probs, labels, threshold, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        attribute_metrics(probs, labels, threshold=threshold)


# Retrieval: 2 attributes, 5 gallery items, 4 queries.
GALLERY = np.array([[1, 0], [0, 1], [1, 0], [1, 1], [0, 1]])
QUERIES = np.array([[1, 0], [0, 1], [0, 0], [1, 1]])
SCORES = np.array(
    [
        [0.2, 0.9, 0.5, 0.5, 0.1],  # q0 positives g0,g2; order g1,g2,g3,g0,g4 (g2 before g3: stable tie)
        [0.3, 0.3, 0.3, 0.3, 0.3],  # q1 positives g1,g4; all tied -> gallery order, ranks 2 and 5
        [0.9, 0.8, 0.7, 0.6, 0.5],  # q2 [0,0]: no positive in the gallery -> skipped
        [0.0, 0.0, 0.0, 1.0, 0.0],  # q3 positive g3 at rank 1
    ]
)


def test_retrieval_hand_worked_with_ties_and_skip() -> None:
    r = retrieval_metrics(SCORES, QUERIES, GALLERY, ks=(1, 2, 5))
    # q0: positives at ranks 2, 4 -> AP (1/2 + 2/4)/2 = 1/2 (a tie broken the other way would give 5/12)
    # q1: positives at ranks 2, 5 -> AP (1/2 + 2/5)/2 = 9/20
    # q3: rank 1 -> AP 1
    assert r["num_queries"] == 3
    assert r["num_skipped"] == 1
    assert r["R-1"] == pytest.approx(1 / 3, abs=1e-15)  # only q3
    assert r["R-2"] == 1.0
    assert r["R-5"] == 1.0
    assert r["mAP"] == pytest.approx((0.5 + 0.45 + 1.0) / 3, abs=1e-15)
    assert set(r) == {"R-1", "R-2", "R-5", "mAP", "num_queries", "num_skipped"}


def test_retrieval_default_ks_and_k_beyond_gallery() -> None:
    r = retrieval_metrics(SCORES, QUERIES, GALLERY)
    assert (r["R-1"], r["R-5"], r["R-10"]) == (pytest.approx(1 / 3), 1.0, 1.0)


def test_retrieval_integer_scores() -> None:
    # unsigned scores are ranked as numbers (negating uint8 would wrap)
    r = retrieval_metrics(np.array([[0, 255, 1]], dtype=np.uint8), np.array([[1]]), np.array([[0], [1], [0]]))
    assert (r["R-1"], r["mAP"]) == (1.0, 1.0)


def _naive_retrieval(scores: list[list[float]], q: list[list[int]], g: list[list[int]], ks: list[int]) -> dict:
    hits = dict.fromkeys(ks, 0)
    aps = []
    for qi, row in enumerate(scores):
        order = sorted(range(len(g)), key=lambda j, row=row: -row[j])  # sorted() is stable
        rel = [g[j] == q[qi] for j in order]
        if not any(rel):
            continue
        found, precs = 0, []
        for rank, is_pos in enumerate(rel, start=1):
            if is_pos:
                found += 1
                precs.append(found / rank)
        aps.append(sum(precs) / len(precs))
        for k in ks:
            hits[k] += any(rel[:k])
    out = {f"R-{k}": hits[k] / len(aps) for k in ks}
    out["mAP"] = sum(aps) / len(aps)
    out["num_queries"] = len(aps)
    out["num_skipped"] = len(scores) - len(aps)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_retrieval_matches_naive_reference(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    n_q, n_g, a = 40, 150, 4
    gallery = (rng.random((n_g, a)) < 0.4).astype(np.uint8)
    queries = (rng.random((n_q, a)) < 0.4).astype(np.uint8)
    gallery[gallery.all(axis=1), 0] = 0  # no gallery item is all-ones ...
    queries[:3] = 1  # ... so these queries are skipped
    scores = np.round(rng.standard_normal((n_q, n_g)), 1).astype(np.float32)  # many ties
    ks = [1, 5, 10, 200]
    want = _naive_retrieval(scores.tolist(), queries.tolist(), gallery.tolist(), ks)
    assert 0 < want["num_skipped"] < n_q  # the data exercises skipping
    got = retrieval_metrics(scores, queries, gallery, ks=ks)
    assert got.keys() == want.keys()
    for key, val in want.items():
        assert got[key] == pytest.approx(val, abs=1e-12), key
    # many small blocks give the same numbers as one big block
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", 3 * n_g)
    blocked = retrieval_metrics(scores, queries, gallery, ks=ks)
    for key, val in got.items():
        assert blocked[key] == pytest.approx(val, abs=1e-12), key


@pytest.mark.parametrize(
    ("scores", "q", "g", "ks", "match"),
    [
        (np.zeros((4, 4)), QUERIES, GALLERY, (1,), "does not match"),
        (np.zeros((4, 5)), QUERIES, GALLERY[:, :1], (1,), "same attribute schema"),
        (np.zeros((4, 5)), QUERIES * 3, GALLERY, (1,), "only 0 and 1"),
        (np.full((4, 5), np.nan), QUERIES, GALLERY, (1,), "NaN"),
        (np.zeros((4, 5)), QUERIES, GALLERY, (0,), "positive integers"),
        (np.zeros((4, 5)), QUERIES, GALLERY, (), "positive integers"),
        (np.zeros((4, 5)), QUERIES, GALLERY, (1.5,), "positive integers"),
        (np.zeros((1, 5)), np.array([[0, 0]]), GALLERY, (1,), "none of the 1 queries"),
        (np.zeros((0, 5)), np.zeros((0, 2)), GALLERY, (1,), "empty"),
    ],
)
def test_retrieval_errors(scores, q, g, ks, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        retrieval_metrics(scores, q, g, ks=ks)


def test_retrieval_queries_unique_sorted_uint8() -> None:
    labels = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1], [0, 0, 0]])
    got = retrieval_queries(labels)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, [[0, 0, 0], [0, 1, 0], [1, 0, 1]])
    with pytest.raises(ValueError, match="only 0 and 1"):
        retrieval_queries(np.array([[2, 0]]))


def _market_labels(split: str) -> np.ndarray:
    """Market-1501 identity labels as the common 30-dim binary encoding (age one-hot + 26 binary fields)."""
    sio = pytest.importorskip("scipy.io")
    path = DATA / "annotations" / "market_attribute.mat"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    rec = sio.loadmat(str(path))["market_attribute"][0, 0][split][0, 0]
    binary = [name for name in rec.dtype.names if name not in ("age", "image_index")]
    assert len(binary) == 26
    age = rec["age"].ravel().astype(np.int64)  # 1..4 = young, teenager, adult, old
    assert set(np.unique(age)) <= {1, 2, 3, 4}
    age_onehot = np.eye(4, dtype=np.uint8)[age - 1]
    # 1 = no, 2 = yes (gender 2 = female -> 1)
    fields = np.stack([rec[name].ravel() == 2 for name in binary], axis=1).astype(np.uint8)
    return np.concatenate([age_onehot, fields], axis=1)


def test_market_test_identities_give_484_queries() -> None:
    labels = _market_labels("test")
    assert labels.shape == (750, 30)
    queries = retrieval_queries(labels)
    assert queries.shape == (484, 30)  # CLEAR Table 1: 484 test categories on Market-1501
    # scores = minus the Hamming distance: an identity's own query ranks it first, so retrieval is perfect
    q, x = queries.astype(np.float64), labels.astype(np.float64)
    scores = -(q.sum(1)[:, None] + x.sum(1)[None, :] - 2.0 * q @ x.T)
    r = retrieval_metrics(scores, queries, labels)
    assert (r["R-1"], r["mAP"], r["num_queries"], r["num_skipped"]) == (1.0, 1.0, 484, 0)
