"""Where the time of the two-camera pipeline goes: frames/s per variant, and wall and CPU time per stage.

Runs :class:`clear_sdk.video.Pipeline` on the two 640x360 real-crop scene videos of
``video_scenes.py --part fps`` (read at full speed, no drops), once per variant, variants
interleaved over ``--rounds`` so that a noisy machine hits them alike. Each stage (decode, detector,
tracker, crop quality, recogniser preprocessing and model, indexing) is timed by wrapping the
pipeline's own objects: wall time and the CPU time of the calling thread (``time.thread_time``),
so "busy" and "waiting for a core" can be told apart. A variant is a set of ``key=value`` options:

    det_threads=N      intra-op threads of each SSDLite session (default 1)
    rec_threads=N      a Recognizer with N intra-op threads (default: the searcher's, onnxruntime's default)
    tiles=CxR          SSDLite tiles (default 2x1)
    precision=P        SSDLite int8 (default) or fp32

    python benchmarks/video_profile.py --variant "" --variant rec_threads=1 --rounds 2
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import video_scenes as vs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    """Wall and thread-CPU seconds per stage, summed over calls from every thread."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = collections.defaultdict(float)
        self.cpu: dict[str, float] = collections.defaultdict(float)
        self.calls: dict[str, int] = collections.defaultdict(int)
        self._lock = threading.Lock()

    def wrap(self, stage: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            w, c = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                dw, dc = time.perf_counter() - w, time.thread_time() - c
                with self._lock:
                    self.wall[stage] += dw
                    self.cpu[stage] += dc
                    self.calls[stage] += 1

        return timed


class TimedCapture:
    """cv2.VideoCapture whose ``read`` (decode) is timed."""

    def __init__(self, source, clock: Clock) -> None:
        self.cap = cv2.VideoCapture(source)
        self.read = clock.wrap("decode", self.cap.read)

    def __getattr__(self, name):
        return getattr(self.cap, name)


def write_videos(tmp: Path, args) -> list[Path]:
    scenes = list(vs.scene_set(args.crops, 2, 300, args.people, args.frames))
    paths = []
    for i, sc in enumerate(scenes):
        path = tmp / f"cam{i}.mp4"
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (vs.SIZE[1], vs.SIZE[0]))
        for f in sc[0] * args.repeat:
            w.write(f)
        w.release()
        paths.append(path)
    return paths


def parse_variant(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, text.replace(",", " ").split()):
        key, _, value = part.partition("=")
        if key not in ("det_threads", "rec_threads", "tiles", "precision"):
            sys.exit(f"unknown variant option {key!r} in {text!r}")
        out[key] = value
    return out


def run_variant(variant: dict[str, str], paths: list[Path], args, tmp: Path, run_no: int) -> dict:
    from clear_sdk import AttributeSearcher, Recognizer
    from clear_sdk.video import Pipeline, PipelineConfig, VideoSource

    clock = Clock()
    searcher = AttributeSearcher(args.bundle, index_dir=tmp / f"index-{run_no}")
    rec = Recognizer(args.bundle, threads=int(variant["rec_threads"])) if "rec_threads" in variant else None
    rec = rec or searcher.recognizer
    rec.run_batch = clock.wrap("recognizer model", rec.run_batch)
    rec.preprocess = clock.wrap("recognizer preprocess", rec.preprocess)
    tiles = tuple(int(v) for v in variant.get("tiles", "2x1").split("x"))
    det_opts = {"tiles": tiles, "threads": int(variant.get("det_threads", 1))}
    det_opts["precision"] = variant.get("precision", "int8")
    config = PipelineConfig()
    srcs = [
        VideoSource(str(p), f"cam{i}", capture_factory=lambda s: TimedCapture(s, clock)) for i, p in enumerate(paths)
    ]
    pipe = Pipeline(srcs, rec, "ssdlite", detector_options=det_opts, searcher=searcher, config=config)
    for d in pipe.detectors.values():
        d.detect = clock.wrap("detector", d.detect)
    factory = pipe.feeds.tracker_factory

    def tracker(fps):
        t = factory(fps)
        t.update = clock.wrap("tracker", t.update)
        return t

    pipe.feeds.tracker_factory = tracker
    import clear_sdk.video.open_tracks as pl  # where the crops due are weighed

    quality = pl.crop_quality
    pl.crop_quality = clock.wrap("crop quality", quality)
    if pipe.indexer is not None:
        pipe.indexer.index = clock.wrap("indexing", pipe.indexer.index)
    pipe.step = clock.wrap("recognition step (all)", pipe.step)
    cpu0 = time.process_time()
    summary = pipe.run()
    cpu = time.process_time() - cpu0
    pl.crop_quality = quality
    searcher.close()
    fps = [s["fps"] for s in summary["sources"]]
    return {
        "variant": variant,
        "fps_per_camera": fps,
        "wall_s": summary["wall_s"],
        "process_cpu_s": cpu,
        "frames": summary["frames_processed"],
        "crops": summary["crops"],
        "stages": {
            k: {"wall_s": clock.wall[k], "cpu_s": clock.cpu[k], "calls": clock.calls[k]} for k in sorted(clock.wall)
        },
    }


def markdown(report: dict) -> str:
    lines = [f"# Two-camera pipeline profile ({report['machine']})", "", f"`{report['command']}`", ""]
    lines += [
        "| variant | frames/s per camera (each round) | wall s | process CPU s | crops |",
        "| --- | --- | --- | --- | --- |",
    ]
    by = collections.defaultdict(list)
    for r in report["runs"]:
        by[json.dumps(r["variant"], sort_keys=True)].append(r)
    for key, runs in by.items():
        name = " ".join(f"{k}={v}" for k, v in json.loads(key).items()) or "default"
        fps = ", ".join(f"{min(r['fps_per_camera']):.1f}" for r in runs)
        lines.append(
            f"| {name} | {fps} | {np.median([r['wall_s'] for r in runs]):.1f} | "
            f"{np.median([r['process_cpu_s'] for r in runs]):.1f} | {runs[0]['crops']} |"
        )
    for key, runs in by.items():
        name = " ".join(f"{k}={v}" for k, v in json.loads(key).items()) or "default"
        r = runs[-1]
        lines += ["", f"Stages of `{name}` (last round; {r['frames']} frames, wall {r['wall_s']:.1f} s):", ""]
        lines += ["| stage | calls | wall s | CPU s | CPU ms per frame |", "| --- | --- | --- | --- | --- |"]
        for stage, s in r["stages"].items():
            per_frame = 1000 * s["cpu_s"] / r["frames"]
            lines.append(f"| {stage} | {s['calls']} | {s['wall_s']:.2f} | {s['cpu_s']:.2f} | {per_frame:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default="peta-lite0")
    p.add_argument("--variant", action="append", default=None, help="key=value options ('' = the defaults)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--crops", default="pa100k", choices=["pa100k", "peta"])
    p.add_argument("--people", type=int, default=6)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "video_profile.json"))
    args = p.parse_args()
    variants = [parse_variant(v) for v in (args.variant or [""])]
    tmp = Path(tempfile.mkdtemp(prefix="clear-video-profile-"))
    paths = write_videos(tmp, args)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
        "command": "python " + " ".join(sys.argv),
        "runs": [],
    }
    n = 0
    for _ in range(args.rounds):
        for v in variants:
            r = run_variant(v, paths, args, tmp, n)
            n += 1
            report["runs"].append(r)
            print(json.dumps({k: r[k] for k in ("variant", "fps_per_camera", "wall_s", "process_cpu_s")}), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
