"""Multi-object tracking with ByteTrack as the ``supervision`` package ships it (the [video] extra).

ByteTrack (Zhang et al., ECCV 2022) matches Kalman-predicted boxes to the confident detections
first, then to the low-score ones, which keeps a partly occluded person on their track. We use
supervision's implementation (0.30.x: 0.31 moved it to the ``trackers`` package, which depends on
opencv-python and so clashes with our opencv-python-headless). One tracker per source.

:class:`TrackBook` adds what the tracker does not say: when a track has *ended* (unseen for
``max_lost`` frames, or the stream ended), so that its attributes can be finalised and indexed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from clear_sdk.errors import ClearSDKError
from clear_sdk.video.types import Detection, TrackedBox


def require_supervision():
    """supervision and its ByteTrack class, imported (about 1.5 s: do it before frames flow), or a clear error."""
    try:
        import supervision as sv
        from supervision.tracker.byte_tracker.core import ByteTrack
    except ImportError as e:
        raise ClearSDKError(f"tracking needs supervision 0.30 ({e}): pip install 'clear-sdk[video]'") from e
    return sv, ByteTrack


class ByteTracker:
    """supervision's ByteTrack behind ``update(detections) -> list[TrackedBox]``.

    ``frame_rate`` scales ``lost_track_buffer`` (frames at 30 fps a lost track is kept for re-matching).
    ``match_threshold``: the IoU-cost gate of the first association (supervision's
    ``minimum_matching_threshold``); ``activation``: the score a detection needs to start a track.
    """

    name = "bytetrack"

    def __init__(
        self,
        frame_rate: float = 10.0,
        activation: float = 0.25,
        lost_track_buffer: int = 30,
        match_threshold: float = 0.8,
        min_frames: int = 1,
    ) -> None:
        self._sv, cls = require_supervision()
        with warnings.catch_warnings():  # supervision 0.30 announces the move to the trackers package
            warnings.simplefilter("ignore", FutureWarning)
            self._tracker = cls(
                track_activation_threshold=float(activation),
                lost_track_buffer=int(lost_track_buffer),
                minimum_matching_threshold=float(match_threshold),
                frame_rate=float(frame_rate),
                minimum_consecutive_frames=int(min_frames),
            )
        self.max_lost = max(1, int(frame_rate / 30.0 * lost_track_buffer))

    def update(self, detections: Sequence[Detection]) -> list[TrackedBox]:
        xyxy = np.asarray([d.box for d in detections], np.float32).reshape(-1, 4)
        dets = self._sv.Detections(
            xyxy=xyxy,
            confidence=np.asarray([d.score for d in detections], np.float32),
            class_id=np.zeros(len(detections), int),
        )
        out = self._tracker.update_with_detections(dets)
        boxes = np.round(out.xyxy).astype(int)
        return [
            TrackedBox(int(t), (int(b[0]), int(b[1]), int(b[2]), int(b[3])), float(s))
            for t, b, s in zip(out.tracker_id, boxes, out.confidence)
            if t is not None and int(t) >= 0
        ]


class TrackBook:
    """Which tracks of one source are alive, and which have just ended (not seen for ``max_lost`` frames).

    Count frames as tracker updates (processed frames), not as frame numbers of the source: ByteTrack
    keeps a lost track for ``max_lost`` updates, however many frames were dropped in between.
    """

    def __init__(self, max_lost: int) -> None:
        self.max_lost = int(max_lost)
        self.last_seen: dict[int, int] = {}

    def update(self, frame_index: int, seen: Sequence[int]) -> list[int]:
        """Record the ids seen in ``frame_index``; returns the ids that ended."""
        for tid in seen:
            self.last_seen[tid] = frame_index
        ended = [tid for tid, last in self.last_seen.items() if frame_index - last > self.max_lost]
        for tid in ended:
            del self.last_seen[tid]
        return ended

    def close(self) -> list[int]:
        """All live ids (the stream ended)."""
        ended = list(self.last_seen)
        self.last_seen.clear()
        return ended
