"""clear_sdk.video.Pipeline and `clear-sdk watch` end to end: several sources, one batched Recognizer, drops,
Ctrl-C, and the indexed tracks found again by `clear-sdk search`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from clear_sdk import AttributeSearcher, Recognizer
from clear_sdk.video import Pipeline, PipelineConfig, VideoSource
from clear_sdk.video.pipeline import Packet
from clear_sdk.video.types import Detection, Frame, TrackedBox
from tests.video_helpers import ScriptedLive, read_frames

FPS = 10.0


@pytest.fixture(scope="module")
def street(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A generated street video (the synthetic renderer) and where its people are."""
    from clear_sdk.synthetic import write_synthetic_video

    d = tmp_path_factory.mktemp("street")
    path = write_synthetic_video(d / "street.mp4", num_frames=30, seed=1, fps=FPS, annotations=d / "truth.json")
    return path, json.loads((d / "truth.json").read_text())["frames"]


class TruthDetector:
    """Detects exactly the generated video's people (from its annotations): the pipeline under test, not a model."""

    name = "truth"

    def __init__(self, truth: list[dict]) -> None:
        self.truth, self.i = truth, 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        people = self.truth[self.i]["people"] if self.i < len(self.truth) else []
        self.i += 1
        return [Detection(tuple(int(v) for v in p["bbox"]), 0.9) for p in people]


def test_two_cameras_share_one_batched_recognizer_and_index_tracks(tiny_bundle, street, tmp_path):
    path, truth = street
    searcher = AttributeSearcher(tiny_bundle, index_dir=tmp_path / "index")
    batches: list[int] = []
    run_images = searcher.recognizer.backend.run_images
    searcher.recognizer.backend.run_images = lambda x: (batches.append(len(x)), run_images(x))[1]
    sources = [VideoSource(str(path), "gate", start_time=1000.0), VideoSource(str(path), "lobby", start_time=2000.0)]
    seen_frames = []
    pipe = Pipeline(sources, searcher.recognizer, lambda: TruthDetector(truth), searcher=searcher,
                    config=PipelineConfig(recognize_every=5, reindex_every_s=1.0, warm_up=False),
                    on_frame=lambda f, boxes, tracks: seen_frames.append((f.source, f.index, len(boxes))))  # fmt: skip
    s = pipe.run()
    people = {p["pid"] for f in truth for p in f["people"]}
    assert s["detector"] == "truth" and not s["interrupted"]
    for src in s["sources"]:
        assert src["frames_read"] == src["frames_processed"] == 30 and src["frames_dropped"] == 0  # files: no drops
        assert src["stop_reason"] == "end of file" and src["fps"] > 0 and src["latency_ms"]["p95"] is not None
        assert src["tracks"] == len(people) == src["tracks_indexed"]
    assert len(seen_frames) == 60 and {x[0] for x in seen_frames} == {"gate", "lobby"}
    # crops of both cameras share Recognizer calls only when packets are waiting (opportunistic batching);
    # whether they were depends on thread timing, so it is not asserted here (it failed once under load)
    assert sum(batches) == s["crops"]

    ids = searcher.index.ids
    assert len(ids) == s["index_size"] == 2 * len(people)  # one item per track, re-indexed in place
    for md in searcher.index.get_metadata(ids):
        base = 1000.0 if md["camera"] == "gate" else 2000.0
        assert md["status"] == "finished" and md["run"] == s["run"] and md["crops"] >= 1
        assert base <= md["timestamp"] <= md["end"] <= base + 29 / FPS + 1e-6  # the track's time span
        assert md["timestamp"] <= md["best_timestamp"] <= md["end"]
        crop = cv2.imread(md["source"])  # the best crop, on disk beside the index
        x1, y1, x2, y2 = md["bbox"]
        assert crop.shape[:2] == (y2 - y1, x2 - x1)
        assert isinstance(md["track"], int) and isinstance(md["attributes"], list)
    hits = searcher.search("Female, Backpack", k=3, where={"camera": "lobby"})
    assert len(hits) == 3 and all(h.metadata["camera"] == "lobby" for h in hits)
    searcher.close()


def test_one_step_puts_the_crops_of_two_cameras_in_one_recognizer_batch(tiny_bundle, street):
    """The batching decision, driven directly (no threads, no timing): crops due in packets of two cameras
    go through one backend call; more than max_batch crops are split; a track is not recognised again
    within recognize_every frames."""
    path, truth = street
    frames = read_frames(path)
    rec = Recognizer(tiny_bundle)
    calls: list[int] = []
    run_images = rec.backend.run_images
    rec.backend.run_images = lambda x: (calls.append(len(x)), run_images(x))[1]
    sources = [VideoSource(str(path), "gate"), VideoSource(str(path), "lobby")]
    pipe = Pipeline(sources, rec, lambda: TruthDetector(truth), config=PipelineConfig(recognize_every=3, max_batch=8))

    def packet(camera: str, i: int) -> Packet:
        people = [p for p in truth[i]["people"] if p["bbox"][3] - p["bbox"][1] >= 32]
        boxes = [TrackedBox(p["pid"] + 1, tuple(int(v) for v in p["bbox"]), 0.9) for p in people]
        return Packet(Frame(camera, i, float(i), frames[i], 0.0), boxes, [])

    gate, lobby = packet("gate", 0), packet("lobby", 0)
    n = len(gate.boxes) + len(lobby.boxes)
    assert len(gate.boxes) >= 1 and len(lobby.boxes) >= 1 and n <= 8
    assert pipe.step([gate, lobby]) == n
    assert calls == [n]  # one Recognizer call for both cameras
    assert pipe.stats["gate"].crops == len(gate.boxes) and pipe.stats["lobby"].crops == len(lobby.boxes)
    assert all(ta.crops == 1 for book in pipe.tracks.values() for ta in book.values())

    calls.clear()
    assert pipe.step([packet("gate", 1), packet("lobby", 1)]) == 0 and calls == []  # too soon for the same tracks
    many = [packet(cam, i) for i in (3, 6) for cam in ("gate", "lobby")]
    due = sum(len(p.boxes) for p in many)
    assert due > 8 and pipe.step(many) == due
    assert sum(calls) == due and max(calls) == 8 and len(calls) == -(-due // 8)  # split at max_batch
    assert pipe.stats["gate"].frames_processed == pipe.stats["lobby"].frames_processed == 4


def test_a_track_id_given_again_after_its_track_ended_is_a_new_item(tiny_bundle, street, tmp_path):
    """ByteTrack may hand out an id again after our book ended its track: the finished item must stay."""
    path, truth = street
    frames = read_frames(path)
    searcher = AttributeSearcher(tiny_bundle, index_dir=tmp_path / "index")
    pipe = Pipeline([VideoSource(str(path), "gate")], searcher.recognizer, lambda: TruthDetector(truth),
                    searcher=searcher, config=PipelineConfig(reindex_every_s=0))  # fmt: skip
    box = TrackedBox(7, tuple(int(v) for v in truth[0]["people"][0]["bbox"]), 0.9)
    pipe.step([Packet(Frame("gate", 0, 0.0, frames[0], 0.0), [box], [])])
    pipe.step([Packet(Frame("gate", 1, 0.1, frames[1], 0.0), [], [7])])  # ended: indexed
    pipe.step([Packet(Frame("gate", 5, 0.5, frames[5], 0.0), [box], [])])  # the same id again
    pipe.step([Packet(Frame("gate", 6, 0.6, frames[6], 0.0), [], [7])])
    run = pipe.indexer.run
    assert sorted(searcher.index.ids) == [f"gate/{run}/t7", f"gate/{run}/t7.1"]
    spans = sorted((md["timestamp"], md["end"]) for md in searcher.index.get_metadata(searcher.index.ids))
    assert spans == [(0.0, 0.0), (0.5, 0.5)]
    searcher.close()


def test_a_slow_consumer_drops_the_oldest_live_frames(tiny_bundle, street):
    frames = read_frames(street[0])
    rec = Recognizer(tiny_bundle)
    captures = iter([ScriptedLive(frames)])  # one connection, then the camera is gone for good
    src = VideoSource("rtsp://camera/1", "cam", capture_factory=lambda s: next(captures, ScriptedLive([])),
                      max_reconnects=0)  # fmt: skip
    processed = []

    def slow(frame, boxes, tracks):
        processed.append(frame.index)
        time.sleep(0.03)

    pipe = Pipeline([src], rec, "bgsub", config=PipelineConfig(queue_size=2), on_frame=slow)
    s = pipe.run()["sources"][0]
    assert s["frames_read"] == 30 and s["frames_dropped"] > 0
    assert s["frames_processed"] + s["frames_dropped"] == 30
    assert processed == sorted(processed) and processed[-1] == 29  # the newest frame is never the one dropped
    assert s["stop_reason"].startswith("source lost")


def test_ctrl_c_keeps_what_was_indexed(tiny_bundle, street, tmp_path):
    path, truth = street
    searcher = AttributeSearcher(tiny_bundle, index_dir=tmp_path / "index")

    def interrupt(frame, boxes, tracks):
        if frame.index == 12:
            raise KeyboardInterrupt

    pipe = Pipeline([VideoSource(str(path), "gate")], searcher.recognizer, lambda: TruthDetector(truth),
                    searcher=searcher, on_frame=interrupt)  # fmt: skip
    s = pipe.run()
    assert s["interrupted"] and s["sources"][0]["frames_processed"] < 30
    assert s["tracks_indexed"] == s["tracks"] > 0 == 0 or s["index_size"] == s["tracks_indexed"] > 0
    searcher.close()
    with AttributeSearcher(tiny_bundle, index_dir=tmp_path / "index") as again:  # persisted
        assert len(again) == s["tracks_indexed"]


def test_pipeline_rejects_duplicate_camera_names(tiny_bundle, street):
    rec = Recognizer(tiny_bundle)
    with pytest.raises(ValueError, match="its own name"):
        Pipeline([VideoSource(str(street[0]), "a"), VideoSource(str(street[0]), "a")], rec, "bgsub")


def test_watch_end_to_end_then_search(tiny_bundle, street, tmp_path):
    from clear_sdk.cli import app

    path, _ = street
    index, out = tmp_path / "index", tmp_path / "annotated.mp4"
    runner = CliRunner()
    args = ["watch", str(path), str(path), "--camera", "gate", "--camera", "lobby", "--bundle", str(tiny_bundle)]
    args += ["--index", str(index), "--detector", "bgsub", "--out", str(out), "--json", "--recognize-every", "2"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout[r.stdout.index("{") :])
    assert [x["name"] for x in s["sources"]] == ["gate", "lobby"]
    assert all(x["frames_processed"] == 30 for x in s["sources"])
    assert s["detector"] == "bgsub" and s["tracks_indexed"] > 0 and s["index_size"] == s["tracks_indexed"]
    for cam in ("gate", "lobby"):
        cap = cv2.VideoCapture(s["videos"][cam])
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
        cap.release()

    r = runner.invoke(app, ["search", "Female, Backpack", "--index", str(index), "-k", "2", "--json"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)["hits"]
    assert len(hits) == 2
    for h in hits:  # tracks: camera, time span, best crop
        md = h["metadata"]
        assert md["camera"] in ("gate", "lobby") and md["timestamp"] <= md["end"] and Path(md["source"]).is_file()

    r = runner.invoke(app, ["watch", str(path), "--camera", "a", "--camera", "b", "--bundle", str(tiny_bundle),
                            "--index", str(index)])  # fmt: skip
    assert r.exit_code == 1 and "2 --camera names for 1 sources" in r.output
    r = runner.invoke(app, ["watch", str(tmp_path / "nope.mp4"), "--bundle", str(tiny_bundle), "--index", str(index)])
    assert r.exit_code == 1 and "neither an existing video file" in r.output
