"""Pedestrian attributes on a camera stream: detect people, track them, recognise and index their crops.

The pipeline a surveillance integration needs, in one file you can copy::

    capture thread --(bounded queue, drops the OLDEST frame when full)--> detection + tracking thread
        --(bounded queue)--> recognition, drawing and indexing (main thread)

- Sources: a video file, an RTSP / HTTP URL or a webcam index. A live source that drops is
  re-opened with exponential backoff (``--max-reconnects``); the end of a file ends the run.
- Person detectors: OpenCV's HOG people detector (default), MOG2 background subtraction for fixed
  cameras (``bgsub``), or any ONNX detector with YOLO's common output layouts (``--detector m.onnx``).
- An IoU tracker gives every person a track id; the attribute probabilities of a track are the
  running mean over its crops, which is much steadier than any single frame.
- Crops go into an :class:`clear_sdk.AttributeSearcher` index (``--index DIR``) with camera id,
  timestamp, track id and bounding box, once per track every ``--index-every`` frames, so that
  ``--query "female, backpack"`` (or ``clear-sdk search``) finds people later.
- A slow model drops frames instead of growing memory; frames/s and dropped frames are reported.

Try it without a camera (renders people walking over a street; needs only numpy + OpenCV)::

    python examples/camera_stream.py --bundle clear-sdk-demo/bundle --synthetic-video 200 \\
        --index /tmp/cam-index --save-video /tmp/annotated.mp4 --query "female, backpack"

On a real camera::

    python examples/camera_stream.py --bundle BUNDLE --source rtsp://user:pass@host/stream --camera gate-3 \\
        --index /data/gallery --display

``main(argv)`` returns the run summary (also printed as JSON) so other code and tests can call it.
"""

from __future__ import annotations

import argparse
import colorsys
import dataclasses
import json
import logging
import os
import queue
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

logger = logging.getLogger("camera_stream")

_END = object()  # end-of-stream marker passed down the queues


class CameraStreamError(RuntimeError):
    """A problem the user can fix (a source that does not open, a missing OpenCV feature, a bad flag)."""


# ------------------------------------------------------------------------------------------- sources
class Capture(Protocol):
    """What the pipeline needs from a capture: the subset of ``cv2.VideoCapture`` it calls."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def get(self, prop_id: int) -> float: ...

    def release(self) -> None: ...


CaptureFactory = Callable[["str | int"], Capture]


def parse_source(text: str) -> str | int:
    """A webcam index ("0") becomes an int; anything else (a path, a URL) stays a string."""
    return int(text) if text.strip().isdigit() else text


def is_live(source: str | int) -> bool:
    """Webcams and URLs are live: they can drop and come back, and frames arrive in real time."""
    return isinstance(source, int) or "://" in source


def open_capture(source: str | int) -> Capture:
    """The default capture factory: ``cv2.VideoCapture`` with a small buffer for live sources."""
    cap = cv2.VideoCapture(source)
    if is_live(source):
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep latency low; ignored by backends that do not support it
    return cap


def _synthetic_renderer() -> Any:
    """The synthetic pedestrian renderer (numpy + OpenCV only), with a clear message when it is missing."""
    try:
        from clear_sdk.training.data import synthetic
    except ImportError as e:
        raise CameraStreamError(
            f"--synthetic-video needs clear_sdk.training.data.synthetic, which could not be imported ({e}); "
            "install clear-sdk with its training package (pip install 'clear-sdk[train]') or pass --source"
        ) from e
    return synthetic


# ----------------------------------------------------------------------------------------- detectors
@dataclasses.dataclass(frozen=True)
class Detection:
    """A person box in frame pixels, (x1, y1, x2, y2) with exclusive ends, and the detector's score."""

    box: tuple[int, int, int, int]
    score: float


def _clip_boxes(xyxy: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    h, w = int(shape[0]), int(shape[1])
    out = np.round(np.asarray(xyxy, np.float64).reshape(-1, 4)).astype(np.int64)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out


def _to_detections(xyxy: np.ndarray, scores: np.ndarray, shape: Sequence[int], min_area: float) -> list[Detection]:
    boxes = _clip_boxes(xyxy, shape)
    dets = []
    for b, s in zip(boxes, np.ravel(scores)):
        if (b[2] - b[0]) * (b[3] - b[1]) >= max(min_area, 1):
            dets.append(Detection((int(b[0]), int(b[1]), int(b[2]), int(b[3])), float(s)))
    return dets


def nms(xyxy: np.ndarray, scores: np.ndarray, conf: float, iou: float) -> np.ndarray:
    """Indices kept by OpenCV's non-maximum suppression (boxes below ``conf`` are dropped first)."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    if not len(xyxy):
        return np.zeros(0, np.int64)
    xywh = np.column_stack([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]])
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), np.ravel(scores).astype(float).tolist(), float(conf), float(iou))
    return np.asarray(keep, np.int64).reshape(-1)


class HogDetector:
    """OpenCV's HOG + linear SVM people detector (Dalal & Triggs): no model file, CPU only.

    It finds upright people at least ~100 px tall (its window is 64x128 with a margin), so keep
    ``--det-width`` large enough. OpenCV 5 removed ``cv2.HOGDescriptor``: install
    ``opencv-python-headless<5`` or use another detector.
    """

    name = "hog"

    def __init__(self, conf: float = 0.3, nms_iou: float = 0.45, stride: int = 8, scale: float = 1.05) -> None:
        if not hasattr(cv2, "HOGDescriptor"):
            raise CameraStreamError(
                f"OpenCV {cv2.__version__} has no cv2.HOGDescriptor (OpenCV 5 removed it): install "
                "'opencv-python-headless>=4.10,<5', or use --detector bgsub or --detector YOUR_MODEL.onnx"
            )
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.conf, self.nms_iou, self.stride, self.scale = conf, nms_iou, int(stride), float(scale)

    def detect(self, frame: np.ndarray, min_area: float = 0.0) -> list[Detection]:
        rects, weights = self.hog.detectMultiScale(
            frame, winStride=(self.stride, self.stride), padding=(8, 8), scale=self.scale
        )
        if len(rects) == 0:
            return []
        rects = np.asarray(rects, np.float64).reshape(-1, 4)
        xyxy = np.column_stack([rects[:, :2], rects[:, :2] + rects[:, 2:]])
        scores = np.asarray(weights, np.float64).reshape(-1)
        keep = nms(xyxy, scores, self.conf, self.nms_iou)
        return _to_detections(xyxy[keep], scores[keep], frame.shape, min_area)


class BackgroundSubtractionDetector:
    """Moving blobs from MOG2 background subtraction, for fixed cameras (fast, no model).

    Anything that moves and is large enough counts as a person, and a person standing still
    fades into the background after about ``history`` frames; shadows (MOG2's grey) are ignored.
    """

    name = "bgsub"

    def __init__(self, history: int = 100, var_threshold: float = 16.0, min_aspect: float = 0.8) -> None:
        self.subtractor = cv2.createBackgroundSubtractorMOG2(
            history=int(history), varThreshold=float(var_threshold), detectShadows=True
        )
        self.min_aspect = float(min_aspect)
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))

    def detect(self, frame: np.ndarray, min_area: float = 0.0) -> list[Detection]:
        mask = self.subtractor.apply(frame)
        _, mask = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)  # 127 = shadow, 255 = foreground
        k = max(5, frame.shape[0] // 24) | 1  # joins a person's parts at any resolution
        close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, close, iterations=2)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes, scores = [], []
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            if h < self.min_aspect * w:  # people are taller than wide
                continue
            boxes.append((x, y, x + w, y + h))
            scores.append(min(1.0, cv2.contourArea(c) / float(w * h)))  # how solid the blob is
        if not boxes:
            return []
        return _to_detections(np.asarray(boxes), np.asarray(scores), frame.shape, min_area)


def letterbox(frame: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, int, int]:
    """Resize keeping the aspect ratio and pad to ``size`` (H, W) with grey 114, as YOLO's trainers do.

    Returns (image, scale, pad_left, pad_top): a network-input point p maps to ``(p - pad) / scale``.
    """
    h, w = frame.shape[:2]
    th, tw = size
    scale = min(th / h, tw / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nh, nw) != (h, w) else frame
    top, left = (th - nh) // 2, (tw - nw) // 2
    out = cv2.copyMakeBorder(resized, top, th - nh - top, left, tw - nw - left, cv2.BORDER_CONSTANT, value=(114,) * 3)
    return out, scale, left, top


class YoloOnnxDetector:
    """Any ONNX detector with a YOLO output, run by onnxruntime: people = class ``person_class``.

    Output layouts: ``[1, 4 + nc, N]`` (YOLOv8 / v11: cx, cy, w, h, class scores) or ``[1, N, 5 + nc]``
    (YOLOv5 / v7: cx, cy, w, h, objectness, class scores), boxes in network-input pixels. ``layout="auto"``
    takes the smaller of the two trailing dimensions as the per-box vector (N is in the thousands).
    """

    name = "onnx"

    def __init__(
        self,
        path: str | os.PathLike[str],
        conf: float = 0.35,
        nms_iou: float = 0.45,
        person_class: int = 0,
        size: int = 640,
        layout: str = "auto",
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        if layout not in ("auto", "v8", "v5"):
            raise CameraStreamError(f"--yolo-layout must be auto, v8 or v5, got {layout!r}")
        if not Path(path).is_file():
            raise CameraStreamError(f"detector model not found: {path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        inp = self.session.get_inputs()[0]
        if len(inp.shape) != 4:
            raise CameraStreamError(f"{path}: expected an image input [1, 3, H, W], got {inp.shape}")
        dims = [d if isinstance(d, int) and d > 0 else int(size) for d in inp.shape[2:]]
        self.input_name, self.input_size = inp.name, (dims[0], dims[1])
        self.dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self.conf, self.nms_iou, self.person_class, self.layout = conf, nms_iou, int(person_class), layout

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        img, scale, left, top = letterbox(frame, self.input_size)
        x = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None].astype(self.dtype) / self.dtype(255.0)
        return np.ascontiguousarray(x), scale, left, top

    def decode(
        self, output: np.ndarray, scale: float, left: int, top: int, frame_shape: Sequence[int], min_area: float = 0.0
    ) -> list[Detection]:
        """Raw network output -> person detections in frame pixels (score filter, class filter, NMS)."""
        out = np.asarray(output, np.float32)
        if out.ndim == 3:
            if out.shape[0] != 1:
                raise CameraStreamError(f"detector output batch must be 1, got shape {out.shape}")
            out = out[0]
        if out.ndim != 2:
            raise CameraStreamError(f"detector output must be [1, 4+nc, N] or [1, N, 5+nc], got {output.shape}")
        layout = self.layout
        if layout == "auto":
            layout = "v8" if out.shape[0] < out.shape[1] else "v5"
        preds = out.T if layout == "v8" else out
        first_class = 4 if layout == "v8" else 5
        nc = preds.shape[1] - first_class
        if nc < 1 or self.person_class >= nc:
            raise CameraStreamError(
                f"detector output {output.shape} read as YOLO{layout} has {max(nc, 0)} classes; person class "
                f"{self.person_class} does not exist (set --person-class, or --yolo-layout v8/v5)"
            )
        cls = preds[:, first_class:]
        if layout == "v5":
            cls = cls * preds[:, 4:5]  # class confidence = objectness x class probability
        best = cls.argmax(axis=1)
        scores = cls[np.arange(len(cls)), best]
        mask = (best == self.person_class) & (scores >= self.conf)
        if not mask.any():
            return []
        cx, cy, bw, bh = preds[mask, 0], preds[mask, 1], preds[mask, 2], preds[mask, 3]
        xyxy = np.column_stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]).astype(np.float64)
        xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - left) / scale
        xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - top) / scale
        keep = nms(xyxy, scores[mask], self.conf, self.nms_iou)
        return _to_detections(xyxy[keep], scores[mask][keep], frame_shape, min_area)

    def detect(self, frame: np.ndarray, min_area: float = 0.0) -> list[Detection]:
        x, scale, left, top = self.preprocess(frame)
        output = self.session.run(None, {self.input_name: x})[0]
        return self.decode(output, scale, left, top, frame.shape, min_area)


class Downscaled:
    """Run a detector on a frame shrunk to ``width`` pixels (much faster for HOG), boxes mapped back."""

    def __init__(self, detector: Any, width: int) -> None:
        self.detector, self.width, self.name = detector, int(width), detector.name

    def detect(self, frame: np.ndarray, min_area: float = 0.0) -> list[Detection]:
        h, w = frame.shape[:2]
        if w <= self.width:
            return self.detector.detect(frame, min_area)
        f = self.width / w
        small = cv2.resize(frame, (self.width, max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        dets = self.detector.detect(small, min_area * f * f)
        xyxy = np.asarray([d.box for d in dets], np.float64).reshape(-1, 4) / f
        return _to_detections(xyxy, np.asarray([d.score for d in dets]), frame.shape, min_area)


def create_detector(args: argparse.Namespace) -> Any:
    """The detector named by ``--detector``: ``hog``, ``bgsub`` or a path to an ``.onnx`` model."""
    kind = args.detector
    if kind == "hog":
        det: Any = HogDetector(conf=0.3 if args.conf is None else args.conf, nms_iou=args.nms_iou)
    elif kind == "bgsub":
        det = BackgroundSubtractionDetector(history=args.bg_history, var_threshold=args.bg_threshold)
    elif kind.lower().endswith(".onnx"):
        return YoloOnnxDetector(
            kind,
            conf=0.35 if args.conf is None else args.conf,
            nms_iou=args.nms_iou,
            person_class=args.person_class,
            size=args.det_size,
            layout=args.yolo_layout,
        )
    else:
        raise CameraStreamError(f"--detector must be hog, bgsub or a path to an .onnx model, got {kind!r}")
    return Downscaled(det, args.det_width) if args.det_width else det


# ------------------------------------------------------------------------------------------ tracking
def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` [N, 4] with every box of ``b`` [M, 4] (xyxy)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None]
    iw = (np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])).clip(min=0)
    ih = (np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])).clip(min=0)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


@dataclasses.dataclass
class Track:
    """One tracked person: ``age`` counts frames since it was last matched (0 = seen in this frame)."""

    id: int
    box: tuple[int, int, int, int]
    score: float
    first_frame: int
    last_frame: int
    hits: int = 1
    age: int = 0
    confirmed: bool = False


class IouTracker:
    """Greedy IoU association: the best-overlapping (track, detection) pair is matched first.

    A track is ``confirmed`` after ``min_hits`` matches (one-frame false detections never are) and
    dropped after ``max_age`` frames without a match. Good enough at camera frame rates where a
    person moves less than their width between frames; use a Kalman / appearance tracker otherwise.
    """

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 10, min_hits: int = 2) -> None:
        self.iou_threshold, self.max_age, self.min_hits = float(iou_threshold), int(max_age), int(min_hits)
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, detections: Sequence[Detection], frame_index: int) -> list[Track]:
        """Match ``detections`` to the tracks; returns copies of all live tracks (safe to hand to another thread)."""
        for t in self.tracks:
            t.age += 1
        boxes = np.asarray([d.box for d in detections], np.float64).reshape(-1, 4)
        used_t: set[int] = set()
        used_d: set[int] = set()
        if self.tracks and len(detections):
            ious = iou_matrix(np.asarray([t.box for t in self.tracks]), boxes)
            for flat in np.argsort(-ious, axis=None, kind="stable"):
                ti, di = divmod(int(flat), ious.shape[1])
                if ious[ti, di] < self.iou_threshold:
                    break
                if ti in used_t or di in used_d:
                    continue
                used_t.add(ti)
                used_d.add(di)
                t = self.tracks[ti]
                t.box, t.score, t.last_frame = detections[di].box, detections[di].score, frame_index
                t.hits += 1
                t.age = 0
                t.confirmed = t.confirmed or t.hits >= self.min_hits
        for di, d in enumerate(detections):
            if di not in used_d:
                t = Track(self._next_id, d.box, d.score, frame_index, frame_index, confirmed=self.min_hits <= 1)
                self._next_id += 1
                self.tracks.append(t)
        self.tracks = [t for t in self.tracks if t.age <= self.max_age]
        return [dataclasses.replace(t) for t in self.tracks]


@dataclasses.dataclass
class TrackAttributes:
    """The recognition side of a track: the running mean of its attribute probabilities."""

    track_id: int
    prob_sum: np.ndarray
    count: int = 0
    frames: int = 0
    last_recognized: int = -(10**9)
    last_indexed: int = -(10**9)
    indexed: int = 0

    def add(self, probs: np.ndarray) -> None:
        self.prob_sum += probs
        self.count += 1

    @property
    def mean(self) -> np.ndarray:
        return self.prob_sum / max(self.count, 1)

    def top(self, names: Sequence[str], thresholds: np.ndarray, k: int) -> list[tuple[str, float]]:
        """Up to ``k`` attributes above their threshold in the running mean, most probable first."""
        if not self.count:
            return []
        mean = self.mean
        above = [i for i in np.argsort(-mean, kind="stable") if mean[i] > thresholds[i]]
        return [(names[i], float(mean[i])) for i in above[:k]]


# ------------------------------------------------------------------------------------------- drawing
def track_colour(track_id: int) -> tuple[int, int, int]:
    """A bright colour per track id (golden-ratio hues, so neighbouring ids differ)."""
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _block_size(lines: Sequence[str], scale: float) -> tuple[int, int, int]:
    """(width, height, line height) of a text block."""
    sizes = [cv2.getTextSize(s, _FONT, scale, 1)[0] for s in lines]
    lh = max(s[1] for s in sizes) + int(8 * scale + 4)
    return max(s[0] for s in sizes) + 8, lh * len(lines) + 4, lh


def _text_block(
    img: np.ndarray, lines: Sequence[str], x: int, y: int, colour: tuple[int, int, int], scale: float
) -> tuple[int, int, int, int]:
    """Lines of white text on a darkened box at (x, y), kept inside the image; returns the box drawn."""
    bw, bh, lh = _block_size(lines, scale)
    x = int(min(max(0, x), max(0, img.shape[1] - bw)))
    y = int(min(max(0, y), max(0, img.shape[0] - bh)))
    roi = img[y : y + bh, x : x + bw]
    roi[:] = (roi * 0.3).astype(np.uint8)  # darken rather than fill: the scene stays visible behind
    cv2.rectangle(img, (x, y), (x + bw - 1, y + bh - 1), colour, 1)
    for i, s in enumerate(lines):
        cv2.putText(img, s, (x + 4, y + lh * (i + 1) - 3), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return x, y, x + bw, y + bh


def _free_spot(
    box: tuple[int, int, int, int], size: tuple[int, int], taken: list[tuple[int, int, int, int]], shape: Sequence[int]
) -> tuple[int, int]:
    """Where a label of ``size`` goes: above the box, else inside its top, else below; never over another label."""
    (x1, y1, _, y2), (bw, bh) = box, size
    h, w = shape[:2]
    x = min(max(0, x1), max(0, w - bw))

    def free(y: int) -> bool:
        return all(x + bw <= a or x >= c or y + bh <= b or y >= d for a, b, c, d in taken)

    candidates = [y1 - bh, y1 + 2, y2 + 2]
    candidates += [y1 - bh - k * (bh // 2) for k in range(1, 8)] + [y1 + 2 + k * (bh // 2) for k in range(1, 8)]
    for y in candidates:
        if 0 <= y <= h - bh and free(y):
            return x, y
    return x, min(max(0, y1 - bh), max(0, h - bh))


def draw_frame(
    frame: np.ndarray,
    tracks: Sequence[tuple[Track, list[tuple[str, float]]]],
    hud: str,
) -> np.ndarray:
    """Boxes with the track id and the track's top attributes, plus a status line; returns a new image."""
    img = frame.copy()
    scale = max(0.35, min(0.6, img.shape[0] / 900))
    taken = [_text_block(img, [hud], 0, 0, (200, 200, 200), scale)]
    for track, _ in tracks:
        x1, y1, x2, y2 = track.box
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), track_colour(track.id), 2)
    for track, attrs in sorted(tracks, key=lambda ta: ta[0].box[1]):  # top of the frame first
        lines = [f"#{track.id}"] + [f"{name} {p:.2f}" for name, p in attrs]
        bw, bh, _ = _block_size(lines, scale)
        x, y = _free_spot(track.box, (bw, bh), taken, img.shape)
        taken.append(_text_block(img, lines, x, y, track_colour(track.id), scale))
    return img


# ------------------------------------------------------------------------------------------ pipeline
@dataclasses.dataclass
class Packet:
    index: int  # frame number since the start of the run
    timestamp: float  # seconds: wall clock for live sources, start_time + position for files
    frame: np.ndarray
    tracks: list[Track] | None = None


@dataclasses.dataclass
class Stats:
    frames_captured: int = 0
    frames_dropped: int = 0
    frames_processed: int = 0
    last_frame_processed: int | None = None  # with drop-oldest, the newest frame is never the one dropped
    max_queue_depth: int = 0
    detections: int = 0
    crops_recognized: int = 0
    crops_indexed: int = 0
    reconnects: int = 0
    reconnect_attempts: int = 0
    reconnect_delays: list[float] = dataclasses.field(default_factory=list)
    capture_start: float | None = None
    capture_end: float | None = None
    process_start: float | None = None
    process_end: float | None = None
    detect_s: float = 0.0
    recognize_s: float = 0.0
    stop_reason: str = ""
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)


def put_drop_oldest(q: queue.Queue, item: Any, stats: Stats) -> None:
    """Put without ever blocking: when the queue is full, discard its oldest frame (and count it)."""
    while True:
        try:
            q.put_nowait(item)
            break
        except queue.Full:
            try:
                q.get_nowait()
            except queue.Empty:
                continue  # the consumer just took it; retry the put
            with stats.lock:
                stats.frames_dropped += 1
    with stats.lock:
        stats.max_queue_depth = max(stats.max_queue_depth, q.qsize())


def put_blocking(q: queue.Queue, item: Any, stop: threading.Event, stats: Stats | None = None) -> bool:
    """Put, waiting for room (back-pressure); gives up (False) when ``stop`` is set."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
        except queue.Full:
            continue
        if stats is not None:
            with stats.lock:
                stats.max_queue_depth = max(stats.max_queue_depth, q.qsize())
        return True
    return False


@dataclasses.dataclass
class CaptureSettings:
    source: str | int
    live: bool
    realtime: bool
    max_frames: int | None
    max_reconnects: int
    reconnect_delay: float
    max_reconnect_delay: float
    start_time: float


def capture_loop(
    settings: CaptureSettings,
    factory: CaptureFactory,
    out: queue.Queue,
    stop: threading.Event,
    stats: Stats,
    fps_box: list[float],
) -> None:
    """Read frames into ``out``; live sources drop the oldest queued frame and reconnect with backoff.

    ``max_reconnects`` counts consecutive failed re-opens (a frame read resets it); a file's end, or
    a file that does not open, ends the run.
    """
    s = settings
    failures = 0  # consecutive attempts that produced no frame
    index = 0

    def retry(what: str) -> bool:
        """Count a failed attempt and wait (exponential backoff); False once ``max_reconnects`` is exceeded."""
        nonlocal failures
        failures += 1
        with stats.lock:
            stats.reconnect_attempts += 1
        if failures > s.max_reconnects:
            stats.stop_reason = f"source lost: {what}, and {s.max_reconnects} reconnect attempts failed"
            logger.error("%s", stats.stop_reason)
            return False
        delay = min(s.reconnect_delay * 2 ** (failures - 1), s.max_reconnect_delay)
        stats.reconnect_delays.append(delay)
        logger.warning("%s; reconnect %d/%d in %.2f s", what, failures, s.max_reconnects, delay)
        stop.wait(delay)
        return True

    try:
        while not stop.is_set():
            cap = factory(s.source)
            if not cap.isOpened():
                cap.release()
                if not s.live:
                    raise CameraStreamError(f"cannot open video file {s.source!r}: check the path and the codec")
                if not retry(f"cannot open {s.source!r}"):
                    return
                continue
            if failures:
                with stats.lock:
                    stats.reconnects += 1
                logger.info("opened %r after %d failed attempt(s)", s.source, failures)
            fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
            fps_box[0] = fps if 0 < fps < 1000 else fps_box[0]
            t0, first = time.perf_counter(), index
            stream_dropped = False
            while not stop.is_set():
                if s.max_frames is not None and index >= s.max_frames:
                    stats.stop_reason = f"max frames ({s.max_frames})"
                    break
                ok, frame = cap.read()
                if not ok or frame is None:
                    stream_dropped = s.live  # a file has ended; a live stream has dropped
                    break
                failures = 0
                if stats.capture_start is None:
                    stats.capture_start = time.perf_counter()
                ts = time.time() if s.live else s.start_time + index / fps_box[0]
                packet = Packet(index, ts, frame)
                index += 1
                with stats.lock:
                    stats.frames_captured += 1
                stats.capture_end = time.perf_counter()
                if s.live:
                    put_drop_oldest(out, packet, stats)
                elif s.realtime:  # emulate a camera: frames arrive at the file's own rate, whatever we do
                    stop.wait(max(0.0, t0 + (index - first) / fps_box[0] - time.perf_counter()))
                    put_drop_oldest(out, packet, stats)
                elif not put_blocking(out, packet, stop, stats):  # a file otherwise: every frame is processed
                    break
            cap.release()
            if not stream_dropped:
                stats.stop_reason = stats.stop_reason or ("interrupted" if stop.is_set() else "end of file")
                return
            if not retry(f"stream {s.source!r} dropped"):
                return
    finally:
        put_blocking(out, _END, stop)


def detect_loop(
    detector: Any,
    tracker: IouTracker,
    min_area: float,
    inbox: queue.Queue,
    outbox: queue.Queue,
    stop: threading.Event,
    stats: Stats,
) -> None:
    """Detect people and update the tracker for every frame that reaches this stage."""
    try:
        while not stop.is_set():
            try:
                packet = inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if packet is _END:
                return
            t = time.perf_counter()
            detections = detector.detect(packet.frame, min_area)
            packet.tracks = tracker.update(detections, packet.index)
            with stats.lock:
                stats.detect_s += time.perf_counter() - t
                stats.detections += len(detections)
            if not put_blocking(outbox, packet, stop):
                return
    finally:
        put_blocking(outbox, _END, stop)


def _run_stage(errors: list[BaseException], stop: threading.Event, target: Callable[..., None], *args: Any) -> None:
    """Run a pipeline stage; an exception stops the whole pipeline and the main thread re-raises it."""
    try:
        target(*args)
    except BaseException as e:  # noqa: BLE001 - handed to the main thread, which re-raises it
        errors.append(e)
        stop.set()


def recognize_crops(recognizer: Any, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities [N, A] and embeddings [N, D] (None without a retrieval stage) from ONE model run.

    ``Recognizer.predict`` gives the probabilities and ``AttributeSearcher.add`` would run the model
    again for the embedding; calling the backend directly gives both, so indexed crops cost nothing extra.
    """
    probs, embs = [], []
    for start in range(0, len(crops), recognizer.batch_size):
        batch, _, _ = recognizer.preprocess(crops[start : start + recognizer.batch_size], color="bgr")
        p, e = recognizer.backend.run_images(batch)
        probs.append(p)
        embs.append(e)
    if not probs:
        return np.zeros((0, len(recognizer.attribute_names)), np.float32), None
    return np.concatenate(probs), (None if embs[0] is None else np.concatenate(embs))


# ------------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="camera_stream.py",
        description="Detect, track and recognise pedestrians on a video stream; index their crops for search.",
        epilog="Example: python examples/camera_stream.py --bundle BUNDLE --synthetic-video 200 --index /tmp/idx "
        '--query "female, backpack"',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--bundle", required=True, help="clear-sdk model bundle folder (clear-sdk export / clear-sdk demo)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--source", help="video file, rtsp:// or http:// URL, or webcam index (0, 1, ...)")
    src.add_argument(
        "--synthetic-video",
        type=int,
        metavar="N",
        help="render an N-frame synthetic street video (people walking) into --out and use it",
    )
    p.add_argument("--out", help="folder for generated files (synthetic video); default: a new temporary folder")
    p.add_argument("--synthetic-people", type=int, default=3, help="people in view at once in the synthetic video")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic video")
    p.add_argument("--camera", default="cam0", help="camera id stored with every indexed crop")

    g = p.add_argument_group("detection and tracking")
    g.add_argument("--detector", default="hog", help="hog (OpenCV HOG people detector), bgsub, or PATH.onnx (YOLO)")
    g.add_argument("--conf", type=float, help="minimum detection score (default 0.3 for hog, 0.35 for onnx)")
    g.add_argument("--nms-iou", type=float, default=0.45, help="IoU above which overlapping detections are merged")
    g.add_argument("--min-area", type=float, default=500.0, help="ignore person boxes smaller than this (pixels)")
    g.add_argument("--det-width", type=int, default=0, help="hog/bgsub: detect on frames shrunk to this width (0: off)")
    g.add_argument("--det-size", type=int, default=640, help="onnx: input size when the model's is dynamic")
    g.add_argument("--person-class", type=int, default=0, help="onnx: class index of 'person' (0 in COCO)")
    g.add_argument("--yolo-layout", default="auto", choices=("auto", "v8", "v5"), help="onnx: output layout")
    g.add_argument("--bg-history", type=int, default=100, help="bgsub: frames of background memory")
    g.add_argument("--bg-threshold", type=float, default=16.0, help="bgsub: MOG2 variance threshold")
    g.add_argument("--track-iou", type=float, default=0.3, help="minimum IoU to continue a track")
    g.add_argument("--max-age", type=int, default=10, help="frames a track survives without a detection")
    g.add_argument("--min-hits", type=int, default=2, help="detections before a track is shown and indexed")

    g = p.add_argument_group("recognition and indexing")
    g.add_argument("--backend", default="auto", help="auto, onnxruntime, tensorrt or torch")
    g.add_argument("--batch-size", type=int, default=16, help="crops per model call")
    g.add_argument("--recognize-every", type=int, default=1, help="recognise a track's crop every N frames")
    g.add_argument("--index", help="AttributeSearcher index folder to add crops to (created if missing)")
    g.add_argument("--index-every", type=int, default=10, help="index a crop of each track every N frames")
    g.add_argument("--query", action="append", help="after the run, search the index (repeatable)")
    g.add_argument("--k", type=int, default=5, help="hits per --query")
    g.add_argument("--show-attributes", type=int, default=4, help="attributes drawn per track")

    g = p.add_argument_group("stream handling and output")
    g.add_argument("--max-frames", type=int, help="stop after reading this many frames")
    g.add_argument("--queue-size", type=int, default=4, help="frames buffered between capture and detection")
    g.add_argument(
        "--realtime", action="store_true", help="files: read at the video's fps, dropping frames as a camera"
    )
    g.add_argument("--max-reconnects", type=int, default=5, help="live sources: consecutive failed re-opens allowed")
    g.add_argument("--reconnect-delay", type=float, default=1.0, help="first reconnect wait (s), doubled each failure")
    g.add_argument("--max-reconnect-delay", type=float, default=30.0, help="longest reconnect wait (s)")
    g.add_argument("--start-time", type=float, default=0.0, help="files: timestamp (s) of the first frame")
    g.add_argument("--simulate-latency", type=float, default=0.0, help="extra seconds per frame (to test dropping)")
    g.add_argument("--save-video", help="write the annotated frames to this .mp4/.avi")
    g.add_argument("--snapshot", help="write the annotated frame with the most people to this image file")
    g.add_argument("--display", action="store_true", help="show the annotated stream in a window (q quits)")
    g.add_argument("--report-every", type=float, default=5.0, help="seconds between progress log lines")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _check_args(p: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    positive = ("queue_size", "index_every", "recognize_every", "batch_size", "k", "min_hits")
    for name in positive:
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.synthetic_video is not None and a.synthetic_video < 1:
        p.error("--synthetic-video must be >= 1 frame")
    if a.max_frames is not None and a.max_frames < 1:
        p.error("--max-frames must be >= 1")
    if a.query and not a.index:
        p.error("--query searches the crops indexed during the run: add --index DIR")
    if a.max_reconnects < 0 or a.reconnect_delay < 0 or a.simulate_latency < 0:
        p.error("--max-reconnects, --reconnect-delay and --simulate-latency must be >= 0")


def _open_writer(path: Path, fps: float, size: tuple[int, int]) -> tuple[Any, Path]:
    """A VideoWriter for ``path`` (.mp4: mp4v, .avi: MJPG), falling back to MJPG .avi."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tries = [(path, "mp4v" if path.suffix.lower() == ".mp4" else "MJPG"), (path.with_suffix(".avi"), "MJPG")]
    for target, codec in tries:
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*codec), fps, size)
        if writer.isOpened():
            return writer, target
        writer.release()
    raise CameraStreamError(f"OpenCV cannot write {path}; try a .avi path")


class FrameProcessor:
    """The main-thread stage: per-track attribute memory, recognition, indexing, drawing and output."""

    def __init__(self, args: argparse.Namespace, recognizer: Any, searcher: Any, source: str, run_id: str) -> None:
        self.args, self.recognizer, self.searcher, self.source, self.run_id = args, recognizer, searcher, source, run_id
        self.names = recognizer.attribute_names
        self.thresholds = np.asarray([recognizer.thresholds[n] for n in self.names], np.float64)
        self.memory: dict[int, TrackAttributes] = {}
        self.finished: deque[dict[str, Any]] = deque(maxlen=50)  # bounded: a camera runs for months
        self.confirmed: set[int] = set()
        self.crops_recognized = self.crops_indexed = 0
        self.writer: Any = None
        self.video_path: Path | None = None
        self.snapshot: tuple[int, np.ndarray] | None = None
        self._times: deque[float] = deque(maxlen=30)

    @property
    def fps(self) -> float:
        """Processed frames/s over the last 30 frames (what the status line shows)."""
        t = self._times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def _finish(self, ta: TrackAttributes) -> None:
        top = ta.top(self.names, self.thresholds, 6)
        self.finished.append(
            {"track": ta.track_id, "frames": ta.frames, "crops_indexed": ta.indexed, "attributes": top}
        )

    def close_tracks(self) -> None:
        for ta in self.memory.values():
            self._finish(ta)
        self.memory.clear()

    def process(self, packet: Packet, dropped: int, fps_hint: float) -> np.ndarray:
        """Recognise (and index) the crops of the tracks seen in ``packet``; returns the annotated frame."""
        args = self.args
        alive = {t.id for t in packet.tracks}
        for tid in [tid for tid in self.memory if tid not in alive]:
            self._finish(self.memory.pop(tid))
        visible = [t for t in packet.tracks if t.age == 0 and t.confirmed]
        due = []
        for t in visible:
            self.confirmed.add(t.id)
            ta = self.memory.setdefault(t.id, TrackAttributes(t.id, np.zeros(len(self.names), np.float64)))
            ta.frames += 1
            x1, y1, x2, y2 = t.box
            if x2 - x1 < 8 or y2 - y1 < 8:
                continue
            rec_due = packet.index - ta.last_recognized >= args.recognize_every
            idx_due = self.searcher is not None and packet.index - ta.last_indexed >= args.index_every
            if rec_due or idx_due:
                due.append((t, ta, packet.frame[y1:y2, x1:x2], rec_due, idx_due))
        if due:
            self._recognize_and_index(packet, due)
        self._times.append(time.perf_counter())
        hud = (
            f"{args.camera}  {self.fps:.1f} fps  dropped {dropped}  tracks {len(visible)}  indexed {self.crops_indexed}"
        )
        drawn = [(t, self.memory[t.id].top(self.names, self.thresholds, args.show_attributes)) for t in visible]
        annotated = draw_frame(packet.frame, drawn, hud)
        if args.save_video:
            if self.writer is None:
                size = (annotated.shape[1], annotated.shape[0])
                self.writer, self.video_path = _open_writer(Path(args.save_video), fps_hint, size)
            self.writer.write(annotated)
        if args.snapshot and (self.snapshot is None or len(visible) >= self.snapshot[0]):
            self.snapshot = (len(visible), annotated)
        return annotated

    def _recognize_and_index(self, packet: Packet, due: list[tuple[Track, TrackAttributes, np.ndarray, bool, bool]]):
        probs, embs = recognize_crops(self.recognizer, [d[2] for d in due])
        rows: list[int] = []
        ids: list[str] = []
        metadata: list[dict[str, Any]] = []
        for i, (t, ta, _, rec_due, idx_due) in enumerate(due):
            if rec_due:
                ta.add(probs[i].astype(np.float64))
                ta.last_recognized = packet.index
                self.crops_recognized += 1
            if idx_due:
                ta.last_indexed = packet.index
                ta.indexed += 1
                rows.append(i)
                ids.append(f"{self.args.camera}-{self.run_id}-t{t.id}-f{packet.index}")
                metadata.append(
                    {
                        "camera": self.args.camera,
                        "timestamp": packet.timestamp,
                        "track": t.id,
                        "bbox": list(t.box),
                        "source": self.source,
                        "frame": packet.index,
                        "run": self.run_id,  # track ids restart every run; filter with where={"extra.run": ...}
                    }
                )
        if rows:
            if embs is not None:
                self.searcher.add_embeddings(embs[rows], ids, metadata, probabilities=probs[rows])
            else:  # a recognition-only bundle: the searcher stores the probabilities itself
                self.searcher.add([due[i][2] for i in rows], ids=ids, metadata=metadata)
            self.crops_indexed += len(rows)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


def _prepare_source(args: argparse.Namespace) -> str | int:
    """The source to open: ``--source`` checked, or a freshly rendered synthetic video."""
    if args.synthetic_video is None:
        source = parse_source(args.source)
        if not is_live(source) and not Path(source).is_file():
            raise CameraStreamError(f"--source {source!r} is neither an existing file, a URL nor a webcam index")
        return source
    synthetic = _synthetic_renderer()
    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="clear-camera-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    video = synthetic.write_synthetic_video(
        out_dir / "synthetic.mp4",
        num_frames=args.synthetic_video,
        num_people=args.synthetic_people,
        seed=args.seed,
        annotations=out_dir / "synthetic_truth.json",  # where each person really is, per frame
    )
    logger.info("rendered %d synthetic frames into %s", args.synthetic_video, video)
    return str(video)


def _load_models(args: argparse.Namespace) -> tuple[Any, Any]:
    """(recognizer, searcher or None): with ``--index`` the searcher's own recognizer is used (one model in memory)."""
    from clear_sdk import AttributeSearcher, Bundle, Recognizer

    if not args.index:
        return Recognizer(args.bundle, backend=args.backend, batch_size=args.batch_size), None
    bundle = Bundle.open(args.bundle)
    scorer = "embedding" if bundle.has_retrieval else "recognition"
    searcher = AttributeSearcher(bundle, index_dir=args.index, backend=args.backend, scorer=scorer)
    searcher.recognizer.batch_size = args.batch_size
    return searcher.recognizer, searcher


def main(argv: Sequence[str] | None = None, capture_factory: CaptureFactory | None = None) -> dict[str, Any]:
    """Run the pipeline; returns the summary (frames, frames/s, drops, tracks, crops indexed, search hits).

    ``capture_factory(source)`` opens a capture (default :func:`open_capture`, i.e. ``cv2.VideoCapture``);
    pass your own to read from a camera vendor's SDK.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    if args.display:
        try:
            cv2.namedWindow("clear-sdk", cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise CameraStreamError(
                "--display needs OpenCV with GUI support (opencv-python, not -headless); use --save-video instead"
            ) from e
    source = _prepare_source(args)
    live = is_live(source)
    detector = create_detector(args)
    recognizer, searcher = _load_models(args)

    stats, stop, errors = Stats(), threading.Event(), []
    fps_box = [10.0]  # the source's frame rate, set by the capture thread once it is open
    frames_q: queue.Queue = queue.Queue(maxsize=args.queue_size)
    tracks_q: queue.Queue = queue.Queue(maxsize=2)  # blocking: back-pressure reaches the capture queue
    settings = CaptureSettings(
        source, live, args.realtime, args.max_frames, args.max_reconnects, args.reconnect_delay,
        args.max_reconnect_delay, args.start_time,
    )  # fmt: skip
    factory = capture_factory or open_capture
    tracker = IouTracker(args.track_iou, args.max_age, args.min_hits)
    stages = [
        ("capture", capture_loop, (settings, factory, frames_q, stop, stats, fps_box)),
        ("detect", detect_loop, (detector, tracker, args.min_area, frames_q, tracks_q, stop, stats)),
    ]
    threads = [
        threading.Thread(target=_run_stage, args=(errors, stop, fn, *a), name=name, daemon=True)
        for name, fn, a in stages
    ]
    proc = FrameProcessor(args, recognizer, searcher, str(source), uuid.uuid4().hex[:8])
    last_report = time.perf_counter()
    for t in threads:
        t.start()
    try:
        while True:
            try:
                packet = tracks_q.get(timeout=0.1)
            except queue.Empty:
                if errors:
                    break
                continue
            if packet is _END:
                break
            if stats.process_start is None:
                stats.process_start = time.perf_counter()
            t0 = time.perf_counter()
            annotated = proc.process(packet, stats.frames_dropped, fps_box[0])
            if args.simulate_latency:
                time.sleep(args.simulate_latency)
            stats.recognize_s += time.perf_counter() - t0
            stats.frames_processed += 1
            stats.last_frame_processed = packet.index
            stats.process_end = now = time.perf_counter()
            if args.display:
                cv2.imshow("clear-sdk", annotated)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    stats.stop_reason = "quit"
                    break
            if now - last_report >= args.report_every:
                last_report = now
                logger.info(
                    "captured %d, processed %d (%.1f fps), dropped %d, tracks %d, indexed %d",
                    stats.frames_captured, stats.frames_processed, proc.fps, stats.frames_dropped,
                    len(proc.confirmed), proc.crops_indexed,
                )  # fmt: skip
    except KeyboardInterrupt:
        stats.stop_reason = "interrupted"
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5.0)
        proc.close()
        if args.display:
            cv2.destroyAllWindows()
        if errors and searcher is not None:
            searcher.close()
    if errors:
        raise errors[0]
    proc.close_tracks()
    summary = _summary(args, stats, proc, detector, recognizer, searcher, source, live)
    if searcher is not None:
        for q in args.query or []:
            hits = searcher.search(q, k=args.k)
            summary["queries"].append(
                {"query": q, "hits": [{"id": h.id, "score": h.score, "metadata": h.metadata} for h in hits]}
            )
        searcher.close()
    return summary


def _summary(
    args: argparse.Namespace,
    stats: Stats,
    proc: FrameProcessor,
    detector: Any,
    recognizer: Any,
    searcher: Any,
    source: str | int,
    live: bool,
) -> dict[str, Any]:
    def rate(n: int, start: float | None, end: float | None) -> float:
        return n / (end - start) if start is not None and end is not None and end > start else 0.0

    snapshot = None
    if args.snapshot and proc.snapshot is not None:
        Path(args.snapshot).parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(args.snapshot), proc.snapshot[1]):
            raise CameraStreamError(f"could not write {args.snapshot}")
        snapshot = str(args.snapshot)
    n = max(stats.frames_processed, 1)
    return {
        "source": str(source),
        "live": live,
        "camera": args.camera,
        "run": proc.run_id,
        "detector": detector.name,
        "backend": recognizer.backend_name,
        "frames_captured": stats.frames_captured,
        "frames_processed": stats.frames_processed,
        "frames_dropped": stats.frames_dropped,
        "last_frame_processed": stats.last_frame_processed,
        "queue_size": args.queue_size,
        "max_queue_depth": stats.max_queue_depth,
        "capture_fps": rate(stats.frames_captured, stats.capture_start, stats.capture_end),
        "processed_fps": rate(stats.frames_processed, stats.process_start, stats.process_end),
        "detect_ms_per_frame": 1000 * stats.detect_s / n,
        "recognize_ms_per_frame": 1000 * stats.recognize_s / n,
        "detections": stats.detections,
        "tracks": len(proc.confirmed),
        "track_summaries": list(proc.finished),
        "crops_recognized": proc.crops_recognized,
        "crops_indexed": proc.crops_indexed,
        "reconnects": stats.reconnects,
        "reconnect_attempts": stats.reconnect_attempts,
        "reconnect_delays": stats.reconnect_delays[-20:],
        "stop_reason": stats.stop_reason or "end of stream",
        "index": str(Path(args.index).resolve()) if args.index else None,
        "index_size": len(searcher) if searcher is not None else None,
        "video": str(proc.video_path) if proc.video_path else None,
        "snapshot": snapshot,
        "queries": [],
    }


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.DEBUG if {"-v", "--verbose"} & set(sys.argv) else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    from clear_sdk.errors import ClearSDKError

    try:
        result = main()
    except (CameraStreamError, ClearSDKError) as err:
        sys.exit(f"error: {err}")
    print(json.dumps(result, indent=2, default=str))
    sys.exit(2 if result["stop_reason"].startswith("source lost") else 0)
