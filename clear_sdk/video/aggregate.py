"""Track-level attributes: one answer per person from many crops, weighted by how much each crop is worth.

A single frame sees a person small, blurred, half out of the picture or half hidden; a track sees
them many times. Each crop's attribute probabilities enter a weighted mean with weight
``detector score x crop quality``, so a sharp, whole, large, confident crop counts most, and every
value carries the number of crops behind it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from clear_sdk.video.types import Box


def crop_quality(box: Box, frame_shape: Sequence[int], crop: np.ndarray | None = None, ref_height: int = 128) -> float:
    """A crop's worth in (0, 1]: its height against ``ref_height``, x0.5 if cut by the frame edge, x sharpness.

    Sharpness is the variance of the Laplacian of the crop shrunk to 64 px high (blurred crops score
    low), mapped to (0, 1] by v / (v + 100).
    """
    x1, y1, x2, y2 = box
    h, w = int(frame_shape[0]), int(frame_shape[1])
    q = min(1.0, max(y2 - y1, 1) / float(ref_height))
    if x1 <= 0 or y1 <= 0 or x2 >= w or y2 >= h:
        q *= 0.5  # part of the person may be outside the picture
    if crop is not None and crop.size:
        small = cv2.resize(crop, (max(8, round(64 * crop.shape[1] / max(crop.shape[0], 1))), 64))
        v = float(cv2.Laplacian(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())
        q *= 0.25 + 0.75 * v / (v + 100.0)
    return max(q, 1e-6)


@dataclasses.dataclass
class TrackAttributes:
    """The running, weighted attribute estimate of one track, its best crop and its time span."""

    source: str
    track_id: int
    num_attributes: int
    embed_dim: int = 0
    prob_sum: np.ndarray = dataclasses.field(init=False)
    emb_sum: np.ndarray | None = dataclasses.field(init=False, default=None)
    weight: float = 0.0
    crops: int = 0
    frames: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    first_pos: float | None = None  # seconds into the source file (None for a live source)
    last_pos: float | None = None
    best_weight: float = -1.0
    best_crop: np.ndarray | None = None
    best_box: Box | None = None
    best_ts: float | None = None
    last_crop_frame: int = -(10**9)
    last_indexed_ts: float | None = None
    segment: int = 0  # > 0: the tracker re-used this id after the track had ended (a new person, or the same later)

    def __post_init__(self) -> None:
        self.prob_sum = np.zeros(self.num_attributes, np.float64)
        if self.embed_dim:
            self.emb_sum = np.zeros(self.embed_dim, np.float64)

    def seen(self, ts: float, position: float | None = None) -> None:
        self.frames += 1
        self.first_ts = ts if self.first_ts is None else self.first_ts
        self.last_ts = ts
        if position is not None:
            self.first_pos = position if self.first_pos is None else self.first_pos
            self.last_pos = position

    def add(self, probs: np.ndarray, weight: float, crop: np.ndarray, box: Box, ts: float,
            embedding: np.ndarray | None = None) -> None:  # fmt: skip
        """One recognised crop; keeps a copy of the crop when it is the best so far (bounded: one per track)."""
        w = float(weight)
        self.prob_sum += w * np.asarray(probs, np.float64)
        if embedding is not None and self.emb_sum is not None:
            self.emb_sum += w * np.asarray(embedding, np.float64)
        self.weight += w
        self.crops += 1
        if w > self.best_weight:
            self.best_weight, self.best_crop, self.best_box, self.best_ts = w, crop.copy(), box, ts

    @property
    def probabilities(self) -> np.ndarray:
        """The weighted mean probability of each attribute (0.5 before any crop)."""
        if self.weight <= 0:
            return np.full(self.num_attributes, 0.5)
        return self.prob_sum / self.weight

    @property
    def embedding(self) -> np.ndarray | None:
        """The weighted mean visual embedding, L2-normalised (None without the retrieval stage or crops)."""
        if self.emb_sum is None or self.weight <= 0:
            return None
        e = self.emb_sum / self.weight
        return e / max(float(np.linalg.norm(e)), 1e-12)

    def summary(self, names: Sequence[str], thresholds: Sequence[float], full: bool = False) -> dict[str, Any]:
        """JSON-ready: the span (epoch seconds; ``position_*``: seconds into a file), and the attributes above
        threshold (every one with ``full``) as p and crops."""
        p = self.probabilities
        values = {n: {"p": round(float(v), 4), "crops": self.crops} for n, v, t in zip(names, p, thresholds)
                  if full or v > t}  # fmt: skip
        return {
            "camera": self.source,
            "track": self.track_id,
            "segment": self.segment,
            "start": self.first_ts,
            "end": self.last_ts,
            "position_start": self.first_pos,
            "position_end": self.last_pos,
            "frames": self.frames,
            "crops": self.crops,
            "attributes": values,
            "best_box": list(self.best_box) if self.best_box else None,
        }
