"""A hard-only (Table 6's HA) bundle end to end: no text model in it, CLEAR's embedding served by the runtime."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from clear_sdk import AttributeSearcher, Recognizer  # noqa: E402
from clear_sdk.synthetic import (  # noqa: E402
    SYNTHETIC_ATTRIBUTES,
    SYNTHETIC_GROUPS,
    SyntheticConfig,
    generate_synthetic,
)
from clear_sdk.training.models import RetrievalConfig, create_model, save_checkpoint  # noqa: E402

torch.set_num_threads(1)
ATTRS = list(SYNTHETIC_ATTRIBUTES)


def test_hard_only_bundle_has_no_text_model_and_searches_with_the_trained_embedding(tmp_path) -> None:
    from clear_sdk.export.bundle_writer import export_bundle

    torch.manual_seed(0)
    model = create_model(
        "clear-tiny", img_size=(64, 32), num_attrs=len(ATTRS), attribute_names=ATTRS,
        vit={"dim": 32, "depth": 1, "num_heads": 2},
        swin={"dims": (8, 16, 32, 64), "depths": (1, 1, 1, 1), "num_heads": (1, 2, 2, 4), "out_dim": 32},
        fusion_dim=16, fusion_heads=2,
    )  # fmt: skip
    model.add_retrieval(RetrievalConfig(embed_dim=16, hidden_dim=32, soft_dim=0, query_form="hard", standardize=True))
    model.retrieval.set_statistics(torch.randn(40, model.num_features), torch.rand(20, len(ATTRS)).round(), None)
    model.eval()
    meta = {"dataset": {"name": "synthetic", "attributes": ATTRS, "groups": SYNTHETIC_GROUPS}}
    ckpt = save_checkpoint(model, tmp_path / "ckpt" / "best.safetensors", extra=meta)
    bundle = export_bundle(ckpt, tmp_path / "bundle", simplify=False)
    assert not (bundle / "text.onnx").exists() and (bundle / "query.onnx").is_file()

    gallery = generate_synthetic(
        tmp_path / "g", SyntheticConfig(num_identities=6, images_per_identity=2, image_size=(64, 32), seed=3)
    )
    images = sorted((gallery / "images").glob("*.jpg"))
    searcher = AttributeSearcher(bundle)  # scorer "auto": the embedding, since the bundle has it
    assert searcher.scorer == "embedding" and searcher.bundle.query_form == "hard"
    searcher.add([str(p) for p in images], ids=[p.stem for p in images])
    query = {"Female": True, "Backpack": False}
    hits = searcher.search(query, k=len(images))
    # the same scores from torch: cos(E^v, E^h) with E^h = f_attr(standardised hard vector)
    emb = Recognizer(bundle).embed([str(p) for p in images])
    hard = np.zeros((1, len(ATTRS)), np.float32)
    hard[0, ATTRS.index("Female")] = 1
    with torch.no_grad():
        q = model.encode_query(torch.from_numpy(hard), None).numpy()
    want = dict(zip([p.stem for p in images], (emb @ q.T)[:, 0]))
    assert [h.id for h in hits] == sorted(want, key=lambda i: -want[i])
    for h in hits:
        assert h.score == pytest.approx(float(want[h.id]), abs=1e-4)
