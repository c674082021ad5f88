"""Dataset views at run time: a unified-schema bundle answers and searches in each dataset's own names.

The bundle is a small untrained lite0 exported for real (onnxruntime runs it); what is checked is the
mapping, against the unified answers of the same images computed by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from clear_sdk import AttributeSearcher, Recognizer  # noqa: E402
from clear_sdk.errors import QueryError  # noqa: E402
from clear_sdk.schema import UNIFIED, load_schema, load_view  # noqa: E402
from clear_sdk.synthetic import SyntheticConfig, generate_synthetic  # noqa: E402


@pytest.fixture(scope="module")
def unified_bundle(tmp_path_factory):
    from clear_sdk.export.bundle_writer import export_bundle
    from clear_sdk.training.models import RetrievalConfig, create_model, save_checkpoint

    tmp = tmp_path_factory.mktemp("unified")
    s = load_schema(UNIFIED)
    torch.manual_seed(0)
    model = create_model("lite0", img_size=(64, 32), num_attrs=len(s.attributes), attribute_names=s.attributes)
    model.add_retrieval(
        RetrievalConfig(embed_dim=16, hidden_dim=32, soft_dim=0, query_form="hard", query_encoding="signed")
    )
    model.eval()
    meta = {"dataset": {"name": UNIFIED, "attributes": s.attributes, "groups": s.groups}}
    ckpt = save_checkpoint(model, tmp / "ckpt" / "best.safetensors", extra=meta)
    bundle = export_bundle(ckpt, tmp / "bundle", simplify=False)
    images = generate_synthetic(
        tmp / "g", SyntheticConfig(num_identities=3, images_per_identity=2, image_size=(64, 32), seed=5)
    )
    return bundle, sorted(str(p) for p in (images / "images").glob("*.jpg"))


def test_predict_in_each_view(unified_bundle) -> None:
    bundle, images = unified_bundle
    rec = Recognizer(bundle)
    assert rec.bundle.dataset == UNIFIED
    unified = rec.predict_proba(images)
    thr = np.array(rec.bundle.threshold_vector())
    names = rec.attribute_names
    for schema in ("peta", "market1501", "pa100k"):
        view = load_view(schema)
        preds = rec.predict(images, schema=schema)
        probs = rec.predict_proba(images, schema=schema)
        assert probs.shape == (len(images), len(view.names)) and rec.view(schema).names == tuple(view.names)
        for i, p in enumerate(preds):
            assert list(p.probabilities) == view.names  # the dataset's own names, in its order
            for j, e in enumerate(view.entries):
                cols = [names.index(u) for u in e.of]
                want = 1 - unified[i, cols[0]] if e.how == "complement" else unified[i, cols].max()
                decided = unified[i, cols] > thr[cols]
                want_d = not decided[0] if e.how == "complement" else bool(decided.any())
                assert p.probabilities[e.native] == pytest.approx(float(want), abs=1e-6)
                assert probs[i, j] == pytest.approx(float(want), abs=1e-6)
                assert (e.native in p.attributes) == want_d
    peta = rec.predict(images[:1], schema="peta")[0]
    assert "personalMale" in peta.probabilities and set(peta.groups) >= {"gender", "upper_colour"}
    default = rec.predict(images[:1])[0]
    assert list(default.probabilities) == names and str(default)  # a text form a person reads
    with pytest.raises(QueryError, match="no view 'rapv2'"):
        rec.predict(images[:1], schema="rapv2")


def test_search_in_a_view_equals_the_unified_query(unified_bundle, tmp_path) -> None:
    bundle, images = unified_bundle
    s = AttributeSearcher(bundle, index_dir=tmp_path / "idx")
    s.add(images, ids=[str(i) for i in range(len(images))])
    for scorer in ("embedding", "recognition"):
        a = s.search({"female": True, "lower-pants": True}, k=6, schema="market1501", scorer=scorer)
        b = s.search({"female": True, "skirt_or_dress": False}, k=6, scorer=scorer)
        assert [(h.id, round(h.score, 6)) for h in a] == [(h.id, round(h.score, 6)) for h in b]
    a = s.search("man, hat", k=6, schema="peta")  # text in PETA's names: personalMale -> not female
    b = s.search({"female": False, "hat": True}, k=6)
    assert [h.id for h in a] == [h.id for h in b]
    m1, _ = s.score_matrix([{"Trousers": False}], schema="pa100k")
    m2, _ = s.score_matrix([{"trousers": False, "jeans": False}])
    assert np.allclose(m1, m2)
    with pytest.raises(QueryError, match="any of trousers, jeans"):
        s.search({"Trousers": True}, schema="pa100k")
    s.close()
