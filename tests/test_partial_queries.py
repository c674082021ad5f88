"""Three-state (signed) hard queries and the partial-query protocol, against hand-made cases.

The signed encoding (present +1 / absent -1 / not asked 0) is ours, beyond the paper; the protocol
beside CLEAR's whole-vector one draws 1-4 attributes of a split's own people and counts an image as a
hit when it satisfies every asked attribute.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from clear_sdk.errors import QueryError
from clear_sdk.metrics import UNKNOWN, partial_queries, partial_query_hits, ranking_metrics, retrieval_metrics
from clear_sdk.query import hard_input


def test_hard_input_three_states() -> None:
    values = np.array([1, 0, 1, 0], np.float32)
    known = np.array([True, True, False, False])
    assert hard_input(values, known, "signed").tolist() == [1.0, -1.0, 0.0, 0.0]
    assert hard_input(values, known, "binary").tolist() == [1.0, 0.0, 0.0, 0.0]  # the paper: unnamed = absent
    with pytest.raises(QueryError, match="unknown query encoding 'ternary'"):
        hard_input(values, known, "ternary")


def test_partial_queries_are_satisfied_by_their_source_and_hits_by_hand() -> None:
    labels = np.array([[1, 0, UNKNOWN], [1, 1, 0], [0, 1, 1]], np.uint8)
    qs = partial_queries(labels, 50, sizes=(1, 2), seed=3)
    assert qs and len({tuple(sorted(q.items())) for q in qs}) == len(qs)  # no duplicates
    hits = partial_query_hits(qs, labels)
    assert hits.any(axis=1).all()  # drawn from the gallery's own people: at least one positive each
    for q in qs:
        assert 1 <= len(q) <= 2 and all(labels[:, a].min() != UNKNOWN or True for a in q)
    # by hand: {0: True} -> images 0 and 1; {2: False} -> image 1 only (image 0 does not annotate it)
    assert partial_query_hits([{0: True}, {2: False}], labels).tolist() == [[True, True, False], [False, True, False]]


def test_ranking_metrics_by_hand_and_equal_to_the_whole_vector_protocol() -> None:
    scores = np.array([[0.9, 0.8, 0.1], [0.2, 0.9, 0.5]])
    hits = np.array([[False, True, True], [False, False, False]])
    m = ranking_metrics(scores, hits)
    # query 0: positives at ranks 2 and 3 -> AP = (1/2 + 2/3) / 2; R-1 0, R-5 1; query 1 has none: skipped
    assert m["mAP"] == pytest.approx((0.5 + 2 / 3) / 2) and m["R-1"] == 0.0 and m["R-5"] == 1.0
    assert m["num_queries"] == 1 and m["num_skipped"] == 1
    # whole-vector queries are the special case "every attribute asked": the same numbers as retrieval_metrics
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (30, 3)).astype(np.uint8)
    queries = np.unique(labels, axis=0)
    s = rng.random((len(queries), len(labels)))
    whole = partial_query_hits([dict(enumerate(map(bool, q))) for q in queries], labels)
    a, b = ranking_metrics(s, whole), retrieval_metrics(s, queries, labels)
    assert a["mAP"] == pytest.approx(b["mAP"]) and a["R-1"] == pytest.approx(b["R-1"])


def test_whole_vector_protocol_keeps_unknown_entries_apart() -> None:
    q = np.array([[1, UNKNOWN]], np.uint8)
    g = np.array([[1, UNKNOWN], [1, 0], [1, 1]], np.uint8)
    m = retrieval_metrics(np.array([[0.1, 0.9, 0.8]]), q, g)
    assert m["mAP"] == pytest.approx(1 / 3)  # only the image with the same unannotated entry is a hit


def test_partial_proxies_keep_one_to_four_known_attributes() -> None:
    torch = pytest.importorskip("torch")
    from clear_sdk.training.trainer import hard_classes, partial_proxies

    classes = np.array([[1, 0, 1, 0, 1, 0, UNKNOWN], [0, 0, 0, 0, 0, 0, 0]], np.uint8)
    hard = hard_classes(classes, "signed")
    assert hard[0].tolist() == [1, -1, 1, -1, 1, -1, 0]
    with pytest.raises(ValueError, match="query_encoding=signed"):
        hard_classes(classes, "binary")
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = partial_proxies(hard, 1.0, rng)
        kept = (out != 0).sum(dim=1)
        assert ((kept >= 1) & (kept <= 4)).all()
        assert torch.equal(out[hard == 0], hard[hard == 0])  # nothing unknown becomes known
        assert torch.equal(out[out != 0], hard[out != 0])  # what is kept keeps its sign
    assert torch.equal(partial_proxies(hard, 0.0, rng), hard)


def test_signed_bundle_answers_partial_queries_as_torch_does(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("timm")
    from clear_sdk import AttributeSearcher, Recognizer
    from clear_sdk.export.bundle_writer import export_bundle
    from clear_sdk.synthetic import SYNTHETIC_ATTRIBUTES, SYNTHETIC_GROUPS, SyntheticConfig, generate_synthetic
    from clear_sdk.training.models import RetrievalConfig, create_model, save_checkpoint

    attrs = list(SYNTHETIC_ATTRIBUTES)
    torch.manual_seed(0)
    model = create_model("lite0", img_size=(64, 32), num_attrs=len(attrs), attribute_names=attrs)
    model.add_retrieval(
        RetrievalConfig(
            embed_dim=16, hidden_dim=32, soft_dim=0, query_form="hard", standardize=True, query_encoding="signed"
        )
    )
    hard = torch.randint(-1, 2, (20, len(attrs))).float()
    model.retrieval.set_statistics(torch.randn(40, model.num_features), hard, None)
    model.eval()
    meta = {"dataset": {"name": "synthetic", "attributes": attrs, "groups": SYNTHETIC_GROUPS}}
    ckpt = save_checkpoint(model, tmp_path / "ckpt" / "best.safetensors", extra=meta)
    bundle = export_bundle(ckpt, tmp_path / "bundle", simplify=False)
    assert json.loads((bundle / "manifest.json").read_text())["retrieval"]["query_encoding"] == "signed"

    gallery = generate_synthetic(
        tmp_path / "g", SyntheticConfig(num_identities=4, images_per_identity=2, image_size=(64, 32), seed=3)
    )
    images = sorted((gallery / "images").glob("*.jpg"))
    searcher = AttributeSearcher(bundle, scorer="embedding")
    assert searcher.bundle.query_encoding == "signed"
    default = AttributeSearcher(bundle)  # the measured default of a three-state bundle
    assert default.scorer == "fused" and default.fusion_weight == 3.0
    searcher.add([str(p) for p in images], ids=[p.stem for p in images])
    hits = searcher.search({"Female": True, "Backpack": False}, k=len(images))
    emb = Recognizer(bundle).embed([str(p) for p in images])
    hard = np.zeros((1, len(attrs)), np.float32)
    hard[0, attrs.index("Female")], hard[0, attrs.index("Backpack")] = 1.0, -1.0  # every other attribute: not asked
    with torch.no_grad():
        q = model.encode_query(torch.from_numpy(hard), None).numpy()
    want = dict(zip([p.stem for p in images], (emb @ q.T)[:, 0]))
    for h in hits:
        assert h.score == pytest.approx(float(want[h.id]), abs=1e-4)
    assert [h.id for h in hits] == sorted(want, key=lambda i: -want[i])


def test_partial_query_loss_by_hand_and_its_hits() -> None:
    torch = pytest.importorskip("torch")
    from clear_sdk.training.trainer import partial_query_loss, sample_partial_queries, satisfies

    labels = np.array([[1, 0, UNKNOWN], [1, 1, 0], [0, 1, 1]], np.uint8)
    q = np.array([[1, 0, 0], [0, 0, -1]], np.float32)  # "attribute 0 present"; "attribute 2 absent"
    assert satisfies(q, labels).tolist() == [[True, True, False], [False, True, False]]  # unknown never meets
    rng = np.random.default_rng(0)
    pq = sample_partial_queries(labels, rng)
    assert satisfies(pq, labels)[np.arange(3), np.arange(3)].all()  # each query is met by its own image
    assert all(1 <= (row != 0).sum() <= 4 for row in pq)
    qe = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ve = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    hits = torch.tensor([[True, True, False], [False, False, True]])
    logits = 2.0 * torch.nn.functional.normalize(qe, dim=-1) @ torch.nn.functional.normalize(ve, dim=-1).t()
    want = -(torch.log(logits.exp()[0, :2].sum() / logits.exp()[0].sum()) + torch.log(
        logits.exp()[1, 2] / logits.exp()[1].sum()
    )) / 2
    assert partial_query_loss(qe, ve, hits, scale=2.0).item() == pytest.approx(want.item(), rel=1e-6)
