"""The records that flow through the video pipeline: a frame from a source, a person box, a tracked box."""

from __future__ import annotations

import dataclasses

import numpy as np

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels, exclusive ends


@dataclasses.dataclass(frozen=True)
class Detection:
    """A person box and the detector's score for it."""

    box: Box
    score: float


@dataclasses.dataclass(frozen=True)
class TrackedBox:
    """A detection the tracker assigned to track ``track_id`` (ids are per source)."""

    track_id: int
    box: Box
    score: float


@dataclasses.dataclass
class Frame:
    """One frame of one source.

    ``index`` counts frames read from the source since the start of the run; ``timestamp`` is seconds
    since the epoch (wall clock for live sources; ``start_time`` + position in the file for files);
    ``captured`` is ``time.perf_counter()`` at the read, for latency; ``position``: seconds into the
    file (None for a live source).
    """

    source: str
    index: int
    timestamp: float
    image: np.ndarray
    captured: float
    position: float | None = None
