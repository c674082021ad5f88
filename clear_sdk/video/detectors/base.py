"""What every person detector offers (``name``, ``detect(frame)``), and the box helpers they share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from clear_sdk.errors import ClearSDKError
from clear_sdk.video.types import Detection


class DetectorError(ClearSDKError):
    """A detector that cannot run here (a missing model file, an OpenCV without the feature, a bad option)."""


class Detector(Protocol):
    """Person boxes in one BGR frame. Detectors may keep state (background subtraction): one per source."""

    name: str

    def detect(self, frame: np.ndarray) -> list[Detection]: ...


def to_detections(xyxy: np.ndarray, scores: np.ndarray, shape: Sequence[int], min_area: float = 1.0) -> list[Detection]:
    """Round, clip to the frame and drop empty boxes."""
    h, w = int(shape[0]), int(shape[1])
    boxes = np.round(np.asarray(xyxy, np.float64).reshape(-1, 4)).astype(np.int64)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    out = []
    for b, s in zip(boxes, np.ravel(scores)):
        if (b[2] - b[0]) * (b[3] - b[1]) >= max(min_area, 1.0):
            out.append(Detection((int(b[0]), int(b[1]), int(b[2]), int(b[3])), float(s)))
    return out


def nms(xyxy: np.ndarray, scores: np.ndarray, conf: float, iou: float) -> np.ndarray:
    """Indices kept by OpenCV's non-maximum suppression (boxes scoring under ``conf`` are dropped first)."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    if not len(xyxy):
        return np.zeros(0, np.int64)
    xywh = np.column_stack([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]])
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), np.ravel(scores).astype(float).tolist(), float(conf), float(iou))
    return np.asarray(keep, np.int64).reshape(-1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` [N, 4] with every box of ``b`` [M, 4] (xyxy)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None]
    iw = (np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])).clip(min=0)
    ih = (np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])).clip(min=0)
    inter = iw * ih
    union = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(union - inter, 1e-9)
