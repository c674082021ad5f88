"""Street scenes for the camera examples: a static street, people walking over it, and a video file of it."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from .attributes import _INDEX, _VIEWS, vector_to_attrs
from .compose import _as_rng, _gradient, paste_person
from .figure import render_person_layer
from .identity import Appearance, Pose, sample_appearance, sample_identity_attributes
from .palette import _muted, _scale

logger = logging.getLogger(__name__)


def render_street(size: tuple[int, int] = (480, 640), rng: np.random.Generator | int | None = 0) -> np.ndarray:
    """A static street background (buildings, pavement, road markings, poles) for the camera example."""
    rng = _as_rng(rng)
    h, w = int(size[0]), int(size[1])
    horizon = int(h * rng.uniform(0.3, 0.42))
    img = np.empty((h, w, 3), np.uint8)
    img[:horizon] = _gradient(horizon, w, _muted(rng, 40), _muted(rng, 40))
    x = 0
    while x < w:
        bw = int(w * rng.uniform(0.12, 0.3))
        top = int(horizon * rng.uniform(0.0, 0.6))
        colour = _muted(rng, 60)
        cv2.rectangle(img, (x, top), (x + bw, horizon), colour, -1)
        win = _scale(colour, 0.6 if rng.random() < 0.5 else 1.3)
        step = max(8, int(h * 0.06))
        for wy in range(top + step // 2, horizon - step // 2, step):
            for wx in range(x + step // 3, x + bw - step // 2, step):
                cv2.rectangle(img, (wx, wy), (wx + step // 2, wy + step // 2), win, -1)
        x += bw
    ground = _muted(rng, 15)
    img[horizon:] = _gradient(h - horizon, w, _scale(ground, 1.15), _scale(ground, 0.85))
    kerb = horizon + int((h - horizon) * 0.12)
    cv2.rectangle(img, (0, horizon), (w, kerb), _scale(ground, 1.3), -1)
    cv2.line(img, (0, kerb), (w, kerb), _scale(ground, 0.6), max(1, h // 160))
    lane = horizon + int((h - horizon) * 0.65)
    for x0 in range(int(rng.uniform(0, 60)), w, max(40, w // 8)):
        cv2.rectangle(img, (x0, lane), (x0 + max(20, w // 16), lane + max(2, h // 120)), (225, 225, 225), -1)
    for _ in range(int(rng.integers(1, 4))):
        px = int(rng.uniform(0.05, 0.95) * w)
        cv2.line(img, (px, int(horizon * 0.2)), (px, kerb), (50, 50, 55), max(2, w // 160), cv2.LINE_AA)
    return img


@dataclasses.dataclass
class _Walker:
    pid: int
    labels: np.ndarray
    appearance: Appearance
    x: float  # centre
    y: float  # foot line
    vx: float
    vy: float
    phase: float
    flip: bool


def synthetic_video_frames(
    num_frames: int,
    size: tuple[int, int] = (480, 640),
    num_people: int = 3,
    seed: int = 0,
    fps: float = 10.0,
    noise: float = 1.5,
) -> Iterator[tuple[np.ndarray, list[dict]]]:
    """Frames of people walking over a static street, with ground truth.

    Yields ``(frame BGR uint8 [H, W, 3], people)`` where each person is
    ``{"pid", "bbox": (x1, y1, x2, y2) exclusive ends, "attrs": {name: bool}, "truncated": bool}``.
    People walk across (side view), toward the camera (front) or away (back), are larger
    lower in the frame, are pasted with their soft masks (so background subtraction and HOG
    see a person, not a box) and are replaced by new identities when they leave.
    """
    rng = np.random.default_rng([seed, 3])
    h, w = int(size[0]), int(size[1])
    bg = render_street((h, w), rng)
    horizon = 0.36 * h
    y_min, y_max = horizon + 0.3 * (h - horizon), h - 0.02 * h
    max_h = 0.6 * h
    next_pid = 0

    def height_at(y: float) -> float:
        return max(16.0, max_h * (y - horizon) / (h - horizon))

    def spawn(inside: bool) -> _Walker:
        nonlocal next_pid
        labels = sample_identity_attributes(rng)
        app = sample_appearance(rng)
        view = _VIEWS[int(rng.choice(3, p=[0.2, 0.6, 0.2]))]
        labels[_INDEX[view]] = 1
        speed = rng.uniform(0.7, 1.2) * 10.0 / fps
        y = rng.uniform(y_min, y_max)
        if view == "Side":
            direction = 1.0 if rng.random() < 0.5 else -1.0
            ph = height_at(y)
            x = rng.uniform(0.1, 0.9) * w if inside else (-0.3 * ph if direction > 0 else w + 0.3 * ph)
            vx, vy, flip = direction * 0.07 * ph * speed, 0.0, direction < 0
        else:
            x = rng.uniform(0.15, 0.85) * w
            toward = view == "Front"
            if not inside:
                y = y_min if toward else y_max
            vx, vy, flip = 0.0, (1 if toward else -1) * 0.012 * (h - horizon) * speed, bool(rng.random() < 0.5)
        walker = _Walker(next_pid, labels, app, x, y, vx, vy, float(rng.uniform(0, 2 * math.pi)), flip)
        next_pid += 1
        return walker

    walkers = [spawn(True) for _ in range(num_people)]
    for _ in range(num_frames):
        frame = bg.copy()
        people = []
        for wk in sorted(walkers, key=lambda p: p.y):  # far first, so nearer people occlude them
            ph = height_at(wk.y)
            ch, cw = int(ph / 0.95) + 2, int(ph * 0.62) + 2
            pose = Pose(phase=wk.phase, stride=0.32, arm_swing=0.3, scale=0.95, foot=0.99, flip=wk.flip)
            img, mask = render_person_layer(wk.labels, wk.appearance, (ch, cw), pose)
            box = paste_person(frame, img, mask, int(round(wk.x - cw / 2)), int(round(wk.y - 0.99 * ch)))
            if box is not None:
                truncated = box[0] == 0 or box[1] == 0 or box[2] == w or box[3] == h
                people.append({"pid": wk.pid, "bbox": box, "attrs": vector_to_attrs(wk.labels), "truncated": truncated})
        if noise > 0:
            frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
        yield frame, people
        for i, wk in enumerate(walkers):
            wk.x += wk.vx
            wk.y += wk.vy
            wk.phase += 2 * math.pi * 0.9 / fps
            ph = height_at(wk.y)
            gone = wk.x < -0.4 * ph or wk.x > w + 0.4 * ph or wk.y < y_min - 1 or wk.y > h + 0.25 * ph
            if gone:
                walkers[i] = spawn(False)


_CODECS = {".mp4": ["mp4v"], ".avi": ["MJPG", "XVID"]}


def write_synthetic_video(
    path: str | Path,
    num_frames: int = 100,
    size: tuple[int, int] = (480, 640),
    num_people: int = 3,
    seed: int = 0,
    fps: float = 10.0,
    annotations: str | Path | None = None,
) -> Path:
    """Write :func:`synthetic_video_frames` to a video file; returns the path actually written.

    ``.mp4`` uses mp4v and ``.avi`` MJPG (both work in opencv-python-headless); when the
    requested container cannot be opened the video falls back to MJPG in ``.avi``.
    ``annotations`` (optional) receives the per-frame ground truth as JSON.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() not in _CODECS:
        raise ValueError(f"unsupported video suffix {path.suffix!r}; use .mp4 or .avi")
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = int(size[0]), int(size[1])
    attempts = [(path, c) for c in _CODECS[path.suffix.lower()]]
    if path.suffix.lower() != ".avi":
        attempts.append((path.with_suffix(".avi"), "MJPG"))
    writer = None
    for target, codec in attempts:
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*codec), float(fps), (w, h))
        if writer.isOpened():
            path = target
            break
        writer.release()
        writer = None
        logger.warning("OpenCV cannot write %s with codec %s; trying the next one", target, codec)
    if writer is None:
        raise RuntimeError(f"OpenCV cannot write {path} with any of mp4v/MJPG/XVID; check its FFMPEG support")
    truth = []
    try:
        for i, (frame, people) in enumerate(synthetic_video_frames(num_frames, (h, w), num_people, seed, fps)):
            writer.write(frame)
            truth.append({"frame": i, "people": [{**p, "bbox": list(p["bbox"])} for p in people]})
    finally:
        writer.release()
    if annotations is not None:
        Path(annotations).expanduser().write_text(json.dumps({"fps": fps, "size": [h, w], "frames": truth}) + "\n")
    return path
