"""The ``clear-sdk`` command line (typer).

Each command imports what it needs inside its body, so ``clear-sdk --help`` and the runtime
commands never import torch.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="clear-sdk: pedestrian attribute recognition and attribute-based person retrieval (CLEAR).",
)
console = Console()
# soft_wrap: a one-line reason stays one line when stderr is a file or a pipe (rich would wrap it at 80)
err_console = Console(stderr=True, soft_wrap=True)


def plain(text: object) -> str:
    """User-supplied text made printable: file-name bytes that are not UTF-8 shown as \\x escapes."""
    text = str(text)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # lone surrogates that are not escaped bytes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def say(text: object, *, err: bool = False, style: str | None = None) -> None:
    """Print untrusted text (paths, messages, queries) literally: no rich markup, no highlighting."""
    (err_console if err else console).print(Text(plain(text), style=style or ""), highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    """Stop with a one-line reason on stderr and a non-zero exit code (never a traceback).

    The message is printed literally: ``pip install 'clear-sdk[trt]'`` keeps its brackets.
    """
    err_console.print(Text.assemble(("error: ", "bold red"), plain(message)), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.callback()
def _root() -> None:
    """Train, export and run CLEAR person-attribute models."""


@app.command()
def info(
    model: Annotated[
        str | None, typer.Option(help="Report size, FLOPs and token grids of this registered model.")
    ] = None,
    bundle: Annotated[str | None, typer.Option(help="Describe this model bundle (attributes, dims, files).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Version, installed backends and registered models; with --model or --bundle, that model."""
    from clear_sdk.environment import describe_environment

    report = describe_environment()
    if bundle is not None:
        from clear_sdk.bundle import Bundle
        from clear_sdk.errors import ClearSDKError

        try:
            b = Bundle.open(bundle)
        except (ClearSDKError, FileNotFoundError) as e:
            fail(str(e))
        report["bundle"] = {**b.summary(), "attributes": b.attribute_names, "groups": b.groups}
    if model is not None:
        try:
            from clear_sdk.training.models.profile import profile_model
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
        console.print(f"[bold]bundle {bundle}[/]")
        for group, members in report["bundle"]["groups"].items():
            console.print(f"  {group}: {', '.join(members)}")
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


def _parse_kv(items: list[str] | None) -> dict[str, object]:
    import yaml  # noqa: PLC0415 (training extra)

    out: dict[str, object] = {}
    for item in items or []:
        if "=" not in item:
            fail(f"{item!r}: write key=value")
        k, v = item.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def _need_training() -> None:
    try:
        import clear_sdk.training.trainer  # noqa: F401
    except ImportError as e:
        fail(f"this command needs the training extra ({e.name} is missing): pip install 'clear-sdk[train]'")


@app.command()
def train(
    dataset: Annotated[
        str | None,
        typer.Option(help="Registered dataset name (synthetic, pa100k, peta, rapv2, market1501, upar, pkl, csv)."),
    ] = None,
    root: Annotated[str | None, typer.Option(help="Dataset folder.")] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Registered model (clear-tiny/-small/-base, resnet50, promptpar-tiny/-vit-b16/-vit-l14)."),
    ] = None,
    out: Annotated[str | None, typer.Option(help="Output folder for checkpoints, configs and histories.")] = None,
    stage: Annotated[str | None, typer.Option(help="par (recognition), retrieval, or both.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Stage-1 epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Stage-1 batch size.")] = None,
    config: Annotated[str | None, typer.Option(help="YAML training config (see training/configs/).")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key: --set lr=3e-4 (repeatable).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda.")] = None,
    partition: Annotated[int | None, typer.Option(help="Dataset partition (PETA, RAPv2, pkl).")] = None,
    split_file: Annotated[
        str | None, typer.Option(help="JSON/CSV train/val/test split, e.g. zero-shot (disjoint identities).")
    ] = None,
    tune: Annotated[
        str | None,
        typer.Option(help="PromptPAR: 'prompt' (prompts + heads, the paper) or 'full' (no CLIP weights)."),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint in --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Train CLEAR or PromptPAR: stage 1 (recognition) and/or stage 2 (retrieval adapters). Multi-GPU: torchrun."""
    _need_training()
    from clear_sdk.training.config import load_config
    from clear_sdk.training.data import DatasetError
    from clear_sdk.training.trainer import train as run_train

    try:
        cfg = load_config(
            config,
            set_,
            dataset=dataset,
            root=root,
            model=model,
            out=out,
            stage=stage,
            epochs=epochs,
            batch_size=batch_size,
            device=device,
            resume=resume or None,
        )
        if partition is not None:
            cfg.dataset_kwargs["partition"] = partition
        if split_file is not None:
            cfg.dataset_kwargs["split_file"] = split_file
        if tune is not None:
            if not cfg.model.startswith("promptpar"):
                fail(f"--tune applies to the promptpar-* models, not {cfg.model}")
            cfg.model_kwargs["tune"] = tune
        if not cfg.root and cfg.dataset != "synthetic":
            fail("--root is required: the folder that holds the dataset")
        summary = run_train(cfg, progress=not as_json)
    except (ValueError, KeyError, FileNotFoundError, DatasetError) as e:
        fail(str(e.args[0] if isinstance(e, KeyError) else e))
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=float))
    else:
        console.print(f"checkpoints in [bold]{cfg.out}[/]: best.safetensors (+ .json)")
        for stage_name in ("par", "retrieval"):
            if stage_name in summary:
                best = {k: round(v, 4) for k, v in summary[stage_name]["best_val"].items() if isinstance(v, float)}
                console.print(f"{stage_name}: best val {best}")


def _dataset_options(items: list[str] | None) -> dict[str, object]:
    """``--set key=value`` dataset options (values read as YAML: true, 3, [a, b])."""
    import yaml

    out: dict[str, object] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            fail(f"--set {item!r}: write key=value, e.g. --set colours=true")
        out[key.strip().removeprefix("dataset_kwargs.")] = yaml.safe_load(text)
    return out


@app.command("eval")
def evaluate(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint .safetensors, or a train --out folder (its best).")],
    dataset: Annotated[str, typer.Option(help="Registered dataset name.")],
    root: Annotated[str, typer.Option(help="Dataset folder.")],
    split: Annotated[str, typer.Option(help="Split to evaluate.")] = "test",
    partition: Annotated[int | None, typer.Option(help="Dataset partition (PETA, RAPv2, pkl).")] = None,
    split_file: Annotated[
        str | None, typer.Option(help="JSON/CSV train/val/test split, e.g. zero-shot (disjoint identities).")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Dataset option, e.g. --set annotation=PETA.mat (default: the checkpoint's)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='One JSON object {"recognition": ..., "retrieval": ...}.')
    ] = False,
) -> None:
    """Recognition metrics (mA, accuracy, precision, recall, F1) and, with stage 2, retrieval metrics."""
    _need_training()
    from clear_sdk.training.data import DatasetError
    from clear_sdk.training.models import CheckpointError
    from clear_sdk.training.trainer import evaluate as run_eval

    kwargs: dict[str, object] = {"partition": partition} if partition is not None else {}
    if split_file is not None:
        kwargs["split_file"] = split_file
    kwargs.update(_dataset_options(set_))
    try:
        result = run_eval(checkpoint, dataset, root, split=split, dataset_kwargs=kwargs, device=device)
    except (ValueError, KeyError, FileNotFoundError, DatasetError, CheckpointError) as e:
        fail(str(e.args[0] if isinstance(e, KeyError) else e))
    if as_json:
        keys = ("recognition", "recognition_standard", "mA_by_group", "retrieval", "collapse", "per_attribute_mA")
        typer.echo(json.dumps({k: result[k] for k in keys if k in result}, indent=2))
        return
    table = Table(title=f"{Path(result['checkpoint']).name} on {dataset}/{split} ({result['num_images']} images)")
    table.add_column("task")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for task in ("recognition", "retrieval"):
        for k, v in result.get(task, {}).items():
            table.add_row(task, k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)


# -- export and runtime commands ---------------------------------------------------------------
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@app.command()
def export(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint .safetensors or a train --out folder (its best).")],
    out: Annotated[str, typer.Option(help="Bundle folder to write.")],
    engine: Annotated[str, typer.Option(help="onnx, or trt (TensorRT engines too; NVIDIA GPU + TensorRT).")] = "onnx",
    fp16: Annotated[bool, typer.Option(help="TensorRT: also build an fp16 engine.")] = False,
    int8: Annotated[bool, typer.Option(help="TensorRT: also build an int8 engine (needs --calib).")] = False,
    calib: Annotated[str | None, typer.Option(help="Folder of images for int8 calibration.")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
    calibrate_thresholds: Annotated[bool, typer.Option(help="Pick per-attribute thresholds on a val split.")] = False,
    cpu_int8: Annotated[
        bool, typer.Option(help="Also write recognizer.int8.onnx (dynamic int8 for CPUs; backend onnxruntime-int8).")
    ] = False,
    dataset: Annotated[str | None, typer.Option(help="Dataset for --calibrate-thresholds.")] = None,
    root: Annotated[str | None, typer.Option(help="Dataset folder for --calibrate-thresholds.")] = None,
    batch_sizes: Annotated[
        str, typer.Option(help="TensorRT optimisation profile batch sizes, e.g. 1,8,32.")
    ] = "1,8,32",
    with_checkpoint: Annotated[
        bool, typer.Option(help="Copy the torch checkpoint into the bundle (the torch backend needs it).")
    ] = True,
    calibration_split: Annotated[
        str, typer.Option(help="Split whose predictions pick the thresholds (train keeps val unseen).")
    ] = "val",
) -> None:
    """Export a checkpoint to a model bundle: recognizer.onnx, query.onnx, text.onnx, manifest.json (+ TensorRT)."""
    try:
        from clear_sdk.export.bundle_writer import export_bundle
    except ImportError as e:
        fail(f"export needs the export extra ({e.name} is missing): pip install 'clear-sdk[export]'")
    from clear_sdk.backends import TensorRTUnavailable
    from clear_sdk.errors import ClearSDKError

    if engine not in ("onnx", "trt"):
        fail(f"--engine {engine!r}: choose onnx or trt")
    if int8 and not calib:
        fail("--int8 needs --calib DIR: a folder of representative images for calibration")
    if calibrate_thresholds and not (dataset and root):
        fail("--calibrate-thresholds needs --dataset NAME --root DIR (its val split picks the thresholds)")
    try:
        sizes = tuple(int(b) for b in batch_sizes.split(","))
    except ValueError:
        fail(f"--batch-sizes {batch_sizes!r}: write comma-separated integers, e.g. 1,8,32")
    try:
        bundle = export_bundle(
            checkpoint,
            out,
            engine=engine,
            fp16=fp16,
            int8=int8,
            calib_dir=calib,
            opset=opset,
            calibrate_thresholds=calibrate_thresholds,
            val_dataset=(dataset, root) if calibrate_thresholds else None,
            batch_sizes=sizes,
            cpu_int8=cpu_int8,
            checkpoint_copy=with_checkpoint,
            calibration_split=calibration_split,
        )
    except TensorRTUnavailable as e:
        fail(str(e), code=2)
    except (ClearSDKError, FileNotFoundError, FileExistsError, ValueError, RuntimeError) as e:
        fail(str(e))
    console.print(f"bundle written: [bold]{bundle}[/]")


def _open_recognizer(bundle: str, backend: str, threads: int | None = None):
    from clear_sdk.errors import ClearSDKError
    from clear_sdk.recognizer import Recognizer

    try:
        return Recognizer(bundle, backend=backend, threads=threads)
    except (ClearSDKError, FileNotFoundError, ValueError) as e:
        fail(str(e))


@app.command()
def predict(
    bundle: Annotated[str, typer.Argument(help="Model bundle folder (clear-sdk export).")],
    images: Annotated[list[str], typer.Argument(help="Image files.")],
    backend: Annotated[str, typer.Option(help="auto, onnxruntime, tensorrt or torch.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image, in a list.")] = False,
) -> None:
    """Recognise attributes of images; a bad image gets an error entry, the others are still answered (exit 1)."""
    from clear_sdk.errors import ClearSDKError

    rec = _open_recognizer(bundle, backend)
    try:
        preds = rec.predict(images, errors="skip")
    except (ClearSDKError, RuntimeError, ValueError) as e:  # the backend itself failed, not one image
        fail(str(e))
    rows = []
    for path, p in zip(images, preds):
        if p.error:
            rows.append({"image": plain(path), "error": plain(p.error)})
        else:
            rows.append({"image": plain(path), "probabilities": p.probabilities, "attributes": p.attributes})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            if "error" in r:  # the reason names the image already
                say(r["error"], err=True, style="red")
            else:
                found = ", ".join(r["attributes"]) or "(no attribute above threshold)"
                console.print(Text.assemble((r["image"], "bold"), f": {found}"), highlight=False, soft_wrap=True)
    if any("error" in r for r in rows):
        raise typer.Exit(1)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


ID_SCHEMES = ("camera-path", "path", "absolute")


def _crop_id(scheme: str, root: Path, f: Path, camera: str | None) -> str:
    rel = f.relative_to(root).as_posix()
    if scheme == "absolute":
        return f.resolve().as_posix()
    if scheme == "camera-path" and camera:
        return f"{camera}/{rel}"
    return rel


@app.command()
def index(
    bundle: Annotated[str, typer.Argument(help="Model bundle folder.")],
    folder: Annotated[str, typer.Argument(help="Folder of person crops (searched recursively).")],
    index_dir: Annotated[str, typer.Option("--index", help="Index folder (created, or added to).")],
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
) -> None:
    """Index a folder of crops for attribute search.

    A crop already in the index (the same file, by its absolute path) is counted as already there; a crop
    whose id is taken by another file is not indexed, and is listed (exit 1): give each folder its --camera,
    or use --id-scheme absolute.
    """
    from clear_sdk.errors import ClearSDKError
    from clear_sdk.searcher import AttributeSearcher, is_utf8

    if batch < 1:
        fail(f"--batch {batch}: pass a positive number of images per add (e.g. 256)")
    if id_scheme not in ID_SCHEMES:
        fail(f"--id-scheme {id_scheme!r}: choose one of {', '.join(ID_SCHEMES)}")
    root = Path(folder)
    if not root.is_dir():
        fail(f"{folder} is not a folder")
    files = _image_files(root)
    if not files:
        fail(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    unreadable = []
    named = []  # (file, id, source) of the crops whose names SQLite can store
    for f in files:
        item_id, source = _crop_id(id_scheme, root, f, camera), os.fsdecode(f.resolve())
        if is_utf8(item_id) and is_utf8(source):
            named.append((f, item_id, source))
        else:
            unreadable.append(f"{plain(f)}: the file name is not valid UTF-8, so the index cannot store it; rename it")
    try:
        searcher = AttributeSearcher(bundle, index_dir=index_dir, backend=backend)
    except (ClearSDKError, FileNotFoundError, ValueError) as e:
        fail(str(e))
    for line in unreadable:
        say(f"not indexed: {line}", err=True)
    added = already = 0
    failed = len(unreadable)
    clashes: list[str] = []
    from rich.progress import Progress

    try:
        with searcher, Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
            task = bar.add_task("indexing", total=len(named))
            for s in range(0, len(named), batch):
                chunk = named[s : s + batch]
                for attempt in range(2):  # a second `index` run on the same folder may add the same crops first
                    todo, seen, taken = _new_crops(searcher, chunk)
                    ids = [i for _, i, _ in todo]
                    md = [{"camera": camera, "source": src} for _, _, src in todo]
                    try:
                        out = searcher.add([str(f) for f, _, _ in todo], ids=ids, metadata=md, errors="skip")
                    except ValueError as e:
                        if attempt == 0 and "already in the index" in str(e):
                            continue
                        raise
                    break
                already += seen
                clashes.extend(taken)
                added += sum(o is not None for o in out)
                failed += sum(o is None for o in out)
                bar.update(task, advance=len(chunk))
    except (ClearSDKError, ValueError) as e:
        fail(f"{e} ({added} crops of this run were indexed and kept)")
    for line in clashes[:20]:
        say(f"not indexed: {line}", err=True)
    say(
        f"indexed {added} new crops ({failed} unreadable, {already} already there, {len(clashes)} with an id "
        f"another file has) in {index_dir}"
    )
    if clashes:
        fail(
            f"{len(clashes)} crops were not indexed because their ids are taken by other files; give each folder "
            "its --camera (ids are CAMERA/PATH) or pass --id-scheme absolute"
        )


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
    query: Annotated[str, typer.Argument(help='Attributes, e.g. "female, backpack, long hair" or "man, no hat".')],
    index_dir: Annotated[str, typer.Option("--index", help="Index folder written by clear-sdk index.")],
    k: Annotated[int, typer.Option("-k", help="Number of results.")] = 10,
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
) -> None:
    """Find people by attributes in an index."""
    from clear_sdk.errors import ClearSDKError
    from clear_sdk.searcher import AttributeSearcher, read_searcher_file

    idx = Path(index_dir)
    if not idx.is_dir():
        fail(f"{index_dir} is not a folder; pass the --index folder that `clear-sdk index` wrote")
    try:
        if bundle is None:
            bundle = read_searcher_file(idx).get("bundle")
            if not isinstance(bundle, str):
                fail(f"{idx / 'searcher.json'} names no bundle; pass --bundle")
        with AttributeSearcher(bundle, index_dir=idx, scorer=scorer, verify=True if verify else None) as searcher:
            hits = searcher.search(query, k=k, where={"camera": camera} if camera else None)
            parsed = searcher.parse(query)
            corrupt = len(searcher.index.corrupt_ids)
    except (ClearSDKError, FileNotFoundError, ValueError) as e:
        fail(str(e))
    if corrupt:
        say(f"warning: {corrupt} items of {index_dir} failed their checksum and were left out; re-index them", err=True)
    if grid:
        from clear_sdk.visualize import retrieval_grid

        try:
            retrieval_grid([(query, [(h.metadata.get("source"), h.score) for h in hits])], grid)
        except (ImportError, OSError, ValueError) as e:
            fail(f"cannot write the grid {grid}: {e}")
    if as_json:
        typer.echo(json.dumps({"query": query, "parsed": parsed, "hits": [h.__dict__ for h in hits]}, indent=2))
        return
    table = Table(title=Text(f"{plain(query)}  →  {', '.join(('' if v else 'no ') + n for n, v in parsed.items())}"))
    for col in ("rank", "id", "score", "camera"):
        table.add_column(col)
    for i, h in enumerate(hits, 1):
        table.add_row(str(i), Text(plain(h.id)), f"{h.score:.4f}", Text(plain(h.metadata.get("camera") or "")))
    console.print(table)
    if grid:
        say(f"grid: {grid}")


@app.command()
def demo(
    out: Annotated[
        str, typer.Option(help="Folder for the data, checkpoints, bundle, index and pictures.")
    ] = "clear-sdk-demo",
    as_json: Annotated[
        bool, typer.Option("--json", help='One JSON object {"recognition", "retrieval", "bundle"}.')
    ] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a training config key (key=value).")] = None,
) -> None:
    """Render synthetic pedestrians, train clear-tiny, export ONNX, recognise and search: the SDK end to end."""
    _need_training()
    from clear_sdk.demo import run_demo

    report = run_demo(out, progress=not as_json, overrides=set_)
    if as_json:
        typer.echo(json.dumps({k: report[k] for k in ("recognition", "retrieval", "bundle", "timings")}, indent=2))
        return
    rec, ret = report["recognition"], report["retrieval"]
    table = Table(title=f"clear-sdk demo: clear-tiny on {report['test_images']} held-out synthetic images")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k in ("mA", "accuracy", "precision", "recall", "f1"):
        table.add_row(f"recognition {k}", f"{rec[k]:.4f}")
    for k in ("R-1", "R-5", "R-10", "mAP"):
        table.add_row(f"retrieval {k} (CLEAR embedding)", f"{ret[k]:.4f}")
    for scorer in ("recognition", "fused"):  # the searcher's other scorers, on the same queries
        for k in ("R-1", "mAP"):
            table.add_row(f"retrieval {k} ({scorer} scorer)", f"{ret['by_scorer'][scorer][k]:.4f}")
    table.add_row("queries", f"{ret['num_queries']:.0f}")
    table.add_row("total time", f"{report['timings']['total_s']:.0f} s")
    console.print(table)
    console.print(f"bundle: [bold]{report['bundle']}[/]")
    console.print(f"retrieval grid: {report['retrieval_grid']}\nper-attribute mA: {report['attribute_plot']}")
    console.print(
        "next: [bold]clear-sdk predict[/] BUNDLE IMAGE.jpg, or in Python: "
        "from clear_sdk import Recognizer, AttributeSearcher"
    )


@app.command()
def bench(
    bundle: Annotated[str, typer.Argument(help="Model bundle folder.")],
    backends: Annotated[
        str, typer.Option(help="Comma-separated: torch, onnxruntime, onnxruntime-int8, tensorrt.")
    ] = "torch,onnxruntime",
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8,32",
    threads: Annotated[int | None, typer.Option(help="Intra-op threads per backend (default: all cores).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Also measure accuracy per backend on this dataset.")] = None,
    root: Annotated[str | None, typer.Option(help="Dataset folder.")] = None,
    split: Annotated[str, typer.Option(help="Dataset split for accuracy.")] = "test",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Dataset option for --dataset, e.g. --set colours=true.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help='{"results": [{"backend", "batch_size", ...}], ...}')] = False,
    plot: Annotated[str | None, typer.Option(help="Write images/s vs batch size to this PNG.")] = None,
) -> None:
    """Latency p50/p95/p99, throughput, memory, FLOP efficiency and parity per backend; accuracy with --dataset."""
    from clear_sdk.bench import bench_accuracy, bench_backends, throughput_plot
    from clear_sdk.errors import ClearSDKError

    names = [b.strip() for b in backends.split(",") if b.strip()]
    if not names:
        fail(f"--backends {backends!r}: name at least one of torch, onnxruntime, onnxruntime-int8, tensorrt")
    try:
        sizes = [int(b) for b in batch_sizes.split(",")]
    except ValueError:
        fail(f"--batch-sizes {batch_sizes!r}: write comma-separated integers")
    if any(n < 1 for n in sizes):
        fail(f"--batch-sizes {batch_sizes!r}: every batch size must be a positive integer, e.g. 1,8,32")
    if threads is not None and threads < 1:
        fail(f"--threads {threads}: pass a positive number of threads")
    if dataset and not root:
        fail("--dataset needs --root")
    try:
        report = bench_backends(bundle, names, sizes, threads=threads)
        if dataset:
            report["accuracy"] = []
            for name in names:
                if name in report["skipped"]:
                    continue
                report["accuracy"].append(bench_accuracy(bundle, name, dataset, root, split, _dataset_options(set_)))
    except (ClearSDKError, FileNotFoundError, ValueError) as e:
        fail(str(e))
    if not report["results"]:
        reasons = "; ".join(f"{name}: {why}" for name, why in report["skipped"].items())
        fail(f"no backend could run, nothing was measured ({reasons})", code=2)
    if plot:
        try:
            throughput_plot(report, plot)
        except (ImportError, OSError, ValueError) as e:
            fail(f"cannot write the plot {plot}: {e}")
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    peak = report["machine"]["peak_gflops_numpy_sgemm"]
    t = Table(title=f"{report['model']} {tuple(report['input_size'])}: peak {peak:.0f} GFLOP/s (numpy sgemm)")
    for col in ("backend", "batch", "img/s", "p50 ms", "p95 ms", "p99 ms", "RSS MB", "% peak", "parity vs torch"):
        t.add_column(col, justify="right")
    for r in report["results"]:
        t.add_row(
            r["backend"],
            str(r["batch_size"]),
            f"{r['throughput']:.1f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['rss_mb']:.0f}" if r["rss_mb"] else "-",
            f"{100 * r['peak_fraction']:.1f}" if r["peak_fraction"] else "-",
            f"{r['parity_max_abs_vs_torch']:.1e}" if r["parity_max_abs_vs_torch"] is not None else "-",
        )
    console.print(t)
    for name, why in report["skipped"].items():
        say(f"skipped {name}: {why}", err=True)
    for acc in report.get("accuracy", []):
        line = f"{acc['backend']}: mA {acc['recognition']['mA']:.4f} F1 {acc['recognition']['f1']:.4f}"
        for scorer, m in acc["retrieval"].items():
            line += f" | {scorer} R-1 {m['R-1']:.4f} mAP {m['mAP']:.4f}"
        console.print(line)


# clear_sdk.video owns `watch` (its imports stay inside the command)
from clear_sdk.video.cli import watch  # noqa: E402

app.command()(watch)


def main() -> None:
    """The ``clear-sdk`` entry point: any error a command did not foresee is still one line, not a traceback."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print(Text("interrupted"), highlight=False)
        sys.exit(130)
    except Exception as e:  # the last resort: set CLEAR_SDK_DEBUG=1 to see the traceback
        if os.environ.get("CLEAR_SDK_DEBUG"):
            raise
        reason = " ".join(plain(e).split())[:300]
        err_console.print(
            Text.assemble(
                ("error: ", "bold red"),
                f"unexpected {type(e).__name__}: {reason} (run with CLEAR_SDK_DEBUG=1 for the traceback, "
                "and please report it)",
            ),
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
