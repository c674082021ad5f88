"""Runtime commands: ``info``, ``predict``, ``index``, ``search`` (onnxruntime/TensorRT, no torch needed)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from clear_sdk.cli.app import REPORTED, app, console, err_console, fail, json_errors, plain, say
from clear_sdk.paths import IMAGE_SUFFIXES, list_images


@app.command()
def info(
    model: Annotated[
        str | None, typer.Option(help="Report size, FLOPs and token grids of this registered model.")
    ] = None,
    bundle: Annotated[str | None, typer.Option(help="Describe this model bundle (attributes, dims, files).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Version, installed backends and registered models; with --model or --bundle, that model."""
    from clear_sdk.cli.environment import describe_environment

    json_errors(as_json)
    report = describe_environment()
    if bundle is not None:
        from clear_sdk.bundle import Bundle

        try:
            b = Bundle.open(bundle)
        except REPORTED as e:
            fail(str(e))
        report["bundle"] = {**b.summary(), "attributes": b.attribute_names, "groups": b.groups}
    if model is not None:
        try:
            from clear_sdk.training.models.model_profile import profile_model
        except ImportError as e:
            fail(f"--model needs the training extra ({e.name} is missing): pip install 'clear-sdk[train]'")
        try:
            report["model"] = profile_model(model)
        except KeyError as e:
            fail(str(e.args[0]))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"clear-sdk {report['version']}", show_header=False)
    for key, value in report["backends"].items():
        table.add_row(key, str(value))
    table.add_row("shipped models", ", ".join(report["shipped_models"]) or "(none)")
    table.add_row("models", ", ".join(report["models"]) or "(install clear-sdk[train])")
    console.print(table)
    if "bundle" in report:
        say(f"bundle {bundle}", style="bold")
        say(f"  network: {report['bundle']['family']}")
        for group, members in report["bundle"]["groups"].items():
            say(f"  {group}: {', '.join(members)}")
    if "model" in report:
        m = report["model"]
        t = Table(title=m["name"], show_header=False)
        t.add_row("arch / variant", f"{m['arch']} / {m['variant']}")
        t.add_row("input (H, W)", str(tuple(m["input_size"])))
        t.add_row("parameters", f"{m['parameters']:,} ({m['parameters'] / 1e6:.1f} M)")
        if m["trainable_parameters"] != m["parameters"]:
            t.add_row("trainable", f"{m['trainable_parameters']:,} ({100 * m['trainable_fraction']:.2f} %)")
        t.add_row("FLOPs / image", f"{m['flops_per_image'] / 1e9:.2f} G")
        for k, v in m["token_grids"].items():
            t.add_row(f"tokens: {k}", str(v))
        console.print(t)


def _open_recognizer(bundle: str, backend: str, threads: int | None = None):
    from clear_sdk.recognizer import Recognizer

    try:
        return Recognizer(bundle, backend=backend, threads=threads)
    except REPORTED as e:
        fail(str(e))


@app.command()
def predict(
    bundle: Annotated[str, typer.Argument(help="Model bundle folder (clear-sdk export).")],
    images: Annotated[list[str], typer.Argument(help="Image files.")],
    backend: Annotated[str, typer.Option(help="auto, onnxruntime, tensorrt or torch.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image, in a list.")] = False,
    schema: Annotated[
        str | None,
        typer.Option(help="Answer in a dataset's own attribute names: peta, market1501 or pa100k (a unified model)."),
    ] = None,
) -> None:
    """Recognise attributes of images; a bad image gets an error entry, the others are still answered (exit 1).

    BUNDLE may be "default" (the shipped unified model) or any shipped name or bundle folder.
    """
    json_errors(as_json)
    rec = _open_recognizer(bundle, backend)
    try:
        preds = rec.predict(images, errors="skip", schema=schema)
    except (*REPORTED, RuntimeError) as e:  # the backend itself failed (TensorRT: RuntimeError), not one image
        fail(str(e))
    rows = []
    for path, p in zip(images, preds):
        if p.error:
            rows.append({"image": plain(path), "error": plain(p.error)})
        else:
            rows.append(
                {"image": plain(path), "probabilities": p.probabilities, "attributes": p.attributes, "text": str(p)}
            )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            if "error" in r:  # the reason names the image already
                say(r["error"], err=True, style="red")
            else:
                found = r["text"]  # the labels a person reads ("carries a backpack"); --json keeps the names
                console.print(Text.assemble((r["image"], "bold"), f": {found}"), highlight=False, soft_wrap=True)
    if any("error" in r for r in rows):
        raise typer.Exit(1)


ID_SCHEMES = ("camera-path", "path", "absolute")


def _crop_id(scheme: str, root: Path, f: Path, camera: str | None) -> str:
    rel = f.relative_to(root).as_posix()
    if scheme == "absolute":
        return f.resolve().as_posix()
    if scheme == "camera-path" and camera:
        return f"{camera}/{rel}"
    return rel


def _refuse_index_options(
    batch: int, keep_days: float | None, id_scheme: str, partition_by: str | None, index_dir: str
) -> None:
    """Exit with the fix for an ``index`` option it cannot honour."""
    from clear_sdk.index import is_milvus_uri

    if batch < 1:
        fail(f"--batch {batch}: pass a positive number of images per add (e.g. 256)")
    if keep_days is not None and not keep_days > 0:
        fail(f"--keep-days {keep_days}: pass a positive number of days (e.g. 30)")
    if id_scheme not in ID_SCHEMES:
        fail(f"--id-scheme {id_scheme!r}: choose one of {', '.join(ID_SCHEMES)}")
    if partition_by is not None and partition_by not in ("camera", "day"):
        fail(f"--partition-by {partition_by!r}: choose camera or day")
    if partition_by is not None and not is_milvus_uri(index_dir):
        fail(f"--partition-by is for a Milvus collection; {index_dir} is a local index folder (it needs none)")


def _named_crops(
    files: list[Path], id_scheme: str, root: Path, camera: str | None
) -> tuple[list[tuple[Path, str, str]], list[str]]:
    """(file, id, source) of the crops whose names the index can store, and a line for each it cannot."""
    from clear_sdk.searcher import is_utf8

    named, unreadable = [], []
    for f in files:
        item_id, source = _crop_id(id_scheme, root, f, camera), os.fsdecode(f.resolve())
        if is_utf8(item_id) and is_utf8(source):
            named.append((f, item_id, source))
        else:
            unreadable.append(f"{plain(f)}: the file name is not valid UTF-8, so the index cannot store it; rename it")
    return named, unreadable


def _add_crops(searcher, chunk: list[tuple[Path, str, str]], camera: str | None) -> tuple[list, int, list[str]]:
    """Add the crops of ``chunk`` not yet indexed: (add's results, how many were there already, id clashes)."""
    from clear_sdk.errors import DuplicateIdError

    def attempt() -> tuple[list, int, list[str]]:
        todo, seen, taken = _new_crops(searcher, chunk)
        ids = [i for _, i, _ in todo]
        md = [{"camera": camera, "source": src} for _, _, src in todo]
        return searcher.add([str(f) for f, _, _ in todo], ids=ids, metadata=md, errors="skip"), seen, taken

    try:
        return attempt()
    except DuplicateIdError:  # a second `index` run on the same folder may add the same crops first
        return attempt()


@app.command()
def index(
    bundle: Annotated[str, typer.Argument(help="Model bundle folder.")],
    folder: Annotated[str, typer.Argument(help="Folder of person crops (searched recursively).")],
    index_dir: Annotated[
        str, typer.Option("--index", help="Index folder (created, or added to), or a Milvus URI / Lite .db file.")
    ],
    camera: Annotated[str | None, typer.Option(help="Camera id stored with every crop.")] = None,
    backend: Annotated[str, typer.Option(help="auto, onnxruntime, tensorrt or torch.")] = "auto",
    batch: Annotated[int, typer.Option(help="Images per add (each add is committed atomically).")] = 256,
    id_scheme: Annotated[
        str,
        typer.Option(
            help="What a crop's id is: camera-path = CAMERA/PATH (PATH relative to FOLDER; just PATH without "
            "--camera), path = PATH, absolute = the crop's absolute path."
        ),
    ] = "camera-path",
    keep_days: Annotated[
        float | None,
        typer.Option(help="Retention: after adding, remove items whose timestamp is older than this many days."),
    ] = None,
    partition_by: Annotated[
        str | None,
        typer.Option(
            help="Milvus only: partition a new collection by camera or day (filters on it then search only "
            "the partitions that can match)."
        ),
    ] = None,
) -> None:
    """Index a folder of crops for attribute search.

    A crop already in the index (the same file, by its absolute path) is counted as already there; a crop
    whose id is taken by another file is not indexed, and is listed (exit 1): give each folder its --camera,
    or use --id-scheme absolute.
    """
    from clear_sdk.searcher import AttributeSearcher

    _refuse_index_options(batch, keep_days, id_scheme, partition_by, index_dir)
    root, files = _crop_files(folder)
    named, unreadable = _named_crops(files, id_scheme, root, camera)
    try:
        part = {"partition_by": partition_by} if partition_by else {}
        searcher = AttributeSearcher(bundle, index=index_dir, backend=backend, **part)
    except REPORTED as e:
        fail(str(e))
    for line in unreadable:
        say(f"not indexed: {line}", err=True)
    tally = _IndexTally(failed=len(unreadable))
    try:
        with searcher:
            _add_in_batches(searcher, named, batch, camera, tally)
            expired = searcher.apply_retention(keep_days) if keep_days is not None else 0
    except REPORTED as e:
        fail(f"{e} ({tally.added} crops of this run were indexed and kept)")
    if keep_days is not None:
        say(f"retention: removed {expired} items older than {keep_days:g} days")
    for line in tally.clashes[:20]:
        say(f"not indexed: {line}", err=True)
    say(
        f"indexed {tally.added} new crops ({tally.failed} unreadable, {tally.already} already there, "
        f"{len(tally.clashes)} with an id another file has) in {index_dir}"
    )
    if tally.clashes:
        fail(
            f"{len(tally.clashes)} crops were not indexed because their ids are taken by other files; give each "
            "folder its --camera (ids are CAMERA/PATH) or pass --id-scheme absolute"
        )


def _crop_files(folder: str) -> tuple[Path, list[Path]]:
    """``folder`` and the images under it; exits when it is not a folder or holds no image."""
    root = Path(folder)
    if not root.is_dir():
        fail(f"{folder} is not a folder")
    files = list_images(root)
    if not files:
        fail(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    return root, files


@dataclasses.dataclass
class _IndexTally:
    """What an ``index`` run did so far (an error part-way reports how many crops were kept)."""

    added: int = 0
    already: int = 0  # the same file was indexed before
    failed: int = 0  # unreadable: a name the index cannot store, or an image that does not decode
    clashes: list[str] = dataclasses.field(default_factory=list)  # a line per crop whose id another file holds


def _add_in_batches(searcher, named: list[tuple[Path, str, str]], batch: int, camera: str | None,
                    tally: _IndexTally) -> None:  # fmt: skip
    """Add the crops ``batch`` at a time (each add is committed on its own), under a progress bar on a terminal."""
    from rich.progress import Progress

    with Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task("indexing", total=len(named))
        for s in range(0, len(named), batch):
            chunk = named[s : s + batch]
            out, seen, taken = _add_crops(searcher, chunk, camera)
            tally.already += seen
            tally.clashes.extend(taken)
            tally.added += sum(o is not None for o in out)
            tally.failed += sum(o is None for o in out)
            bar.update(task, advance=len(chunk))


def _new_crops(searcher, chunk: list[tuple[Path, str, str]]) -> tuple[list[tuple[Path, str, str]], int, list[str]]:
    """(crops to add, how many are already indexed, lines for crops whose id another file holds)."""
    index = searcher.index
    index.refresh()
    sources = {md.get("source") for _, md in index.select({"source": [src for _, _, src in chunk]})}
    owners = {item_id: md.get("source") for item_id, md in index.select({"id": [i for _, i, _ in chunk]})}
    todo, taken, seen = [], [], 0
    for f, item_id, src in chunk:
        if src in sources:
            seen += 1
        elif item_id in owners:
            taken.append(f"{plain(f)}: id {plain(item_id)!r} is already used by {plain(owners[item_id])}")
        else:
            todo.append((f, item_id, src))
    return todo, seen, taken


@app.command()
def search(
    query: Annotated[
        str,
        typer.Argument(
            help='Attributes, e.g. "female, backpack, long hair" or "man, no hat"; "person" or "" lists everyone, '
            "in time order."
        ),
    ],
    index_dir: Annotated[
        str,
        typer.Option(
            "--index", help="Index folder written by clear-sdk index, or a Milvus URI / Lite .db (with --bundle)."
        ),
    ],
    k: Annotated[int | None, typer.Option("-k", help="Number of results (default 10; a listing: everyone).")] = None,
    bundle: Annotated[str | None, typer.Option(help="Bundle (default: the one the index was built with).")] = None,
    scorer: Annotated[
        str, typer.Option(help="auto (embedding when the bundle has it), embedding (CLEAR), recognition or fused.")
    ] = "auto",
    camera: Annotated[str | None, typer.Option(help="Only crops from this camera.")] = None,
    grid: Annotated[str | None, typer.Option(help="Write the top-k crops with scores to this PNG.")] = None,
    verify: Annotated[
        bool, typer.Option(help="Check every stored vector's checksum first (automatic up to 256 MiB of vectors).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as JSON.")] = False,
    schema: Annotated[
        str | None,
        typer.Option(help="The query is in a dataset's attribute names: peta, market1501 or pa100k (unified model)."),
    ] = None,
) -> None:
    """Find people by attributes in an index; "person" (or an empty query) lists everyone, earliest first."""
    json_errors(as_json)
    if k is not None and k < 1:
        fail(f"-k {k}: pass a number of results >= 1")
    listing = query.strip().lower() in EVERYONE
    milvus = _check_search_index(index_dir, bundle)
    try:
        with _open_searcher(index_dir, bundle, milvus, scorer=scorer, verify=verify) as searcher:
            hits, parsed = _find(searcher, query, listing, k, {"camera": camera} if camera else None, schema)
            corrupt = len(searcher.index.corrupt_ids)
    except REPORTED as e:
        fail(str(e))
    if corrupt:
        say(f"warning: {corrupt} items of {index_dir} failed their checksum and were left out; re-index them", err=True)
    if grid:
        _write_grid(grid, _readable(parsed) or query, hits)
    if as_json:
        typer.echo(json.dumps({"query": query, "parsed": parsed, "hits": [h.__dict__ for h in hits]}, indent=2))
        return
    what = "everyone, in time order" if listing else _readable(parsed)
    console.print(_hits_table(f"{plain(query)}  →  {what}", hits))
    if grid:
        say(f"grid: {grid}")


def _check_search_index(index_dir: str, bundle: str | None) -> bool:
    """Whether ``index_dir`` is a Milvus collection (it needs --bundle) rather than a local index folder."""
    from clear_sdk.index import is_milvus_uri

    milvus = is_milvus_uri(index_dir)
    if milvus and bundle is None:
        fail(f"--index {index_dir} is a Milvus collection: pass the --bundle its items were indexed with")
    if not milvus and not Path(index_dir).is_dir():
        fail(f"{index_dir} is not a folder; pass the --index folder that `clear-sdk index` wrote")
    return milvus


def _open_searcher(index_dir: str, bundle: str | None, milvus: bool, scorer: str, verify: bool):
    """The searcher over the index, with ``bundle`` or, for a local folder, the bundle its searcher.json names."""
    from clear_sdk.searcher import AttributeSearcher, read_searcher_file

    idx = Path(index_dir)
    if bundle is None:
        bundle = read_searcher_file(idx).get("bundle")
        if not isinstance(bundle, str):
            fail(f"{idx / 'searcher.json'} names no bundle; pass --bundle")
    extra = {} if milvus else {"verify": True if verify else None}
    return AttributeSearcher(bundle, index=index_dir if milvus else idx, scorer=scorer, **extra)


def _find(searcher, query: str, listing: bool, k: int | None, where: dict | None, schema: str | None):
    """The hits (everyone, earliest first, for a listing) and the query as parsed: attribute name -> wanted."""
    if listing:
        return _everyone(searcher.index, where, k), {}
    hits = searcher.search(query, k=10 if k is None else k, where=where, schema=schema)
    parsed = searcher.query_encoder.in_schema([query], schema)[0] if schema else searcher.parse(query)
    if not isinstance(parsed, dict):
        parsed = searcher.parse(parsed)
    return hits, parsed


def _write_grid(grid: str, title: str, hits: list) -> None:
    """The hits' crops with their scores, as one PNG row under ``title``."""
    from clear_sdk.visualize import retrieval_grid

    try:
        retrieval_grid([(title, [(h.metadata.get("source"), h.score) for h in hits])], grid)
    except (ImportError, OSError, ValueError) as e:
        fail(f"cannot write the grid {grid}: {e}")


def _hits_table(title: str, hits: list) -> Table:
    """Rank, id, score and camera of each hit; for tracks `clear-sdk watch` indexed, the track and when."""
    table = Table(title=Text(title))
    tracks = any(h.metadata.get("track") is not None for h in hits)
    for col in ("rank", "id", "score", "camera", *(("track", "seen") if tracks else ())):
        table.add_column(col)
    for i, h in enumerate(hits, 1):
        md = h.metadata
        score = "" if h.score is None else f"{h.score:.4f}"
        row = [str(i), Text(plain(h.id)), score, Text(plain(md.get("camera") or ""))]
        if tracks:
            row += [str(md.get("track") if md.get("track") is not None else ""), _time_span(md)]
        table.add_row(*row)
    return table


def _readable(parsed: dict[str, bool]) -> str:
    """A parsed query as a person reads it: "female, carries a backpack, no wears a hat" -> labels of the schema."""
    from clear_sdk.schema import attribute_labels

    labels = attribute_labels(list(parsed))
    return ", ".join(("" if v else "no ") + labels[n] for n, v in parsed.items())


#: Queries that list every item instead of searching (an empty query, or the person itself).
EVERYONE = ("", "person", "people", "everyone", "everybody", "*")


def _everyone(index, where: dict | None, k: int | None) -> list:
    """Every item (matching ``where``), earliest first: (timestamp, camera, track, id); items without a time last."""
    from clear_sdk.searcher import Hit

    index.refresh()
    items = index.select(where or {})

    def when(item: tuple[str, dict]) -> tuple:
        item_id, md = item
        ts = md.get("timestamp")
        known = isinstance(ts, (int, float)) and not isinstance(ts, bool)
        track = md.get("track")
        return (not known, ts if known else 0.0, str(md.get("camera") or ""), track if isinstance(track, int) else -1,
                item_id)  # fmt: skip

    items.sort(key=when)
    return [Hit(item_id, None, md) for item_id, md in (items if k is None else items[:k])]


def _time_span(md: dict) -> str:
    """When an item was seen: its timestamp and the track's end (local time), or, for a file watched without
    --start, the position in the file."""
    from datetime import datetime

    start, end = md.get("timestamp"), md.get("end")
    if md.get("clock") == "run" and isinstance(md.get("position"), (int, float)):
        first, last = md["position"], md.get("position_end")
        text = f"file {_clip_time(first)}"
        if isinstance(last, (int, float)) and last > first:
            text += f"–{_clip_time(last)}"
        return text
    if not isinstance(start, (int, float)):
        return ""
    first = datetime.fromtimestamp(start)
    text = first.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(end, (int, float)) and end > start:
        last = datetime.fromtimestamp(end)
        text += " – " + last.strftime("%H:%M:%S" if last.date() == first.date() else "%Y-%m-%d %H:%M:%S")
    return text


def _clip_time(seconds: float) -> str:
    """A position in a video: M:SS.s (H:MM:SS.s past an hour)."""
    minutes, sec = divmod(float(seconds), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{sec:04.1f}" if hours else f"{minutes}:{sec:04.1f}"
