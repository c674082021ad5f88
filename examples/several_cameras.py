"""Several cameras in one process: one detector and tracker per camera, one Recognizer batching all their crops.

    python examples/several_cameras.py --bundle BUNDLE --index /data/people \\
        gate=rtsp://10.0.0.7/stream1 lobby=rtsp://10.0.0.8/stream1 yard=yard.mp4

Each camera's frames go through a bounded queue that drops the oldest frame when the model falls
behind (live sources), so memory stays flat; a camera that drops is re-opened with backoff. Every
few seconds the frames/s, drops and latency of each camera are logged; at the end a query shows
where people were seen. ``main(argv)`` returns the summary and the query's hits.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from clear_sdk import AttributeSearcher
from clear_sdk.video import Pipeline, PipelineConfig, VideoSource

logger = logging.getLogger("several_cameras")


def parse_camera(text: str) -> tuple[str, str]:
    """``name=source`` (or just ``source``, named after it)."""
    name, sep, source = text.partition("=")
    return (name, source) if sep and "://" not in name else (None, text)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cameras", nargs="+", help="NAME=SOURCE (a video file, URL or webcam index)")
    p.add_argument("--bundle", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--query", default="female, backpack", help="asked of the index at the end")
    p.add_argument("--detector", default="ssdlite", help="ssdlite (shipped), hog, bgsub or a YOLO .onnx")
    p.add_argument("--realtime", action="store_true", help="pace files at their frame rate, like cameras")
    p.add_argument("--max-frames", type=int, help="stop each camera after this many frames")
    p.add_argument("--report-every", type=float, default=5.0, help="seconds between progress lines")
    args = p.parse_args(argv)

    sources = [
        VideoSource(src, name, realtime=args.realtime, max_frames=args.max_frames)
        for name, src in map(parse_camera, args.cameras)
    ]
    searcher = AttributeSearcher(args.bundle, index_dir=args.index)
    last = [time.monotonic()]

    def report(frame, boxes, tracks) -> None:
        if time.monotonic() - last[0] < args.report_every:
            return
        last[0] = time.monotonic()
        for s in sources:
            st = pipeline.stats[s.name].to_dict(s)
            logger.info(
                "%s: %d frames, %.1f fps, %d dropped, p95 latency %s ms, %d tracks, %d indexed",
                s.name,
                st["frames_processed"],
                st["fps"],
                st["frames_dropped"],
                st["latency_ms"]["p95"] and round(st["latency_ms"]["p95"]),
                st["tracks"],
                st["tracks_indexed"],
            )

    config = PipelineConfig(queue_size=4, recognize_every=3, reindex_every_s=30.0)
    pipeline = Pipeline(sources, searcher.recognizer, args.detector, searcher=searcher, config=config, on_frame=report)
    summary = pipeline.run()
    hits = searcher.search(args.query, k=5)
    summary["query"] = {
        "query": args.query,
        "hits": [
            {
                "camera": h.metadata.get("camera"),
                "track": h.metadata.get("track"),
                "from": h.metadata.get("timestamp"),
                "to": h.metadata.get("end"),
                "crop": h.metadata.get("source"),
                "score": h.score,
            }
            for h in hits
        ],
    }
    searcher.close()
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    s = main()
    print(json.dumps({k: v for k, v in s.items() if k != "recent_tracks"}, indent=2, default=str))
