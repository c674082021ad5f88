"""The tracks a :class:`~clear_sdk.video.pipeline.Pipeline` is aggregating, and what becomes of each when it ends.

A track opens at its first box (:meth:`OpenTracks.due_crops`), which also says which of its crops are due
for recognition: one every ``recognize_every`` frames, from boxes at least ``min_box_height`` high,
weighted by the detector's score and :func:`~clear_sdk.video.aggregate.crop_quality`. A track that ends
(:meth:`OpenTracks.finish`) is summarised, indexed when it has ``min_track_crops`` crops, and handed to
``on_track``; a long one is re-indexed every ``reindex_every_s`` while it lasts (:meth:`OpenTracks.reindex_long`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from clear_sdk.video.aggregate import TrackAttributes, crop_quality
from clear_sdk.video.feeds import SourceStats, describe_error
from clear_sdk.video.indexer import TrackIndexer
from clear_sdk.video.types import Frame, TrackedBox

if TYPE_CHECKING:
    from clear_sdk.video.pipeline import PipelineConfig

logger = logging.getLogger(__name__)

TrackCallback = Callable[[dict[str, Any]], None]

MAX_ENDED = 4096  # ids re-appear within seconds; remembering the latest few per source bounds memory


class CropJob(NamedTuple):
    """A crop due for recognition: the track it adds to, the pixels, their weight, where they came from."""

    track: TrackAttributes
    crop: np.ndarray
    weight: float
    frame: Frame
    box: TrackedBox


class OpenTracks:
    """The open :class:`~clear_sdk.video.aggregate.TrackAttributes` of every source, opened, finished and indexed.

    ``names`` / ``thresholds``: the Recognizer's attributes (a finished track's summary names those above
    threshold); ``embed_dim``: the visual embedding each track averages (0: none); ``indexer``: where
    finished tracks go (None: nowhere). ``stats`` (per source name) is shared with the rest of the pipeline.
    """

    def __init__(
        self,
        sources: Sequence[str],
        names: Sequence[str],
        thresholds: Sequence[float],
        embed_dim: int,
        config: PipelineConfig,
        stats: dict[str, SourceStats],
        indexer: TrackIndexer | None = None,
    ) -> None:
        self.names, self.thresholds, self.embed_dim = list(names), list(thresholds), embed_dim
        self.config = config
        self.stats = stats
        self.indexer = indexer
        self.by_source: dict[str, dict[int, TrackAttributes]] = {s: {} for s in sources}
        self.finished: deque[dict[str, Any]] = deque(maxlen=100)  # the latest finished tracks, for the summary
        self._ended: dict[str, OrderedDict[int, int]] = {s: OrderedDict() for s in sources}  # id -> segment

    def track(self, source: str, track_id: int) -> TrackAttributes:
        """The open track ``track_id`` of ``source``, opened at its first box.

        An id the tracker gives again after its track ended is a new item (its next segment), not a
        replacement of the finished one.
        """
        book = self.by_source[source]
        ta = book.get(track_id)
        if ta is None:
            ta = book[track_id] = TrackAttributes(source, track_id, len(self.names), self.embed_dim)
            ended = self._ended[source]
            if track_id in ended:
                ta.segment = ended[track_id] + 1
            self.stats[source].tracks += 1
        return ta

    def due_crops(self, frame: Frame, boxes: Sequence[TrackedBox]) -> list[CropJob]:
        """Mark each box's track as seen in ``frame``; returns the crops due for recognition.

        A crop is due when its box is at least ``min_box_height`` high (and 4 px wide) and its track's
        last recognised crop is ``recognize_every`` frames back or more.
        """
        cfg, jobs = self.config, []
        for b in boxes:
            ta = self.track(frame.source, b.track_id)
            ta.seen(frame.timestamp, frame.position)
            x1, y1, x2, y2 = b.box
            if y2 - y1 < cfg.min_box_height or x2 - x1 < 4 or frame.index - ta.last_crop_frame < cfg.recognize_every:
                continue
            ta.last_crop_frame = frame.index
            crop = frame.image[y1:y2, x1:x2]
            jobs.append(CropJob(ta, crop, b.score * crop_quality(b.box, frame.image.shape, crop), frame, b))
        return jobs

    def finish(self, source: str, track_ids: Sequence[int], on_track: TrackCallback | None = None) -> None:
        """End these tracks of ``source``: summarise each, index it if it has enough crops, then call ``on_track``."""
        for tid in track_ids:
            ta = self.by_source[source].pop(tid, None)
            if ta is None:
                continue
            self._remember_ended(source, ta)
            record = ta.summary(self.names, self.thresholds) | {"indexed": False, "id": None}
            self.finished.append(record)
            if self.indexer is not None and ta.crops >= self.config.min_track_crops:
                item = self.indexer.index(ta, finished=True)
                if item:
                    record.update(indexed=True, id=item)
                    self.stats[source].tracks_indexed += 1
            if on_track is not None:
                on_track(record)

    def finish_all(self, on_track: TrackCallback | None = None) -> Exception | None:
        """Finish (and index) every open track, each on its own: one that fails (a full disk) is logged and the
        others are still tried; returns the first error."""
        first = None
        for name in list(self.by_source):
            for tid in list(self.by_source[name]):
                try:
                    self.finish(name, [tid], on_track)
                except Exception as e:
                    first = first or e
                    logger.error("%s: track %s could not be finished: %s", name, tid, describe_error(e))
        return first

    def reindex_long(self, source: str, boxes: Sequence[TrackedBox]) -> None:
        """Re-index the tracks of these boxes that have lasted ``reindex_every_s`` since they were last indexed."""
        every = self.config.reindex_every_s
        if self.indexer is None or every <= 0:
            return
        for b in boxes:
            ta = self.by_source[source].get(b.track_id)
            if ta is None or not ta.crops or ta.last_ts is None:
                continue
            since = ta.last_indexed_ts if ta.last_indexed_ts is not None else ta.first_ts
            if ta.last_ts - since >= every:
                self.indexer.index(ta, finished=False)

    def _remember_ended(self, source: str, ta: TrackAttributes) -> None:
        """Keep the segment of an ended track, so that its id given again opens the next segment."""
        ended = self._ended[source]
        ended[ta.track_id] = ta.segment
        ended.move_to_end(ta.track_id)
        while len(ended) > MAX_ENDED:
            ended.popitem(last=False)
