"""Draw tracks on a frame: a box per person with its track id and its top attributes, and a status line."""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from clear_sdk.video.aggregate import TrackAttributes
from clear_sdk.video.types import TrackedBox

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A bright BGR colour per track id (golden-ratio hues, so neighbouring ids differ)."""
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _label(img: np.ndarray, lines: Sequence[str], x: int, y: int, colour: tuple[int, int, int], scale: float) -> None:
    sizes = [cv2.getTextSize(s, _FONT, scale, 1)[0] for s in lines]
    lh = max(s[1] for s in sizes) + int(8 * scale + 4)
    bw, bh = max(s[0] for s in sizes) + 8, lh * len(lines) + 4
    x = int(min(max(0, x), max(0, img.shape[1] - bw)))
    y = int(min(max(0, y), max(0, img.shape[0] - bh)))
    roi = img[y : y + bh, x : x + bw]
    roi[:] = (roi * 0.35).astype(np.uint8)  # darken, so the scene stays visible behind the text
    cv2.rectangle(img, (x, y), (x + bw - 1, y + bh - 1), colour, 1)
    for i, s in enumerate(lines):
        cv2.putText(img, s, (x + 4, y + lh * (i + 1) - 3), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def draw_tracks(
    image: np.ndarray,
    boxes: Sequence[TrackedBox],
    tracks: Mapping[int, TrackAttributes],
    names: Sequence[str],
    thresholds: Sequence[float],
    status: str = "",
    top: int = 3,
) -> np.ndarray:
    """A copy of ``image`` with the tracks drawn; each label lists up to ``top`` attributes above threshold."""
    img = image.copy()
    scale = max(0.35, min(0.55, img.shape[0] / 900))
    for b in boxes:
        x1, y1, x2, y2 = b.box
        colour = track_colour(b.track_id)
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), colour, 2)
        lines = [f"#{b.track_id}"]
        ta = tracks.get(b.track_id)
        if ta is not None and ta.crops:
            p = ta.probabilities
            order = [i for i in np.argsort(-p, kind="stable") if p[i] > thresholds[i]][:top]
            lines += [f"{names[i]} {p[i]:.2f}" for i in order]
        _label(img, lines, x1, y1 - 14 * len(lines), colour, scale)
    if status:
        _label(img, [status], 0, 0, (200, 200, 200), scale)
    return img
