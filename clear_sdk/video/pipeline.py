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

The parts: :class:`~clear_sdk.video.feeds.SourceFeeds` runs the capture and detection threads;
:class:`~clear_sdk.video.open_tracks.OpenTracks` holds the tracks being aggregated and finishes and
indexes them; :class:`Pipeline` is the recognition stage between the two, in the caller's thread.

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
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from clear_sdk.video.aggregate import TrackAttributes
from clear_sdk.video.detectors import Detector, DetectorError, create_detector
from clear_sdk.video.feeds import END, Packet, SourceFeeds, SourceStats, describe_error
from clear_sdk.video.indexer import TrackIndexer
from clear_sdk.video.open_tracks import CropJob, OpenTracks, TrackCallback
from clear_sdk.video.sources import VideoSource
from clear_sdk.video.tracking import ByteTracker, require_supervision
from clear_sdk.video.types import Frame, TrackedBox

__all__ = ["Packet", "Pipeline", "PipelineConfig", "SourceStats", "describe_error", "load_detector"]

logger = logging.getLogger(__name__)

FrameCallback = Callable[[Frame, list[TrackedBox], dict[int, TrackAttributes]], None]


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


def load_detector(detector: str | Callable[[], Detector], options: dict[str, Any] | None) -> Detector:
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


class StopSignals:
    """SIGINT and SIGTERM while a run lasts: they only flag it as stopping (the run's loop acts on the flag).

    A handler that raised could land inside a lock or an index write; a flag cannot.
    """

    def __init__(self) -> None:
        self.name: str | None = None  # the signal that stopped the run (SIGINT, SIGTERM), once one came
        self.repeated = 0  # signals that came after it, while the run was finishing

    def _on_signal(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.name is None:
            self.name = name  # no logging here: a handler must not take locks the main thread may hold
        else:
            self.repeated += 1

    @contextlib.contextmanager
    def handled(self, enabled: bool) -> Iterator[None]:
        """Install the handlers for the block, then put the previous ones back; only in the main thread
        (Python's rule), and not at all when ``enabled`` is false."""
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, self._on_signal)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


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

    Composed of :class:`~clear_sdk.video.feeds.SourceFeeds` (``feeds``: the capture and detect + track
    threads of each source) and :class:`~clear_sdk.video.open_tracks.OpenTracks` (``open_tracks``: the
    tracks being aggregated, finished and indexed); the pipeline itself is the recognition stage between
    them, in the caller's thread.
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
        self.detectors = {s.name: load_detector(detector, detector_options) for s in self.sources}
        if tracker is None:
            require_supervision()  # its import takes ~1.5 s: here, not in a detection thread with frames waiting
        clocks = {s.name: s.clock for s in self.sources}
        self.indexer = TrackIndexer(searcher, run=run, clocks=clocks) if searcher is not None else None
        self.searcher = searcher
        self.on_frame = on_frame
        self.on_track = on_track
        self.names = list(recognizer.attribute_names)
        self.thresholds = [recognizer.thresholds[n] for n in self.names]
        self.embed_dim = int(getattr(searcher, "embedding_dim", 0) or 0) if searcher is not None else 0
        self.stats = {s.name: SourceStats(s.name) for s in self.sources}
        tracker_factory = tracker or (lambda fps: ByteTracker(frame_rate=fps or 10.0))
        self.feeds = SourceFeeds(self.sources, self.detectors, tracker_factory, self.config, self.stats)
        self.open_tracks = OpenTracks(names, self.names, self.thresholds, self.embed_dim, self.config, self.stats,
                                      self.indexer)  # fmt: skip
        self.tracks: dict[str, dict[int, TrackAttributes]] = self.open_tracks.by_source
        self.finished = self.open_tracks.finished  # the latest finished tracks, for the summary
        self.stop_event = self.feeds.stop_event  # every source stops
        self._signals = StopSignals()

    @property
    def detector_name(self) -> str:
        return next(iter(self.detectors.values())).name

    @property
    def signal(self) -> str | None:
        """The signal that stopped the run (SIGINT, SIGTERM), once one came."""
        return self._signals.name

    # ------------------------------------------------------------------------- recognition stage
    def step(self, packets: Sequence[Packet]) -> int:
        """One recognition step over ``packets`` (tracked frames of any sources): returns the crops recognised.

        The crops due in all packets go through the Recognizer together, ``max_batch`` per call, so
        the crops of several cameras share one batch; then the frames are counted, ``on_frame`` is
        called, ended tracks are indexed and long ones re-indexed. :meth:`run` calls this with every
        packet that is ready; call it directly to drive the pipeline without threads.
        """
        jobs = [job for p in packets for job in self.open_tracks.due_crops(p.frame, p.boxes)]
        if jobs:
            self._recognize(jobs)
        now = time.perf_counter()
        for p in packets:
            self._frame_done(p, now)
            self.open_tracks.finish(p.frame.source, p.ended, self.on_track)
            self.open_tracks.reindex_long(p.frame.source, p.boxes)
        return len(jobs)

    def _recognize(self, jobs: Sequence[CropJob]) -> None:
        """Recognise the crops, ``max_batch`` per Recognizer call, and add each to its track."""
        step = self.config.max_batch
        for start in range(0, len(jobs), step):
            chunk = jobs[start : start + step]
            batch, ok, _ = self.recognizer.preprocess([j.crop for j in chunk], errors="skip")
            if not ok:
                continue
            probs, emb = self.recognizer.run_batch(batch)
            for row, i in enumerate(ok):
                ta, crop, weight, frame, box = chunk[i]
                ta.add(probs[row], weight, crop, box.box, frame.timestamp, None if emb is None else emb[row])
                self.stats[ta.source].crops += 1

    def _frame_done(self, packet: Packet, now: float) -> None:
        """Count a recognised frame and its latency, and hand it to ``on_frame`` (an end-of-stream packet is no
        frame); an ``on_frame`` that fails ends that source."""
        f, st = packet.frame, self.stats[packet.frame.source]
        if f.index < 0:
            return
        st.frames_processed += 1
        st.latencies.append(now - f.captured)
        st.start = f.captured if st.start is None else st.start
        st.end = now
        if self.on_frame is not None and not st.error:
            try:
                self.on_frame(f, packet.boxes, self.tracks[f.source])
            except Exception as e:  # drawing or writing this camera's video: this source ends
                self.feeds.end_source(f.source, f"frame {f.index}: output: {describe_error(e)}")

    # ---------------------------------------------------------------------------------------- run
    def run(self, handle_signals: bool = True) -> dict[str, Any]:
        """Process until every source ends (or :meth:`stop`, Ctrl-C or SIGTERM); returns the summary.

        ``handle_signals``: in the main thread, SIGINT and SIGTERM stop the run cleanly (see the module
        docstring); off, Ctrl-C arrives as KeyboardInterrupt, which also stops it cleanly.
        """
        t0 = time.perf_counter()
        self._signals.repeated = 0
        interrupted = False
        with self._signals.handled(handle_signals):
            if self.config.warm_up:
                self.warm_up()
            threads = self.feeds.start()
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
            self._wind_down(failure or (self.feeds.errors[0] if self.feeds.errors else None))
        return self.summary(time.perf_counter() - t0, interrupted or self.signal is not None)

    def _wind_down(self, failure: BaseException | None) -> None:
        """Finish and index every track still open (a stop, Ctrl-C, an error, a source that ended early), then
        raise the run's failure, or the first track that could not be finished."""
        if self.signal is not None:
            logger.warning("%s: stopped; finishing and indexing the open tracks", self.signal)
        unfinished = self.open_tracks.finish_all(self.on_track)
        failure = failure or unfinished
        if self._signals.repeated:
            logger.warning("%d more signal(s) came while finishing; ignored", self._signals.repeated)
        if failure is not None:
            raise failure

    def _loop(self) -> None:
        """Hand the detection threads' packets to :meth:`step` until every source has sent its end marker."""
        ended = 0  # detection threads that have finished (each sends one end marker)
        while ended < len(self.sources):
            if self.signal is not None and not self.stop_event.is_set():
                self.stop()  # from normal code, not from the handler
            packets = self.feeds.ready(4 * len(self.sources))  # whatever is ready: one batch for all cameras
            if not packets:
                continue
            ended += sum(p is END for p in packets)
            self.step([p for p in packets if p is not END])

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
        self.feeds.stop()

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
