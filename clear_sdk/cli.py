"""The ``clear-sdk`` command line (typer).

Each command imports what it needs inside its body, so ``clear-sdk --help`` and the runtime
commands never import torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="clear-sdk: pedestrian attribute recognition and attribute-based person retrieval (CLEAR).",
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    """Stop with a one-line reason on stderr and a non-zero exit code (never a traceback)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@app.callback()
def _root() -> None:
    """Train, export and run CLEAR person-attribute models."""


@app.command()
def info(
    model: Annotated[
        str | None, typer.Option(help="Report size, FLOPs and token grids of this registered model.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Version, installed backends and registered models; with --model, that model's size and cost."""
    from clear_sdk.environment import describe_environment

    report = describe_environment()
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
    table.add_row("models", ", ".join(report["models"]) or "(install clear-sdk[train])")
    console.print(table)
    if "model" in report:
        m = report["model"]
        t = Table(title=m["name"], show_header=False)
        t.add_row("arch / variant", f"{m['arch']} / {m['variant']}")
        t.add_row("input (H, W)", str(tuple(m["input_size"])))
        t.add_row("parameters", f"{m['parameters']:,} ({m['parameters'] / 1e6:.1f} M)")
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
        str | None, typer.Option(help="Registered model name (clear-tiny, clear-small, clear-base, resnet50).")
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
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint in --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Train CLEAR: stage 1 (recognition) and/or stage 2 (retrieval adapters). Multi-GPU: launch with torchrun."""
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


@app.command("eval")
def evaluate(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint .safetensors, or a train --out folder (its best).")],
    dataset: Annotated[str, typer.Option(help="Registered dataset name.")],
    root: Annotated[str, typer.Option(help="Dataset folder.")],
    split: Annotated[str, typer.Option(help="Split to evaluate.")] = "test",
    partition: Annotated[int | None, typer.Option(help="Dataset partition (PETA, RAPv2, pkl).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    as_json: Annotated[
        bool, typer.Option("--json", help='One JSON object {"recognition": ..., "retrieval": ...}.')
    ] = False,
) -> None:
    """Recognition metrics (mA, accuracy, precision, recall, F1) and, with stage 2, retrieval metrics."""
    _need_training()
    from clear_sdk.training.data import DatasetError
    from clear_sdk.training.models import CheckpointError
    from clear_sdk.training.trainer import evaluate as run_eval

    kwargs = {"partition": partition} if partition is not None else {}
    try:
        result = run_eval(checkpoint, dataset, root, split=split, dataset_kwargs=kwargs, device=device)
    except (ValueError, KeyError, FileNotFoundError, DatasetError, CheckpointError) as e:
        fail(str(e.args[0] if isinstance(e, KeyError) else e))
    if as_json:
        typer.echo(json.dumps({k: result[k] for k in ("recognition", "retrieval") if k in result}, indent=2))
        return
    table = Table(title=f"{Path(result['checkpoint']).name} on {dataset}/{split} ({result['num_images']} images)")
    table.add_column("task")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for task in ("recognition", "retrieval"):
        for k, v in result.get(task, {}).items():
            table.add_row(task, k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)


def main() -> None:
    app()
