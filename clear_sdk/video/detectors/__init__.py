"""Person detectors behind one interface: ``detect(frame) -> list[Detection]``.

``create_detector("ssdlite")`` (default, shipped), ``"hog"``, ``"bgsub"`` or a path to a YOLO ``.onnx``.
"""

from __future__ import annotations

from typing import Any

from clear_sdk.video.detectors.base import Detector, DetectorError, iou_matrix, nms, to_detections
from clear_sdk.video.detectors.classic import BackgroundSubtractionDetector, HogDetector
from clear_sdk.video.detectors.ssdlite import SSDLiteDetector
from clear_sdk.video.detectors.yolo import YoloOnnxDetector

DETECTORS = ("ssdlite", "hog", "bgsub")


def create_detector(kind: str = "ssdlite", **options: Any) -> Detector:
    """The detector named ``kind`` (one of :data:`DETECTORS`, or a YOLO ``.onnx`` path); None options are dropped."""
    options = {k: v for k, v in options.items() if v is not None}
    if kind == "ssdlite":
        return SSDLiteDetector(**options)
    if kind == "hog":
        return HogDetector(**options)
    if kind == "bgsub":
        return BackgroundSubtractionDetector(**options)
    if kind.lower().endswith(".onnx"):
        return YoloOnnxDetector(kind, **options)
    raise DetectorError(f"detector must be one of {', '.join(DETECTORS)} or a YOLO .onnx path, got {kind!r}")


__all__ = [
    "DETECTORS",
    "BackgroundSubtractionDetector",
    "Detector",
    "DetectorError",
    "HogDetector",
    "SSDLiteDetector",
    "YoloOnnxDetector",
    "create_detector",
    "iou_matrix",
    "nms",
    "to_detections",
]
