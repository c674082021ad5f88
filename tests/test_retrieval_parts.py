"""The searcher's parts on their own: GalleryLayout against a naive reference, QueryEncoder without an index,
the model identity, and ``bench --dataset``'s accuracy path reading probabilities back through the layout."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clear_sdk import AttributeSearcher, BundleError, Recognizer
from clear_sdk.gallery_layout import LOG_FLOOR, SCORERS, GalleryLayout
from clear_sdk.identity import ModelIdentity
from clear_sdk.query_encoder import QueryEncoder

NAMES = ("Female", "Hat", "Backpack")


def test_layout_columns_and_fields_are_one_map() -> None:
    full, rec_only = GalleryLayout(4, NAMES), GalleryLayout(0, NAMES)
    assert full.width == 10 and rec_only.width == 6
    assert full.fields() == {"embedding": (0, 4), "recognition": (4, 10), "fused": (0, 10)}
    assert rec_only.fields() == {"recognition": (0, 6)} and rec_only.scorers == ("recognition",)
    assert all(full.columns(s) == full.fields()[s] for s in SCORERS)
    with pytest.raises(ValueError, match="scorer must be one of"):
        full.columns("bogus")


def test_layout_rows_and_query_rows_against_a_naive_reference() -> None:
    rng = np.random.default_rng(0)
    layout = GalleryLayout(4, NAMES)
    probs = np.array([[0.9, 0.0, 0.5], [1e-9, 1.0, 0.25]], np.float32)
    emb = rng.standard_normal((2, 4)).astype(np.float32)
    rows = layout.rows(probs, emb)
    floor = lambda v: max(math.log(max(float(v), 1e-300)), LOG_FLOOR)  # noqa: E731
    for i in range(2):
        want = [*emb[i], *(floor(p) for p in probs[i]), *(floor(1 - p) for p in probs[i])]
        np.testing.assert_allclose(rows[i], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layout.probabilities(rows), np.clip(probs, 1e-6, 1), rtol=1e-5)

    constraints = [{"Female": True, "Backpack": False}, {"Hat": True}]
    q_emb = rng.standard_normal((2, 4)).astype(np.float32)
    for scorer in SCORERS:
        q = layout.query_rows(constraints, scorer, q_emb, fusion_weight=0.5)
        for qi, parsed in enumerate(constraints):  # score by hand: embedding dot + (weighted) log-likelihoods
            for gi in range(2):
                e = float(q_emb[qi] @ emb[gi]) if scorer != "recognition" else 0.0
                ll = [floor(probs[gi][NAMES.index(n)]) if w else floor(1 - probs[gi][NAMES.index(n)])
                      for n, w in parsed.items()]  # fmt: skip
                r = {"embedding": 0.0, "recognition": sum(ll), "fused": 0.5 * sum(ll) / len(ll)}[scorer]
                assert float(q[qi] @ rows[gi]) == pytest.approx(e + r, abs=1e-4)


def test_query_encoder_needs_no_index_and_pairs_with_embed(tiny_bundle, tmp_path) -> None:
    with QueryEncoder(tiny_bundle, fusion_weight=0.5) as enc, AttributeSearcher(tiny_bundle, fusion_weight=0.5) as s:
        queries = ["female, backpack", ["Hat"], {"Female": False}]
        q = enc.encode(queries)
        assert q.shape == (3, s.embedding_dim)
        np.testing.assert_allclose(q, s.encode_query(queries), atol=1e-6)
        for scorer in SCORERS:
            np.testing.assert_allclose(enc.vectors(queries, scorer), s.query_vectors(queries, scorer), atol=1e-6)
        first = enc.vectors(queries[:1], "fused")
        enc.fusion_weight = 1.0  # a changed weight is not answered from the cache
        assert not np.allclose(enc.vectors(queries[:1], "fused"), first)
        assert enc.encode([]).shape == (0, s.embedding_dim) and enc.vectors([], "embedding").shape == (
            0,
            s.layout.width,
        )
        assert s.query_encoder.backend is s.recognizer.backend  # the searcher's encoder shares the recognizer's
    # the pair: a query embedding against image embeddings is the embedding score, no index in between
    image = np.full((64, 32, 3), 128, np.uint8)
    with Recognizer(tiny_bundle) as rec, QueryEncoder(tiny_bundle) as enc:
        scores = enc.encode(["female"]) @ rec.embed([image]).T
    with AttributeSearcher(tiny_bundle) as s:
        s.add([image], ids=["a"])
        assert s.search("female", k=1)[0].score == pytest.approx(float(scores[0, 0]), abs=1e-5)


def test_model_identity_refuses_another_model(tiny_bundle) -> None:
    with AttributeSearcher(tiny_bundle) as s:
        ident = ModelIdentity.of(s.bundle, s.layout)
    assert ident.to_dict()["attributes"] == s.attribute_names and ident.recognizer_sha256
    ident.check(ident.to_dict(), "idx")
    with pytest.raises(BundleError, match="indexed with another model"):
        ident.check({**ident.to_dict(), "embed_dim": ident.embed_dim + 1}, "idx")


def test_bench_accuracy_reads_probabilities_through_the_layout(tiny_bundle, tmp_path) -> None:
    from clear_sdk.cli.bench import bench_accuracy
    from clear_sdk.synthetic import SyntheticConfig, generate_synthetic
    from clear_sdk.training.data import create_dataset

    root = generate_synthetic(
        tmp_path / "data", SyntheticConfig(num_identities=6, images_per_identity=2, image_size=(64, 32), seed=1)
    )
    out = bench_accuracy(tiny_bundle, "onnxruntime", "synthetic", str(root), split="train")
    ds = create_dataset("synthetic", root)
    probs = Recognizer(tiny_bundle).predict_proba([r.path for r in ds.split("train")])
    from clear_sdk.metrics import attribute_metrics

    thr = np.array(Recognizer(tiny_bundle).bundle.threshold_vector())
    assert out["recognition"]["mA"] == pytest.approx(float(attribute_metrics(probs, ds.labels("train"), thr)["mA"]))
    assert set(out["retrieval"]) == set(SCORERS)


def test_a_milvus_collection_with_the_old_field_name_still_serves_every_scorer(tiny_bundle, tmp_path) -> None:
    """Collections made before the scorer fields had one name each called the recognition block "attributes";
    the index finds a field by its columns, so they keep working."""
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    from clear_sdk.index import MilvusIndex

    db = str(tmp_path / "old.db")
    with AttributeSearcher(tiny_bundle) as probe:
        layout = probe.layout
    old = {"embedding": layout.columns("embedding"), "attributes": layout.columns("recognition"),
           "fused": layout.columns("fused")}  # fmt: skip
    MilvusIndex(layout.width, db, fields=old).close()
    image = np.full((64, 32, 3), 90, np.uint8)
    with AttributeSearcher(tiny_bundle, index=db) as s:
        s.add([image], ids=["a"])
        for scorer in SCORERS:
            assert [h.id for h in s.search("female", k=1, scorer=scorer)] == ["a"]
