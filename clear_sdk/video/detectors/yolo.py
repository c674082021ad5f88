"""Any YOLO-format ONNX detector (v5/v7 ``[1, N, 5+nc]`` or v8/v11 ``[1, 4+nc, N]``), people = one class or several.

``person_class`` may name several classes that are all people (a fall detector's "standing" and "fallen"):
a box's person score is then the best of those classes' scores.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from clear_sdk.video.detectors.base import DetectorError, nms, to_detections
from clear_sdk.video.types import Detection


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
    """A YOLO ONNX file run by onnxruntime; ``layout="auto"`` reads the smaller trailing dim as the box vector."""

    name = "yolo"

    def __init__(
        self,
        path: str | os.PathLike[str],
        conf: float = 0.35,
        nms_iou: float = 0.45,
        person_class: int | Sequence[int] = 0,
        size: int = 640,
        layout: str = "auto",
        threads: int | None = 1,
    ) -> None:
        import onnxruntime as ort

        if layout not in ("auto", "v8", "v5"):
            raise DetectorError(f"YOLO layout must be auto, v8 or v5, got {layout!r}")
        if not Path(path).is_file():
            raise DetectorError(f"detector model not found: {path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        if len(inp.shape) != 4:
            raise DetectorError(f"{path}: expected an image input [1, 3, H, W], got {inp.shape}")
        dims = [d if isinstance(d, int) and d > 0 else int(size) for d in inp.shape[2:]]
        self.input_name, self.input_size = inp.name, (dims[0], dims[1])
        self.dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self.conf, self.nms_iou, self.layout = float(conf), float(nms_iou), layout
        self.person_classes = [int(person_class)] if np.ndim(person_class) == 0 else [int(c) for c in person_class]
        self.person_class = self.person_classes[0]

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        img, scale, left, top = letterbox(frame, self.input_size)
        x = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None].astype(self.dtype) / self.dtype(255.0)
        return np.ascontiguousarray(x), scale, left, top

    def decode(self, output: np.ndarray, scale: float, left: int, top: int, shape: Sequence[int]) -> list[Detection]:
        """Raw network output -> person detections in frame pixels (score filter, class filter, NMS)."""
        out = np.asarray(output, np.float32)
        if out.ndim == 3 and out.shape[0] == 1:
            out = out[0]
        if out.ndim != 2:
            raise DetectorError(f"YOLO output must be [1, 4+nc, N] or [1, N, 5+nc], got {np.shape(output)}")
        layout = self.layout if self.layout != "auto" else ("v8" if out.shape[0] < out.shape[1] else "v5")
        preds = out.T if layout == "v8" else out
        first = 4 if layout == "v8" else 5
        nc = preds.shape[1] - first
        if nc < 1 or max(self.person_classes) >= nc:
            raise DetectorError(
                f"YOLO output {np.shape(output)} read as {layout} has {max(nc, 0)} classes; person class "
                f"{max(self.person_classes)} does not exist (set person_class, or layout v8/v5)"
            )
        cls = preds[:, first:]
        if layout == "v5":
            cls = cls * preds[:, 4:5]  # class confidence = objectness x class probability
        best = cls.argmax(axis=1)
        scores = cls[np.arange(len(cls)), best]
        mask = np.isin(best, self.person_classes) & (scores >= self.conf)
        if not mask.any():
            return []
        cx, cy, bw, bh = (preds[mask, i] for i in range(4))
        xyxy = np.column_stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]).astype(np.float64)
        xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - left) / scale
        xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - top) / scale
        keep = nms(xyxy, scores[mask], self.conf, self.nms_iou)
        return to_detections(xyxy[keep], scores[mask][keep], shape)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        x, scale, left, top = self.preprocess(frame)
        output = self.session.run(None, {self.input_name: x})[0]
        return self.decode(output, scale, left, top, frame.shape)
