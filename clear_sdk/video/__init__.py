"""clear_sdk.video: camera streams -> people detected, tracked, recognised per track, and indexed for search.

    from clear_sdk import AttributeSearcher
    from clear_sdk.video import Pipeline, VideoSource

    searcher = AttributeSearcher("bundle", index_dir="gallery")
    sources = [VideoSource("rtsp://cam1/stream", "gate"), VideoSource("lobby.mp4", "lobby")]
    summary = Pipeline(sources, searcher.recognizer, searcher=searcher).run()

Torch-free: numpy, OpenCV, onnxruntime, and ``supervision`` for ByteTrack (``pip install 'clear-sdk[video]'``).
The default detector (SSDLite-MobileNetV2, MIT) ships with the package. Names load lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Pipeline": "clear_sdk.video.pipeline",
    "PipelineConfig": "clear_sdk.video.pipeline",
    "VideoSource": "clear_sdk.video.sources",
    "SourceError": "clear_sdk.video.sources",
    "DropOldestQueue": "clear_sdk.video.queues",
    "ByteTracker": "clear_sdk.video.tracking",
    "TrackAttributes": "clear_sdk.video.aggregate",
    "crop_quality": "clear_sdk.video.aggregate",
    "TrackIndexer": "clear_sdk.video.indexer",
    "create_detector": "clear_sdk.video.detectors",
    "SSDLiteDetector": "clear_sdk.video.detectors",
    "Detection": "clear_sdk.video.types",
    "TrackedBox": "clear_sdk.video.types",
    "Frame": "clear_sdk.video.types",
    "draw_tracks": "clear_sdk.video.draw",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'clear_sdk.video' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
