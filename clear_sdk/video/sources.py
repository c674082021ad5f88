"""Frame sources: a video file, an RTSP/HTTP URL or a webcam index, with reconnect and timestamps.

A live source that drops (a camera reboots, the network blips) is re-opened with exponential
backoff; the delay resets after every frame that arrives, and after ``max_reconnects`` failed
attempts in a row the source gives up. A source that has never opened gives up sooner
(``open_attempts``: 3 tries, about 1.5 s, for a webcam index, where a missing device will not
appear). A file simply ends; a file that gives no frame at all is an error.

Frames reach the detectors as 8-bit BGR: gray, BGRA, 16-bit and float frames from a
``capture_factory`` are converted (with one warning per source); an empty frame ends the source.
File frames carry their position in the file (``Frame.position``); their timestamp is
``start_time`` + position.
"""

from __future__ import annotations

import logging
import math
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


def _count(value: object, what: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (bools and fractions refused): options are checked where they enter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def as_bgr8(image: object) -> tuple[np.ndarray, str | None]:
    """A frame as a uint8 BGR [H, W, 3] array, and what was converted (None when nothing was).

    Raises :class:`SourceError` for what cannot be a frame (empty, not 2-D or 3-D, 2 or 5+ channels).
    """
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise SourceError(f"an empty frame ({getattr(image, 'shape', type(image).__name__)})")
    img, notes = image, []
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise SourceError(f"a frame of shape {img.shape}: expected [H, W] gray, [H, W, 3] BGR or [H, W, 4] BGRA")
    if img.dtype != np.uint8:
        notes.append(f"{img.dtype} values")
        if img.dtype == np.uint16:
            img = (img >> 8).astype(np.uint8)
        else:
            x = np.nan_to_num(img.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
            if img.dtype.kind == "f" and x.size and float(x.max()) <= 1.0:  # floats in [0, 1]
                x = x * 255.0
            img = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        notes.append("gray")
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        notes.append("BGRA")
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img, (" and ".join(notes) + f" {image.shape} converted to 8-bit BGR") if notes else None


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
    source that has delivered frames gives up. ``open_attempts``: tries before a source that never
    opened gives up (default: 3 for a webcam index, ``max_reconnects + 1`` for a URL).
    ``start_time``: epoch seconds of a file's first frame (default: when reading starts); a file
    frame's timestamp is ``start_time`` + its position in the file.
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
        open_attempts: int | None = None,
    ) -> None:
        self.source = parse_source(source)
        self.live = is_live(self.source)
        if not self.live and not Path(self.source).is_file():
            raise SourceError(f"{self.source!r} is neither an existing video file, a URL nor a webcam index")
        self.name = name or (Path(self.source).stem if not self.live else str(self.source))
        self.realtime = bool(realtime)
        self.max_frames = None if max_frames is None else _count(max_frames, "max_frames", 1)
        self.max_reconnects = _count(max_reconnects, "max_reconnects", 0)
        self.reconnect_delay = _seconds(reconnect_delay, "reconnect_delay")
        self.max_reconnect_delay = max(_seconds(max_reconnect_delay, "max_reconnect_delay"), self.reconnect_delay)
        if open_attempts is None:
            open_attempts = 3 if isinstance(self.source, int) else self.max_reconnects + 1
        self.open_attempts_limit = _count(open_attempts, "open_attempts", 1)
        if start_time is not None and (isinstance(start_time, bool) or not math.isfinite(float(start_time))):
            raise ValueError(f"start_time must be finite epoch seconds, got {start_time!r}")
        if start_time is not None and self.live:
            raise ValueError("start_time applies to video files; a live source is stamped with the wall clock")
        self.start_time = None if start_time is None else float(start_time)
        self.capture_factory = capture_factory or open_capture
        self.fps = 0.0  # the source's frame rate once open (0: unknown, as many live streams report)
        self.frames_read = 0
        self.reconnects = 0  # times the stream came back after a drop
        self.open_attempts = 0
        self.reconnect_delays: deque[float] = deque(maxlen=50)  # the latest backoff delays slept
        self.stop_reason = ""
        self.conversions: str | None = None  # what the last converted frame needed (gray, float, ...), if any

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

    @property
    def clock(self) -> str:
        """What frame timestamps mean: ``live`` (wall clock), ``given`` (a file from ``start_time``), ``run``
        (a file from when reading started: only the position in the file is the video's own time)."""
        return "live" if self.live else ("given" if self.start_time is not None else "run")

    def _what(self) -> str:
        return f"webcam {self.source}" if isinstance(self.source, int) else repr(self.source)

    def frames(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        """Read until the file ends, ``max_frames`` are read, ``stop`` is set, or a live source gives up.

        Raises :class:`SourceError` when the source cannot be opened, gives no frame, or gives an empty one.
        """
        stop = stop or threading.Event()
        start_wall = time.time() if self.start_time is None else float(self.start_time)
        t0 = time.perf_counter()
        delay, failures, cap = self.reconnect_delay, 0, None
        file_index = 0
        waited = 0.0
        try:
            while not stop.is_set():
                if self.max_frames is not None and self.frames_read >= self.max_frames:
                    self.stop_reason = f"max frames ({self.max_frames})"
                    return
                if cap is None:
                    cap = self._open()
                    if cap is None:
                        if not self.live:
                            raise SourceError(f"OpenCV cannot open {self.source!r} (not a video it can decode?)")
                        failures += 1
                        if not self.frames_read and failures >= self.open_attempts_limit:
                            raise SourceError(
                                f"cannot open {self._what()}: {failures} attempts over {waited:.1f} s "
                                "(is it connected, and the index or URL right?)"
                            )
                        if failures > self.max_reconnects:
                            self.stop_reason = f"source lost: {failures} failed opens in a row"
                            return
                        self.reconnect_delays.append(delay)
                        limit = self.open_attempts_limit if not self.frames_read else self.max_reconnects + 1
                        logger.warning("%s: cannot open %s (attempt %d of %d), retrying in %.2f s",
                                       self.name, self._what(), failures, limit, delay)  # fmt: skip
                        stop.wait(delay)
                        waited += delay
                        delay = min(2 * delay, self.max_reconnect_delay)
                        continue
                    if self.frames_read:
                        self.reconnects += 1
                ok, image = cap.read()
                if not ok or image is None:
                    cap.release()
                    cap = None
                    if not self.live:
                        if not self.frames_read and not file_index:
                            raise SourceError(f"no frame could be read from {self.source!r} (empty, cut short or "
                                              "not a video OpenCV can decode)")  # fmt: skip
                        self.stop_reason = "end of file"
                        return
                    logger.warning("%s: stream dropped after %d frames; reconnecting", self.name, self.frames_read)
                    continue
                failures, delay, waited = 0, self.reconnect_delay, 0.0
                try:
                    image, converted = as_bgr8(image)
                except SourceError as e:
                    raise SourceError(f"frame {self.frames_read} of {self._what()}: {e}") from None
                if converted is not None and self.conversions is None:
                    logger.warning("%s: frames are %s", self.name, converted)
                self.conversions = converted or self.conversions
                now = time.perf_counter()
                position = None
                if self.live:
                    ts = time.time()
                else:
                    fps = self.fps if self.fps > 0 else 25.0
                    position = file_index / fps
                    ts = start_wall + position
                    if self.realtime:  # deliver frame i no earlier than i / fps after the start
                        wait = t0 + file_index / fps - now
                        if wait > 0 and stop.wait(wait):
                            break
                        now = time.perf_counter()
                    file_index += 1
                yield Frame(self.name, self.frames_read, ts, image, now, position)
                self.frames_read += 1
            self.stop_reason = self.stop_reason or "stopped"
        finally:
            if cap is not None:
                cap.release()
