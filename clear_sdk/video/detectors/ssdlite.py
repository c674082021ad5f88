"""The default person detector: SSDLite-MobileNetV2 (COCO person), shipped as ONNX, run by onnxruntime.

The graph resizes its input to 300x300 itself, so a wide frame squashes people sideways and small
people shrink below what it can see. ``tiles=(cols, rows)`` runs it on overlapping tiles instead
(2x1 on a 16:9 frame keeps people's aspect); the boxes of all tiles then go through one NMS.
The defaults are the values tuned on real-crop scenes (benchmarks/video_scenes.py).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from clear_sdk.video.detectors.base import DetectorError, nms, to_detections
from clear_sdk.video.types import Detection

PERSON_CLASS = 1  # COCO label map id of "person" in the TF object-detection API


def default_model_path() -> Path:
    """The ONNX file shipped inside clear_sdk (clear_sdk/video/models/ssdlite_person.onnx)."""
    return Path(str(resources.files("clear_sdk.video") / "models" / "ssdlite_person.onnx"))


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
    """People in a BGR frame: score >= ``conf``, after NMS at ``nms_iou`` across tiles."""

    name = "ssdlite"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        conf: float = 0.3,
        nms_iou: float = 0.5,
        tiles: tuple[int, int] = (1, 1),
        overlap: float = 0.25,
        threads: int | None = 1,
    ) -> None:
        import onnxruntime as ort

        path = Path(model) if model is not None else default_model_path()
        if not path.is_file():
            raise DetectorError(f"SSDLite model not found: {path} (re-create it with export/detector_onnx.py)")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.conf, self.nms_iou = float(conf), float(nms_iou)
        self.tiles, self.overlap = (int(tiles[0]), int(tiles[1])), float(overlap)

    def _run(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(boxes [N, 4] xyxy in ``rgb`` pixels, scores [N]) of the person class."""
        boxes, scores, classes, num = self.session.run(None, {self.input_name: rgb[None]})
        n = int(num[0])
        keep = (classes[0, :n] == PERSON_CLASS) & (scores[0, :n] >= self.conf)
        b = boxes[0, :n][keep].astype(np.float64)  # ymin, xmin, ymax, xmax in [0, 1]
        h, w = rgb.shape[:2]
        return np.column_stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h]), scores[0, :n][keep]

    def detect(self, frame: np.ndarray) -> list[Detection]:
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        all_boxes, all_scores = [], []
        for x1, y1, x2, y2 in tile_grid(h, w, *self.tiles, self.overlap):
            b, s = self._run(np.ascontiguousarray(rgb[y1:y2, x1:x2]))
            all_boxes.append(b + [x1, y1, x1, y1])
            all_scores.append(s)
        xyxy, scores = np.concatenate(all_boxes), np.concatenate(all_scores)
        if self.tiles != (1, 1):
            keep = nms(xyxy, scores, self.conf, self.nms_iou)
            xyxy, scores = xyxy[keep], scores[keep]
        return to_detections(xyxy, scores, frame.shape)
