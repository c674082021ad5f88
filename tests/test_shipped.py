"""The shipped model peta-lite0: opened by name without torch, from a read-only copy, and right on real people."""

from __future__ import annotations

import shutil
import stat
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clear_sdk import AttributeSearcher, Recognizer
from clear_sdk.cli import app
from clear_sdk.models import list_shipped, model_card, shipped_path

ROOT = Path(__file__).resolve().parents[1]


def _val_crops(shared: Path, n: int) -> tuple[list[str], np.ndarray]:
    """The first ``n`` PETA val images (never trained on) and their labels, read with the training loader."""
    pytest.importorskip("scipy")
    from clear_sdk.training.data import create_dataset

    ds = create_dataset("peta", shared / "peta-trainval", annotation=shared / "annotations" / "PETA.mat", colours=True)
    recs = ds.split("val")[:n]
    return [r.path for r in recs], np.stack([r.labels for r in recs])


def test_the_shipped_bundle_is_listed_and_opens_by_name() -> None:
    assert "peta-lite0" in list_shipped() and shipped_path("peta-lite0") is not None
    assert shipped_path("../peta-lite0") is None and shipped_path("nope") is None
    rec = Recognizer("peta-lite0")
    assert len(rec.attribute_names) == 57 and rec.attribute_names[34] == "personalMale"
    assert len(rec.groups["upper_colour"]) == 11 and len(rec.groups["lower_colour"]) == 11
    assert rec.bundle.query_form == "hard" and rec.embedding_dim == 256
    assert "Apache-2.0" in model_card("peta-lite0") and "research use" in model_card("peta-lite0")
    files = sum(p.stat().st_size for p in shipped_path("peta-lite0").iterdir())
    assert files < 40 * 2**20  # the budget for a bundle inside the package


def test_shipped_model_recognises_real_pedestrians(shared_data: Path) -> None:
    """On 200 PETA val images (never trained on): gender and trousers well above chance, colours too."""
    paths, labels = _val_crops(shared_data, 200)
    rec = Recognizer("peta-lite0")
    probs = rec.predict_proba(paths)
    names = rec.attribute_names
    for attr, floor in (("personalMale", 0.75), ("lowerBodyTrousers", 0.7), ("upperBodyBlack", 0.7)):
        j = names.index(attr)
        y, p = labels[:, j].astype(bool), probs[:, j] > 0.5
        balanced = (np.mean(p[y]) + np.mean(~p[~y])) / 2
        assert balanced > floor, (attr, balanced)


def test_works_without_torch_from_a_read_only_copy(tmp_path: Path, run_without_torch) -> None:
    ro = tmp_path / "ro" / "peta-lite0"
    shutil.copytree(shipped_path("peta-lite0"), ro)
    for p in [ro, *ro.iterdir()]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    crop = tmp_path / "crop.png"
    import cv2

    img = np.full((160, 64, 3), 90, np.uint8)
    img[20:80, 16:48] = (30, 30, 200)  # a red top on grey
    cv2.imwrite(str(crop), img)
    code = textwrap.dedent(
        f"""
        import sys

        from clear_sdk import AttributeSearcher, Recognizer

        for bundle in ("peta-lite0", {str(ro)!r}):
            rec = Recognizer(bundle)
            assert len(rec.predict_proba([{str(crop)!r}])[0]) == 57
        s = AttributeSearcher({str(ro)!r}, index_dir={str(tmp_path / "idx")!r})
        s.add([{str(crop)!r}], ids=["a"])
        hits = s.search("red top, trousers", k=1)
        assert [h.id for h in hits] == ["a"] and s.scorer == "embedding"
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch got imported"
        """
    )
    done = run_without_torch(code, tmp_path)
    assert done.returncode == 0, done.stderr


def test_cli_predict_and_info_name_the_shipped_model(shared_data: Path) -> None:
    paths, _ = _val_crops(shared_data, 1)
    runner = CliRunner()
    out = runner.invoke(app, ["predict", "peta-lite0", paths[0], "--json"])
    assert out.exit_code == 0, out.output
    info = runner.invoke(app, ["info", "--json"])
    assert info.exit_code == 0 and "peta-lite0" in info.output
    bad = runner.invoke(app, ["predict", "peta-lite9", paths[0]])
    assert bad.exit_code != 0 and "shipped model" in bad.output and "peta-lite0" in bad.output


def test_searcher_by_name_indexes_real_crops(tmp_path: Path, shared_data: Path) -> None:
    paths, labels = _val_crops(shared_data, 60)
    with AttributeSearcher("peta-lite0", index_dir=tmp_path / "idx") as s:
        s.add(paths, ids=[Path(p).stem for p in paths])
        hits = s.search("man, trousers", k=10)
    assert len(hits) == 10
