"""Model-free detectors: OpenCV's HOG people detector and MOG2 background subtraction."""

from __future__ import annotations

import cv2
import numpy as np

from clear_sdk.video.detectors.base import DetectorError, nms, to_detections
from clear_sdk.video.types import Detection


class HogDetector:
    """OpenCV's HOG + linear SVM people detector (Dalal & Triggs): no model file.

    It needs upright people at least ~100 px tall (its window is 64x128); ``width`` shrinks the frame
    first (much faster, smaller people are then missed). OpenCV 5 removed ``cv2.HOGDescriptor``.
    """

    name = "hog"

    def __init__(self, conf: float = 0.3, nms_iou: float = 0.45, width: int | None = None, scale: float = 1.05):
        if not hasattr(cv2, "HOGDescriptor"):
            raise DetectorError(
                f"OpenCV {cv2.__version__} has no cv2.HOGDescriptor (OpenCV 5 removed it): install "
                "'opencv-python-headless>=4.10,<5', or use the ssdlite detector"
            )
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.conf, self.nms_iou, self.width, self.scale = float(conf), float(nms_iou), width, float(scale)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        f = 1.0
        img = frame
        if self.width and frame.shape[1] > self.width:
            f = self.width / frame.shape[1]
            img = cv2.resize(frame, (self.width, max(1, round(frame.shape[0] * f))), interpolation=cv2.INTER_AREA)
        win_w, win_h = self.hog.winSize
        if img.shape[0] < win_h or img.shape[1] < win_w:  # smaller than the 64x128 window: nobody fits, and
            return []  # OpenCV's detectMultiScale corrupts the heap on such frames (the process aborts)
        rects, weights = self.hog.detectMultiScale(img, winStride=(8, 8), padding=(8, 8), scale=self.scale)
        if len(rects) == 0:
            return []
        rects = np.asarray(rects, np.float64).reshape(-1, 4) / f
        xyxy = np.column_stack([rects[:, :2], rects[:, :2] + rects[:, 2:]])
        scores = np.asarray(weights, np.float64).reshape(-1)
        keep = nms(xyxy, scores, self.conf, self.nms_iou)
        return to_detections(xyxy[keep], scores[keep], frame.shape)


class BackgroundSubtractionDetector:
    """Moving blobs from MOG2 background subtraction, for fixed cameras (fast, no model).

    Anything large that moves counts as a person; someone standing still fades into the background
    after about ``history`` frames; shadows (MOG2's grey) are ignored. Keep one per camera.
    """

    name = "bgsub"
    #: MOG2 learns the background from every frame it sees: DetectionSchedule runs it on every frame
    needs_every_frame = True

    def __init__(self, history: int = 100, var_threshold: float = 16.0, min_aspect: float = 0.8, min_area: int = 400):
        self.subtractor = cv2.createBackgroundSubtractorMOG2(
            history=int(history), varThreshold=float(var_threshold), detectShadows=True
        )
        self.min_aspect, self.min_area = float(min_aspect), int(min_area)
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))

    def detect(self, frame: np.ndarray) -> list[Detection]:
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
            if h < self.min_aspect * w or w * h < self.min_area:  # people are taller than wide
                continue
            boxes.append((x, y, x + w, y + h))
            scores.append(min(1.0, cv2.contourArea(c) / float(w * h)))  # how solid the blob is
        if not boxes:
            return []
        return to_detections(np.asarray(boxes), np.asarray(scores), frame.shape)
