"""``clear-sdk demo`` (the default): the SDK's main job on real footage, with the runtime only.

The shipped default model over a real 60-second clip that ships with the package
(``clear_sdk/video/samples``, CC BY 4.0): people detected (SSDLite), tracked (ByteTrack), recognised
per track, indexed, then searched by attributes. No torch, nothing downloaded; ``clear-sdk demo --train``
is the synthetic train-export-search demo.
"""

from __future__ import annotations

import shutil
import time
from importlib import resources
from pathlib import Path
from typing import Any

#: the clip ``clear-sdk demo`` runs on (package data; its licence and source: samples/ATTRIBUTION.md)
SAMPLE_CLIP = "one-by-one-person-60s.mp4"
VIDEO_QUERIES = ["female", "man, long trousers", "short sleeves", "carries a backpack"]


def sample_clip() -> Path:
    return Path(str(resources.files("clear_sdk.video").joinpath("samples", SAMPLE_CLIP)))


def run_video_demo(
    out: str | Path = "clear-sdk-demo",
    bundle: str = "default",
    clip: str | Path | None = None,
    max_frames: int | None = None,
) -> dict[str, Any]:
    """Watch the clip into ``out/index`` and search it; returns the tracks, the searches and the timings."""
    from clear_sdk import AttributeSearcher
    from clear_sdk.schema import attribute_labels
    from clear_sdk.video import Pipeline, PipelineConfig, VideoSource

    out = Path(out)
    clip = Path(clip) if clip is not None else sample_clip()
    index_dir = out / "video-index"
    if (index_dir / "searcher.json").is_file():  # the demo's own index from an earlier run: built anew
        shutil.rmtree(index_dir)
    t0 = time.perf_counter()
    with AttributeSearcher(bundle, index_dir=index_dir) as searcher:
        before = set(searcher.index.ids)
        source = VideoSource(str(clip), "room", max_frames=max_frames)
        pipeline = Pipeline([source], searcher.recognizer, "ssdlite", searcher=searcher, config=PipelineConfig())
        summary = pipeline.run()
        ids = [i for i in searcher.index.ids if i not in before]
        metadata = dict(zip(ids, searcher.index.get_metadata(ids))) if ids else {}
        labels = attribute_labels(searcher.attribute_names, searcher.bundle.dataset)
        tracks = sorted(
            (
                {
                    "id": i,
                    "track": md.get("track"),
                    "from_s": md.get("position"),
                    "to_s": md.get("position_end"),
                    "attributes": [labels.get(a, a) for a in md.get("attributes", [])],
                    "crop": md.get("source"),
                }
                for i, md in metadata.items()
            ),
            key=lambda t: (t["from_s"] is None, t["from_s"] or 0.0),
        )
        searches = []
        for q in VIDEO_QUERIES:
            hits = searcher.search(q, k=3)
            searches.append({"query": q, "hits": [{"track": h.metadata.get("track"), "score": h.score} for h in hits]})
    return {
        "clip": str(clip),
        "bundle": bundle,
        "index": str(index_dir),
        "frames": summary["frames_processed"],
        "tracks": tracks,
        "searches": searches,
        "seconds": time.perf_counter() - t0,
    }
