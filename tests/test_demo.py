"""`clear-sdk demo` end to end at toy size: every artefact it promises is written and readable."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from typer.testing import CliRunner  # noqa: E402

from clear_sdk import Recognizer  # noqa: E402
from clear_sdk.cli import app  # noqa: E402

TINY = {
    "vit": {"dim": 32, "depth": 1, "num_heads": 2},
    "swin": {"dims": [8, 16, 32, 64], "depths": [1, 1, 1, 1], "num_heads": [1, 2, 2, 4], "out_dim": 32},
    "fusion_dim": 16,
    "fusion_heads": 2,
}


def test_demo_trains_exports_recognises_and_searches(tmp_path, monkeypatch) -> None:
    import clear_sdk.demo as demo

    monkeypatch.setattr(
        demo, "DEMO_DATASET", {"num_identities": 24, "images_per_identity": 2, "image_size": (64, 32), "seed": 0}
    )
    out = tmp_path / "demo"
    args = [
        "demo",
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
        f"model_kwargs={json.dumps(TINY)}",
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
