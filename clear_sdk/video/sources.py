"""Frame sources: a video file, an RTSP/HTTP URL or a webcam index, with reconnect and timestamps.

A live source that drops (a camera reboots, the network blips) is re-opened with exponential
backoff; the delay resets after every frame that arrives, and after ``max_reconnects`` failed
attempts in a row the source gives up. A file simply ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from clear_sdk.errors import ClearSDKError
from clear_sdk.video.types import Frame

logger = logging.getLogger(__name__)


class SourceError(ClearSDKError):
    """A source that cannot be opened at all (a missing file, a bad URL)."""


class Capture(Protocol):
    """The subset of ``cv2.VideoCapture`` a source uses (pass your own for a vendor SDK, or in tests)."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def get(self, prop_id: int) -> float: ...

    def release(self) -> None: ...


CaptureFactory = Callable[["str | int"], Capture]


def parse_source(text: str | int) -> str | int:
    """A webcam index ("0") becomes an int; a path or a URL stays a string."""
    if isinstance(text, int):
        return text
    return int(text) if text.strip().isdigit() else text


def is_live(source: str | int) -> bool:
    """Webcams and URLs are live: frames arrive in real time, and the source can drop and come back."""
    return isinstance(source, int) or "://" in source


def open_capture(source: str | int) -> Capture:
    """``cv2.VideoCapture`` with a one-frame buffer for live sources (the newest frame, not a stale one)."""
    cap = cv2.VideoCapture(source)
    if is_live(source):
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    return cap


class VideoSource:
    """Frames of one camera or file, as :class:`~clear_sdk.video.types.Frame` records.

    ``name``: the camera name stored with every indexed track (default: the file stem or the URL).
    ``realtime``: pace a file at its frame rate, as a camera would deliver it (default: only live
    sources are real time). ``max_reconnects``: failed (re)open attempts in a row before a live
    source gives up. ``start_time``: epoch seconds of a file's first frame (default: now).
    """

    def __init__(
        self,
        source: str | int,
        name: str | None = None,
        *,
        realtime: bool = False,
        max_frames: int | None = None,
        max_reconnects: int = 10,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30.0,
        start_time: float | None = None,
        capture_factory: CaptureFactory | None = None,
    ) -> None:
        self.source = parse_source(source)
        self.live = is_live(self.source)
        if not self.live and not Path(self.source).is_file():
            raise SourceError(f"{self.source!r} is neither an existing video file, a URL nor a webcam index")
        self.name = name or (Path(self.source).stem if not self.live else str(self.source))
        self.realtime = bool(realtime)
        self.max_frames = max_frames
        self.max_reconnects = int(max_reconnects)
        self.reconnect_delay = float(reconnect_delay)
        self.max_reconnect_delay = float(max_reconnect_delay)
        self.start_time = start_time
        self.capture_factory = capture_factory or open_capture
        self.fps = 0.0  # the source's frame rate once open (0: unknown, as many live streams report)
        self.frames_read = 0
        self.reconnects = 0  # times the stream came back after a drop
        self.open_attempts = 0
        self.reconnect_delays: deque[float] = deque(maxlen=50)  # the latest backoff delays slept
        self.stop_reason = ""

    def __repr__(self) -> str:
        return f"VideoSource({self.source!r}, name={self.name!r}, live={self.live})"

    def _open(self) -> Capture | None:
        self.open_attempts += 1
        cap = self.capture_factory(self.source)
        if cap.isOpened():
            self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            return cap
        cap.release()
        return None

    def frames(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        """Read until the file ends, ``max_frames`` are read, ``stop`` is set, or a live source gives up."""
        stop = stop or threading.Event()
        start_wall = time.time() if self.start_time is None else float(self.start_time)
        t0 = time.perf_counter()
        delay, failures, cap = self.reconnect_delay, 0, None
        file_index = 0
        try:
            while not stop.is_set():
                if self.max_frames is not None and self.frames_read >= self.max_frames:
                    self.stop_reason = f"max frames ({self.max_frames})"
                    return
                if cap is None:
                    cap = self._open()
                    if cap is None:
                        if not self.live:
                            raise SourceError(f"OpenCV cannot open {self.source!r}")
                        failures += 1
                        if failures > self.max_reconnects:
                            self.stop_reason = f"source lost: {failures} failed opens in a row"
                            return
                        self.reconnect_delays.append(delay)
                        logger.warning("%s: cannot open, retrying in %.2f s", self.name, delay)
                        stop.wait(delay)
                        delay = min(2 * delay, self.max_reconnect_delay)
                        continue
                    if self.frames_read:
                        self.reconnects += 1
                ok, image = cap.read()
                if not ok or image is None:
                    cap.release()
                    cap = None
                    if not self.live:
                        self.stop_reason = "end of file"
                        return
                    logger.warning("%s: stream dropped after %d frames; reconnecting", self.name, self.frames_read)
                    continue
                failures, delay = 0, self.reconnect_delay
                now = time.perf_counter()
                if self.live:
                    ts = time.time()
                else:
                    fps = self.fps if self.fps > 0 else 25.0
                    ts = start_wall + file_index / fps
                    if self.realtime:  # deliver frame i no earlier than i / fps after the start
                        wait = t0 + file_index / fps - now
                        if wait > 0 and stop.wait(wait):
                            break
                        now = time.perf_counter()
                    file_index += 1
                yield Frame(self.name, self.frames_read, ts, image, now)
                self.frames_read += 1
            self.stop_reason = self.stop_reason or "stopped"
        finally:
            if cap is not None:
                cap.release()
