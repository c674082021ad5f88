"""`clear-sdk demo` end to end at toy size: every artefact it promises is written and readable."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from typer.testing import CliRunner  # noqa: E402

from clear_sdk import Recognizer  # noqa: E402
from clear_sdk.cli import app  # noqa: E402


def test_demo_trains_exports_recognises_and_searches(tmp_path, monkeypatch, tiny_model_kwargs) -> None:
    import clear_sdk.cli.demo as demo

    monkeypatch.setattr(
        demo, "DEMO_DATASET", {"num_identities": 24, "images_per_identity": 2, "image_size": (64, 32), "seed": 0}
    )
    out = tmp_path / "demo"
    args = [
        "demo",
        "--train",
        "--out",
        str(out),
        "--json",
        "--set",
        "epochs=1",
        "--set",
        "retrieval_epochs=1",
        "--set",
        "img_size=[64, 32]",
        "--set",
        f"model_kwargs={json.dumps(tiny_model_kwargs)}",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert set(report) >= {"recognition", "retrieval", "bundle"}
    assert 0.0 <= report["recognition"]["mA"] <= 1.0 and "f1" in report["recognition"]
    assert {"R-1", "R-5", "mAP"} <= set(report["retrieval"])
    assert set(report["retrieval"]["by_scorer"]) == {"embedding", "recognition", "fused"}
    rec = Recognizer(report["bundle"])
    assert rec.embedding_dim and len(rec.attribute_names) == 25
    for name in ("retrieval_grid.png", "attribute_mA.png", "report.json"):
        assert (out / name).stat().st_size > 1000
    assert (out / "index" / "index.sqlite").is_file()


def test_demo_recipe_fits_its_dataset() -> None:
    """The shipped recipe trains at the size the demo renders, with no pixel or token wasted."""
    from clear_sdk.cli.demo import DEMO_CONFIG, DEMO_DATASET
    from clear_sdk.synthetic import SyntheticConfig, sample_identities
    from clear_sdk.training.config import load_config
    from clear_sdk.training.models import create_model

    cfg = load_config(DEMO_CONFIG)
    data = SyntheticConfig(**DEMO_DATASET)
    assert cfg.img_size == data.image_size  # no resize between the rendered crops and the model
    model = create_model(cfg.model, img_size=cfg.img_size, num_attrs=25, **cfg.model_kwargs)
    h, w = cfg.img_size
    vit, swin = model.cfg.vit, model.cfg.swin
    assert h % vit.patch_size == 0 and w % vit.patch_size == 0  # the ViT patches tile the whole crop
    assert (h // swin.patch_size) % swin.window_size == 0 and (w // swin.patch_size) % swin.window_size == 0
    # a test gallery of the size the retrieval numbers in the README were measured on
    test = sum(i.split == "test" for i in sample_identities(data)) * data.images_per_identity
    assert 300 <= test <= 500


def test_demo_table_shows_every_scorer(monkeypatch) -> None:
    """Without --json the demo prints recognition metrics and each scorer's retrieval metrics."""
    import clear_sdk.cli.demo as demo

    scorer = {"R-1": 0.25, "R-5": 0.5, "R-10": 0.75, "mAP": 0.375, "num_queries": 12.0}
    report = {
        "recognition": {"mA": 0.9, "accuracy": 0.8, "precision": 0.85, "recall": 0.9, "f1": 0.87},
        "retrieval": {
            **scorer,
            "by_scorer": {
                "embedding": scorer,
                "recognition": {**scorer, "R-1": 0.625},
                "fused": {**scorer, "mAP": 0.8125},
            },
        },
        "bundle": "b",
        "retrieval_grid": "g.png",
        "attribute_plot": "a.png",
        "test_images": 7,
        "timings": {"total_s": 12.0},
    }
    monkeypatch.setattr(demo, "run_demo", lambda *a, **k: report)
    res = CliRunner().invoke(app, ["demo", "--train"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "0.9000" in res.output and "7 held-out" in res.output
    assert "R-1 (recognition scorer)" in res.output and "0.6250" in res.output
    assert "mAP (fused scorer)" in res.output and "0.8125" in res.output
