"""Training commands: ``train`` and ``eval`` (the [train] extra, imported inside each command)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from clear_sdk.cli.app import REPORTED, app, console, dataset_options, fail, need_training, say
from clear_sdk.paths import RunFiles


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
    need_training()
    from clear_sdk.training.config import load_config
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
    except REPORTED as e:
        fail(str(e))
    except KeyError as e:  # a registry's unknown name; the message lists the valid ones
        fail(str(e.args[0]))
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=float))
    else:
        say(f"checkpoints in {cfg.out}: {RunFiles.BEST} (+ .json)")  # a path is printed literally, never as markup
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
    need_training()
    from clear_sdk.training.trainer import evaluate as run_eval

    kwargs: dict[str, object] = {"partition": partition} if partition is not None else {}
    if split_file is not None:
        kwargs["split_file"] = split_file
    kwargs.update(dataset_options(set_))
    try:
        result = run_eval(checkpoint, dataset, root, split=split, dataset_kwargs=kwargs, device=device)
    except REPORTED as e:
        fail(str(e))
    except KeyError as e:  # a registry's unknown name or split; the message lists the valid ones
        fail(str(e.args[0]))
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
