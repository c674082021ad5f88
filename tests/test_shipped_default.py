"""The default model: resolved by Recognizer() / "default" offline, without torch, from a read-only copy;
every dataset's view; right on real people of both training datasets' val splits and on PA-100K's cameras."""

from __future__ import annotations

import shutil
import stat
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clear_sdk import Recognizer
from clear_sdk.cli import app
from clear_sdk.models import DEFAULT_MODEL, list_shipped, model_card, shipped_path
from clear_sdk.schema import UNIFIED, load_schema, load_view


def test_default_resolves_to_the_unified_model() -> None:
    assert DEFAULT_MODEL in list_shipped() and shipped_path("default") == shipped_path(DEFAULT_MODEL)
    rec = Recognizer()
    assert rec.bundle.path == shipped_path(DEFAULT_MODEL) and rec.bundle.dataset == UNIFIED
    assert rec.attribute_names == load_schema(UNIFIED).attributes
    assert rec.bundle.query_encoding == "signed" and rec.embedding_dim
    thr = np.array(rec.bundle.threshold_vector())
    assert ((thr > 0) & (thr < 1)).all() and not np.allclose(thr, 0.5)  # calibrated on the val splits
    card = model_card("default")
    assert "research use" in card and "PA-100K" in card and "Market-1501" in card
    files = sum(p.stat().st_size for p in shipped_path(DEFAULT_MODEL).iterdir())
    assert files < 40 * 2**20


def test_default_without_torch_from_a_read_only_copy(tmp_path: Path, run_without_torch) -> None:
    ro = tmp_path / "ro" / DEFAULT_MODEL
    shutil.copytree(shipped_path(DEFAULT_MODEL), ro)
    for p in [ro, *ro.iterdir()]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    crop = tmp_path / "crop.png"
    import cv2

    img = np.full((160, 64, 3), 90, np.uint8)
    img[20:80, 16:48] = (30, 30, 200)
    cv2.imwrite(str(crop), img)
    code = textwrap.dedent(
        f"""
        import sys

        from clear_sdk import AttributeSearcher, Recognizer

        for rec in (Recognizer(), Recognizer("default"), Recognizer({str(ro)!r})):
            assert len(rec.predict_proba([{str(crop)!r}])[0]) == 65
            assert list(rec.predict([{str(crop)!r}], schema="market1501")[0].probabilities)[0] == "female"
        s = AttributeSearcher("default", index_dir={str(tmp_path / "idx")!r})
        s.add([{str(crop)!r}], ids=["a"])
        assert [h.id for h in s.search("red top", k=1)] == ["a"]
        assert [h.id for h in s.search({{"upper-red": True}}, k=1, schema="market1501")] == ["a"]
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch got imported"
        """
    )
    done = run_without_torch(code, tmp_path)
    assert done.returncode == 0, done.stderr


def test_cli_predict_default_with_a_view(tmp_path: Path) -> None:
    import cv2

    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), np.full((160, 64, 3), 120, np.uint8))
    runner = CliRunner()
    out = runner.invoke(app, ["predict", "default", str(crop), "--json", "--schema", "pa100k"])
    assert out.exit_code == 0, out.output
    assert '"Female"' in out.output and '"LongSleeve"' in out.output and '"Front"' not in out.output


def _balanced(p: np.ndarray, y: np.ndarray) -> float:
    y = y.astype(bool)
    return float((np.mean(p[y]) + np.mean(~p[~y])) / 2)


def test_default_recognises_people_of_both_datasets_and_an_unseen_camera(shared_data: Path) -> None:
    pytest.importorskip("scipy")
    from clear_sdk.training.data import create_dataset

    rec = Recognizer()
    checks = (
        ("peta", create_dataset("peta", shared_data / "peta-trainval", colours=True,
                                annotation=shared_data / "annotations" / "PETA.mat"), "val", "personalMale"),
        ("market1501", create_dataset("market1501", shared_data / "market1501-train",
                                      annotation=shared_data / "annotations" / "market_attribute.mat"),
         "val", "female"),
        ("pa100k", create_dataset("csv", shared_data / "pa100k-2k"), "train", "Female"),
    )  # fmt: skip
    for schema, ds, split, attr in checks:
        recs = ds.split(split)[:200]
        names = load_view(schema).names
        preds = rec.predict([r.path for r in recs], schema=schema)
        y = np.stack([r.labels for r in recs])[:, list(ds.attributes).index(attr)]
        decided = np.array([attr in p.attributes for p in preds])
        assert attr in names and _balanced(decided, y) > 0.75, (schema, attr)


def test_info_says_which_network_the_default_model_is() -> None:
    out = CliRunner().invoke(app, ["info", "--bundle", "default"])
    assert out.exit_code == 0, out.output
    assert "network: CNN baseline on tf_efficientnet_lite0 (pooled, Linear + BatchNorm head); CLEAR retrieval" in (
        " ".join(out.output.split())
    )
