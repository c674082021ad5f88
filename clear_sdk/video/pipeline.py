"""Several cameras in one process: capture -> detect + track -> recognise (one model, batched) -> index.

::

    capture thread per source --(DropOldestQueue)--> detect + track thread per source --+
    capture thread per source --(DropOldestQueue)--> detect + track thread per source --+--(bounded)--> the
        caller's thread: crops of every source batched into one Recognizer call (:meth:`Pipeline.step`),
        aggregated per track, tracks indexed

Each source has its own detection thread (onnxruntime releases the GIL, so the detectors of two
cameras run on two cores at once; on 2 cores this measured faster than one detector call on a batch of
both cameras' tiles, benchmarks/results/video_profile.md). Back-pressure from recognition reaches the
capture queues, where frames are dropped, never memory.

What ends what:

- a source that cannot be opened, gives no frame or a broken one, or whose detector, tracker or
  ``on_frame`` fails on a frame, ends alone (its ``stop_reason`` and ``error`` say why); its open
  tracks are finished and indexed, and the other sources go on;
- Ctrl-C (SIGINT) or SIGTERM, when :meth:`Pipeline.run` runs in the main thread, stops every source
  cleanly: the frames already read are processed, the open tracks are finished and indexed, and the
  summary says ``interrupted`` and which signal. A second signal while that happens is logged and
  ignored (finishing is bounded: one index write per open track); kill -9 still leaves the index
  consistent, as every add is atomic;
- any other error (the Recognizer or the index failing) stops every source; the open tracks are
  finished and indexed where that still works, and the error is raised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import queue
import signal
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from clear_sdk.video.aggregate import TrackAttributes, crop_quality
from clear_sdk.video.detectors import Detector, DetectorError, create_detector
from clear_sdk.video.indexer import TrackIndexer
from clear_sdk.video.queues import DropOldestQueue, Empty
from clear_sdk.video.sources import VideoSource
from clear_sdk.video.tracking import ByteTracker, DetectionSchedule, TrackBook, require_supervision
from clear_sdk.video.types import Frame, TrackedBox

logger = logging.getLogger(__name__)

FrameCallback = Callable[[Frame, list[TrackedBox], dict[int, TrackAttributes]], None]
TrackCallback = Callable[[dict[str, Any]], None]


def describe_error(e: BaseException) -> str:
    """One line for an error: its type where the message alone would not say what failed."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if isinstance(e, (ValueError, OSError)) or type(e).__module__.startswith("clear_sdk") else (
        f"{type(e).__name__}: {text}")  # fmt: skip


@dataclasses.dataclass
class PipelineConfig:
    """How often to recognise and index; all counts are per source."""

    queue_size: int = 4  # frames buffered per source; when full the oldest is dropped
    recognize_every: int = 3  # frames between two recognised crops of the same track
    # crops per Recognizer call, across all sources: onnxruntime's arena grows with the batch (peta-lite0 on CPU:
    # +40 MB at 8, +210 MB at 32), at the same time per crop from 4 up, and a step rarely holds more than 8
    max_batch: int = 8
    warm_up: bool = True  # run the Recognizer at max_batch before frames flow, so that RSS is flat from the start
    min_box_height: int = 32  # people smaller than this are tracked but not recognised
    min_track_crops: int = 1  # a track with fewer recognised crops is not indexed
    reindex_every_s: float = 30.0  # a long track is re-indexed this often (0: only when it ends)
    max_lost: int | None = None  # frames unseen before a track ends (default: the tracker's buffer)
    # detect every n-th frame; on the others the tracker carries each box on by its Kalman velocity (DeepStream's
    # interval), and a due detection is skipped while less than detect_motion of the frame changed (None: never);
    # tracking.DetectionSchedule, measured in benchmarks/results/video_real.md (cameras x frames/s, recall, IDF1):
    # every 3rd frame at 10 fps, 640x360, 3x1 tiles: 11.2 cameras on 2 cores (3.7 detecting all), recall -0.027
    detect_every: int = 3
    detect_motion: float | None = None

    def __post_init__(self) -> None:
        for name, low in (("queue_size", 1), ("recognize_every", 1), ("max_batch", 1), ("min_box_height", 0),
                          ("min_track_crops", 0), ("max_lost", 1), ("detect_every", 1)):  # fmt: skip
            v = getattr(self, name)
            if v is None and name == "max_lost":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"PipelineConfig.{name} must be a whole number >= {low}, got {v!r}")
        r = self.reindex_every_s
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not (math.isfinite(r) and r >= 0):
            raise ValueError(f"PipelineConfig.reindex_every_s must be a finite number of seconds >= 0, got {r!r}")


@dataclasses.dataclass
class SourceStats:
    name: str
    frames_read: int = 0
    frames_dropped: int = 0
    frames_processed: int = 0
    detections: int = 0
    tracks: int = 0
    crops: int = 0
    tracks_indexed: int = 0
    start: float | None = None
    end: float | None = None
    stop_reason: str = ""
    error: str = ""  # why the source failed ("" when it did not): it ended alone, the others went on
    latencies: deque[float] = dataclasses.field(default_factory=lambda: deque(maxlen=2000), repr=False)

    def to_dict(self, source: VideoSource | None = None) -> dict[str, Any]:
        span = (self.end - self.start) if self.start is not None and self.end is not None else 0.0
        lat = np.asarray(self.latencies, np.float64) * 1000.0
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("latencies", "start", "end")}
        out["fps"] = self.frames_processed / span if span > 0 else 0.0
        out["latency_ms"] = {
            "mean": float(lat.mean()) if lat.size else None,
            "p95": float(np.percentile(lat, 95)) if lat.size else None,
            "max": float(lat.max()) if lat.size else None,
        }
        if source is not None:
            out.update(source=str(source.source), live=source.live, reconnects=source.reconnects)
        return out


@dataclasses.dataclass
class Packet:
    """One detected and tracked frame on its way to recognition; ``ended``: track ids that ended with it."""

    frame: Frame
    boxes: list[TrackedBox]
    ended: list[int]


_END = object()


class Pipeline:
    """Run ``sources`` through detection, tracking, attribute recognition and (optionally) indexing.

    ``recognizer``: a :class:`~clear_sdk.Recognizer` shared by all sources (with ``searcher``, pass
    ``searcher.recognizer`` so that one model is in memory). ``detector``: a name for
    :func:`~clear_sdk.video.detectors.create_detector` (one detector per source, with
    ``detector_options``), or a zero-argument factory. ``tracker``: a factory ``f(frame_rate)``
    (default: :class:`~clear_sdk.video.tracking.ByteTracker`). ``on_frame(frame, boxes, tracks)``
    is called in the caller's thread after each frame is recognised (draw, write video, show).
    ``on_track(record)`` is called in the caller's thread with each finished track (its
    :meth:`~clear_sdk.video.aggregate.TrackAttributes.summary`, ``indexed`` and ``id``), after it is
    indexed: :class:`~clear_sdk.video.indexer.TrackEventWriter` writes these as lines of a file.
    """

    def __init__(
        self,
        sources: Sequence[VideoSource],
        recognizer: Any,
        detector: str | Callable[[], Detector] = "ssdlite",
        *,
        detector_options: dict[str, Any] | None = None,
        tracker: Callable[[float], Any] | None = None,
        searcher: Any = None,
        config: PipelineConfig | None = None,
        on_frame: FrameCallback | None = None,
        run: str | None = None,
        on_track: TrackCallback | None = None,
    ) -> None:
        names = [s.name for s in sources]
        if not sources or len(set(names)) != len(names):
            raise ValueError(f"give at least one source, each with its own name (got {names})")
        self.sources = list(sources)
        self.recognizer = recognizer
        self.config = config or PipelineConfig()
        self.detectors = {s.name: self._make_detector(detector, detector_options) for s in self.sources}
        if tracker is None:
            require_supervision()  # its import takes ~1.5 s: here, not in a detection thread with frames waiting
        self._tracker_factory = tracker or (lambda fps: ByteTracker(frame_rate=fps or 10.0))
        clocks = {s.name: s.clock for s in self.sources}
        self.indexer = TrackIndexer(searcher, run=run, clocks=clocks) if searcher is not None else None
        self.searcher = searcher
        self.on_frame = on_frame
        self.on_track = on_track
        self.names = list(recognizer.attribute_names)
        self.thresholds = [recognizer.thresholds[n] for n in self.names]
        self.embed_dim = int(getattr(searcher, "embedding_dim", 0) or 0) if searcher is not None else 0
        self.stats = {s.name: SourceStats(s.name) for s in self.sources}
        self.tracks: dict[str, dict[int, TrackAttributes]] = {s.name: {} for s in self.sources}
        self._ended: dict[str, OrderedDict[int, int]] = {s.name: OrderedDict() for s in self.sources}  # id -> segment
        self.finished: deque[dict[str, Any]] = deque(maxlen=100)  # the latest finished tracks, for the summary
        self.stop_event = threading.Event()  # every source stops
        self._source_stop = {s.name: threading.Event() for s in self.sources}  # this source stops (or all do)
        self.signal: str | None = None  # the signal that stopped the run (SIGINT, SIGTERM), once one came
        self._queues = {s.name: DropOldestQueue[Frame](self.config.queue_size) for s in self.sources}
        self._done: set[str] = set()
        self._packets: queue.Queue = queue.Queue(maxsize=2 * len(self.sources))
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()

    @staticmethod
    def _make_detector(detector: str | Callable[[], Detector], options: dict[str, Any] | None) -> Detector:
        """One source's detector; a model that cannot load (a broken .onnx, an OpenCV error) is a DetectorError."""
        try:
            if isinstance(detector, str):
                return create_detector(detector, **dict(options or {}))
            return detector()
        except (DetectorError, ValueError, TypeError):
            raise
        except Exception as e:  # onnxruntime's InvalidProtobuf / Fail, cv2.error, OSError: the model, not a bug
            name = detector if isinstance(detector, str) else getattr(detector, "__name__", "detector")
            raise DetectorError(f"cannot load the detector {name!r}: {describe_error(e)}") from e

    @property
    def detector_name(self) -> str:
        return next(iter(self.detectors.values())).name

    def _end_source(self, name: str, reason: str) -> None:
        """Source ``name`` failed: record why and stop reading it; the other sources go on."""
        st = self.stats[name]
        if not st.error:
            st.error = reason
            st.stop_reason = f"error: {reason}"
            logger.error("%s: %s (this source ends; the others go on)", name, reason)
        self._source_stop[name].set()

    # ------------------------------------------------------------------------------------ threads
    def _capture(self, source: VideoSource) -> None:
        st, q, stop = self.stats[source.name], self._queues[source.name], self._source_stop[source.name]
        drop = source.live or source.realtime  # a file read at full speed waits for the pipeline instead
        try:
            for frame in source.frames(stop):
                st.frames_read += 1
                if not drop:
                    if not q.put_wait(frame, stop):
                        break
                elif q.put(frame) is not None:
                    st.frames_dropped += 1
        except Exception as e:  # a source that cannot be opened or read ends alone; the others go on
            self._end_source(source.name, describe_error(e))
        finally:
            if not st.error:
                st.stop_reason = source.stop_reason
            with self._lock:
                self._done.add(source.name)

    def _detect(self, source: VideoSource) -> None:
        """Detect and track one source's frames, in its own thread (one detector and one tracker per source)."""
        name, q, st = source.name, self._queues[source.name], self.stats[source.name]
        detector, tracker, book = self.detectors[name], None, None
        schedule: DetectionSchedule | None = None
        stop = self._source_stop[name]
        step = -1  # tracker updates: "frames unseen" counts these, as ByteTrack does, not source frame
        # numbers (a source that drops frames would otherwise end every track at each gap)
        try:
            while not stop.is_set():
                try:
                    frame = q.get(timeout=0.05)
                except Empty:
                    with self._lock:
                        finished = name in self._done
                    if finished and not len(q):  # the capture thread puts its last frame before it is done
                        break
                    continue
                try:
                    if tracker is None:  # the frame rate is known once the source is open
                        tracker = self._tracker_factory(source.fps or 10.0)
                        book = TrackBook(self.config.max_lost or getattr(tracker, "max_lost", 30))
                        schedule = DetectionSchedule(
                            detector, tracker, self.config.detect_every, self.config.detect_motion
                        )
                    boxes = schedule.update(frame.image)
                except Exception as e:  # this source's frame or detector: it ends alone
                    self._end_source(name, f"frame {frame.index}: {describe_error(e)}")
                    break
                st.detections = schedule.detections
                step += 1
                self._put(Packet(frame, boxes, book.update(step, [b.track_id for b in boxes])))
            if book is not None:  # every track still open ends with its stream (on a stop, run() ends them)
                self._put(Packet(Frame(name, -1, 0.0, np.zeros((0, 0, 3), np.uint8), 0.0), [], book.close()))
        except BaseException as e:  # not one frame's failure (MemoryError, ...): every source stops
            self._errors.append(e)
            self.stop()
        finally:
            self._put(_END, force=True)

    def _put(self, item: Any, force: bool = False) -> None:
        """Hand ``item`` to the recognition stage, waiting while it is busy (back-pressure).

        Once the run is stopping, a plain item is given up; ``force`` (the end marker) instead makes
        room by discarding a waiting packet, so that the consumer always learns that this source ended.
        """
        while True:
            try:
                self._packets.put(item, timeout=0.1)
                return
            except queue.Full:
                if not self.stop_event.is_set():
                    continue
                if not force:
                    return
                try:
                    self._packets.get_nowait()
                except queue.Empty:
                    pass

    # ------------------------------------------------------------------------- recognition stage
    def _recognize(self, jobs: list[tuple[TrackAttributes, np.ndarray, float, Frame, TrackedBox]]) -> None:
        step = self.config.max_batch
        for start in range(0, len(jobs), step):
            chunk = jobs[start : start + step]
            batch, ok, _ = self.recognizer.preprocess([j[1] for j in chunk], errors="skip")
            if not ok:
                continue
            probs, emb = self.recognizer.run_batch(batch)
            for row, i in enumerate(ok):
                ta, crop, weight, frame, box = chunk[i]
                ta.add(probs[row], weight, crop, box.box, frame.timestamp, None if emb is None else emb[row])
                self.stats[ta.source].crops += 1

    def _finish(self, source: str, track_ids: Sequence[int]) -> None:
        for tid in track_ids:
            ta = self.tracks[source].pop(tid, None)
            if ta is None:
                continue
            ended = self._ended[source]
            ended[tid] = ta.segment
            ended.move_to_end(tid)
            while len(ended) > 4096:  # ids re-appear within seconds; remembering the latest few bounds memory
                ended.popitem(last=False)
            record = ta.summary(self.names, self.thresholds) | {"indexed": False, "id": None}
            self.finished.append(record)
            if self.indexer is not None and ta.crops >= self.config.min_track_crops:
                item = self.indexer.index(ta, finished=True)
                if item:
                    record.update(indexed=True, id=item)
                    self.stats[source].tracks_indexed += 1
            if self.on_track is not None:
                self.on_track(record)

    def _finish_all(self) -> Exception | None:
        """Finish (and index) every open track, each on its own: one that fails (a full disk) is logged and the
        others are still tried; returns the first error."""
        first = None
        for name in list(self.tracks):
            for tid in list(self.tracks[name]):
                try:
                    self._finish(name, [tid])
                except Exception as e:
                    first = first or e
                    logger.error("%s: track %s could not be finished: %s", name, tid, describe_error(e))
        return first

    def step(self, packets: Sequence[Packet]) -> int:
        """One recognition step over ``packets`` (tracked frames of any sources): returns the crops recognised.

        The crops due in all packets go through the Recognizer together, ``max_batch`` per call, so
        the crops of several cameras share one batch; then the frames are counted, ``on_frame`` is
        called, ended tracks are indexed and long ones re-indexed. :meth:`run` calls this with every
        packet that is ready; call it directly to drive the pipeline without threads.
        """
        cfg = self.config
        jobs = []
        for p in packets:
            f, book = p.frame, self.tracks[p.frame.source]
            for b in p.boxes:
                ta = book.get(b.track_id)
                if ta is None:
                    ta = book[b.track_id] = TrackAttributes(f.source, b.track_id, len(self.names), self.embed_dim)
                    ended = self._ended[f.source]
                    if b.track_id in ended:  # an id the tracker gives again after its track ended: a new item,
                        ta.segment = ended[b.track_id] + 1  # not a replacement of the finished one
                    self.stats[f.source].tracks += 1
                ta.seen(f.timestamp, f.position)
                x1, y1, x2, y2 = b.box
                if y2 - y1 < cfg.min_box_height or x2 - x1 < 4 or f.index - ta.last_crop_frame < cfg.recognize_every:
                    continue
                ta.last_crop_frame = f.index
                crop = f.image[y1:y2, x1:x2]
                jobs.append((ta, crop, b.score * crop_quality(b.box, f.image.shape, crop), f, b))
        if jobs:
            self._recognize(jobs)
        now = time.perf_counter()
        for p in packets:
            f, st = p.frame, self.stats[p.frame.source]
            if f.index >= 0:
                st.frames_processed += 1
                st.latencies.append(now - f.captured)
                st.start = f.captured if st.start is None else st.start
                st.end = now
                if self.on_frame is not None and not st.error:
                    try:
                        self.on_frame(f, p.boxes, self.tracks[f.source])
                    except Exception as e:  # drawing or writing this camera's video: this source ends
                        self._end_source(f.source, f"frame {f.index}: output: {describe_error(e)}")
            self._finish(f.source, p.ended)
            if self.indexer is not None and cfg.reindex_every_s > 0:
                for b in p.boxes:
                    ta = self.tracks[f.source].get(b.track_id)
                    if ta is None or not ta.crops or ta.last_ts is None:
                        continue
                    since = ta.last_indexed_ts if ta.last_indexed_ts is not None else ta.first_ts
                    if ta.last_ts - since >= cfg.reindex_every_s:
                        self.indexer.index(ta, finished=False)
        return len(jobs)

    # ---------------------------------------------------------------------------------------- run
    @contextlib.contextmanager
    def _signals(self, enabled: bool) -> Iterator[None]:
        """SIGINT and SIGTERM only flag the run as stopping (the loop acts on the flag): a handler that raised
        could land inside a lock or an index write. Installed only in the main thread (Python's rule)."""
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.signal is None:
                self.signal = name  # no logging here: a handler must not take locks the main thread may hold
            else:
                self._repeated_signals += 1

        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def run(self, handle_signals: bool = True) -> dict[str, Any]:
        """Process until every source ends (or :meth:`stop`, Ctrl-C or SIGTERM); returns the summary.

        ``handle_signals``: in the main thread, SIGINT and SIGTERM stop the run cleanly (see the module
        docstring); off, Ctrl-C arrives as KeyboardInterrupt, which also stops it cleanly.
        """
        t0 = time.perf_counter()
        self._repeated_signals = 0
        interrupted = False
        with self._signals(handle_signals):
            if self.config.warm_up:
                self.warm_up()
            threads = [threading.Thread(target=self._capture, args=(s,), name=f"capture-{s.name}", daemon=True)
                       for s in self.sources]  # fmt: skip
            threads += [threading.Thread(target=self._detect, args=(s,), name=f"detect-{s.name}", daemon=True)
                        for s in self.sources]  # fmt: skip
            for t in threads:
                t.start()
            failure: BaseException | None = None
            try:
                self._loop()
            except KeyboardInterrupt:
                interrupted = True
                logger.info("interrupted: finishing the open tracks")
            except BaseException as e:  # the Recognizer or the index failed: every source stops
                failure = e
            finally:
                self.stop()
                for t in threads:
                    t.join(timeout=5.0)
            failure = failure or (self._errors[0] if self._errors else None)
            if self.signal is not None:
                logger.warning("%s: stopped; finishing and indexing the open tracks", self.signal)
            # every track still open (a stop, Ctrl-C, an error, a source that ended early): finish and index it
            unfinished = self._finish_all()
            failure = failure or unfinished
            if self._repeated_signals:
                logger.warning("%d more signal(s) came while finishing; ignored", self._repeated_signals)
            if failure is not None:
                raise failure
        return self.summary(time.perf_counter() - t0, interrupted or self.signal is not None)

    def _loop(self) -> None:
        """Hand the detection threads' packets to :meth:`step` until every source has sent its end marker."""
        ended = 0  # detection threads that have finished (each sends one end marker)
        while ended < len(self.sources):
            if self.signal is not None and not self.stop_event.is_set():
                self.stop()  # from normal code, not from the handler
            try:
                first = self._packets.get(timeout=0.1)
            except queue.Empty:
                continue
            packets = [first]
            while len(packets) < 4 * len(self.sources):  # whatever else is ready: one batch for all cameras
                try:
                    packets.append(self._packets.get_nowait())
                except queue.Empty:
                    break
            ended += sum(p is _END for p in packets)
            self.step([p for p in packets if p is not _END])

    def warm_up(self) -> None:
        """Run the Recognizer on a blank ``max_batch`` batch a few times.

        onnxruntime sizes its memory arena by the largest batch seen (and plans it on the second run);
        without this, RSS climbs in steps during the first minutes, whenever a larger batch first occurs.
        Detectors are not warmed: some keep state (background subtraction).
        """
        h, w = self.recognizer.preprocessing.input_size
        blank = np.zeros((self.config.max_batch, 3, h, w), np.float32)
        for _ in range(3):
            self.recognizer.run_batch(blank)

    def stop(self) -> None:
        """Ask the run to end (from another thread); open tracks are still finalised and indexed."""
        self.stop_event.set()
        for event in self._source_stop.values():
            event.set()

    def summary(self, wall_s: float, interrupted: bool = False) -> dict[str, Any]:
        per_source = [self.stats[s.name].to_dict(s) for s in self.sources]
        if self.searcher is not None:
            refresh = getattr(self.searcher.index, "refresh", None)
            if refresh is not None:  # another process may have written to the same index meanwhile
                refresh()
        return {
            "detector": self.detector_name,
            "backend": getattr(self.recognizer, "backend_name", None),
            "run": self.indexer.run if self.indexer else None,
            "wall_s": wall_s,
            "interrupted": interrupted,
            "signal": self.signal,
            "failed_sources": [d["name"] for d in per_source if d["error"]],
            "sources": per_source,
            "frames_processed": sum(d["frames_processed"] for d in per_source),
            "frames_dropped": sum(d["frames_dropped"] for d in per_source),
            "tracks": sum(d["tracks"] for d in per_source),
            "tracks_indexed": sum(d["tracks_indexed"] for d in per_source),
            "crops": sum(d["crops"] for d in per_source),
            "index_size": len(self.searcher) if self.searcher is not None else None,
            "recent_tracks": list(self.finished),
        }
