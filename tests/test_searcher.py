"""AttributeSearcher and the runtime CLI (export, predict, index, search, bench) on a tiny real bundle."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from typer.testing import CliRunner  # noqa: E402

from clear_sdk import AttributeSearcher, BundleError, QueryError, Recognizer  # noqa: E402
from clear_sdk.cli import app  # noqa: E402
from clear_sdk.description import describe, template_for  # noqa: E402
from clear_sdk.synthetic import (  # noqa: E402
    SYNTHETIC_ATTRIBUTES,
    SYNTHETIC_GROUPS,
    SyntheticConfig,
    generate_synthetic,
)
from clear_sdk.training.models import RetrievalConfig, create_model, save_checkpoint  # noqa: E402
from clear_sdk.training.text_encoder import TextEncoder  # noqa: E402

torch.set_num_threads(1)
ATTRS = list(SYNTHETIC_ATTRIBUTES)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A tiny CLEAR checkpoint with retrieval adapters, its exported bundle, and a synthetic gallery."""
    from clear_sdk.export.bundle_writer import export_bundle

    root = tmp_path_factory.mktemp("searcher")
    torch.manual_seed(0)
    enc = TextEncoder.from_pretrained("minilm")
    model = create_model(
        "clear-tiny",
        img_size=(64, 32),
        num_attrs=len(ATTRS),
        attribute_names=ATTRS,
        vit={"dim": 32, "depth": 1, "num_heads": 2},
        swin={"dims": (8, 16, 32, 64), "depths": (1, 1, 1, 1), "num_heads": (1, 2, 2, 4), "out_dim": 32},
        fusion_dim=16,
        fusion_heads=2,
    )
    model.add_retrieval(RetrievalConfig(embed_dim=16, hidden_dim=32, soft_dim=enc.soft_dim))
    model.eval()
    template = template_for(ATTRS)
    ckpt = save_checkpoint(
        model,
        root / "ckpt" / "best.safetensors",
        extra={
            "dataset": {"name": "synthetic", "attributes": ATTRS, "groups": SYNTHETIC_GROUPS},
            "text_encoder": enc.config.to_dict(),
            "description_template": template.to_dict(),
        },
    )
    bundle = export_bundle(ckpt, root / "bundle", simplify=False)
    gallery = generate_synthetic(
        root / "gallery", SyntheticConfig(num_identities=8, images_per_identity=2, image_size=(64, 32), seed=3)
    )
    images = sorted((gallery / "images").glob("*.jpg"))
    return {
        "root": root,
        "bundle": bundle,
        "ckpt": ckpt,
        "images": images,
        "model": model,
        "enc": enc,
        "template": template,
    }


def _add(searcher, images):
    md = [{"camera": f"cam{i % 2}", "track": i, "timestamp": float(i)} for i in range(len(images))]
    return searcher.add([str(p) for p in images], ids=[p.stem for p in images], metadata=md)


def test_scores_are_exactly_the_three_scorers(env, tmp_path) -> None:
    images = env["images"]
    with AttributeSearcher(env["bundle"], index_dir=tmp_path / "idx", fusion_weight=0.5) as s:
        assert s.embedding_dim == 16 and s.attribute_names == ATTRS
        assert _add(s, images) == [p.stem for p in images]
        rec = Recognizer(env["bundle"])
        emb, probs = rec.embed([str(p) for p in images]), rec.predict_proba([str(p) for p in images])
        query = "female, long hair, no backpack"
        q = s.encode_query([query])[0]
        np.testing.assert_allclose(np.linalg.norm(q), 1.0, atol=1e-5)

        hits = s.search(query, k=5)
        expect = emb @ q
        order = np.argsort(-expect, kind="stable")[:5]
        assert [h.id for h in hits] == [images[i].stem for i in order]
        np.testing.assert_allclose([h.score for h in hits], expect[order], atol=1e-5)

        def loglik(p):  # wanted: log p, absent: log(1 - p), clipped at log(1e-6)
            lp = lambda v: max(math.log(max(v, 1e-300)), math.log(1e-6))  # noqa: E731
            return lp(p[0]) + lp(p[ATTRS.index("LongHair")]) + lp(1 - p[ATTRS.index("Backpack")])

        rec_scores = np.array([loglik(p) for p in probs])
        hits = s.search(query, k=len(images), scorer="recognition")
        by_id = {h.id: h.score for h in hits}
        np.testing.assert_allclose([by_id[p.stem] for p in images], rec_scores, atol=1e-4)
        fused = {h.id: h.score for h in s.search(query, k=len(images), scorer="fused")}
        np.testing.assert_allclose([fused[p.stem] for p in images], expect + 0.5 * rec_scores / 3, atol=1e-4)

        cam0 = s.search(query, k=50, where={"camera": "cam0"})
        assert cam0 and all(h.metadata["camera"] == "cam0" for h in cam0)
        assert all(h.metadata["source"].endswith(".jpg") for h in cam0)


def test_query_embedding_matches_the_torch_model(env, tmp_path) -> None:
    with AttributeSearcher(env["bundle"]) as s:
        runtime = s.encode_query(["female, backpack", ["Hat", "UpperRed"]])
    hard = torch.zeros(2, len(ATTRS))
    hard[0, [ATTRS.index("Female"), ATTRS.index("Backpack")]] = 1
    hard[1, [ATTRS.index("Hat"), ATTRS.index("UpperRed")]] = 1
    sentences = [describe(h.numpy().astype(int), ATTRS, env["template"]) for h in hard]
    with torch.no_grad():
        ref = env["model"].encode_query(hard, env["enc"].encode_flat(sentences)).numpy()
    np.testing.assert_allclose(runtime, ref, atol=1e-4)


def test_persistence_errors_and_precomputed_embeddings(env, tmp_path) -> None:
    images = env["images"]
    idx = tmp_path / "idx"
    with AttributeSearcher(env["bundle"], index_dir=idx) as s:
        bad = tmp_path / "broken.jpg"
        bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        out = s.add([str(images[0]), str(bad)], ids=["a", "b"], errors="skip")
        assert out == ["a", None]
        first = s.search("man with a hat", k=3)
        with pytest.raises(QueryError, match="closest"):
            s.search("female with a backpak and a parasol", k=3)
    with AttributeSearcher(env["bundle"], index_dir=idx) as s:  # reopen: the same gallery
        assert len(s) == 1
        assert [(h.id, round(h.score, 5)) for h in s.search("man with a hat", k=3)] == [
            (h.id, round(h.score, 5)) for h in first
        ]
        rec = Recognizer(env["bundle"])
        e = rec.embed([str(images[1])])
        s.add_embeddings(e, ["pre"], probabilities=rec.predict_proba([str(images[1])]))
        assert "pre" in s.index
        with pytest.raises(ValueError, match="shape"):
            s.add_embeddings(np.zeros((1, 3), np.float32), ["x"])
    manifest = json.loads((env["bundle"] / "manifest.json").read_text())
    sha = manifest["files"]["recognizer.onnx"]["sha256"]
    # the model identity lives in the index database (searcher.json only names the bundle for the CLI)
    import sqlite3

    with sqlite3.connect(idx / "index.sqlite") as db:
        ident = json.loads(db.execute("SELECT value FROM meta WHERE key='model_identity'").fetchone()[0])
        ident["recognizer_sha256"] = "0" * len(sha)
        db.execute("UPDATE meta SET value=? WHERE key='model_identity'", (json.dumps(ident),))
    db.close()
    with pytest.raises(BundleError, match="another model"):
        AttributeSearcher(env["bundle"], index_dir=idx)


def test_cli_export_predict_index_search_bench(env, tmp_path) -> None:
    runner = CliRunner()
    bundle = tmp_path / "b2"
    res = runner.invoke(app, ["export", str(env["ckpt"]), "--out", str(bundle)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["export", str(env["ckpt"]), "--out", str(tmp_path / "t"), "--engine", "trt"])
    assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output

    bad = tmp_path / "empty.jpg"
    bad.write_bytes(b"")
    res = runner.invoke(app, ["predict", str(bundle), str(env["images"][0]), str(bad), "--json"])
    assert res.exit_code == 1, res.output
    rows = json.loads(res.output)
    assert set(rows[0]) == {"image", "probabilities", "attributes", "text"}  # text: the labels a person reads
    assert set(rows[0]["probabilities"]) == set(ATTRS)
    assert set(rows[1]) == {"image", "error"} and "empty" in rows[1]["error"]

    gallery = env["images"][0].parent
    idx = tmp_path / "cli-index"
    res = runner.invoke(app, ["index", str(bundle), str(gallery), "--index", str(idx), "--camera", "door"])
    assert res.exit_code == 0, res.output
    grid = tmp_path / "grid.png"
    res = runner.invoke(
        app, ["search", "female, backpack", "--index", str(idx), "-k", "3", "--grid", str(grid), "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["parsed"] == {"Female": True, "Backpack": True}
    assert len(out["hits"]) == 3 and out["hits"][0]["metadata"]["camera"] == "door"
    assert grid.stat().st_size > 1000
    res = runner.invoke(app, ["search", "female, umbrella", "--index", str(idx)])
    assert res.exit_code == 1 and "umbrella" in res.output

    res = runner.invoke(app, ["bench", str(bundle), "--batch-sizes", "1,2", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    rows = report["results"]
    assert {(r["backend"], r["batch_size"]) for r in rows} == {(b, n) for b in ("torch", "onnxruntime") for n in (1, 2)}
    for r in rows:
        assert r["throughput"] > 0 and r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
        assert r["flops_per_image"] > 0 and 0 < r["peak_fraction"]
    assert max(r["parity_max_abs_vs_torch"] for r in rows) < 1e-4


def test_removing_everything_is_explicit(tmp_path) -> None:
    s = AttributeSearcher("peta-lite0", index_dir=tmp_path / "idx")
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(3, s.embedding_dim)).astype(np.float32)
    probs = rng.random((3, len(s.attribute_names))).astype(np.float32)
    s.add_probabilities(probs, ["a", "b", "c"], embeddings=emb)
    with pytest.raises(QueryError):
        s.remove(where={})
    assert len(s) == 3 and s.remove(everything=True) == 3 and len(s) == 0
    s.close()
