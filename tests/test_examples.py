"""examples/camera_stream.py and examples/search_gallery.py, run end to end on synthetic video and crops.

A tiny bundle (clear-tiny at 64x32 with the retrieval stage and the real MiniLM text encoder) is
exported once; the camera pipeline then runs on a short synthetic street video with each detector
(HOG, background subtraction, a hand-built ONNX "YOLO" graph with known outputs), on a scripted live
source that drops and comes back, and with a consumer slowed down so that frames must be dropped.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FPS = 10.0  # the synthetic video's frame rate (write_synthetic_video's default)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"clear_examples_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


cam = _load("camera_stream")
gallery = _load("search_gallery")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    import torch

    from clear_sdk.description import template_for
    from clear_sdk.export.bundle_writer import export_bundle
    from clear_sdk.training.data.synthetic import SYNTHETIC_ATTRIBUTES, SYNTHETIC_GROUPS
    from clear_sdk.training.models import RetrievalConfig, create_model, save_checkpoint
    from clear_sdk.training.text_encoder import TextEncoder

    torch.set_num_threads(1)
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("bundle")
    model = create_model(
        "clear-tiny",
        img_size=(64, 32),
        num_attrs=25,
        attribute_names=SYNTHETIC_ATTRIBUTES,
        vit={"dim": 32, "depth": 1, "num_heads": 2},
        swin={"dims": (8, 16, 32, 64), "depths": (1, 1, 1, 1), "num_heads": (1, 2, 2, 4), "out_dim": 32},
        fusion_dim=16,
        fusion_heads=2,
    )
    enc = TextEncoder.from_pretrained("minilm")
    model.add_retrieval(RetrievalConfig(embed_dim=16, hidden_dim=32, soft_dim=enc.soft_dim))
    extra = {
        "dataset": {"name": "synthetic", "attributes": SYNTHETIC_ATTRIBUTES, "groups": SYNTHETIC_GROUPS},
        "text_encoder": enc.config.to_dict(),
        "description_template": template_for(SYNTHETIC_ATTRIBUTES).to_dict(),
    }
    ckpt = save_checkpoint(model, tmp / "m.safetensors", extra=extra)
    return export_bundle(ckpt, tmp / "bundle", simplify=False)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[Path, dict]:
    from clear_sdk.training.data.synthetic import write_synthetic_video

    d = tmp_path_factory.mktemp("video")
    path = write_synthetic_video(d / "street.mp4", num_frames=30, seed=1, fps=FPS, annotations=d / "truth.json")
    return path, json.loads((d / "truth.json").read_text())


@pytest.fixture(scope="module")
def frames(video) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video[0]))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(frame)
    cap.release()
    assert len(out) == 30
    return out


class ScriptedCapture:
    """A live camera that opens or not, delivers some frames, then drops: what a flaky RTSP stream does."""

    def __init__(self, frames: list[np.ndarray] | None) -> None:
        self.frames = None if frames is None else list(frames)

    def isOpened(self) -> bool:  # noqa: N802 - cv2.VideoCapture's name
        return self.frames is not None

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.frames:
            return False, None
        return True, self.frames.pop(0)

    def get(self, prop_id: int) -> float:
        return 0.0  # live streams often report no frame rate

    def release(self) -> None:
        self.frames = []


def _iou(a, b) -> float:
    return float(cam.iou_matrix(np.asarray([a]), np.asarray([b]))[0, 0])


def _covered(inner, outer) -> float:
    """The fraction of box ``inner`` inside box ``outer`` (HOG's boxes have a margin around the person)."""
    w = max(0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    h = max(0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    return w * h / ((inner[2] - inner[0]) * (inner[3] - inner[1]))


# ------------------------------------------------------------------------------------------- CLI surface


@pytest.mark.parametrize(
    "module, flags",
    [
        (cam, ["--source", "--synthetic-video", "--detector", "--index-every", "--max-reconnects", "--queue-size"]),
        (gallery, ["--gallery", "--synthetic", "--query", "--grid", "--index", "--scorer"]),
    ],
)
def test_help_describes_the_options(module, flags, capsys):
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in flags:
        assert flag in text
    assert "Example:" in text


def test_bad_arguments_are_explained(bundle, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cam.main(["--bundle", str(bundle), "--source", "x.mp4", "--query", "female"])
    assert exc.value.code == 2 and "add --index DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cam.main(["--bundle", str(bundle)])  # no source at all
    with pytest.raises(cam.CameraStreamError, match="neither an existing file, a URL nor a webcam index"):
        cam.main(["--bundle", str(bundle), "--source", str(tmp_path / "missing.mp4")])
    with pytest.raises(cam.CameraStreamError, match="hog, bgsub or a path to an .onnx"):
        cam.main(["--bundle", str(bundle), "--source", "rtsp://cam/1", "--detector", "yolo"])
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    with pytest.raises(cam.CameraStreamError, match="cannot open video file"):
        cam.main(["--bundle", str(bundle), "--source", str(broken), "--detector", "bgsub"])
    assert cam.parse_source("0") == 0 and cam.parse_source("rtsp://h/s") == "rtsp://h/s"
    assert cam.is_live(0) and cam.is_live("http://h/s.mjpg") and not cam.is_live("clip.mp4")


def test_missing_opencv_hog_and_training_package_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.delattr(cam.cv2, "HOGDescriptor")
    with pytest.raises(cam.CameraStreamError, match=r"opencv-python-headless>=4.10,<5.*--detector bgsub"):
        cam.HogDetector()
    for name in ("clear_sdk.training.data", "clear_sdk.training.data.synthetic"):
        monkeypatch.setitem(sys.modules, name, None)  # as if clear_sdk.training were not installed
    with pytest.raises(cam.CameraStreamError, match=r"pip install 'clear-sdk\[train\]'.*--source"):
        cam._synthetic_renderer()
    with pytest.raises(gallery.GalleryError, match=r"pip install 'clear-sdk\[train\]'.*--gallery"):
        gallery.render_synthetic_gallery(tmp_path, 3)


# -------------------------------------------------------------------------------------- building blocks


def test_iou_tracker_matches_greedily_confirms_and_ages_out():
    d = cam.Detection
    assert _iou((0, 0, 10, 20), (2, 0, 12, 20)) == pytest.approx(160 / 240)
    assert _iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    tr = cam.IouTracker(iou_threshold=0.3, max_age=1, min_hits=2)
    t = tr.update([d((0, 0, 10, 20), 0.9), d((100, 0, 110, 20), 0.8)], 0)
    assert [(x.id, x.confirmed, x.hits) for x in t] == [(1, False, 1), (2, False, 1)]
    t = tr.update([d((2, 0, 12, 20), 0.9)], 1)  # track 1 moves (IoU 0.67), track 2 is missed
    assert [(x.id, x.box, x.confirmed, x.age) for x in t] == [
        (1, (2, 0, 12, 20), True, 0),
        (2, (100, 0, 110, 20), False, 1),
    ]
    t = tr.update([], 2)  # track 2 has now been missing for 2 > max_age frames
    assert [(x.id, x.age) for x in t] == [(1, 1)]
    t = tr.update([d((50, 0, 60, 20), 0.7)], 3)
    assert [(x.id, x.first_frame) for x in t] == [(3, 3)]
    t[0].box = (0, 0, 1, 1)  # update() hands out copies: the tracker's state is untouched
    assert tr.tracks[0].box == (50, 0, 60, 20)

    # Greedy over all pairs: track 2 takes Y (IoU 1.0) although Y is also track 1's best (0.54 > 0.43),
    # so track 1 continues with X; matching track by track would have given Y to track 1.
    tr = cam.IouTracker(iou_threshold=0.3, max_age=5, min_hits=1)
    tr.update([d((0, 0, 10, 10), 1.0), d((3, 0, 13, 10), 1.0)], 0)
    x_box, y_box = (-4, 0, 6, 10), (3, 0, 13, 10)
    assert _iou((0, 0, 10, 10), y_box) > _iou((0, 0, 10, 10), x_box) >= 0.3
    t = tr.update([d(x_box, 0.5), d(y_box, 0.5)], 1)
    assert {x.id: x.box for x in t} == {1: x_box, 2: y_box}


def test_track_attributes_running_mean():
    ta = cam.TrackAttributes(7, np.zeros(3))
    assert ta.top(["a", "b", "c"], np.full(3, 0.5), 2) == []
    ta.add(np.array([0.2, 0.9, 0.6]))
    ta.add(np.array([0.4, 0.5, 0.8]))
    np.testing.assert_allclose(ta.mean, [0.3, 0.7, 0.7])
    top = ta.top(["a", "b", "c"], np.array([0.5, 0.5, 0.75]), 2)  # c: 0.7 is under its own threshold
    assert [n for n, _ in top] == ["b"] and top[0][1] == pytest.approx(0.7)


def test_bounded_queue_drops_the_oldest():
    import queue

    q, stats = queue.Queue(maxsize=2), cam.Stats()
    for i in range(5):
        cam.put_drop_oldest(q, i, stats)
    assert [q.get_nowait() for _ in range(2)] == [3, 4]
    assert stats.frames_dropped == 3 and stats.max_queue_depth == 2


# --------------------------------------------------------------------------------- the camera pipeline


def test_hog_stream_tracks_and_indexes_people(bundle, tmp_path):
    from clear_sdk import AttributeSearcher

    out, index = tmp_path / "run", tmp_path / "index"
    s = cam.main(
        ["--bundle", str(bundle), "--synthetic-video", "30", "--out", str(out), "--index", str(index)]
        + ["--camera", "gate-3", "--index-every", "10", "--save-video", str(tmp_path / "annotated.mp4")]
        + ["--snapshot", str(tmp_path / "frame.png"), "--query", "Female, Backpack", "--k", "3"]
    )
    assert s["detector"] == "hog" and s["stop_reason"] == "end of file" and not s["live"]
    assert s["frames_captured"] == s["frames_processed"] == 30 and s["frames_dropped"] == 0  # a file: no drops
    assert s["capture_fps"] > 0 and s["processed_fps"] > 0
    assert s["max_queue_depth"] <= s["queue_size"] == 4
    assert s["tracks"] >= 2 and s["detections"] >= s["tracks"]
    assert 0 < s["crops_indexed"] == s["index_size"] < s["crops_recognized"]

    truth = {
        f["frame"]: [p["bbox"] for p in f["people"]]
        for f in json.loads((out / "synthetic_truth.json").read_text())["frames"]
    }
    with AttributeSearcher(bundle, index_dir=index) as searcher:
        items = searcher.index.get_metadata(searcher.index.ids)
    assert len(items) == s["crops_indexed"]
    by_track: dict[int, list[int]] = {}
    for md in items:
        assert md["camera"] == "gate-3" and md["source"] == s["source"] and md["run"] == s["run"]
        assert md["timestamp"] == pytest.approx(md["frame"] / FPS)  # seconds into the file
        x1, y1, x2, y2 = md["bbox"]
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480
        assert max(_covered(g, md["bbox"]) for g in truth[md["frame"]]) > 0.6  # the crop holds a real person
        by_track.setdefault(md["track"], []).append(md["frame"])
    for frames_of_track in by_track.values():
        assert all(b - a >= 10 for a, b in zip(sorted(frames_of_track), sorted(frames_of_track)[1:]))
    summaries = {t["track"]: t for t in s["track_summaries"]}
    assert set(by_track) <= set(summaries) and len(summaries) == s["tracks"]
    for tid, frames_of_track in by_track.items():
        assert summaries[tid]["crops_indexed"] == len(frames_of_track)

    (query,) = s["queries"]
    assert query["query"] == "Female, Backpack" and len(query["hits"]) == 3
    assert [h["score"] for h in query["hits"]] == sorted((h["score"] for h in query["hits"]), reverse=True)
    assert all(h["metadata"]["camera"] == "gate-3" for h in query["hits"])

    cap = cv2.VideoCapture(s["video"])
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    cap.release()
    snapshot = cv2.imread(s["snapshot"])
    assert snapshot.shape == (480, 640, 3)


def test_background_subtraction_detector(bundle, video):
    s = cam.main(["--bundle", str(bundle), "--source", str(video[0]), "--detector", "bgsub", "--min-area", "400"])
    assert s["detector"] == "bgsub" and s["frames_processed"] == 30
    assert s["detections"] > 0 and s["tracks"] >= 1 and s["crops_recognized"] > 0
    assert s["crops_indexed"] == 0 and s["index"] is None


def test_slow_model_drops_oldest_frames_not_memory(bundle, frames):
    calls = []

    def factory(source):
        calls.append(source)
        return ScriptedCapture(frames + frames[:10])  # a camera delivering faster than we process

    s = cam.main(
        ["--bundle", str(bundle), "--source", "rtsp://camera/stream", "--detector", "bgsub", "--max-frames", "40"]
        + ["--queue-size", "2", "--simulate-latency", "0.03"],
        capture_factory=factory,
    )
    assert calls == ["rtsp://camera/stream"] and s["live"]
    assert s["frames_captured"] == 40 and s["stop_reason"] == "max frames (40)"
    assert s["frames_dropped"] > 0
    assert s["frames_processed"] + s["frames_dropped"] == 40
    assert s["max_queue_depth"] <= 2
    assert s["last_frame_processed"] == 39  # the newest frame survives; old ones were dropped


def test_realtime_file_behaves_like_a_camera(bundle, video):
    s = cam.main(
        ["--bundle", str(bundle), "--source", str(video[0]), "--detector", "bgsub", "--realtime"]
        + ["--max-frames", "12", "--queue-size", "1", "--simulate-latency", "0.5"]
    )
    # Frames arrive every 0.1 s whatever happens downstream; at most 5 are in flight between the stages
    # and a 0.5 s/frame consumer takes about 3 while the 12 arrive, so some are dropped.
    assert s["frames_captured"] == 12 and s["frames_dropped"] > 0
    assert s["frames_processed"] + s["frames_dropped"] == 12 and s["last_frame_processed"] == 11
    assert s["capture_fps"] < 11.5  # paced at the file's 10 frames/s (12 frames span >= 1.1 s), never faster


def test_stream_reconnects_with_backoff_then_gives_up(bundle, frames):
    script = [None, frames[:5], None, frames[5:10], None, None, None, frames]  # None: the open fails
    opened = []

    def factory(source):
        opened.append(source)
        return ScriptedCapture(script[len(opened) - 1])

    s = cam.main(
        ["--bundle", str(bundle), "--source", "rtsp://camera/stream", "--detector", "bgsub"]
        + ["--max-reconnects", "2", "--reconnect-delay", "0.001", "--max-reconnect-delay", "0.0015"]
        + ["--queue-size", "64"],
        capture_factory=factory,
    )
    # open fails; 5 frames; drop; open fails; 5 frames; drop; open fails twice more -> 3 in a row > 2: give up
    assert len(opened) == 6
    assert s["frames_captured"] == s["frames_processed"] == 10 and s["frames_dropped"] == 0
    assert s["reconnects"] == 2 and s["reconnect_attempts"] == 6
    assert s["reconnect_delays"] == [0.001, 0.001, 0.0015, 0.001, 0.0015]  # doubling, capped, reset by frames
    assert s["stop_reason"].startswith("source lost")


# ------------------------------------------------------------------------------------ ONNX YOLO detector


def _yolo_rows() -> list[tuple[float, float, float, float, int, float]]:
    """(cx, cy, w, h, class, score) in the 320x320 network input."""
    return [
        (160, 160, 40, 100, 0, 0.9),  # a person
        (162, 158, 40, 100, 0, 0.8),  # the same person again: removed by NMS
        (60, 200, 50, 30, 2, 0.95),  # a car
        (250, 150, 30, 80, 0, 0.2),  # a person under the confidence threshold
        (250, 160, 30, 80, 0, 0.6),  # another person
    ]


# A 480x640 frame letterboxed into 320x320: scale 0.5, 40 px of padding on top.
EXPECTED = [((280, 140, 360, 340), 0.9), ((470, 160, 530, 320), 0.6)]


def _yolo_model(path: Path, layout: str, dynamic: bool = False) -> Path:
    """An ONNX graph whose output is a fixed YOLO tensor (plus 0 x the image, so the input is used)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n, nc = 100, 80
    if layout == "v8":
        out = np.zeros((1, 4 + nc, n), np.float32)
        for j, (cx, cy, w, h, c, score) in enumerate(_yolo_rows()):
            out[0, :4, j] = (cx, cy, w, h)
            out[0, 4 + c, j] = score
    else:
        out = np.zeros((1, n, 5 + nc), np.float32)
        for j, (cx, cy, w, h, c, score) in enumerate(_yolo_rows()):
            out[0, j, :5] = (cx, cy, w, h, 0.9 if c == 0 else 1.0)  # objectness x class prob = score
            out[0, j, 5 + c] = score / out[0, j, 4]
            out[0, j, 5 + (c + 1) % nc] = 0.01
    dims = [1, 3, "h", "w"] if dynamic else [1, 3, 320, 320]
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
            helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
            helper.make_node("Add", ["table", "nothing"], ["output0"]),
        ],
        "fixed_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(out.shape))],
        initializer=[numpy_helper.from_array(out, "table"), numpy_helper.from_array(np.zeros((), np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("layout, dynamic", [("v8", False), ("v5", True)])
def test_yolo_onnx_decoding_letterbox_and_nms(tmp_path, frames, layout, dynamic):
    path = _yolo_model(tmp_path / f"{layout}.onnx", layout, dynamic)
    det = cam.YoloOnnxDetector(path, conf=0.35, nms_iou=0.45, size=320)
    assert det.input_size == (320, 320)
    x, scale, left, top = det.preprocess(frames[0])
    assert x.shape == (1, 3, 320, 320) and x.dtype == np.float32 and (scale, left, top) == (0.5, 0, 40)
    assert np.allclose(x[0, :, :40], 114 / 255)  # the letterbox padding
    found = det.detect(frames[0])
    assert [(d.box, round(d.score, 5)) for d in found] == EXPECTED
    # Detecting on a half-size frame (--det-width 320) maps the boxes back to the full frame.
    half = cam.Downscaled(det, 320)
    assert [(d.box, round(d.score, 5)) for d in half.detect(frames[0])] == EXPECTED
    wrong = cam.YoloOnnxDetector(path, person_class=90, size=320)
    with pytest.raises(cam.CameraStreamError, match="person class 90 does not exist"):
        wrong.detect(frames[0])


def test_yolo_onnx_detector_in_the_pipeline(bundle, tmp_path, video):
    path = _yolo_model(tmp_path / "v8.onnx", "v8")
    s = cam.main(["--bundle", str(bundle), "--source", str(video[0]), "--detector", str(path)])
    assert s["detector"] == "onnx" and s["frames_processed"] == 30
    assert s["detections"] == 60 and s["tracks"] == 2  # the same two boxes every frame: two steady tracks
    tracks = sorted(s["track_summaries"], key=lambda t: t["track"])
    assert [t["frames"] for t in tracks] == [29, 29]  # shown from their second detection (--min-hits 2)
    assert s["crops_recognized"] == 58


# ------------------------------------------------------------------------------------------ gallery search


def test_search_gallery_indexes_searches_and_draws(bundle, tmp_path):
    args = ["--bundle", str(bundle), "--synthetic", "12", "--out", str(tmp_path), "--index", str(tmp_path / "idx")]
    args += ["--query", "Female, Backpack", "--query", "Hat", "--k", "3", "--grid", str(tmp_path / "grid.png")]
    s = gallery.main(args)
    assert s["indexed"] == s["gallery_size"] == 12 and s["labelled"] and s["scorer"] == "embedding"
    labels = {}
    with open(Path(s["gallery"]) / "labels.csv") as f:
        header = f.readline().strip().split(",")
        for line in f:
            row = line.strip().split(",")
            labels[row[0]] = dict(zip(header[3:], (v == "1" for v in row[3:])))
    assert [q["constraints"] for q in s["queries"]] == [{"Female": True, "Backpack": True}, {"Hat": True}]
    for q in s["queries"]:
        hits = q["hits"]
        assert len(hits) == 3 and len({h["id"] for h in hits}) == 3
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
        for h in hits:
            assert Path(h["source"]).is_file() and h["id"] in labels
            assert h["match"] == all(labels[h["id"]][a] == v for a, v in q["constraints"].items())
        assert q["precision"] == pytest.approx(sum(h["match"] for h in hits) / 3)
    grid = cv2.imread(s["grid"])
    assert grid.shape == (2 * (192 + 6), 260 + 3 * (96 + 4), 3)  # two query rows of three 192x96 crops
    assert "query: Female, Backpack" in gallery.format_summary(s)

    again = gallery.main(args[:2] + ["--gallery", s["gallery"], "--index", str(tmp_path / "idx"), "--query", "Hat"])
    assert again["indexed"] == 0 and again["gallery_size"] == 12  # a reused index only adds new images
    assert again["queries"][0]["hits"][0]["id"] == s["queries"][1]["hits"][0]["id"]

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(gallery.GalleryError, match="no images"):
        gallery.main(["--bundle", str(bundle), "--gallery", str(empty), "--query", "Hat"])
