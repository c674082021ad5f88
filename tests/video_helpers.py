"""Helpers shared by the video tests: a scripted live camera, and a video file's frames read whole."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np


class ScriptedLive:
    """A live camera (an OpenCV capture's surface) delivering ``frames`` as fast as they are read, whatever
    arrays they are, then dropping for good."""

    def __init__(self, frames: list) -> None:
        self.frames = list(frames)

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return bool(self.frames)

    def read(self):
        if not self.frames:
            return False, None
        time.sleep(0.002)
        return True, self.frames.pop(0)

    def get(self, prop_id: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


def read_frames(path: Path) -> list[np.ndarray]:
    """Every frame of the video at ``path``, decoded by OpenCV."""
    cap, out = cv2.VideoCapture(str(path)), []
    while True:
        ok, f = cap.read()
        if not ok:
            return out
        out.append(f)
