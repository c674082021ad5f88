"""The per-source side of :class:`~clear_sdk.video.pipeline.Pipeline`: each source read and tracked in its own threads.

::

    capture thread --(DropOldestQueue)--> detect + track thread --+
    capture thread --(DropOldestQueue)--> detect + track thread --+--(bounded packets queue)--> recognition

A capture thread reads its source into a small queue (a live source drops its oldest frame when the
queue is full; a file waits). A detection thread detects and tracks those frames with the source's own
detector and tracker and hands each tracked frame on as a :class:`Packet`; when the bounded packets
queue is full it waits, which is how back-pressure from recognition reaches the capture queues.

A source whose reading, detector or tracker fails ends alone (:meth:`SourceFeeds.end_source`); any other
error in these threads (MemoryError, ...) stops every source and is kept in :attr:`SourceFeeds.errors`
for the caller to raise.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from clear_sdk.video.detectors import Detector
from clear_sdk.video.queues import DropOldestQueue, Empty
from clear_sdk.video.sources import VideoSource
from clear_sdk.video.tracking import DetectionSchedule, TrackBook
from clear_sdk.video.types import Frame, TrackedBox

if TYPE_CHECKING:
    from clear_sdk.video.pipeline import PipelineConfig

logger = logging.getLogger(__name__)


def describe_error(e: BaseException) -> str:
    """One line for an error: its type where the message alone would not say what failed."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if isinstance(e, (ValueError, OSError)) or type(e).__module__.startswith("clear_sdk") else (
        f"{type(e).__name__}: {text}")  # fmt: skip


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


END = object()  # the last item a detection thread sends: its source has ended


class SourceFeeds:
    """A capture thread and a detect + track thread per source; their packets wait in :attr:`packets`.

    ``detectors``: one per source name; ``tracker_factory(frame_rate)``: a new tracker, made once the
    source is open (its frame rate is known then). ``stats`` (per source name) is counted here and shared
    with the rest of the pipeline.
    """

    def __init__(
        self,
        sources: Sequence[VideoSource],
        detectors: dict[str, Detector],
        tracker_factory: Callable[[float], Any],
        config: PipelineConfig,
        stats: dict[str, SourceStats],
    ) -> None:
        self.sources = list(sources)
        self.detectors = detectors
        self.tracker_factory = tracker_factory
        self.config = config
        self.stats = stats
        self.stop_event = threading.Event()  # every source stops
        self.source_stop = {s.name: threading.Event() for s in self.sources}  # this source stops (or all do)
        self.queues = {s.name: DropOldestQueue[Frame](config.queue_size) for s in self.sources}
        self.packets: queue.Queue = queue.Queue(maxsize=2 * len(self.sources))
        self.errors: list[BaseException] = []  # what stopped every source, from these threads
        self._done: set[str] = set()  # sources whose capture thread has ended
        self._lock = threading.Lock()

    def start(self) -> list[threading.Thread]:
        """Start every source's capture and detection threads; returns them (to join)."""
        threads = [threading.Thread(target=self._capture, args=(s,), name=f"capture-{s.name}", daemon=True)
                   for s in self.sources]  # fmt: skip
        threads += [threading.Thread(target=self._detect, args=(s,), name=f"detect-{s.name}", daemon=True)
                    for s in self.sources]  # fmt: skip
        for t in threads:
            t.start()
        return threads

    def stop(self) -> None:
        """Every source stops reading; the frames already read are still handed on."""
        self.stop_event.set()
        for event in self.source_stop.values():
            event.set()

    def end_source(self, name: str, reason: str) -> None:
        """Source ``name`` failed: record why and stop reading it; the other sources go on."""
        st = self.stats[name]
        if not st.error:
            st.error = reason
            st.stop_reason = f"error: {reason}"
            logger.error("%s: %s (this source ends; the others go on)", name, reason)
        self.source_stop[name].set()

    def ready(self, most: int, timeout: float = 0.1) -> list[Any]:
        """The packets waiting (and :data:`END` markers): at least one, at most ``most``; [] if none came in time."""
        try:
            items = [self.packets.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(items) < most:
            try:
                items.append(self.packets.get_nowait())
            except queue.Empty:
                break
        return items

    # ---------------------------------------------------------------------------------------- threads
    def _capture(self, source: VideoSource) -> None:
        """Read one source into its queue, in its own thread, until it ends or is stopped."""
        st, q, stop = self.stats[source.name], self.queues[source.name], self.source_stop[source.name]
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
            self.end_source(source.name, describe_error(e))
        finally:
            if not st.error:
                st.stop_reason = source.stop_reason
            with self._lock:
                self._done.add(source.name)

    def _detect(self, source: VideoSource) -> None:
        """Detect and track one source's frames, in its own thread (one detector and one tracker per source)."""
        name, st = source.name, self.stats[source.name]
        schedule: DetectionSchedule | None = None
        book: TrackBook | None = None
        step = -1  # tracker updates: "frames unseen" counts these, as ByteTrack does, not source frame
        # numbers (a source that drops frames would otherwise end every track at each gap)
        try:
            while (frame := self._next_frame(name)) is not None:
                try:
                    if schedule is None:  # the frame rate is known once the source is open
                        schedule, book = self._start_tracking(source)
                    boxes = schedule.update(frame.image)
                except Exception as e:  # this source's frame or detector: it ends alone
                    self.end_source(name, f"frame {frame.index}: {describe_error(e)}")
                    break
                st.detections = schedule.detections
                step += 1
                self._put(Packet(frame, boxes, book.update(step, [b.track_id for b in boxes])))
            if book is not None:  # every track still open ends with its stream (on a stop, the pipeline ends them)
                self._put(Packet(Frame(name, -1, 0.0, np.zeros((0, 0, 3), np.uint8), 0.0), [], book.close()))
        except BaseException as e:  # not one frame's failure (MemoryError, ...): every source stops
            self.errors.append(e)
            self.stop()
        finally:
            self._put(END, force=True)

    def _next_frame(self, name: str) -> Frame | None:
        """Source ``name``'s next frame; None once it is stopped, or its capture has ended and its queue is empty."""
        q, stop = self.queues[name], self.source_stop[name]
        while not stop.is_set():
            try:
                return q.get(timeout=0.05)
            except Empty:
                with self._lock:
                    finished = name in self._done
                if finished and not len(q):  # the capture thread puts its last frame before it is done
                    return None
        return None

    def _start_tracking(self, source: VideoSource) -> tuple[DetectionSchedule, TrackBook]:
        """The source's tracker, which tracks end when (its book), and when to detect (its schedule)."""
        tracker = self.tracker_factory(source.fps or 10.0)
        book = TrackBook(self.config.max_lost or getattr(tracker, "max_lost", 30))
        schedule = DetectionSchedule(
            self.detectors[source.name], tracker, self.config.detect_every, self.config.detect_motion
        )
        return schedule, book

    def _put(self, item: Any, force: bool = False) -> None:
        """Hand ``item`` to the recognition stage, waiting while it is busy (back-pressure).

        Once the run is stopping, a plain item is given up; ``force`` (the end marker) instead makes
        room by discarding a waiting packet, so that the consumer always learns that this source ended.
        """
        while True:
            try:
                self.packets.put(item, timeout=0.1)
                return
            except queue.Full:
                if not self.stop_event.is_set():
                    continue
                if not force:
                    return
                try:
                    self.packets.get_nowait()
                except queue.Empty:
                    pass
