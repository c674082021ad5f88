"""The runtime commands end to end: `index --keep-days` retention, `search` over tracks and over Milvus Lite."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from clear_sdk.cli import app
from clear_sdk.searcher import AttributeSearcher

pytest.importorskip("torch")  # the tiny_bundle fixture exports a model

DAY = 86400.0


def _crops(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"p{i}.png"), rng.integers(0, 255, (64, 32, 3), dtype=np.uint8))
    return folder


def test_index_keep_days_removes_only_expired_items(tiny_bundle, tmp_path):
    index = tmp_path / "index"
    crop = np.full((64, 32, 3), 90, np.uint8)
    now = time.time()
    with AttributeSearcher(tiny_bundle, index_dir=index) as s:
        s.add(
            [crop, crop, crop],
            ids=["old", "recent", "no-time"],
            metadata=[
                {"camera": "c1", "timestamp": now - 40 * DAY},
                {"camera": "c1", "timestamp": now - 2 * DAY},
                {"camera": "c1"},
            ],
        )
    res = CliRunner().invoke(
        app, ["index", str(tiny_bundle), str(_crops(tmp_path / "crops", 2)), "--index", str(index), "--keep-days", "30"]
    )
    assert res.exit_code == 0, res.output
    assert "indexed 2 new crops" in res.output and "retention: removed 1 items older than 30 days" in res.output
    with AttributeSearcher(tiny_bundle, index_dir=index) as s:
        assert sorted(s.index.ids) == ["no-time", "p0.png", "p1.png", "recent"]


def test_index_keep_days_must_be_positive(tiny_bundle, tmp_path):
    res = CliRunner().invoke(
        app,
        ["index", str(tiny_bundle), str(_crops(tmp_path / "c", 1)), "--index", str(tmp_path / "i"), "--keep-days", "0"],
    )
    assert res.exit_code == 1 and "--keep-days 0" in res.output and "Traceback" not in res.output


def test_search_shows_track_and_when_it_was_seen(tiny_bundle, tmp_path):
    index = tmp_path / "index"
    t0 = time.mktime((2026, 11, 30, 8, 15, 0, 0, 0, -1))
    with AttributeSearcher(tiny_bundle, index_dir=index) as s:
        s.add(
            [np.full((64, 32, 3), 120, np.uint8)],
            ids=["cam1/t7"],
            metadata=[
                {"camera": "cam1", "timestamp": t0, "track": 7, "end": t0 + 95},
            ],
        )
    res = CliRunner().invoke(app, ["search", "female", "--index", str(index), "-k", "1"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "track" in res.output and "2026-11-30 08:15:00 – 08:16:35" in res.output


def test_index_and_search_on_milvus_lite(tiny_bundle, tmp_path):
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    db = tmp_path / "gallery.db"
    runner = CliRunner()
    crops = _crops(tmp_path / "crops", 3)
    res = runner.invoke(
        app, ["index", str(tiny_bundle), str(crops), "--index", str(tmp_path / "f"), "--partition-by", "camera"]
    )
    assert res.exit_code == 1 and "is for a Milvus collection" in res.output  # a local folder has no partitions
    res = runner.invoke(
        app, ["index", str(tiny_bundle), str(crops), "--index", str(db), "--camera", "c1", "--partition-by", "camera"]
    )
    assert res.exit_code == 0, res.output
    assert "indexed 3 new crops" in res.output
    from clear_sdk.index import MilvusIndex

    with MilvusIndex(None, str(db)) as stored:
        assert stored.partition_by == "camera" and {m["camera"] for m in stored.get_metadata(stored.ids)} == {"c1"}
    res = runner.invoke(app, ["search", "female", "--index", str(db), "-k", "2", "--json"])
    assert res.exit_code == 1 and "pass the --bundle" in res.output  # a Milvus collection does not name its bundle
    res = runner.invoke(
        app, ["search", "female", "--index", str(db), "--bundle", str(tiny_bundle), "-k", "2", "--json"]
    )
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)["hits"]
    assert len(hits) == 2 and {h["id"] for h in hits} <= {"c1/p0.png", "c1/p1.png", "c1/p2.png"}
