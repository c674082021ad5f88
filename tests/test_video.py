"""clear_sdk.video building blocks: queues, sources and reconnect, detectors (SSDLite on real-crop scenes), tracking,
track-level aggregation. The pipeline and `clear-sdk watch` end to end are in test_video_pipeline.py."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from clear_sdk.video.aggregate import TrackAttributes, crop_quality
from clear_sdk.video.detectors import DetectorError, SSDLiteDetector, create_detector, iou_matrix
from clear_sdk.video.detectors.ssdlite import tile_grid
from clear_sdk.video.queues import DropOldestQueue, Empty
from clear_sdk.video.sources import SourceError, VideoSource, is_live, parse_source
from clear_sdk.video.tracking import ByteTracker, TrackBook
from clear_sdk.video.types import Detection

ROOT = Path(__file__).resolve().parents[1]


def load_scenes():
    """benchmarks/video_scenes.py (the real-crop scene builder) as a module."""
    spec = importlib.util.spec_from_file_location("clear_video_scenes", ROOT / "benchmarks" / "video_scenes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class ScriptedCapture:
    """A live camera that opens or not, delivers some frames, then drops: what a flaky RTSP stream does."""

    def __init__(self, frames: list[np.ndarray] | None) -> None:
        self.frames = None if frames is None else list(frames)

    def isOpened(self) -> bool:  # noqa: N802 - cv2.VideoCapture's name
        return self.frames is not None

    def read(self):
        if not self.frames:
            return False, None
        return True, self.frames.pop(0)

    def get(self, prop_id: int) -> float:
        return 0.0

    def release(self) -> None:
        self.frames = []


def write_video(path: Path, n: int, fps: float = 10.0, size=(96, 128)) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size[1], size[0]))
    for i in range(n):
        w.write(np.full((*size, 3), 20 * i % 255, np.uint8))
    w.release()
    return path


# -------------------------------------------------------------------------------------------- queues
def test_drop_oldest_queue_keeps_the_newest_and_counts():
    q = DropOldestQueue[int](2)
    dropped = [q.put(i) for i in range(5)]
    assert dropped == [None, None, 0, 1, 2] and q.dropped == 3 and q.max_depth == 2
    assert [q.get_nowait(), q.get(timeout=0.01)] == [3, 4]
    with pytest.raises(Empty):
        q.get(timeout=0.01)
    with pytest.raises(ValueError):
        DropOldestQueue(0)


def test_put_wait_is_back_pressure_and_stops():
    q, stop = DropOldestQueue[int](1), threading.Event()
    assert q.put_wait(1, stop)
    got = []
    t = threading.Thread(target=lambda: got.append(q.put_wait(2, stop)))
    t.start()
    t.join(0.1)
    assert t.is_alive() and len(q) == 1  # waiting for room, nothing dropped
    assert q.get(timeout=1) == 1
    t.join(2)
    assert got == [True] and q.get_nowait() == 2 and q.dropped == 0
    q.put(3)
    stop.set()
    assert q.put_wait(4, stop) is False and q.get_nowait() == 3


# ------------------------------------------------------------------------------------------- sources
def test_parse_source_and_live():
    assert parse_source("0") == 0 and parse_source(" 2 ") == 2 and parse_source("a.mp4") == "a.mp4"
    assert is_live(0) and is_live("rtsp://cam/1") and not is_live("a.mp4")


def test_file_source_frames_and_timestamps(tmp_path):
    path = write_video(tmp_path / "v.avi", 6, fps=10.0)
    src = VideoSource(str(path), start_time=1000.0)
    assert src.name == "v" and not src.live
    frames = list(src.frames())
    assert [f.index for f in frames] == list(range(6)) and all(f.source == "v" for f in frames)
    assert [f.timestamp for f in frames] == pytest.approx([1000.0 + i / 10 for i in range(6)])
    assert src.stop_reason == "end of file" and src.fps == pytest.approx(10.0)
    capped = VideoSource(str(path), "cam", max_frames=2)
    assert len(list(capped.frames())) == 2 and capped.stop_reason == "max frames (2)"
    with pytest.raises(SourceError, match="neither an existing video file"):
        VideoSource(str(tmp_path / "missing.mp4"))


def test_live_source_reconnects_with_backoff_then_gives_up():
    frames = [np.zeros((4, 4, 3), np.uint8) for _ in range(10)]
    script = [None, frames[:5], None, frames[5:], None, None, None, frames]  # None: the open fails
    opened = []

    def factory(source):
        opened.append(source)
        return ScriptedCapture(script[len(opened) - 1])

    src = VideoSource("rtsp://camera/1", "gate", max_reconnects=2, reconnect_delay=0.001,
                      max_reconnect_delay=0.0015, capture_factory=factory)  # fmt: skip
    got = list(src.frames())
    # open fails; 5 frames; drop; open fails; 5 frames; drop; open fails 3 times in a row > 2: give up
    assert len(got) == 10 and [f.index for f in got] == list(range(10))
    assert len(opened) == 7 and src.open_attempts == 7 and src.reconnects == 1
    assert list(src.reconnect_delays) == [0.001, 0.001, 0.001, 0.0015]  # doubling, capped, reset by frames
    assert src.stop_reason.startswith("source lost")
    assert all(f.timestamp > 1e9 for f in got)  # wall clock for live sources


def test_stop_event_ends_a_live_source():
    stop = threading.Event()

    class Endless(ScriptedCapture):
        def read(self):
            return True, np.zeros((2, 2, 3), np.uint8)

    src = VideoSource(0, capture_factory=lambda s: Endless([]))
    it = src.frames(stop)
    next(it)
    stop.set()
    assert list(it) == [] and src.stop_reason == "stopped"


# ----------------------------------------------------------------------------------------- detectors
def test_tile_grid_covers_with_overlap():
    assert tile_grid(360, 640, 1, 1, 0.25) == [(0, 0, 640, 360)]
    tiles = tile_grid(360, 640, 2, 1, 0.25)
    assert tiles[0][0] == 0 and tiles[-1][2] == 640 and tiles[0][2] > tiles[1][0]  # overlapping
    assert all(y1 == 0 and y2 == 360 for _, y1, _, y2 in tiles)
    assert len(tile_grid(360, 640, 3, 2, 0.2)) == 6


def test_iou_matrix_by_hand():
    assert iou_matrix([[0, 0, 10, 20]], [[2, 0, 12, 20]])[0, 0] == pytest.approx(160 / 240)
    assert iou_matrix([[0, 0, 10, 10]], [[20, 20, 30, 30]])[0, 0] == 0.0


def test_create_detector_errors():
    with pytest.raises(DetectorError, match="ssdlite, hog, bgsub"):
        create_detector("yolo9000")
    with pytest.raises(DetectorError, match="not found"):
        SSDLiteDetector(model="/nonexistent.onnx")
    with pytest.raises(DetectorError, match="precision must be one of int8, fp32"):
        create_detector("ssdlite", precision="fp16")


def test_ssdlite_sees_nobody_in_an_empty_street():
    scenes = load_scenes()
    frame = scenes.background(np.random.default_rng(3))
    assert SSDLiteDetector().detect(frame) == []


@pytest.mark.parametrize("precision, min_precision", [("int8", 0.65), ("fp32", 0.7)])  # 0.68 / 0.72 measured
def test_ssdlite_finds_real_people_in_a_real_crop_scene(shared_data, precision, min_precision):
    scenes = load_scenes()
    crops, _, _ = scenes.load_people("pa100k", 6, seed=7)
    frames, truth = scenes.make_scene(crops, num_frames=12, seed=7)
    det = create_detector("ssdlite", precision=precision)  # the shipped defaults, tuned on other scenes
    tp = fp = care = 0
    for f, tr in zip(frames, truth):
        a, b, c = scenes.pr_counts(tr, det.detect(f), conf=0.0)
        tp, fp, care = tp + a, fp + b, care + c
    assert care > 30
    assert tp / (tp + fp) >= min_precision and tp / care >= 0.8, (tp, fp, care)  # recall 0.96 / 0.93 when written


def test_ssdlite_core_graph_with_our_resize_and_nms_matches_the_whole_graph(shared_data, tmp_path):
    """The int8 graph is the fp32 graph's core; our resize and NMS around it must do what the graph's own did."""
    pytest.importorskip("onnx")
    spec = importlib.util.spec_from_file_location("clear_video_int8", ROOT / "benchmarks" / "video_detector_int8.py")
    int8 = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec.loader.exec_module(int8)
    from clear_sdk.video.detectors.ssdlite import default_model_path

    int8.cut_core(default_model_path("fp32"), tmp_path / "core.onnx")
    whole = SSDLiteDetector(precision="fp32", conf=0.05)
    core = SSDLiteDetector(model=tmp_path / "core.onnx", conf=0.05)
    assert core.core and not whole.core
    scenes = load_scenes()
    crops, _, _ = scenes.load_people("pa100k", 6, seed=11)
    frames, _ = scenes.make_scene(crops, num_frames=4, seed=11)
    n = 0
    for f in frames:
        a, b = whole.detect(f), core.detect(f)
        assert abs(len(a) - len(b)) <= 1
        confident = [d for d in a if d.score >= 0.3]
        if confident and b:
            iou = iou_matrix([d.box for d in confident], [d.box for d in b])
            assert (iou.max(axis=1) > 0.9).all()  # every confident box found again, in the same place
            best = [b[j] for j in iou.argmax(axis=1)]
            assert np.allclose([d.score for d in confident], [d.score for d in best], atol=0.03)
            n += len(confident)
    assert n >= 8


def test_bgsub_finds_a_moving_block():
    det = create_detector("bgsub", min_area=100)
    for i in range(30):
        frame = np.full((120, 160, 3), 90, np.uint8)
        frame[30:90, 10 + 3 * i : 30 + 3 * i] = 250
        found = det.detect(frame)
    assert len(found) == 1 and iou_matrix([found[0].box], [[97, 30, 117, 90]])[0, 0] > 0.5


def test_hog_detector_runs_where_opencv_has_it():
    if not hasattr(cv2, "HOGDescriptor"):
        with pytest.raises(DetectorError, match="OpenCV 5"):
            create_detector("hog")
        return
    assert create_detector("hog", width=320).detect(np.zeros((240, 320, 3), np.uint8)) == []


# ------------------------------------------------------------------------------------------ tracking
def test_bytetrack_keeps_ids_through_a_short_gap_and_the_book_ends_tracks():
    trk, book = ByteTracker(frame_rate=10.0, lost_track_buffer=30), None
    book = TrackBook(trk.max_lost)
    assert trk.max_lost == 10
    ids_a, ids_b, ended_at = [], [], {}
    for i in range(30):
        dets = [Detection((10 + 4 * i, 20, 50 + 4 * i, 120), 0.9)]
        if not 10 <= i < 12 and i < 18:  # B is hidden for 2 frames, then leaves for good at frame 18
            dets.append(Detection((400 - 4 * i, 30, 440 - 4 * i, 130), 0.85))
        out = trk.update(dets)
        ids_a += [t.track_id for t in out if t.box[0] < 200]
        ids_b += [t.track_id for t in out if t.box[0] >= 200]
        for tid in book.update(i, [t.track_id for t in out]):
            ended_at[tid] = i
    assert len(set(ids_a)) == 1 and len(ids_a) == 30
    assert len(set(ids_b)) == 1 and len(ids_b) == 16  # the same id after the gap (3+ lost frames: a new id)
    assert ended_at == {ids_b[0]: 17 + trk.max_lost + 1}
    assert book.close() == [ids_a[0]] and book.close() == []


def test_bytetrack_with_no_detections():
    assert ByteTracker().update([]) == []


# --------------------------------------------------------------------------------------- aggregation
def test_track_attributes_weighted_mean_best_crop_and_counts():
    ta = TrackAttributes("gate", 7, 3, embed_dim=2)
    assert np.allclose(ta.probabilities, 0.5) and ta.embedding is None
    crops = [np.full((4, 2, 3), v, np.uint8) for v in (1, 2, 3)]
    ta.add(np.array([0.2, 0.9, 0.6]), 1.0, crops[0], (0, 0, 2, 4), 10.0, np.array([1.0, 0.0]))
    ta.add(np.array([0.8, 0.5, 0.0]), 3.0, crops[1], (1, 1, 3, 5), 11.0, np.array([0.0, 1.0]))
    ta.add(np.array([0.5, 0.5, 0.5]), 0.0, crops[2], (2, 2, 4, 6), 12.0, np.array([1.0, 1.0]))
    np.testing.assert_allclose(ta.probabilities, [(0.2 + 2.4) / 4, (0.9 + 1.5) / 4, 0.6 / 4])
    np.testing.assert_allclose(ta.embedding, np.array([1.0, 3.0]) / np.sqrt(10.0))
    assert ta.crops == 3 and ta.best_box == (1, 1, 3, 5) and ta.best_ts == 11.0
    assert (ta.best_crop == 2).all()
    crops[1][:] = 99  # the best crop is a copy, not a view into a frame that will be reused
    assert (ta.best_crop == 2).all()
    ta.seen(10.0)
    ta.seen(12.5)
    s = ta.summary(["a", "b", "c"], [0.5, 0.5, 0.5])
    assert s["start"] == 10.0 and s["end"] == 12.5 and s["frames"] == 2 and s["crops"] == 3
    assert s["attributes"] == {"a": {"p": 0.65, "crops": 3}, "b": {"p": 0.6, "crops": 3}}
    assert set(ta.summary(["a", "b", "c"], [0.5] * 3, full=True)["attributes"]) == {"a", "b", "c"}


def test_crop_quality_prefers_large_whole_sharp_crops():
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 255, (128, 48, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 6)
    shape = (360, 640)
    whole = crop_quality((100, 100, 148, 228), shape, sharp)
    assert whole > crop_quality((100, 100, 148, 228), shape, blurred)
    assert crop_quality((0, 100, 48, 228), shape) == pytest.approx(0.5 * crop_quality((100, 100, 148, 228), shape))
    assert crop_quality((100, 100, 124, 164), shape) == pytest.approx(0.5)  # 64 px of the 128 reference height
    assert 0 < whole <= 1


def test_the_video_runtime_never_imports_torch_training_or_export():
    import subprocess

    code = (
        "import sys\n"
        "for m in ('torch', 'clear_sdk.training', 'clear_sdk.export'): sys.modules[m] = None\n"
        "import clear_sdk.cli, clear_sdk.video.pipeline, clear_sdk.video.cli\n"
        "from clear_sdk.video import create_detector, ByteTracker\n"
        "create_detector('ssdlite'); ByteTracker()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
