"""``clear-sdk watch``: cameras or video files -> people tracked, their attributes aggregated, tracks indexed.

A typer-compatible function; ``clear_sdk/cli.py`` registers it. Imports stay inside the body so that
``clear-sdk --help`` loads neither OpenCV nor onnxruntime.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer


def _fail(message: str, code: int = 1) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _parse_tiles(text: str) -> tuple[int, int]:
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        _fail(f"--tiles {text!r}: write COLSxROWS, e.g. 2x1")
    if cols < 1 or rows < 1:
        _fail(f"--tiles {text!r}: both counts must be >= 1")
    return cols, rows


def _progress_table(pipeline: Any) -> Any:
    from rich.table import Table

    t = Table(title="clear-sdk watch (Ctrl-C stops; indexed tracks are kept)")
    for col in ("camera", "frames", "fps", "dropped", "latency p95 ms", "tracks", "indexed"):
        t.add_column(col, justify="right")
    for s in pipeline.sources:
        d = pipeline.stats[s.name].to_dict(s)
        p95 = d["latency_ms"]["p95"]
        t.add_row(s.name, str(d["frames_processed"]), f"{d['fps']:.1f}", str(d["frames_dropped"]),
                  f"{p95:.0f}" if p95 is not None else "-", str(d["tracks"]), str(d["tracks_indexed"]))  # fmt: skip
    return t


class _Outputs:
    """Per-frame work in the caller's thread: the annotated video files, the window, the live table."""

    def __init__(self, pipeline: Any, out: str | None, show: bool, live: Any) -> None:
        self.pipeline, self.out, self.show, self.live = pipeline, out, show, live
        self.writers: dict[str, Any] = {}
        self.paths: dict[str, str] = {}
        self._last = 0.0

    def _writer(self, name: str, shape: tuple[int, ...], fps: float) -> Any:
        import cv2

        if name not in self.writers:
            path = Path(self.out)
            if len(self.pipeline.sources) > 1:
                path = path.with_name(f"{path.stem}-{name}{path.suffix}")
            path.parent.mkdir(parents=True, exist_ok=True)
            codec = "mp4v" if path.suffix.lower() == ".mp4" else "MJPG"
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps or 10.0, (shape[1], shape[0]))
            if not writer.isOpened():
                raise ValueError(f"OpenCV cannot write {path}; try a .avi path")
            self.writers[name], self.paths[name] = writer, str(path)
        return self.writers[name]

    def __call__(self, frame: Any, boxes: Any, tracks: Any) -> None:
        import cv2

        from clear_sdk.video.draw import draw_tracks

        p = self.pipeline
        if self.out or self.show:
            st = p.stats[frame.source]
            status = f"{frame.source}  frame {frame.index}  tracks {len(boxes)}  indexed {st.tracks_indexed}"
            img = draw_tracks(frame.image, boxes, tracks, p.names, p.thresholds, status)
            if self.out:
                fps = next(s.fps for s in p.sources if s.name == frame.source)
                self._writer(frame.source, img.shape, fps).write(img)
            if self.show:
                cv2.imshow(f"clear-sdk {frame.source}", img)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    p.stop()
        now = time.monotonic()
        if self.live is not None and now - self._last >= 1.0:
            self._last = now
            self.live.update(_progress_table(p))

    def close(self) -> None:
        for w in self.writers.values():
            w.release()
        if self.show:
            import cv2

            cv2.destroyAllWindows()


def watch(
    sources: Annotated[list[str], typer.Argument(help="Video files, RTSP/HTTP URLs or webcam indices (0, 1, ...).")],
    bundle: Annotated[str, typer.Option(help="Model bundle folder or shipped model name.")],
    index_dir: Annotated[str, typer.Option("--index", help="Index folder for the tracks (created, or added to).")],
    camera: Annotated[
        list[str] | None, typer.Option(help="Camera name per source, in order (default: file stem / URL).")
    ] = None,
    show: Annotated[bool, typer.Option(help="Show the annotated frames in a window (needs GUI OpenCV).")] = False,
    out: Annotated[str | None, typer.Option(help="Write the annotated video here (one file per camera).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    detector: Annotated[str, typer.Option(help="ssdlite (shipped), hog, bgsub, or a YOLO .onnx path.")] = "ssdlite",
    conf: Annotated[float | None, typer.Option(help="Detector score threshold (default: the detector's).")] = None,
    tiles: Annotated[str | None, typer.Option(help="SSDLite tiles COLSxROWS, e.g. 2x1 for small people.")] = None,
    precision: Annotated[str, typer.Option(help="SSDLite graph: int8 (2x faster on CPU) or fp32.")] = "int8",
    max_frames: Annotated[int | None, typer.Option(help="Stop each source after this many frames.")] = None,
    realtime: Annotated[bool, typer.Option(help="Pace files at their frame rate, as a camera would.")] = False,
    recognize_every: Annotated[int, typer.Option(help="Frames between two recognised crops of a track.")] = 3,
    reindex_every: Annotated[float, typer.Option(help="Re-index a long track every N seconds (0: at its end).")] = 30.0,
    backend: Annotated[str, typer.Option(help="Recognizer backend: auto, onnxruntime, onnxruntime-int8, ...")] = "auto",
) -> None:
    """Watch cameras or videos: detect, track and recognise people, and index each track for `clear-sdk search`."""
    from rich.console import Console
    from rich.live import Live

    from clear_sdk.errors import ClearSDKError
    from clear_sdk.searcher import AttributeSearcher
    from clear_sdk.video.pipeline import Pipeline, PipelineConfig
    from clear_sdk.video.sources import VideoSource

    if camera and len(camera) != len(sources):
        _fail(f"{len(camera)} --camera names for {len(sources)} sources: give one per source, or none")
    if show:
        import cv2

        try:
            cv2.namedWindow("clear-sdk", cv2.WINDOW_NORMAL)
            cv2.destroyWindow("clear-sdk")
        except cv2.error:
            _fail("--show needs OpenCV with GUI support (opencv-python, not -headless); use --out video.mp4")
    options: dict[str, Any] = {}
    if detector != "bgsub":
        options["conf"] = conf
    if tiles:
        if detector != "ssdlite":
            _fail("--tiles applies to the ssdlite detector")
        options["tiles"] = _parse_tiles(tiles)
    if precision != "int8":
        if detector != "ssdlite":
            _fail("--precision applies to the ssdlite detector")
        options["precision"] = precision
    err = Console(stderr=True)
    try:
        srcs = [
            VideoSource(s, (camera or [None] * len(sources))[i], realtime=realtime, max_frames=max_frames)
            for i, s in enumerate(sources)
        ]
        searcher = AttributeSearcher(bundle, index_dir=index_dir, backend=backend)
        config = PipelineConfig(recognize_every=recognize_every, reindex_every_s=reindex_every)
        pipeline = Pipeline(srcs, searcher.recognizer, detector, detector_options=options, searcher=searcher,
                            config=config)  # fmt: skip
    except (ClearSDKError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    with Live(_progress_table(pipeline), console=err, refresh_per_second=2, transient=as_json) as live:
        outputs = _Outputs(pipeline, out, show, live)
        pipeline.on_frame = outputs
        try:
            summary = pipeline.run()
        except (ClearSDKError, ValueError) as e:
            outputs.close()
            searcher.close()
            _fail(str(e))
        outputs.close()
        live.update(_progress_table(pipeline))
    summary["index"] = str(Path(index_dir).resolve())
    summary["videos"] = outputs.paths
    searcher.close()
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    head = "interrupted" if summary["interrupted"] else "done"
    err.print(
        f"{head}: {summary['frames_processed']} frames, {summary['tracks']} tracks, {summary['tracks_indexed']} "
        f"indexed ({summary['index_size']} in {summary['index']}) in {summary['wall_s']:.1f} s"
    )
    for s in summary["sources"]:
        err.print(f"  {s['name']}: {s['fps']:.1f} fps, {s['frames_dropped']} dropped, stop: {s['stop_reason']}")
    err.print(f'next: clear-sdk search "female, backpack" --index {index_dir} --grid hits.png')
