"""Issue 24 part 5, video time and results out: a file's frames are stamped with their position in the file (offset
by `watch --start`), tracks say when they were first and last seen in that time, `watch --events` writes one line per
finished track (JSON lines or CSV) as tracks end, and `search "person"` (or an empty query) lists everyone in time
order."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clear_sdk import AttributeSearcher
from clear_sdk.cli import app
from clear_sdk.video import Pipeline, PipelineConfig, VideoSource
from clear_sdk.video.indexer import TrackEventWriter

pytest.importorskip("torch")  # the tiny_bundle fixture exports a model

FPS = 10.0
START = "2026-12-01T08:00:00"  # local time, as a user types it


@pytest.fixture(scope="module")
def street(tmp_path_factory) -> tuple[Path, list[dict]]:
    from clear_sdk.synthetic import write_synthetic_video

    d = tmp_path_factory.mktemp("street")
    path = write_synthetic_video(d / "street.mp4", num_frames=30, seed=1, fps=FPS, annotations=d / "truth.json")
    return path, json.loads((d / "truth.json").read_text())["frames"]


def test_file_frames_carry_their_position_and_the_given_start(street):
    path, _ = street
    t0 = datetime.fromisoformat(START).timestamp()
    src = VideoSource(str(path), "gate", start_time=t0)
    frames = list(src.frames())
    assert src.clock == "given" and len(frames) == 30
    assert [f.position for f in frames] == pytest.approx([i / FPS for i in range(30)])
    assert [f.timestamp for f in frames] == pytest.approx([t0 + i / FPS for i in range(30)])
    run = VideoSource(str(path), "gate")
    first = list(run.frames())
    assert run.clock == "run" and first[-1].position == pytest.approx(2.9)
    assert first[-1].timestamp - first[0].timestamp == pytest.approx(2.9)  # the file's time, not processing time
    with pytest.raises(ValueError, match="start_time applies to video files"):
        VideoSource("rtsp://cam/1", start_time=t0)


def _watch(tiny_bundle, clip: Path, index: Path, *extra: str):
    args = ["watch", str(clip), "--camera", "gate", "--bundle", str(tiny_bundle), "--index", str(index)]
    r = CliRunner().invoke(app, [*args, "--detector", "bgsub", "--recognize-every", "2", "--json", *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout[r.stdout.index("{") :])


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_watch_start_and_events_one_line_per_finished_track(tiny_bundle, street, tmp_path, suffix):
    path, _ = street
    t0 = datetime.fromisoformat(START).timestamp()
    events = tmp_path / f"events{suffix}"
    index = tmp_path / "index"
    s = _watch(tiny_bundle, path, index, "--start", START, "--events", str(events))
    if suffix == ".csv":
        with open(events, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            for key in ("start", "end", "position_start", "position_end"):
                r[key] = float(r[key])
            r["box"], r["attributes"] = json.loads(r["box"]), json.loads(r["attributes"])
            r["track"], r["crops"], r["indexed"] = int(r["track"]), int(r["crops"]), r["indexed"] == "True"
    else:
        rows = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == s["tracks"] > 0 and s["events"] == str(events)
    with AttributeSearcher(tiny_bundle, index_dir=index) as searcher:
        stored = {i: md for i, md in searcher.index.select({})}
    for r in rows:
        assert r["camera"] == "gate" and isinstance(r["track"], int)
        assert t0 <= r["start"] <= r["end"] <= t0 + 2.9 + 1e-6  # filmed time: --start plus the position
        assert r["start"] - t0 == pytest.approx(r["position_start"])
        assert r["end"] - t0 == pytest.approx(r["position_end"])
        assert r["start_iso"].startswith("2026-12-01T08:00:0")
        assert len(r["box"]) == 4 and all(isinstance(v, int) for v in r["box"])
        assert all(set(v) == {"p", "crops"} and v["crops"] == r["crops"] for v in r["attributes"].values())
        if r["indexed"]:
            md = stored[r["id"]]
            assert md["timestamp"] == pytest.approx(r["start"]) and md["end"] == pytest.approx(r["end"])
            assert md["position"] == pytest.approx(r["position_start"]) and md["clock"] == "given"
    assert sum(r["indexed"] for r in rows) == s["tracks_indexed"] == len(stored)


def test_events_are_flushed_as_each_track_ends(tiny_bundle, street, tmp_path):
    """A consumer tailing the file sees each track when it ends, not when the run ends."""
    path, _ = street
    events = tmp_path / "events.jsonl"
    writer = TrackEventWriter(events)
    on_disk: list[int] = []

    def write_and_read_back(record):
        writer.write(record)
        on_disk.append(len(events.read_text(encoding="utf-8").splitlines()))  # another reader's view of the file

    searcher = AttributeSearcher(tiny_bundle, index_dir=tmp_path / "index")
    pipe = Pipeline([VideoSource(str(path), "gate")], searcher.recognizer, "bgsub", searcher=searcher,
                    config=PipelineConfig(warm_up=False), on_track=write_and_read_back)  # fmt: skip
    s = pipe.run()
    writer.close()
    searcher.close()
    assert on_disk == list(range(1, s["tracks"] + 1)) and s["tracks"] > 0
    with pytest.raises(ValueError, match="name it .jsonl"):
        TrackEventWriter(tmp_path / "events.txt")


def test_search_person_lists_everyone_in_time_order(tiny_bundle, tmp_path):
    index = tmp_path / "index"
    crop = np.full((64, 32, 3), 90, np.uint8)
    with AttributeSearcher(tiny_bundle, index_dir=index) as s:
        s.add([crop] * 5, ids=["late", "untimed", "early", "middle", "other-cam"], metadata=[
            {"camera": "gate", "timestamp": 300.0, "track": 3}, {"camera": "gate"},
            {"camera": "gate", "timestamp": 100.0, "track": 1}, {"camera": "gate", "timestamp": 200.0, "track": 2},
            {"camera": "lobby", "timestamp": 150.0, "track": 1}])  # fmt: skip
    runner = CliRunner()
    for query in ("person", "", "People"):
        r = runner.invoke(app, ["search", query, "--index", str(index), "--json"])
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        assert [h["id"] for h in out["hits"]] == ["early", "other-cam", "middle", "late", "untimed"]
        assert all(h["score"] is None for h in out["hits"]) and out["parsed"] == {}
    r = runner.invoke(app, ["search", "person", "--index", str(index), "--camera", "gate", "-k", "2", "--json"])
    assert [h["id"] for h in json.loads(r.stdout)["hits"]] == ["early", "middle"]
    r = runner.invoke(app, ["search", "person", "--index", str(index)], terminal_width=200)
    assert r.exit_code == 0 and "everyone, in time order" in r.output
    assert r.output.index("early") < r.output.index("middle") < r.output.index("late")


def test_search_shows_the_position_in_the_file_of_a_clip_watched_without_start(tiny_bundle, street, tmp_path):
    """Without --start a file's timestamps are the run's clock: the table shows where in the file instead."""
    path, _ = street
    index = tmp_path / "index"
    s = _watch(tiny_bundle, path, index)
    assert s["tracks_indexed"] > 0
    r = CliRunner().invoke(app, ["search", "person", "--index", str(index)], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert r.output.count("file 0:0") == s["tracks_indexed"]  # file M:SS.s[–M:SS.s]: where in the clip
