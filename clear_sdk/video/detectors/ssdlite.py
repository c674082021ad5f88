"""The default person detector: SSDLite-MobileNetV2 (COCO person), shipped as ONNX, run by onnxruntime.

Two graphs ship. ``ssdlite_person.onnx`` (fp32) is the converted TF graph whole: uint8 frames in, it
resizes to 300x300, decodes and runs NMS itself. ``ssdlite_person_int8.onnx`` (the default,
``precision="int8"``) is its convolutional core only (300x300 float input; decoded boxes and person
scores out), statically quantised to int8 (QDQ) by benchmarks/video_detector_int8.py, with the
resize and NMS done here as the graph did them: 2.0x faster on this CPU, at a recall 0.025 lower on
held-out real-crop scenes (benchmarks/results/video_detector_int8.md).

The graph sees 300x300, so a wide frame squashes people sideways and small people shrink below
what it can see. ``tiles=(cols, rows)`` runs it on overlapping tiles instead (one batched call); the
boxes of all tiles then go through one NMS. The default, ``tiles=None``, is :func:`auto_grid`: one row
of tiles about 0.7 as wide as high (3x1 at 640x360, 2x1 at 720x576), or, when ``person_height`` says
the people are shorter than a third of the frame, rows of tiles about three person heights high
(5x3 for 30-70 px people at 640x360, at conf 0.2). Measured at IoU 0.5 with py-motmetrics
(benchmarks/video_real.py, results/video_real.md; conf by recall at precision >= 0.7 on tune sets):
held-out rendered scenes, 3x1 AP50 0.888 (2x1 0.870, 1x1 0.712); real campus frames 2x1 AP50 0.846
(1x1 0.814); rendered crowd of 25 people 30-70 px tall, 5x3 AP50 0.740 (2x1 0.044).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from clear_sdk.video.detectors.base import DetectorError, nms, to_detections
from clear_sdk.video.types import Detection

PERSON_CLASS = 1  # COCO label map id of "person" in the TF object-detection API


PRECISIONS = ("int8", "fp32")
CORE_INPUT = "Preprocessor/map/TensorArrayStack/TensorArrayGatherV3:0"  # the resized batch [N, 3, 300, 300]
CORE_SIZE = 300
# Score thresholds tuned on the tune real-crop scenes (best recall at precision >= 0.8; int8 3x1 at precision
# >= 0.7 in benchmarks/video_real.py picks 0.08 as well)
DEFAULT_CONF = {"fp32": 0.1, "int8": 0.08}
GRAPH_NMS_IOU, GRAPH_MAX_BOXES = 0.6, 100  # what the TF graph's own post-processing does per image
# Tiles per frame at most: each is a 300x300 input of one batched call (16: ~17 MB; 100x100 tiles grew to 24 GB),
# and the default grid (one column per frame height of width) stops at MAX_DEFAULT_COLS for very wide frames
MAX_TILES, MAX_DEFAULT_COLS = 16, 4
# The tile policy, chosen by recall at precision >= 0.7 on the tune sets at IoU 0.5 (benchmarks/video_real.py,
# results/video_real.md): people taller than a third of the frame are found best in one row of tiles about
# 0.7 as wide as high (3x1 at 640x360, 2x1 at 720x576); small people in rows of tiles about
# TILE_PERSON_HEIGHTS person heights high and 1.1 as wide (5x3 for 30-70 px people at 640x360), where a
# higher score threshold (SMALL_PEOPLE_CONF) keeps the precision of that many tiles.
ONE_ROW_TILE_ASPECT, SMALL_TILE_ASPECT, TILE_PERSON_HEIGHTS = 0.7, 1.1, 3.0
SMALL_PEOPLE_CONF = 0.2


def auto_grid(h: int, w: int, person_height: float | None = None, overlap: float = 0.25) -> tuple[int, int]:
    """(cols, rows) of tiles for an h x w frame whose people are about ``person_height`` pixels tall (None: large).

    One row of tiles ``ONE_ROW_TILE_ASPECT`` as wide as high, unless the people are shorter than a third
    of the frame: then rows of tiles ``TILE_PERSON_HEIGHTS`` person heights high. At most MAX_TILES.
    """

    def count(length: float, tile: float) -> float:  # tiles of ``tile`` px covering ``length`` with the overlap
        return (length / tile - overlap) / (1 - overlap)

    if person_height and TILE_PERSON_HEIGHTS * person_height < h:
        rows = max(1, int(np.ceil(count(h, TILE_PERSON_HEIGHTS * person_height) - 1e-9)))
        tile_h, aspect = h / (rows - (rows - 1) * overlap), SMALL_TILE_ASPECT
    else:
        rows, tile_h, aspect = 1, float(h), ONE_ROW_TILE_ASPECT
    cols = max(1, round(count(w, aspect * tile_h)))
    if rows == 1:
        cols = min(cols, MAX_DEFAULT_COLS)
    while cols * rows > MAX_TILES:
        cols, rows = (cols - 1, rows) if cols >= rows else (cols, rows - 1)
    return cols, rows


def default_model_path(precision: str = "fp32") -> Path:
    """A detector graph shipped inside clear_sdk (clear_sdk/video/models/ssdlite_person[_int8].onnx)."""
    if precision not in PRECISIONS:
        raise DetectorError(f"SSDLite precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    name = "ssdlite_person.onnx" if precision == "fp32" else "ssdlite_person_int8.onnx"
    return Path(str(resources.files("clear_sdk.video") / "models" / name))


def resize_like_tf(image: np.ndarray, size: int = CORE_SIZE) -> np.ndarray:
    """Bilinear resize to size x size as TF1's ``resize_bilinear`` (align_corners=False) samples: src = dst * scale.

    cv2.resize centres pixels (src = (dst + 0.5) * scale - 0.5); the graph was trained on TF's
    sampling, so it is reproduced with an affine warp instead (same cost).
    """
    h, w = image.shape[:2]
    m = np.float32([[w / size, 0, 0], [0, h / size, 0]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, m, (size, size), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def tile_grid(h: int, w: int, cols: int, rows: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """(x1, y1, x2, y2) of ``cols`` x ``rows`` tiles covering an h x w frame, neighbours overlapping by ``overlap``."""

    def spans(n: int, size: int) -> list[tuple[int, int]]:
        if n <= 1:
            return [(0, size)]
        length = size / (n - (n - 1) * overlap)
        step = length * (1 - overlap)
        return [(round(i * step), min(size, round(i * step + length))) for i in range(n)]

    return [(x1, y1, x2, y2) for y1, y2 in spans(rows, h) for x1, x2 in spans(cols, w)]


class SSDLiteDetector:
    """People in a BGR frame: score >= ``conf``, after NMS at ``nms_iou`` across tiles.

    ``precision``: ``"int8"`` (default, the quantised core) or ``"fp32"`` (the converted graph whole);
    ``model``: another graph of either form. ``conf`` defaults to the threshold tuned for the precision.
    ``threads``: intra-op threads (1: the pipeline runs one detector per camera, each on its own core).
    ``person_height``: how tall people are in the frame (pixels), for the tile grid when ``tiles`` is None
    (:func:`auto_grid`); with it, ``conf`` defaults to SMALL_PEOPLE_CONF.
    """

    name = "ssdlite"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        precision: str = "int8",
        conf: float | None = None,
        nms_iou: float = 0.5,
        tiles: tuple[int, int] | None = None,
        overlap: float = 0.25,
        threads: int | None = 1,
        person_height: float | None = None,
    ) -> None:
        import onnxruntime as ort

        path = Path(model) if model is not None else default_model_path(precision)
        if not path.is_file():
            how = "export/detector_onnx.py" if precision == "fp32" else "benchmarks/video_detector_int8.py"
            raise DetectorError(f"SSDLite model not found: {path} (re-create it with {how})")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.core = self.input_name == CORE_INPUT  # the int8 core graph: resize and NMS are ours
        if not self.core and self.input_name != "image_tensor:0":
            raise DetectorError(f"{path} is not an SSDLite person graph (its input is {self.input_name!r})")
        self.precision = precision if model is None else ("core" if self.core else "full")
        if conf is None:  # small people (person_height given): many tiles, a higher threshold
            small = person_height is not None and tiles is None
            conf = SMALL_PEOPLE_CONF if small else DEFAULT_CONF.get(precision, 0.1)
        self.conf = float(conf)
        self.nms_iou = float(nms_iou)
        self.tiles = None if tiles is None else (int(tiles[0]), int(tiles[1]))
        if self.tiles is not None and not (min(self.tiles) >= 1 and self.tiles[0] * self.tiles[1] <= MAX_TILES):
            raise DetectorError(f"tiles {self.tiles}: COLS and ROWS >= 1 and at most {MAX_TILES} tiles in all")
        self.overlap = float(overlap)
        if person_height is not None and not person_height > 0:
            raise DetectorError(f"person_height must be a positive number of pixels, got {person_height!r}")
        self.person_height = person_height

    def _run(self, batch: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per image of ``batch`` [N, H, W, 3] RGB: (person boxes [K, 4] xyxy in its pixels, scores [K])."""
        boxes, scores, classes, num = self.session.run(None, {self.input_name: batch})
        h, w = batch.shape[1:3]
        out = []
        for i in range(len(batch)):
            n = int(num[i])
            keep = (classes[i, :n] == PERSON_CLASS) & (scores[i, :n] >= self.conf)
            b = boxes[i, :n][keep].astype(np.float64)  # ymin, xmin, ymax, xmax in [0, 1]
            out.append((np.column_stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h]), scores[i, :n][keep]))
        return out

    def _run_core(self, tiles: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """As :meth:`_run`, through the core graph: TF's resize here, then TF's per-image NMS (IoU 0.6, 100 boxes)."""
        batch = np.stack([resize_like_tf(t) for t in tiles]).transpose(0, 3, 1, 2).astype(np.float32)
        boxes, scores = self.session.run(None, {self.input_name: batch})  # [N, A, 1, 4] in [0, 1], [N, A, 1]
        out = []
        for t, b, sc in zip(tiles, boxes[:, :, 0], scores[:, :, 0]):
            h, w = t.shape[:2]
            keep = sc >= self.conf
            b, sc = b[keep].astype(np.float64).clip(0.0, 1.0), sc[keep]  # ymin, xmin, ymax, xmax
            xyxy = np.column_stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h])
            k = nms(xyxy, sc, self.conf, GRAPH_NMS_IOU)[:GRAPH_MAX_BOXES]
            out.append((xyxy[k], sc[k]))
        return out

    def grid(self, h: int, w: int) -> tuple[int, int]:
        """(cols, rows) of tiles for an h x w frame: ``tiles``, or :func:`auto_grid` by frame and person size."""
        return self.tiles or auto_grid(h, w, self.person_height, self.overlap)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """People in several BGR frames (say, one per camera) through one graph call holding all their tiles."""
        rgbs = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames]
        grids = [tile_grid(r.shape[0], r.shape[1], *self.grid(*r.shape[:2]), self.overlap) for r in rgbs]
        crops = [r[y1:y2, x1:x2] for r, tiles in zip(rgbs, grids) for x1, y1, x2, y2 in tiles]
        if self.core:
            found = self._run_core(crops)
        else:
            th, tw = max(c.shape[0] for c in crops), max(c.shape[1] for c in crops)
            batch = np.zeros((len(crops), th, tw, 3), np.uint8)  # one call for all tiles (rounding may pad a pixel)
            for i, c in enumerate(crops):
                batch[i, : c.shape[0], : c.shape[1]] = c
            found = self._run(batch)
        out, start = [], 0
        for frame, tiles in zip(frames, grids):
            out.append(self._merge(found[start : start + len(tiles)], tiles, frame.shape))
            start += len(tiles)
        return out

    def _merge(self, found, tiles, shape) -> list[Detection]:
        """The boxes of all tiles in frame pixels, through one NMS when there are several tiles."""
        xyxy = np.concatenate([b + [x1, y1, x1, y1] for (b, _), (x1, y1, _, _) in zip(found, tiles)])
        scores = np.concatenate([s for _, s in found])
        if len(tiles) > 1:
            keep = nms(xyxy, scores, self.conf, self.nms_iou)
            xyxy, scores = xyxy[keep], scores[keep]
        return to_detections(xyxy, scores, shape)
