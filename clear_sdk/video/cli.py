"""``clear-sdk watch``: cameras or video files -> people tracked, their attributes aggregated, tracks indexed.

A typer-compatible function; ``clear_sdk/cli/__init__.py`` registers it. Imports stay inside the body so
that ``clear-sdk --help`` loads neither OpenCV nor onnxruntime.

Everything a user typed (camera names, paths) is printed as plain text, never as rich markup. The exit
code says whether the work was done: 1 when any source failed (it could not be opened, gave no frame, or
its detector failed), after the others were processed and every open track was indexed. SIGTERM and
Ctrl-C stop the run cleanly (exit 0, the summary says ``interrupted``); a second one is ignored while
the open tracks are indexed.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

# soft_wrap: a one-line reason stays one line in a log or a pipe (rich would wrap it at 80 columns)
_err = Console(stderr=True, soft_wrap=True)


def _text(value: object) -> str:
    """User text made printable (file-name bytes that are not UTF-8 as \\x escapes); printed, never parsed."""
    text = str(value)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _say(text: object, style: str = "") -> None:
    _err.print(Text(_text(text), style=style), highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1, as_json: bool = False) -> None:
    """Stop with a one-line reason on stderr (and, with --json, ``{"error": ...}`` on stdout)."""
    line = " ".join(_text(message).split())
    if as_json:
        typer.echo(json.dumps({"error": line, "exit_code": code}))
    _err.print(Text.assemble(("error: ", "bold red"), line), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _parse_tiles(text: str, as_json: bool = False) -> tuple[int, int]:
    from clear_sdk.video.detectors.ssdlite import MAX_TILES

    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        _fail(f"--tiles {text!r}: write COLSxROWS, e.g. 2x1", as_json=as_json)
    if cols < 1 or rows < 1 or cols * rows > MAX_TILES:
        _fail(f"--tiles {text!r}: both counts >= 1 and at most {MAX_TILES} tiles in all (e.g. 2x1, 3x2)",
              as_json=as_json)  # fmt: skip
    return cols, rows


def _parse_start(text: str, as_json: bool = False) -> float:
    """--start: an ISO time (local time unless it names its offset) or epoch seconds."""
    from datetime import datetime

    try:
        value = float(text)
    except ValueError:
        try:
            value = datetime.fromisoformat(text.strip()).timestamp()
        except (ValueError, OverflowError, OSError):
            value = math.nan
    if not math.isfinite(value) or not 0 <= value < 253402300800:  # years 1970-9999
        _fail(f"--start {text!r}: give the time of the file's first frame, e.g. 2026-12-01T08:00:00 or epoch "
              "seconds", as_json=as_json)  # fmt: skip
    return value


def _check_options(as_json: bool, **values: Any) -> None:
    """Every number's range, checked before anything opens; a one-line error names the option."""
    conf, max_frames = values["conf"], values["max_frames"]
    if conf is not None and not (math.isfinite(conf) and 0 <= conf <= 1):
        _fail(f"--conf {conf}: a detector score threshold in [0, 1] (e.g. 0.3)", as_json=as_json)
    if max_frames is not None and max_frames < 1:
        _fail(f"--max-frames {max_frames}: pass a number of frames >= 1 (or leave it out)", as_json=as_json)
    if values["recognize_every"] < 1:
        _fail(f"--recognize-every {values['recognize_every']}: pass a number of frames >= 1", as_json=as_json)
    reindex = values["reindex_every"]
    if not (math.isfinite(reindex) and reindex >= 0):
        _fail(f"--reindex-every {reindex}: pass seconds >= 0 (0: index each track once, at its end)", as_json=as_json)
    if values["precision"] not in ("int8", "fp32"):
        _fail(f"--precision {values['precision']!r}: choose int8 or fp32", as_json=as_json)


def _progress_table(pipeline: Any) -> Any:
    from rich.table import Table

    t = Table(title="clear-sdk watch (Ctrl-C stops; open tracks are indexed first)")
    for col in ("camera", "frames", "fps", "dropped", "latency p95 ms", "tracks", "indexed"):
        t.add_column(col, justify="right")
    for s in pipeline.sources:
        d = pipeline.stats[s.name].to_dict(s)
        p95 = d["latency_ms"]["p95"]
        t.add_row(Text(_text(s.name)), str(d["frames_processed"]), f"{d['fps']:.1f}", str(d["frames_dropped"]),
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
    index_dir: Annotated[str, typer.Option("--index", help="Index folder for the tracks (created, or added to).")],
    bundle: Annotated[
        str, typer.Option(help="Model bundle folder or shipped model name (default: the default model).")
    ] = "default",
    camera: Annotated[
        list[str] | None, typer.Option(help="Camera name per source, in order (default: file stem / URL).")
    ] = None,
    show: Annotated[bool, typer.Option(help="Show the annotated frames in a window (needs GUI OpenCV).")] = False,
    out: Annotated[str | None, typer.Option(help="Write the annotated video here (one file per camera).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    detector: Annotated[str, typer.Option(help="ssdlite (shipped), hog, bgsub, or a YOLO .onnx path.")] = "ssdlite",
    conf: Annotated[
        float | None, typer.Option(help="Detector score threshold in [0, 1] (default: the detector's).")
    ] = None,
    tiles: Annotated[
        str | None, typer.Option(help="SSDLite tiles COLSxROWS, e.g. 2x1 for small people (16 tiles at most).")
    ] = None,
    precision: Annotated[str, typer.Option(help="SSDLite graph: int8 (2x faster on CPU) or fp32.")] = "int8",
    max_frames: Annotated[int | None, typer.Option(help="Stop each source after this many frames (>= 1).")] = None,
    realtime: Annotated[bool, typer.Option(help="Pace files at their frame rate, as a camera would.")] = False,
    recognize_every: Annotated[int, typer.Option(help="Frames between two recognised crops of a track.")] = 3,
    reindex_every: Annotated[float, typer.Option(help="Re-index a long track every N seconds (0: at its end).")] = 30.0,
    backend: Annotated[str, typer.Option(help="Recognizer backend: auto, onnxruntime, onnxruntime-int8, ...")] = "auto",
    start: Annotated[
        str | None,
        typer.Option(
            help="Video files: when the first frame was filmed (e.g. 2026-12-01T08:00:00, local time, or epoch "
            "seconds); frames are stamped with it plus their position in the file (default: when the run starts)."
        ),
    ] = None,
    events: Annotated[
        str | None,
        typer.Option(help="Write one line per finished track to this .jsonl or .csv file, as tracks end."),
    ] = None,
) -> None:
    """Watch cameras or videos: detect, track and recognise people, and index each track for `clear-sdk search`.

    Ctrl-C or SIGTERM stops cleanly: the open tracks are indexed first (a second Ctrl-C meanwhile is ignored).
    Exit 1 when a source failed (the others are still processed).
    """
    import sqlite3

    from clear_sdk.errors import ClearSDKError
    from clear_sdk.video.pipeline import describe_error

    start_time = _check_watch(sources, camera, start, events, show, as_json, conf=conf, max_frames=max_frames,
                              recognize_every=recognize_every, reindex_every=reindex_every,
                              precision=precision)  # fmt: skip
    options = _detector_options(detector, conf, tiles, precision, as_json)
    srcs, searcher = _open_inputs(sources, camera, index_dir, bundle, backend, as_json, realtime=realtime,
                                  max_frames=max_frames, start_time=start_time)  # fmt: skip
    pipeline, sink = _make_pipeline(srcs, searcher, detector, options, events, as_json,
                                    recognize_every=recognize_every, reindex_every_s=reindex_every)  # fmt: skip
    done = False
    try:
        summary, videos = _run_with_progress(pipeline, out, show, as_json)
        done = True
    except (ClearSDKError, ValueError, OSError, sqlite3.Error) as e:  # every open track was finished first
        indexed = sum(st.tracks_indexed for st in pipeline.stats.values())
        machine = isinstance(e, (OSError, sqlite3.Error))
        where = f" (writing to {index_dir}: is the disk full or read-only?)" if machine else ""
        reason = f"{describe_error(e)}{where}; {indexed} tracks were indexed before it"
    finally:
        if not _err.is_terminal:
            _err.line()  # rich's Live leaves its last line open where stderr is a file or a pipe
        if sink is not None:
            sink.close()
        searcher.close()
    if not done:
        _fail(reason, as_json=as_json)
    summary["index"] = str(Path(index_dir).resolve())
    summary["videos"] = videos
    summary["events"] = events
    _report(summary, as_json, events, index_dir)


def _check_watch(sources: list[str], camera: list[str] | None, start: str | None, events: str | None, show: bool,
                 as_json: bool, **values: Any) -> float | None:  # fmt: skip
    """The arguments, checked before anything opens (a one-line error names the option); returns --start as epoch
    seconds (None without it)."""
    from clear_sdk.video.sources import is_live, parse_source

    if camera and len(camera) != len(sources):
        _fail(f"{len(camera)} --camera names for {len(sources)} sources: give one per source, or none", as_json=as_json)
    _check_options(as_json, **values)
    start_time = _parse_start(start, as_json) if start is not None else None
    if start_time is not None and any(is_live(parse_source(s)) for s in sources):
        _fail("--start applies to video files; cameras and URLs are stamped with the wall clock", as_json=as_json)
    if events is not None and Path(events).suffix.lower() not in (".jsonl", ".ndjson", ".csv"):
        _fail(f"--events {events}: name the file .jsonl (JSON lines) or .csv", as_json=as_json)
    if show:
        import cv2

        try:
            cv2.namedWindow("clear-sdk", cv2.WINDOW_NORMAL)
            cv2.destroyWindow("clear-sdk")
        except cv2.error:
            _fail("--show needs OpenCV with GUI support (opencv-python, not -headless); use --out video.mp4",
                  as_json=as_json)  # fmt: skip
    return start_time


def _detector_options(detector: str, conf: float | None, tiles: str | None, precision: str,
                      as_json: bool) -> dict[str, Any]:  # fmt: skip
    """The detector's keyword arguments from --conf, --tiles and --precision (the last two: SSDLite only)."""
    options: dict[str, Any] = {}
    if detector != "bgsub":
        options["conf"] = conf
    if tiles:
        if detector != "ssdlite":
            _fail("--tiles applies to the ssdlite detector", as_json=as_json)
        options["tiles"] = _parse_tiles(tiles, as_json)
    if precision != "int8":
        if detector != "ssdlite":
            _fail("--precision applies to the ssdlite detector", as_json=as_json)
        options["precision"] = precision
    return options


def _open_inputs(sources: list[str], camera: list[str] | None, index_dir: str, bundle: str, backend: str,
                 as_json: bool, **source_options: Any) -> tuple[list[Any], Any]:  # fmt: skip
    """The video sources and the searcher over ``index_dir``; a bad source, bundle or index is a one-line error
    (a folder that cannot be created, a read-only or full disk: the machine, not a bug)."""
    from clear_sdk.errors import ClearSDKError
    from clear_sdk.searcher import AttributeSearcher
    from clear_sdk.video.pipeline import describe_error
    from clear_sdk.video.sources import VideoSource

    try:
        names = camera or [None] * len(sources)
        srcs = [VideoSource(s, names[i], **source_options) for i, s in enumerate(sources)]
        searcher = AttributeSearcher(bundle, index_dir=index_dir, backend=backend)
    except (ClearSDKError, ValueError) as e:
        _fail(str(e), as_json=as_json)
    except OSError as e:
        _fail(f"cannot open the index {index_dir}: {describe_error(e)}", as_json=as_json)
    return srcs, searcher


def _make_pipeline(srcs: list[Any], searcher: Any, detector: str, options: dict[str, Any], events: str | None,
                   as_json: bool, **config: Any) -> tuple[Any, Any]:  # fmt: skip
    """The pipeline (its ``config``: PipelineConfig fields) and the --events writer (None without it); on an error
    both are closed, and the searcher, before the one-line reason."""
    from clear_sdk.errors import ClearSDKError
    from clear_sdk.video.indexer import TrackEventWriter
    from clear_sdk.video.pipeline import Pipeline, PipelineConfig, describe_error

    sink = None
    try:
        pipeline_config = PipelineConfig(**config)
        sink = TrackEventWriter(events) if events is not None else None
        pipeline = Pipeline(srcs, searcher.recognizer, detector, detector_options=options, searcher=searcher,
                            config=pipeline_config, on_track=None if sink is None else sink.write)  # fmt: skip
    except (ClearSDKError, ValueError, OSError) as e:
        if sink is not None:
            sink.close()
        searcher.close()
        _fail(f"cannot write --events {events}: {describe_error(e)}" if isinstance(e, OSError) else str(e),
              as_json=as_json)  # fmt: skip
    return pipeline, sink


def _run_with_progress(pipeline: Any, out: str | None, show: bool, as_json: bool) -> tuple[dict[str, Any], dict]:
    """Run the pipeline under a live progress table on stderr, writing (--out) and showing (--show) the annotated
    frames; returns the summary and each camera's annotated video."""
    from rich.live import Live

    with Live(_progress_table(pipeline), console=_err, refresh_per_second=2, transient=as_json) as live:
        outputs = _Outputs(pipeline, out, show, live)
        pipeline.on_frame = outputs
        try:
            summary = pipeline.run()
        finally:
            outputs.close()
        live.update(_progress_table(pipeline))
    return summary, outputs.paths


def _report(summary: dict[str, Any], as_json: bool, events: str | None, index_dir: str) -> None:
    """The summary (one JSON object, or a few lines); exit 1 when a source failed."""
    failed = [s for s in summary["sources"] if s["error"]]
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        head = "interrupted" if summary["interrupted"] else ("failed" if failed else "done")
        if summary["signal"]:
            head += f" ({summary['signal']})"
        _say(
            f"{head}: {summary['frames_processed']} frames, {summary['tracks']} tracks, {summary['tracks_indexed']} "
            f"indexed ({summary['index_size']} in {summary['index']}) in {summary['wall_s']:.1f} s"
        )
        for s in summary["sources"]:
            _say(f"  {s['name']}: {s['fps']:.1f} fps, {s['frames_dropped']} dropped, stop: {s['stop_reason']}")
        if events is not None:
            _say(f"events: {events}")
        _say(f'next: clear-sdk search "female, backpack" --index {index_dir} --grid hits.png')
    if failed:
        names = ", ".join(_text(s["name"]) for s in failed)
        _err.print(Text.assemble(("error: ", "bold red"), f"{len(failed)} of {len(summary['sources'])} sources "
                                 f"failed ({names}); the others were processed"), highlight=False)  # fmt: skip
        raise typer.Exit(1)
