"""Store tracks in an :class:`~clear_sdk.AttributeSearcher` index: one item per track, searchable by attributes.

Each track is one gallery item whose vector holds the track's *aggregated* attributes (and its mean
visual embedding when the bundle has the retrieval stage). Its best crop is written as a JPEG under
``<index>/crops/<camera>-<hash>/`` (the hash of the raw camera name keeps cameras whose names clean
to the same folder apart) and stored as the item's ``source``, so ``clear-sdk search --grid`` shows it.
Metadata: camera, timestamp (track start), track id, bbox of the best crop, and in the extra fields
``end``, ``frames``, ``crops``, ``run``, ``attributes``, ``status`` (``active`` while a long
track is periodically re-indexed, ``finished`` at its end), ``clock`` (what the timestamps mean:
:attr:`~clear_sdk.video.sources.VideoSource.clock`) and, for files, ``position`` / ``position_end``
(seconds into the file).

:class:`TrackEventWriter` writes the finished tracks as lines of a JSON-lines or CSV file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from clear_sdk.video.aggregate import TrackAttributes

logger = logging.getLogger(__name__)


def camera_folder(name: str) -> str:
    """A folder name for camera ``name``: a readable slug, and a stable hash of the raw name that tells apart
    the names the slug merges ("前门" / "后门", "a b" / "a_b")."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:48] or "camera"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{slug}-{digest}"


class TrackIndexer:
    """Adds (or replaces) one item per track; ``run`` tells runs apart (track ids restart every run)."""

    def __init__(
        self,
        searcher: Any,
        crops_dir: str | Path | None = None,
        run: str | None = None,
        clocks: dict[str, str] | None = None,
    ) -> None:
        self.searcher = searcher
        self.names = searcher.attribute_names
        rec = searcher.recognizer
        self.thresholds = [rec.thresholds[n] for n in self.names]
        self.has_embedding = bool(searcher.embedding_dim)
        root = getattr(searcher.index, "path", None)  # None for an in-memory index: no crop files then
        self.crops_dir = Path(crops_dir) if crops_dir else (Path(root) / "crops" if root else None)
        self.run = run or uuid.uuid4().hex[:8]
        self.clocks = dict(clocks or {})  # camera -> what its timestamps mean (VideoSource.clock)
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
            path = self.crops_dir / camera_folder(ta.source) / f"{self.run}-{self._name(ta)}.jpg"
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
        if ta.source in self.clocks:
            md["clock"] = self.clocks[ta.source]
        if ta.first_pos is not None:
            md["position"], md["position_end"] = ta.first_pos, ta.last_pos
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


def iso_time(ts: float | None) -> str | None:
    """Epoch seconds as local ISO 8601 with its UTC offset (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


class TrackEventWriter:
    """One line per finished track, flushed as the track ends: JSON lines (``.jsonl``) or CSV (``.csv``).

    Like supervision's ``JSONSink`` / ``CSVSink``: the file is written anew. A line holds the camera,
    the track (and its segment), the time span as epoch seconds and local ISO time, the position in
    the file for file sources, the best crop's box, frames and crops, whether it was indexed (and its
    id), and the attributes above threshold with the probability and the crops behind each. In CSV,
    ``box`` and ``attributes`` are JSON text.
    """

    FIELDS = ("camera", "track", "segment", "id", "indexed", "start", "end", "start_iso", "end_iso",
              "position_start", "position_end", "frames", "crops", "box", "attributes")  # fmt: skip

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".csv", ".ndjson"):
            raise ValueError(f"events file {self.path}: name it .jsonl (JSON lines) or .csv")
        self.csv = suffix == ".csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed by close()
        self._writer = csv.DictWriter(self._file, self.FIELDS) if self.csv else None
        if self._writer is not None:
            self._writer.writeheader()
        self.lines = 0

    def write(self, record: dict[str, Any]) -> None:
        """``record``: a finished track as the pipeline gives it (``on_track``)."""
        if self._file is None:
            raise ValueError(f"events file {self.path} is closed")
        row = {k: record.get(k) for k in self.FIELDS}
        row["box"] = record.get("best_box")
        row["start_iso"], row["end_iso"] = iso_time(record.get("start")), iso_time(record.get("end"))
        if self._writer is not None:
            self._writer.writerow({k: json.dumps(v) if k in ("box", "attributes") else v for k, v in row.items()})
        else:
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        self.lines += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> TrackEventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
