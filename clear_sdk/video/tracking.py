"""Multi-object tracking with ByteTrack as the ``supervision`` package ships it (the [video] extra).

ByteTrack (Zhang et al., ECCV 2022) matches Kalman-predicted boxes to the confident detections
first, then to the low-score ones, which keeps a partly occluded person on their track. We use
supervision's implementation (0.30.x: 0.31 moved it to the ``trackers`` package, which depends on
opencv-python and so clashes with our opencv-python-headless). One tracker per source.

:class:`TrackBook` adds what the tracker does not say: when a track has *ended* (unseen for
``max_lost`` frames, or the stream ended), so that its attributes can be finalised and indexed.

:class:`DetectionSchedule` runs the detector on some frames only (every ``every``-th frame, as
DeepStream's ``interval``, and only when something moved) and lets the tracker carry the boxes on the
frames between: each followed track's Kalman state moved ahead by its velocity.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import cv2
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
    ``match_threshold``: the cost gate of the first association (supervision's ``minimum_matching_threshold``;
    the cost is 1 - IoU x score, so SSDLite's low scores need a high gate); ``activation``: the score of a
    confident detection (one 0.1 above it starts a track; those between 0.1 and it are matched second, to
    tracks already followed). Two guards keep a track to one person: ``hold_overlap``, a box overlapping
    another live track's by this IoU is not reported; ``split_height``, a track whose box height jumps by
    more than this factor (against its running mean) goes on under a new id; ``split_after_lost``, a track
    found again after this many or more frames lost goes on under a new id (someone else may have walked
    into its predicted place: 3 frames, 0.3 s at 10 fps, measured). Defaults chosen on the tune scenes of
    benchmarks/video_real.py (results/video_real.md): IDF1 0.722 and no track holding two people on the tune
    scenes, 0.793 and none on the held-out ones. The old 0.25 / 0.8 without guards, measured at 0.2 and 0.3:
    IDF1 0.727-0.735 / 0.831-0.835, with 0-1 / 2-3 tracks holding two people.
    """

    name = "bytetrack"

    def __init__(
        self,
        frame_rate: float = 10.0,
        activation: float = 0.2,
        lost_track_buffer: int = 30,
        match_threshold: float = 0.9,
        min_frames: int = 1,
        hold_overlap: float | None = 0.5,
        split_height: float | None = 1.3,
        split_after_lost: int | None = 3,
    ) -> None:
        self._sv, cls = require_supervision()
        self.hold_overlap = hold_overlap
        self.split_height = split_height
        self.split_after_lost = split_after_lost
        self._step = 0
        self._matched_at: dict[int, int] = {}  # ByteTrack's id -> the update that last matched it
        self._ids: dict[int, int] = {}  # ByteTrack's id -> the id given out (a new one after a split)
        self._next_id = 1
        self._height: dict[int, float] = {}  # ByteTrack's id -> the running mean height of its matched boxes
        self._last: dict[int, tuple[int, int, int, int]] = {}
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
        tracked = [
            TrackedBox(int(t), (int(b[0]), int(b[1]), int(b[2]), int(b[3])), float(s))
            for t, b, s in zip(out.tracker_id, boxes, out.confidence)
            if t is not None and int(t) >= 0
        ]
        self._last = {b.track_id: b.box for b in tracked}  # where carried() starts from
        self._step += 1
        if self.split_after_lost is not None:
            for b in tracked:  # found again after split_after_lost or more lost updates: maybe someone else
                last = self._matched_at.get(b.track_id)
                if last is not None and self._step - last > self.split_after_lost:
                    self._ids.pop(b.track_id, None)
                self._matched_at[b.track_id] = self._step
        if self.split_height is not None:
            self._split_on_height_jumps(tracked)
        if len(self._ids) > 2 * len(tracked) + 64:  # forget the ids of ended tracks (bounded memory)
            live = {int(t.external_track_id) for t in self._live()}
            self._ids = {k: v for k, v in self._ids.items() if k in live}
            self._height = {k: v for k, v in self._height.items() if k in live}
            self._matched_at = {k: v for k, v in self._matched_at.items() if k in live}
        if self.hold_overlap is not None and tracked:
            tracked = self._hold_overlapping(tracked)
        return [TrackedBox(self._id(b.track_id), b.box, b.score) for b in tracked]

    def _id(self, internal: int) -> int:
        if internal not in self._ids:
            self._ids[internal] = self._next_id
            self._next_id += 1
        return self._ids[internal]

    def _split_on_height_jumps(self, tracked: list[TrackedBox]) -> None:
        """A track whose box height jumps by more than ``split_height`` times goes on under a new id.

        Where a far (small) and a near (tall) person cross, ByteTrack's IoU match can hand one's track to
        the other; one person's box does not change height that much from one match to the next.
        """
        for b in tracked:
            h = max(1, b.box[3] - b.box[1])
            before = self._height.get(b.track_id)  # a running mean: a jump in two steps is one jump
            if before is not None and max(h / before, before / h) > self.split_height:
                self._ids.pop(b.track_id, None)
                before = None
            self._height[b.track_id] = h if before is None else 0.8 * before + 0.2 * h

    def _hold_overlapping(self, tracked: list[TrackedBox]) -> list[TrackedBox]:
        """Leave out the boxes that overlap another live track's box by IoU >= ``hold_overlap``.

        Where two people cross, ByteTrack may give one's track the other's detection for a few frames;
        such a box is held back (the track goes on, unreported for that frame) rather than shown, or
        recognised, as the wrong person.
        """
        from clear_sdk.video.detectors.base import iou_matrix

        others = [(int(t.external_track_id), _kalman_box(t.mean)) for t in self._live() if t.mean is not None]
        if len(others) < 2:
            return tracked
        ids = np.asarray([i for i, _ in others])
        iou = iou_matrix([b.box for b in tracked], [b for _, b in others])
        iou[np.asarray([b.track_id for b in tracked])[:, None] == ids[None, :]] = 0.0  # not with itself
        return [b for b, m in zip(tracked, iou.max(axis=1)) if m < self.hold_overlap]

    def _live(self) -> list:
        return [t for t in (*self._tracker.tracked_tracks, *self._tracker.lost_tracks) if t.is_activated]

    def carried(self, steps: float = 1.0, unconfirmed: bool = False) -> list[TrackedBox]:
        """The boxes of the tracks followed now, moved ``steps`` tracker updates ahead (the tracker is unchanged).

        ByteTrack's Kalman state is (centre x, centre y, aspect, height) and their velocities per update.
        """
        out = []
        for t in self._tracker.tracked_tracks:
            tid = int(t.external_track_id)
            if t.mean is None or not (t.is_activated or unconfirmed):
                continue
            # from the box last detected (the Kalman estimate trails it), moved on by the Kalman velocity
            x1, y1, x2, y2 = self._last.get(tid) or (round(v) for v in _kalman_box(t.mean))
            vx, vy, _, vh = (float(v) for v in t.mean[4:8])
            h = max(1.0, (y2 - y1) + steps * vh)
            w = (x2 - x1) * h / max(1, y2 - y1)
            cx, cy = (x1 + x2) / 2 + steps * vx, (y1 + y2) / 2 + steps * vy
            box = (round(cx - w / 2), round(cy - h / 2), round(cx + w / 2), round(cy + h / 2))
            out.append(TrackedBox(tid if t.is_activated else -1, box, float(t.score)))
        if self.hold_overlap is not None and out and not unconfirmed:
            out = self._hold_overlapping(out)
        return [TrackedBox(self._id(b.track_id) if b.track_id >= 0 else -1, b.box, b.score) for b in out]


def _kalman_box(mean: np.ndarray) -> tuple[float, float, float, float]:
    """x1, y1, x2, y2 of ByteTrack's Kalman state (centre x, centre y, aspect w/h, height, ...)."""
    cx, cy, a, h = (float(v) for v in mean[:4])
    return (cx - a * h / 2, cy - h / 2, cx + a * h / 2, cy + h / 2)


class DetectionSchedule:
    """Detect on some frames only; the tracker carries the boxes on the others.

    ``every``: run the detector on every ``every``-th frame (1: all). On the frames between, each track's
    box is carried one frame on by its Kalman velocity and fed back to the tracker as its detection, so
    the tracker is updated on every frame (give it the source's frame rate) and meets the next real
    detection one frame ahead, not ``every`` frames (measured: recall of the tracked boxes at every 3rd
    frame 0.81 with the feedback, 0.75 without it, 0.85 detecting every frame; results/video_real.md).
    ``motion``: also skip a due detection when the frame differs from the last detected one in less than
    this fraction of its pixels (a still scene; None: never skip); ``max_still`` detections may be skipped
    in a row before one runs anyway. ``update(frame)`` returns the tracked boxes of every frame;
    :attr:`detected` says whether the last one ran the detector.
    """

    def __init__(self, detector, tracker, every: int = 1, motion: float | None = None, max_still: int = 10) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.detector, self.tracker, self.every = detector, tracker, int(every)
        if getattr(detector, "needs_every_frame", False):  # a detector that learns from each frame (bgsub)
            self.every = 1
        self.motion, self.max_still = motion, int(max_still)
        self._since = self.every  # frames since the last detection: the first frame is detected
        self._still = 0
        self._thumb: np.ndarray | None = None
        self.detected = False
        self.detections = 0  # boxes the detector returned, in all
        self.detector_runs = 0

    def _moved(self, frame: np.ndarray) -> tuple[bool, np.ndarray | None]:
        if self.motion is None:
            return True, None
        small = cv2.resize(
            frame, (max(1, frame.shape[1] // 8), max(1, frame.shape[0] // 8)), interpolation=cv2.INTER_AREA
        )
        thumb = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        if self._thumb is None or self._thumb.shape != thumb.shape:
            return True, thumb
        changed = float((cv2.absdiff(thumb, self._thumb) > 12).mean())
        return changed >= self.motion, thumb

    def update(self, frame: np.ndarray) -> list[TrackedBox]:
        self.detected = False
        if self._since >= self.every:
            moved, thumb = self._moved(frame)
            if moved or self._still >= self.max_still:
                dets = self.detector.detect(frame)
                self.detections += len(dets)
                self.detector_runs += 1
                self._thumb, self._since, self._still, self.detected = thumb, 1, 0, True
                return self.tracker.update(dets)
            self._still += 1  # nothing moved: the people (if any) stand where they were
            return self.tracker.carried(0.0)
        self._since += 1
        # the boxes carried one frame on go back into the tracker as its detections: it stays one frame
        # behind the video, and its next prediction meets the next real detection one frame ahead
        carried = self.tracker.carried(1.0, unconfirmed=True)  # a new track is confirmed by its next box
        # scores above ByteTrack's floor of 0.1 (below it a box is dropped and its track lost)
        return self.tracker.update([Detection(b.box, max(b.score, 0.11)) for b in carried])


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
