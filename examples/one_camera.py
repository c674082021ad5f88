"""One camera (or video file) -> people detected, tracked, recognised per track, indexed for search.

    python examples/one_camera.py rtsp://user:pass@host/stream1 --bundle BUNDLE --index /data/people --camera gate-3
    python examples/one_camera.py street.mp4 --bundle clear-sdk-demo/bundle --index /tmp/people --out annotated.mp4

Then: ``clear-sdk search "female, backpack" --index /data/people --grid hits.png``. The same as
``clear-sdk watch`` with one source, written out so you can see the library calls and change them.
``main(argv)`` returns the run summary.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from typing import Any

import cv2

from clear_sdk import AttributeSearcher
from clear_sdk.video import Pipeline, PipelineConfig, VideoSource, draw_tracks


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="video file, rtsp:// or http:// URL, or webcam index (0)")
    p.add_argument("--bundle", required=True, help="model bundle folder or shipped model name")
    p.add_argument("--index", required=True, help="index folder for the tracks")
    p.add_argument("--camera", help="camera name stored with each track (default: file stem or URL)")
    p.add_argument("--detector", default="ssdlite", help="ssdlite (shipped), hog, bgsub or a YOLO .onnx")
    p.add_argument("--out", help="write the annotated video here")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    args = p.parse_args(argv)

    searcher = AttributeSearcher(args.bundle, index_dir=args.index)
    source = VideoSource(args.source, args.camera, max_frames=args.max_frames)
    writer = None

    def on_frame(frame, boxes, tracks) -> None:  # called after each frame is recognised
        nonlocal writer
        if not args.out:
            return
        img = draw_tracks(frame.image, boxes, tracks, pipeline.names, pipeline.thresholds, status=frame.source)
        if writer is None:
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            writer = cv2.VideoWriter(args.out, fourcc, source.fps or 10.0, (img.shape[1], img.shape[0]))
        writer.write(img)

    pipeline = Pipeline(
        [source],
        searcher.recognizer,
        args.detector,
        searcher=searcher,
        config=PipelineConfig(recognize_every=3),
        on_frame=on_frame,
    )
    summary = pipeline.run()  # until the file ends, the camera is lost for good, or Ctrl-C
    if writer is not None:
        writer.release()
    searcher.close()
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    s = main()
    print(json.dumps({k: v for k, v in s.items() if k != "recent_tracks"}, indent=2, default=str))
