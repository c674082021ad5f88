"""The ``clear-sdk`` command line (typer).

Each command imports what it needs inside its body, so ``clear-sdk --help`` and the runtime
commands never import torch.
"""

from __future__ import annotations

import json
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


def main() -> None:
    app()
