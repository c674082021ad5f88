"""Store tracks in an :class:`~clear_sdk.AttributeSearcher` index: one item per track, searchable by attributes.

Each track is one gallery item whose vector holds the track's *aggregated* attributes (and its mean
visual embedding when the bundle has the retrieval stage). Its best crop is written as a JPEG under
``<index>/crops/`` and stored as the item's ``source``, so ``clear-sdk search --grid`` shows it.
Metadata: camera, timestamp (track start), track id, bbox of the best crop, and in the extra fields
``end``, ``frames``, ``crops``, ``run``, ``attributes`` and ``status`` (``active`` while a long
track is periodically re-indexed, ``finished`` at its end).
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from clear_sdk.video.aggregate import TrackAttributes

logger = logging.getLogger(__name__)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:64] or "camera"


class TrackIndexer:
    """Adds (or replaces) one item per track; ``run`` tells runs apart (track ids restart every run)."""

    def __init__(self, searcher: Any, crops_dir: str | Path | None = None, run: str | None = None) -> None:
        self.searcher = searcher
        self.names = searcher.attribute_names
        rec = searcher.recognizer
        self.thresholds = [rec.thresholds[n] for n in self.names]
        self.has_embedding = bool(searcher.embedding_dim)
        root = getattr(searcher.index, "path", None)  # None for an in-memory index: no crop files then
        self.crops_dir = Path(crops_dir) if crops_dir else (Path(root) / "crops" if root else None)
        self.run = run or uuid.uuid4().hex[:8]
        self.added = 0
        self.updates = 0

    def item_id(self, ta: TrackAttributes) -> str:
        return f"{ta.source}/{self.run}/{self._name(ta)}"

    @staticmethod
    def _name(ta: TrackAttributes) -> str:
        return f"t{ta.track_id}" if not ta.segment else f"t{ta.track_id}.{ta.segment}"

    def index(self, ta: TrackAttributes, finished: bool) -> str | None:
        """Index (or re-index) ``ta``; returns its id, or None for a track with no recognised crop."""
        if not ta.crops or ta.best_crop is None:
            return None
        item = self.item_id(ta)
        source = None
        if self.crops_dir is not None:
            path = self.crops_dir / _safe(ta.source) / f"{self.run}-{self._name(ta)}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            if cv2.imwrite(str(path), ta.best_crop):
                source = str(path.resolve())
        summary = ta.summary(self.names, self.thresholds)
        md = {
            "camera": ta.source,
            "timestamp": ta.first_ts,
            "track": ta.track_id,
            "bbox": list(ta.best_box),
            "source": source,
            "end": ta.last_ts,
            "best_timestamp": ta.best_ts,
            "frames": ta.frames,
            "crops": ta.crops,
            "run": self.run,
            "attributes": list(summary["attributes"]),
            "status": "finished" if finished else "active",
        }
        replacing = item in self.searcher.index
        # the track's aggregated probabilities (and mean embedding), not any one crop's: nothing is recognised again;
        # a growing track replaces its previous item in the same transaction
        self.searcher.add_probabilities(ta.probabilities.astype(np.float32)[None], [item], [md],
                                        embeddings=ta.embedding[None] if self.has_embedding else None,
                                        replace=replacing)  # fmt: skip
        self.updates += replacing
        self.added += not replacing
        ta.last_indexed_ts = ta.last_ts
        return item
