"""Issue 25, the video and `watch` defects of the second hostile test: what a camera, a frame, a detector, a signal
or a name does to a run. The rules under test: a failing source, frame or detector ends only that source (its
``stop_reason`` says why) and the others go on; open tracks are always finished and indexed before `watch` returns
(end of input, any error, SIGINT, SIGTERM); user text is never markup; every option's range is checked at the
boundary with a one-line error naming it; no traceback reaches a CLI user; the exit code says whether the work was
done. Real clips (the synthetic renderer), real detectors, real indexes; numbers in test names are the defects'."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from clear_sdk import AttributeSearcher, Recognizer
from clear_sdk.video import Pipeline, PipelineConfig, VideoSource
from clear_sdk.video.aggregate import TrackAttributes
from clear_sdk.video.detectors import DetectorError, SSDLiteDetector
from clear_sdk.video.detectors.ssdlite import MAX_DEFAULT_COLS, MAX_TILES
from clear_sdk.video.indexer import TrackIndexer
from clear_sdk.video.sources import SourceError
from clear_sdk.video.types import Detection
from tests.video_helpers import ScriptedLive, read_frames

pytest.importorskip("torch")  # the tiny_bundle fixture exports a model

FPS = 10.0


@pytest.fixture(scope="module")
def street(tmp_path_factory) -> tuple[Path, list[dict]]:
    """30 frames of a rendered street (640x480, 3 people) and where its people are."""
    from clear_sdk.synthetic import write_synthetic_video

    d = tmp_path_factory.mktemp("street")
    path = write_synthetic_video(d / "street.mp4", num_frames=30, seed=1, fps=FPS, annotations=d / "truth.json")
    return path, json.loads((d / "truth.json").read_text())["frames"]


@pytest.fixture(scope="module")
def long_street(tmp_path_factory) -> Path:
    """20 s of rendered street at 10 fps: long enough to be stopped by a signal while it plays (--realtime)."""
    from clear_sdk.synthetic import write_synthetic_video

    return write_synthetic_video(tmp_path_factory.mktemp("long") / "long.mp4", num_frames=200, seed=2, fps=FPS)


class TruthDetector:
    """Detects exactly the rendered video's people (from its annotations), by frame: a frame is known by its pixels,
    so the pipeline may run it on whichever frames it schedules. The pipeline under test, not a model."""

    name = "truth"
    _frames_by_pixels: dict[str, dict[bytes, int]] = {}

    def __init__(self, path: Path, truth: list[dict]) -> None:
        if str(path) not in self._frames_by_pixels:
            frames = read_frames(path)
            self._frames_by_pixels[str(path)] = {hashlib.sha1(f.tobytes()).digest(): i for i, f in enumerate(frames)}
        self.by_pixels, self.truth = self._frames_by_pixels[str(path)], truth

    def index(self, frame: np.ndarray) -> int:
        return self.by_pixels[hashlib.sha1(frame.tobytes()).digest()]

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return [Detection(tuple(int(v) for v in p["bbox"]), 0.9) for p in self.truth[self.index(frame)]["people"]]


def _tiny_video(path: Path, n: int = 5, size: tuple[int, int] = (1, 1)) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (size[1], size[0]))
    for _ in range(n):
        w.write(np.zeros((*size, 3), np.uint8))
    w.release()
    return path


def _watch(args: list[str]):
    from clear_sdk.cli import app

    return CliRunner().invoke(app, ["watch", *args])


def _summary(result) -> dict:
    return json.loads(result.stdout[result.stdout.index("{") :])


def _one_line_error(result, *needles: str) -> None:
    """Exit 1, a one-line reason naming ``needles``, no traceback, no 'please report it' (not a bug)."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and "please report" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and all(n in lines[0] for n in needles), result.output


# ----------------------------------------------------------------------------------------------------- 4
def test_04_crops_of_cameras_whose_names_clean_alike_do_not_collide(tiny_bundle, tmp_path):
    """Camera names "前门" / "后门" cleaned to "_", "a b" / "a_b" to "a_b": one crop overwrote the other."""
    cameras = ["前门", "后门", "a b", "a_b", "a/b", "."]
    with AttributeSearcher(tiny_bundle, index_dir=tmp_path / "index") as searcher:
        indexer = TrackIndexer(searcher, run="r1")
        n, dim = len(searcher.attribute_names), searcher.embedding_dim or 0
        for value, cam in enumerate(cameras, 1):
            ta = TrackAttributes(cam, 1, n, dim)  # the same track id and run on every camera
            crop = np.full((64, 32, 3), 30 * value, np.uint8)
            ta.add(np.full(n, 0.5), 1.0, crop, (0, 0, 32, 64), 0.0, np.ones(dim) if dim else None)
            ta.seen(0.0)
            assert indexer.index(ta, finished=True)
        mds = {md["camera"]: md for md in searcher.index.get_metadata(searcher.index.ids)}
    assert sorted(mds) == sorted(cameras)
    assert len({md["source"] for md in mds.values()}) == len(cameras)
    for value, cam in enumerate(cameras, 1):
        path = Path(mds[cam]["source"])
        assert path.is_file() and path.parent.parent == (tmp_path / "index" / "crops").resolve()
        assert abs(float(cv2.imread(str(path)).mean()) - 30 * value) < 3  # its own camera's crop, not another's


# ----------------------------------------------------------------------------------------------------- 5
def test_05_hog_never_sees_frames_smaller_than_its_window():
    """OpenCV's HOG corrupted the heap on 1x1, 7x3 and 30x60 frames (the process aborted): run in a child."""
    if not hasattr(cv2, "HOGDescriptor"):
        pytest.skip("this OpenCV has no HOG")
    code = (
        "import numpy as np\n"
        "from clear_sdk.video.detectors import create_detector\n"
        "d = create_detector('hog')\n"
        "for shape in [(1, 1), (7, 3), (30, 60), (127, 64), (128, 63), (100, 400)]:\n"
        "    frame = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)\n"
        "    assert d.detect(frame) == [], shape\n"
        "print('ok')\n"
    )
    for _ in range(3):  # heap corruption does not always abort at once
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.strip() == "ok", (out.returncode, out.stderr[-500:])


# ----------------------------------------------------------------------------------------------------- 6
def test_06_one_camera_failing_on_its_frames_ends_only_that_camera(tiny_bundle, street, tmp_path):
    """`watch clip.mp4 tiny_1x1.avi --tiles 4x4`: the 1x1 frames fail in SSDLite (an OpenCV assertion); the clip
    must be processed whole and every one of its tracks indexed, as when it runs alone; exit 1 (a source failed)."""
    path, _ = street
    tiny = _tiny_video(tmp_path / "tiny_1x1.avi")
    common = ["--bundle", str(tiny_bundle), "--tiles", "4x4", "--json", "--recognize-every", "2"]
    alone = _watch([str(path), "--index", str(tmp_path / "alone"), *common])
    assert alone.exit_code == 0, alone.output
    solo = _summary(alone)["sources"][0]
    r = _watch([str(path), str(tiny), "--index", str(tmp_path / "both"), *common])
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and "please report" not in r.output
    s = _summary(r)
    clip, bad = s["sources"]
    assert s["failed_sources"] == ["tiny_1x1"] and not clip["error"]
    assert bad["stop_reason"].startswith("error: frame 0:") and "Assertion failed" in bad["error"]
    assert clip["frames_processed"] == 30 and clip["stop_reason"] == "end of file"
    assert clip["tracks"] == solo["tracks"] and clip["tracks_indexed"] == solo["tracks_indexed"] > 0
    assert s["index_size"] == s["tracks_indexed"] == clip["tracks_indexed"] + bad["tracks_indexed"]
    assert "1 of 2 sources failed (tiny_1x1)" in r.output


def test_06_an_empty_frame_from_a_capture_ends_only_that_camera(tiny_bundle, street, tmp_path):
    """A capture that delivers an empty array: that camera ends with its reason, its open tracks are indexed,
    the file beside it is processed whole."""
    path, truth = street
    frames = read_frames(path)
    searcher = AttributeSearcher(tiny_bundle, index_dir=tmp_path / "index")
    captures = iter([ScriptedLive([*frames[:12], np.zeros(0)])])
    live = VideoSource("rtsp://camera/1", "door", capture_factory=lambda s: next(captures, ScriptedLive([])),
                       max_reconnects=0)  # fmt: skip
    pipe = Pipeline([VideoSource(str(path), "gate"), live], searcher.recognizer, lambda: TruthDetector(path, truth),
                    searcher=searcher, config=PipelineConfig(warm_up=False, recognize_every=2))  # fmt: skip
    s = pipe.run()
    gate, door = s["sources"]
    assert gate["frames_processed"] == 30 and gate["stop_reason"] == "end of file" and not gate["error"]
    assert door["frames_read"] == 12 and "empty frame" in door["error"] and s["failed_sources"] == ["door"]
    assert door["tracks"] > 0 and door["tracks_indexed"] == door["tracks"]  # its open tracks were not lost
    assert gate["tracks_indexed"] == gate["tracks"] > 0
    assert len(searcher.index) == s["tracks_indexed"] == gate["tracks_indexed"] + door["tracks_indexed"]
    searcher.close()


def test_06_a_detector_failing_mid_run_ends_its_source_with_the_tracks_indexed(tiny_bundle, street, tmp_path):
    """A detector that raises on its 15th frame (a model server gone, a corrupt frame): its tracks so far are kept."""
    path, truth = street

    class FailsAt15(TruthDetector):
        def detect(self, frame):
            if self.index(frame) == 15:
                raise RuntimeError("the detector's session died")
            return super().detect(frame)

    searcher = AttributeSearcher(tiny_bundle, index_dir=tmp_path / "index")
    made = iter([FailsAt15(path, truth), TruthDetector(path, truth)])
    pipe = Pipeline([VideoSource(str(path), "a"), VideoSource(str(path), "b")], searcher.recognizer,
                    lambda: next(made), searcher=searcher, config=PipelineConfig(warm_up=False))  # fmt: skip
    s = pipe.run()
    a, b = s["sources"]
    assert a["error"] == "frame 15: RuntimeError: the detector's session died" and a["frames_processed"] == 15
    assert b["frames_processed"] == 30 and not b["error"]
    assert a["tracks_indexed"] == a["tracks"] > 0 and b["tracks_indexed"] == b["tracks"] > 0
    assert len(searcher.index) == s["tracks_indexed"]
    searcher.close()


def test_06_an_index_failure_stops_the_run_after_finishing_what_it_can(tiny_bundle, street, tmp_path):
    """Any other error (here the index refusing a write) is raised, but only after the open tracks were tried."""
    path, truth = street
    searcher = AttributeSearcher(tiny_bundle, index_dir=tmp_path / "index")
    add = searcher.add_probabilities
    calls = []

    def failing_once(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return add(*args, **kwargs)

    searcher.add_probabilities = failing_once  # the first track's add: as a full disk would refuse it
    pipe = Pipeline([VideoSource(str(path), "gate")], searcher.recognizer, lambda: TruthDetector(path, truth),
                    searcher=searcher, config=PipelineConfig(warm_up=False, reindex_every_s=0))  # fmt: skip
    with pytest.raises(OSError, match="No space left"):
        pipe.run()
    assert len(calls) > 1 and len(searcher.index) == len(calls) - 1  # the others were still indexed
    searcher.close()


# ----------------------------------------------------------------------------------------------------- 7
def _watch_process(tiny_bundle, clip: Path, index: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "clear_sdk.cli", "watch", str(clip), "--bundle", str(tiny_bundle),
            "--index", str(index), "--detector", "bgsub", "--realtime", "--json", "--recognize-every", "2"]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_running(proc: subprocess.Popen, index: Path, seconds: float = 6.0) -> None:
    """Until the index exists and the clip has played ``seconds`` (it is 20 s long at --realtime)."""
    deadline = time.monotonic() + 120
    while not (index / "searcher.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.2)
    time.sleep(seconds)
    assert proc.poll() is None


def _stopped_summary(proc: subprocess.Popen, tiny_bundle, index: Path) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (proc.returncode, err[-2000:])
    s = json.loads(out[out.index("{") :])
    assert s["interrupted"] and s["sources"][0]["frames_processed"] < 200
    recent = s["recent_tracks"]
    assert s["tracks_indexed"] > 0 and s["tracks_indexed"] == sum(t["indexed"] for t in recent)
    assert all(t["indexed"] for t in recent if t["crops"] >= 1)  # every open track with a crop was indexed
    with AttributeSearcher(tiny_bundle, index_dir=index) as again:
        assert len(again) == s["tracks_indexed"]
    assert "Traceback" not in err
    return s


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signals", [["SIGTERM"], ["SIGINT", "SIGINT"]], ids=["sigterm", "ctrl-c-twice"])
def test_07_sigterm_and_a_second_ctrl_c_finish_and_index_the_open_tracks(tiny_bundle, long_street, tmp_path, signals):
    """SIGTERM (what docker, systemd and Kubernetes send) killed the run with no summary, and Ctrl-C twice gave
    "release unlocked lock": both lost the open tracks. Now both stop cleanly; a second signal is ignored."""
    index = tmp_path / "index"
    proc = _watch_process(tiny_bundle, long_street, index)
    try:
        _wait_running(proc, index)
        for name in signals:
            proc.send_signal(getattr(signal, name))
            time.sleep(0.01)
        s = _stopped_summary(proc, tiny_bundle, index)
    finally:
        proc.kill()
    assert s["signal"] == signals[0]


def test_07_signals_are_handled_only_while_the_run_lasts(tiny_bundle, street, tmp_path):
    """The pipeline's handlers are put back after run(): Ctrl-C outside a run is Python's KeyboardInterrupt again."""
    path, truth = street
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    rec = Recognizer(tiny_bundle)

    def send_sigterm(frame, boxes, tracks):
        if frame.index == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # handled by the run: it stops cleanly

    pipe = Pipeline([VideoSource(str(path), "gate")], rec, lambda: TruthDetector(path, truth), on_frame=send_sigterm,
                    config=PipelineConfig(warm_up=False))  # fmt: skip
    s = pipe.run()
    assert s["interrupted"] and s["signal"] == "SIGTERM" and 5 < s["sources"][0]["frames_processed"] < 30
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# ---------------------------------------------------------------------------------------------------- 11
@pytest.mark.parametrize("content", [b"", b"this is a text file, not a video\n" * 20, "random"])
def test_11_a_file_that_gives_no_frame_is_a_failure(tiny_bundle, tmp_path, content):
    """A zero-length, text or random-bytes .mp4 exited 0 ("done"): scripts and cron jobs saw success."""
    if content == "random":
        content = np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(content)
    r = _watch([str(bad), "--bundle", str(tiny_bundle), "--index", str(tmp_path / "index"), "--detector", "bgsub"])
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and "1 of 1 sources failed (broken)" in r.output
    assert "broken.mp4" in r.output  # the reason names the file


# ---------------------------------------------------------------------------------------------------- 12
def test_12_camera_names_and_paths_are_never_markup(tiny_bundle, street, tmp_path):
    path, _ = street
    index = tmp_path / "index"
    r = _watch([str(path), "--camera", "[/oops]", "--bundle", str(tiny_bundle), "--index", str(index),
                "--detector", "bgsub", "--max-frames", "5"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "[/oops]: " in r.output and "MarkupError" not in r.output  # the summary line of that camera
    gone = tmp_path / ("[bold]gone[/bold]-" + "x" * 100 + ".mp4")  # and longer than 80 columns
    r = _watch([str(gone), "--bundle", str(tiny_bundle), "--index", str(index)])
    _one_line_error(r, str(gone))


# ---------------------------------------------------------------------------------------------------- 13
def test_13_tiles_have_a_limit_and_the_default_grid_a_sanity_check(tiny_bundle, street, tmp_path):
    r = _watch([str(street[0]), "--bundle", str(tiny_bundle), "--index", str(tmp_path / "i"), "--tiles", "100x100"])
    _one_line_error(r, "--tiles", "at most 16 tiles")
    with pytest.raises(DetectorError, match="at most 16 tiles"):
        SSDLiteDetector(tiles=(100, 100))
    det = SSDLiteDetector()
    seen: list[int] = []
    run_core = det._run_core
    det._run_core = lambda tiles: (seen.append(len(tiles)), run_core(tiles))[1]
    det.detect(np.zeros((1, 1000, 3), np.uint8))  # 1000 tiles (33 s a frame) before
    det.detect(np.zeros((1000, 1, 3), np.uint8))
    det.detect(np.zeros((360, 640, 3), np.uint8))
    assert seen[0] == MAX_DEFAULT_COLS and seen[1] == 1 and 1 <= seen[2] <= MAX_TILES


# ---------------------------------------------------------------------------------------------------- 17
def test_17_an_index_folder_that_cannot_be_created_is_the_machine_not_a_bug(tiny_bundle, street, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    r = _watch([str(street[0]), "--bundle", str(tiny_bundle), "--index", str(blocker / "index")])
    _one_line_error(r, "cannot open the index", str(blocker / "index"))


def test_17_an_invalid_detector_onnx_is_a_detector_error(tiny_bundle, street, tmp_path):
    bad = tmp_path / "detector.onnx"
    bad.write_bytes(b"not an onnx graph" * 10)
    r = _watch([str(street[0]), "--bundle", str(tiny_bundle), "--index", str(tmp_path / "i"), "--detector", str(bad)])
    _one_line_error(r, "cannot load the detector", "detector.onnx")


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_17_a_full_disk_during_the_run_is_reported_as_such(tiny_bundle, street, tmp_path):
    """The index grows past what the file system allows (RLIMIT_FSIZE: writes fail with EFBIG, as with ENOSPC)."""
    index = tmp_path / "index"
    with AttributeSearcher(tiny_bundle, index_dir=index):  # created while there is room
        pass
    room = max(f.stat().st_size for f in index.rglob("*") if f.is_file()) + 8192  # a few pages more, no more
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"  # a write past the limit fails instead of killing us
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({room}, {room}))\n"
        "from clear_sdk.cli import main\n"
        "sys.argv = ['clear-sdk', *sys.argv[1:]]\n"
        "main()\n"
    )
    args = ["watch", str(street[0]), "--bundle", str(tiny_bundle), "--index", str(index), "--detector", "bgsub",
            "--reindex-every", "0.2"]  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "is the disk full or read-only?" in lines[0], out.stderr[-2000:]
    assert "please report" not in out.stderr and "Traceback" not in out.stderr


# ---------------------------------------------------------------------------------------------------- 22
@pytest.mark.parametrize(
    "option, value, needle",
    [
        ("--max-frames", "-5", "--max-frames -5"),
        ("--max-frames", "0", "--max-frames 0"),
        ("--conf", "nan", "--conf nan"),
        ("--conf", "2", "--conf 2.0"),
        ("--conf", "-1", "--conf -1.0"),
        ("--recognize-every", "0", "--recognize-every 0"),
        ("--reindex-every", "-1", "--reindex-every -1.0"),
        ("--reindex-every", "inf", "--reindex-every inf"),
        ("--precision", "fp16", "--precision 'fp16'"),
        ("--start", "yesterday", "--start 'yesterday'"),
    ],
)
def test_22_watch_options_out_of_range_are_one_line_errors(tiny_bundle, street, tmp_path, option, value, needle):
    r = _watch([str(street[0]), "--bundle", str(tiny_bundle), "--index", str(tmp_path / "i"), option, value])
    _one_line_error(r, needle)
    assert not (tmp_path / "i").exists()  # refused before anything was opened


def test_22_library_ranges_are_checked_where_they_enter(street):
    with pytest.raises(ValueError, match="max_frames must be a whole number >= 1"):
        VideoSource(str(street[0]), max_frames=-5)
    with pytest.raises(ValueError, match="max_frames"):
        VideoSource(str(street[0]), max_frames=2.5)
    with pytest.raises(ValueError, match="reconnect_delay"):
        VideoSource("rtsp://cam/1", reconnect_delay=float("nan"))
    with pytest.raises(ValueError, match="recognize_every"):
        PipelineConfig(recognize_every=0)
    with pytest.raises(ValueError, match="reindex_every_s"):
        PipelineConfig(reindex_every_s=float("nan"))


@pytest.mark.parametrize("kind", ["gray", "gray1", "float01", "uint16", "bgra"])
def test_22_gray_and_float_frames_from_a_capture_are_converted_with_a_warning(street, caplog, kind):
    """They gave 0 detections silently; now they reach the detector as 8-bit BGR, and the log says so once."""
    frame = read_frames(street[0])[10]
    variants = {
        "gray": cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY),
        "gray1": cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[:, :, None],
        "float01": frame.astype(np.float32) / 255.0,
        "uint16": frame.astype(np.uint16) * 257,
        "bgra": cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA),
    }
    captures = iter([ScriptedLive([variants[kind]] * 3)])  # one connection, then the camera is gone for good
    src = VideoSource("rtsp://cam/1", "cam", capture_factory=lambda s: next(captures, ScriptedLive([])),
                      max_reconnects=0)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="clear_sdk.video.sources"):
        got = list(src.frames())
    assert len(got) == 3 and all(f.image.dtype == np.uint8 and f.image.shape == frame.shape for f in got)
    expected = cv2.cvtColor(variants["gray"], cv2.COLOR_GRAY2BGR) if kind.startswith("gray") else frame
    assert np.abs(got[0].image.astype(int) - expected).max() <= 1
    assert sum("converted to 8-bit BGR" in r.getMessage() for r in caplog.records) == 1
    if not kind.startswith("gray"):  # (the rendered people are told apart from the street by colour)
        assert len(SSDLiteDetector().detect(got[0].image)) > 0  # people found again: 0 before


@pytest.mark.parametrize("batch_size", [1.5, True, 0, "8"])
def test_22_recognizer_batch_size_must_be_a_whole_number(tiny_bundle, batch_size):
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
        Recognizer(tiny_bundle, batch_size=batch_size)


@pytest.mark.parametrize("micro_batch_ms", [None, 5])
def test_22_a_closed_recognizer_answers_nothing(tiny_bundle, micro_batch_ms):
    """With micro-batching, calls of exactly batch_size images went straight to the backend after close()."""
    rec = Recognizer(tiny_bundle, batch_size=2, micro_batch_ms=micro_batch_ms)
    crops = [np.full((64, 32, 3), 100, np.uint8)] * 2
    assert len(rec.predict(crops)) == 2
    rec.close()
    with pytest.raises(RuntimeError, match="closed"):
        rec.predict(crops)  # exactly batch_size images
    with pytest.raises(RuntimeError, match="closed"):
        rec.run_batch(rec.preprocess(crops[:1])[0])


# ---------------------------------------------------------------------------------------------------- 25
def test_25_the_summary_counts_what_another_process_wrote(tiny_bundle, street, tmp_path):
    """Another process adds to the same index after this run's last write: the summary counted only its own."""
    path, truth = street
    index = tmp_path / "index"
    searcher = AttributeSearcher(tiny_bundle, index_dir=index)
    code = (
        "import numpy as np, sys\n"
        "from clear_sdk import AttributeSearcher\n"
        "with AttributeSearcher(sys.argv[1], index_dir=sys.argv[2]) as s:\n"
        "    s.add([np.full((64, 32, 3), 90, np.uint8)] * 3, ids=['x1', 'x2', 'x3'])\n"
    )

    class PeopleLeaveAt10(TruthDetector):
        def detect(self, frame):
            return super().detect(frame) if self.index(frame) < 10 else []

    def other_process_writes(frame, boxes, tracks):
        if frame.index == 20:  # every track of this run has ended and been indexed by now (max_lost=2)
            out = subprocess.run([sys.executable, "-c", code, str(tiny_bundle), str(index)], capture_output=True,
                                 text=True, timeout=120)  # fmt: skip
            assert out.returncode == 0, out.stderr

    pipe = Pipeline([VideoSource(str(path), "gate")], searcher.recognizer, lambda: PeopleLeaveAt10(path, truth),
                    searcher=searcher, on_frame=other_process_writes,
                    config=PipelineConfig(warm_up=False, max_lost=2))  # fmt: skip
    s = pipe.run()
    searcher.close()
    assert s["tracks_indexed"] > 0 and s["index_size"] == s["tracks_indexed"] + 3  # was tracks_indexed alone
    with AttributeSearcher(tiny_bundle, index_dir=index) as again:
        assert len(again) == s["index_size"]


# ---------------------------------------------------------------------------------------------------- 26
def test_26_a_missing_webcam_gives_up_in_seconds_and_says_so(tiny_bundle, tmp_path):
    """`watch 99` retried for about 2.5 minutes; a webcam index that never opens now gives up after 3 tries."""
    args = [sys.executable, "-m", "clear_sdk.cli", "watch", "99", "--bundle", str(tiny_bundle), "--index",
            str(tmp_path / "i"), "--detector", "bgsub"]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, timeout=90)
    assert out.returncode == 1 and "cannot open webcam 99" in out.stderr and "1 of 1 sources failed" in out.stderr
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=r"cannot open webcam 99: 3 attempts over 1\.5 s"):
        list(VideoSource(99).frames())
    assert time.monotonic() - t0 < 10
