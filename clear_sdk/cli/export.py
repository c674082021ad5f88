"""``clear-sdk export``: a checkpoint to a model bundle (the [export] extra, imported inside the command)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clear_sdk.cli.app import REPORTED, app, dataset_options, fail, say


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
    threshold_criterion: Annotated[
        str, typer.Option(help="What the thresholds maximise per attribute: balanced_accuracy (mA), f1, or mean.")
    ] = "balanced_accuracy",
    cpu_int8: Annotated[
        bool, typer.Option(help="Also write recognizer.int8.onnx (dynamic int8 for CPUs; backend onnxruntime-int8).")
    ] = False,
    cpu_int8_static: Annotated[
        bool,
        typer.Option(
            help="Also write recognizer.int8-static.onnx (static int8 QDQ for conv trunks; backend "
            "onnxruntime-int8-static), calibrated on --dataset's train split or on --calib DIR."
        ),
    ] = False,
    int8_calibration_images: Annotated[int, typer.Option(help="Static int8: calibration images.")] = 256,
    int8_calibration_split: Annotated[str, typer.Option(help="Static int8: split to calibrate on.")] = "train",
    int8_method: Annotated[str, typer.Option(help="Static int8 calibration: minmax, percentile, entropy.")] = "minmax",
    int8_eval_split: Annotated[
        str, typer.Option(help="Static int8: split of --dataset on which fp32 and int8 accuracy are recorded.")
    ] = "val",
    dataset: Annotated[str | None, typer.Option(help="Dataset for --calibrate-thresholds / --cpu-int8-static.")] = None,
    root: Annotated[str | None, typer.Option(help="Dataset folder for --dataset.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Dataset option, e.g. --set annotation=PATH/PETA.mat.")
    ] = None,
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
        from clear_sdk.export.bundle_writer import ExportOptions
    except ImportError as e:
        fail(f"export needs the export extra ({e.name} is missing): pip install 'clear-sdk[export]'")

    _refuse_bad_options(engine, int8, calib, cpu_int8_static, bool(dataset and root), int8_calibration_images,
                        calibrate_thresholds)  # fmt: skip
    sizes = _batch_sizes(batch_sizes)
    options = ExportOptions(
        engine=engine,
        fp16=fp16,
        int8=int8,
        calib_dir=calib,
        batch_sizes=sizes,
        opset=opset,
        checkpoint_copy=with_checkpoint,
        calibrate_thresholds=calibrate_thresholds,
        threshold_criterion=threshold_criterion,
        val_dataset=_dataset(dataset, root, set_) if calibrate_thresholds else None,
        calibration_split=calibration_split,
        cpu_int8=cpu_int8,
        cpu_int8_static=cpu_int8_static,
        int8_dataset=_dataset(dataset, root, set_) if dataset and root else None,
        int8_calibration_split=int8_calibration_split,
        int8_calibration_images=int8_calibration_images,
        int8_method=int8_method,
        int8_eval_split=int8_eval_split or None,
    )
    say(f"bundle written: {_write_bundle(checkpoint, out, options)}")


def _write_bundle(checkpoint: str, out: str, options) -> Path:
    """``export_bundle`` with ``options`` (an ExportOptions); its errors as one line (exit 2: TensorRT is missing)."""
    from clear_sdk.backends import TensorRTUnavailable
    from clear_sdk.export.bundle_writer import export_bundle

    try:
        return export_bundle(checkpoint, out, options)
    except TensorRTUnavailable as e:
        fail(str(e), code=2)
    except REPORTED as e:
        fail(str(e))
    except RuntimeError as e:  # torch.onnx and onnxruntime report a graph they cannot export or check this way
        fail(str(e))


def _dataset(name: str | None, root: str | None, options: list[str] | None) -> tuple:
    """(name, root) or (name, root, --set options) for the exporter."""
    opts = dataset_options(options)
    return (name, root, opts) if opts else (name, root)


def _refuse_bad_options(
    engine: str, int8: bool, calib: str | None, cpu_int8_static: bool, has_dataset: bool, int8_images: int,
    calibrate_thresholds: bool,
) -> None:  # fmt: skip
    """Exit with the fix for a combination of options the exporter cannot honour."""
    if engine not in ("onnx", "trt"):
        fail(f"--engine {engine!r}: choose onnx or trt")
    if int8 and not calib:
        fail("--int8 needs --calib DIR: a folder of representative images for calibration")
    if cpu_int8_static and not (has_dataset or calib):
        fail("--cpu-int8-static needs calibration images: --dataset NAME --root DIR, or --calib DIR")
    if int8_images < 1:
        fail(f"--int8-calibration-images {int8_images}: pass a positive number")
    if calibrate_thresholds and not has_dataset:
        fail("--calibrate-thresholds needs --dataset NAME --root DIR (its val split picks the thresholds)")


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(b) for b in text.split(","))
    except ValueError:
        fail(f"--batch-sizes {text!r}: write comma-separated integers, e.g. 1,8,32")
