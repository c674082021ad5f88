"""Checkpoint -> model bundle: ONNX graphs, optional TensorRT engines, the checkpoint, ``manifest.json``.

The bundle is built in a temporary folder beside ``out_dir`` and moved into place only when complete,
so a failed or interrupted export never leaves a half-written bundle under ``out_dir`` (re-exporting
over an existing bundle swaps the old folder out with two renames). ``manifest.json`` is what
:class:`clear_sdk.bundle.Bundle` reads; see that module for what the runtime checks.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import platform
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clear_sdk import __version__
from clear_sdk.bundle import (
    MANIFEST_NAME,
    ONNX_META_ATTRIBUTES,
    ONNX_META_INPUT_SIZE,
    Bundle,
    Dims,
    EngineSpec,
    FileEntry,
    Manifest,
    Retrieval,
    sha256_file,
)
from clear_sdk.metrics import UNKNOWN, attribute_metrics
from clear_sdk.paths import list_images, package_versions, resolve_checkpoint
from clear_sdk.preprocess import Preprocessing, preprocess_batch
from clear_sdk.query import DEFAULT_QUERY_FORM

from .onnx_export import (
    ExportError,
    export_query,
    export_recognizer,
    quantize_recognizer_int8,
    quantize_recognizer_int8_static,
)

__all__ = [
    "ExportOptions",
    "best_thresholds",
    "calibration_images",
    "dataset_evaluator",
    "export_bundle",
    "resolve_checkpoint",
    "val_probabilities",
]

logger = logging.getLogger(__name__)

ENGINES = ("onnx", "trt")


def _versions(extra: Sequence[str] = ()) -> dict[str, str | None]:
    dists = ("torch", "onnx", "onnxruntime", "timm", "onnxslim", *extra)
    return {"clear-sdk": __version__, "python": platform.python_version(), **package_versions(dists)}


# ------------------------------------------------------------------------------------- thresholds


#: per-attribute threshold criteria: balanced accuracy (what mA averages), the attribute's F1
#: (2TP / (2TP + FP + FN), which favours precision on rare attributes), or the mean of the two
THRESHOLD_CRITERIA = ("balanced_accuracy", "f1", "mean")


def best_thresholds(
    probs: np.ndarray, labels: np.ndarray, default: float = 0.5, criterion: str = "balanced_accuracy"
) -> np.ndarray:
    """Per attribute, the threshold maximising ``criterion`` on (probs, labels): by default its balanced
    accuracy (TP/P + TN/N) / 2; ``"f1"`` its F1; ``"mean"`` the mean of the two (:data:`THRESHOLD_CRITERIA`).

    A prediction is positive when ``prob > threshold`` (as in :func:`clear_sdk.metrics.attribute_metrics`).
    Candidate cuts lie between consecutive distinct probabilities (the threshold is their midpoint, so
    tiny numeric differences between backends do not flip decisions); among equally good cuts the one
    closest to ``default`` wins. An attribute without positives or without negatives keeps ``default``.
    Labels equal to ``UNKNOWN`` (a multi-dataset split's unannotated entries) are left out, attribute by
    attribute. Balanced accuracy is the criterion because it is what mA averages: the cut maximising it
    is the one that maximises the attribute's share of mA on the calibration images.
    """
    if criterion not in THRESHOLD_CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(THRESHOLD_CRITERIA)}, got {criterion!r}")
    probs = np.asarray(probs, dtype=np.float64)
    raw = np.asarray(labels)
    if probs.shape != raw.shape or probs.ndim != 2:
        raise ValueError(f"probs {probs.shape} and labels {raw.shape} must both be [N, A]")
    known = raw != UNKNOWN
    y = raw == 1
    out = np.full(probs.shape[1], default, dtype=np.float64)
    for a in range(probs.shape[1]):
        rows = known[:, a]
        pos, neg = int(y[rows, a].sum()), int((~y[rows, a]).sum())
        if pos == 0 or neg == 0:
            continue
        order = np.argsort(-probs[rows, a], kind="stable")
        p, t = probs[rows, a][order], y[rows, a][order]
        last_of_value = np.r_[p[:-1] > p[1:], True]  # cut after these: everything above is positive
        tp = np.cumsum(t)[last_of_value]
        fp = np.cumsum(~t)[last_of_value]
        values = p[last_of_value]
        below = np.r_[values[1:], 0.0]  # the next lower distinct value (0 below the smallest)
        cuts = np.r_[(1.0 + values[0]) / 2.0, (values + below) / 2.0]  # first: nothing positive
        bacc = np.r_[0.5, (tp / pos + (neg - fp) / neg) / 2.0]
        f1 = np.r_[0.0, 2.0 * tp / (2.0 * tp + fp + (pos - tp))]
        score = {"balanced_accuracy": bacc, "f1": f1, "mean": (bacc + f1) / 2.0}[criterion]
        best = np.flatnonzero(score >= score.max() - 1e-12)
        out[a] = cuts[best[np.argmin(np.abs(cuts[best] - default))]]
    return out


def _with_checkpoint_kwargs(val_dataset: Any, meta: Mapping[str, Any]) -> Any:
    """``(name, root)`` completed with the checkpoint's dataset options (PETA colours, annotation path)."""
    trained = meta.get("training") or {}
    same = (
        isinstance(val_dataset, (list, tuple))
        and len(val_dataset) in (2, 3)
        and trained.get("dataset") == val_dataset[0]
    )
    if same:
        given = dict(val_dataset[2]) if len(val_dataset) == 3 else {}  # options given here win
        return (*val_dataset[:2], {**dict(trained.get("dataset_kwargs") or {}), **given})
    return val_dataset


def val_probabilities(
    recognizer_onnx: str | Path,
    preprocessing: Preprocessing,
    attribute_names: Sequence[str],
    val_dataset: Sequence[Any] | Mapping[str, Any],
    split: str = "val",
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Probabilities of the exported graph on a dataset split, with its labels and a name for reports.

    ``val_dataset`` is ``(name, root)`` or ``(name, root, kwargs)`` for the training data registry
    (``clear_sdk.training.data.create_dataset``), or a mapping with keys ``name``, ``root``, ``kwargs``.
    """
    import onnxruntime as ort

    from clear_sdk.training.data import create_dataset

    if isinstance(val_dataset, Mapping):
        name, root, kwargs = val_dataset["name"], val_dataset["root"], dict(val_dataset.get("kwargs") or {})
    else:
        if len(val_dataset) not in (2, 3):
            raise ValueError("val_dataset must be (name, root) or (name, root, kwargs)")
        name, root = val_dataset[0], val_dataset[1]
        kwargs = dict(val_dataset[2]) if len(val_dataset) == 3 else {}
    ds = create_dataset(name, root, **kwargs)
    if list(ds.attributes) != list(attribute_names):
        raise ValueError(
            f"{name} at {root} has other attributes than the model predicts; calibrate on its training dataset"
        )
    records = ds.split(split)
    if not records:
        raise ValueError(f"{name}: the {split} split is empty; thresholds need labelled validation images")
    sess = ort.InferenceSession(str(recognizer_onnx), providers=["CPUExecutionProvider"])
    probs = []
    for i in range(0, len(records), batch_size):
        batch, _, _ = preprocess_batch([r.path for r in records[i : i + batch_size]], preprocessing, errors="raise")
        probs.append(sess.run(["probs"], {"image": batch})[0])
    return np.concatenate(probs), ds.labels(split), f"{name}/{split}"


# ------------------------------------------------------------------------------------ static int8

#: A measurement of one graph on real data: ``fn(recognizer_onnx_path) -> {"mA": ..., ...}``.
GraphEvaluator = Callable[[Path], Mapping[str, float]]


def _dataset_spec(spec: Sequence[Any] | Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    if isinstance(spec, Mapping):
        return spec["name"], spec["root"], dict(spec.get("kwargs") or {})
    if len(spec) not in (2, 3):
        raise ValueError("a dataset must be (name, root) or (name, root, kwargs)")
    return spec[0], spec[1], dict(spec[2]) if len(spec) == 3 else {}


def calibration_images(
    source: str | os.PathLike[str] | Sequence[Any] | Mapping[str, Any],
    preprocessing: Preprocessing,
    split: str = "train",
    count: int = 256,
    seed: int = 0,
) -> tuple[np.ndarray, str]:
    """Preprocessed calibration images [N, 3, H, W] and a name for them: ``count`` images drawn with a
    fixed seed from a folder (``source`` a path) or from a dataset split (``(name, root[, kwargs])``)."""
    if isinstance(source, (str, os.PathLike)):
        paths = list_images(source)
        name = f"folder {Path(source).name}"
    else:
        from clear_sdk.training.data import create_dataset

        ds_name, root, kwargs = _dataset_spec(source)
        paths = [r.path for r in create_dataset(ds_name, root, **kwargs).split(split)]
        name = f"{ds_name}/{split}"
    if not paths:
        raise ValueError(f"no calibration images in {name}: pass a folder of person crops or a non-empty split")
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(paths), min(count, len(paths)), replace=False).tolist())
    batch, _, _ = preprocess_batch([paths[i] for i in pick], preprocessing, errors="raise")
    return batch, f"{name}, {len(pick)} images (seed {seed})"


def dataset_evaluator(
    dataset: Sequence[Any] | Mapping[str, Any], names: Sequence[str], pp: Preprocessing, split: str = "val"
) -> GraphEvaluator:
    """mA / F1 of a recognizer graph on a labelled split at thresholds 0.5; with ``mA_standard`` over the
    dataset's standard attributes when the model predicts more (PETA's first 35 of 57 with colours)."""

    def evaluate(graph: Path) -> dict[str, float]:
        from clear_sdk.training.data import create_dataset

        probs, labels, _ = val_probabilities(graph, pp, names, dataset, split=split)
        m = attribute_metrics(probs, labels)
        out = {"mA": float(m["mA"]), "f1": float(m["f1"]), "images": int(len(labels))}
        ds_name, root, kwargs = _dataset_spec(dataset)
        standard = len(type(create_dataset(ds_name, root, **kwargs)).attributes)
        if 0 < standard < len(names):
            out["mA_standard"] = float(attribute_metrics(probs[:, :standard], labels[:, :standard])["mA"])
            out["standard_attributes"] = standard
        return out

    return evaluate


def _static_int8(
    tmp: Path,
    pp: Preprocessing,
    source: Any,
    split: str,
    count: int,
    method: str,
    evaluators: Mapping[str, GraphEvaluator],
) -> dict[str, Any]:
    """Write ``recognizer.int8-static.onnx`` and measure it beside the fp32 graph with each evaluator."""
    calib, described = calibration_images(source, pp, split=split, count=count)
    q = quantize_recognizer_int8_static(
        tmp / "recognizer.onnx", tmp / "recognizer.int8-static.onnx", calib, method=method
    )
    info = {"method": q["method"], "calibration": described, "qdq_nodes": q["qdq_nodes"], "accuracy": {}}
    for name, evaluate in evaluators.items():
        fp32, int8 = evaluate(tmp / "recognizer.onnx"), evaluate(tmp / "recognizer.int8-static.onnx")
        delta = {k: float(int8[k]) - float(fp32[k]) for k in fp32 if k.startswith(("mA", "f1")) and k in int8}
        info["accuracy"][name] = {"fp32": dict(fp32), "int8_static": dict(int8), "int8_minus_fp32": delta}
        logger.info("static int8 on %s: %s", name, delta)
    return {"info": info, "parity": q["parity_max_abs_vs_fp32"]}


# ----------------------------------------------------------------------------------------- bundle


def _groups(meta: dict[str, Any], names: list[str]) -> dict[str, list[str]]:
    groups = (meta.get("dataset") or {}).get("groups")
    if not groups:
        try:
            from clear_sdk.schema import load_schema

            schema = load_schema((meta.get("dataset") or {}).get("name", ""))
            if list(schema.attributes) == names:
                groups = schema.groups
        except KeyError:
            groups = None
    if not groups:
        return {}
    return {g: [a for a in members if a in names] for g, members in groups.items() if any(a in names for a in members)}


def stamp_graph(path: Path, names: Sequence[str], pp: Preprocessing) -> None:
    """Record the attribute order and input size inside the graph (ONNX metadata, hashed with it).

    The runtime compares them with the manifest when it opens the graph, so a hand-edited manifest
    whose names are swapped or dropped is refused instead of mislabelling every prediction.
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    keep = [p for p in graph.metadata_props if p.key not in (ONNX_META_ATTRIBUTES, ONNX_META_INPUT_SIZE)]
    del graph.metadata_props[:]
    graph.metadata_props.extend(keep)
    for key, value in ((ONNX_META_ATTRIBUTES, list(names)), (ONNX_META_INPUT_SIZE, list(pp.input_size))):
        graph.metadata_props.append(onnx.StringStringEntryProto(key=key, value=json.dumps(value)))
    onnx.save(graph, str(path))


def _precisions(engine: str, fp16: bool, int8: bool) -> list[str]:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "onnx":
        if fp16 or int8:
            raise ValueError("--fp16 / --int8 select TensorRT engine precisions: add --engine trt")
        return []
    precisions = [p for p, on in (("fp16", fp16), ("int8", int8)) if on]
    return precisions or ["fp32"]


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Move the finished bundle to ``out_dir``; an existing bundle there is replaced, anything else refused."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:12]}")
    os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except OSError:
        os.replace(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """How :func:`export_bundle` writes a bundle; the defaults are those of a plain ``clear-sdk export``.

    ``engine="trt"`` also builds TensorRT engines (fp32, or those of ``fp16`` / ``int8``, calibrated on the
    images of ``calib_dir``) for the profile ``batch_sizes``; without TensorRT or a GPU the export raises
    :class:`~clear_sdk.backends.TensorRTUnavailable` before any work.
    ``calibrate_thresholds`` picks per-attribute thresholds on ``val_dataset``'s ``calibration_split``
    by ``threshold_criterion`` (see :func:`best_thresholds`; "train" keeps val unseen for reporting);
    otherwise every threshold is 0.5. ``text=False`` skips ``text.onnx``.
    ``cpu_int8`` adds ``recognizer.int8.onnx`` (dynamic int8 for CPUs; backend ``onnxruntime-int8``).
    ``cpu_int8_static`` adds ``recognizer.int8-static.onnx`` (static int8 QDQ, for conv trunks; backend
    ``onnxruntime-int8-static``), calibrated by ``int8_method`` on ``int8_calibration_images`` images of
    ``int8_dataset``'s ``int8_calibration_split`` (or of the folder ``calib_dir``). Its accuracy beside fp32
    on ``int8_dataset``'s ``int8_eval_split`` and with each of ``int8_evaluators`` is recorded in the
    manifest (``onnx.int8_static.accuracy``).
    ``checkpoint_copy=False`` leaves the torch checkpoint out (a smaller bundle, as the shipped models are;
    the ``torch`` backend then cannot serve it).
    """

    engine: str = "onnx"
    fp16: bool = False
    int8: bool = False
    calib_dir: str | os.PathLike[str] | None = None
    batch_sizes: Sequence[int] = (1, 8, 32)
    opset: int = 17
    simplify: bool = True
    text: bool = True
    checkpoint_copy: bool = True
    calibrate_thresholds: bool = False
    val_dataset: Sequence[Any] | Mapping[str, Any] | None = None
    threshold_criterion: str = "balanced_accuracy"
    calibration_split: str = "val"
    cpu_int8: bool = False
    cpu_int8_static: bool = False
    int8_dataset: Sequence[Any] | Mapping[str, Any] | None = None
    int8_calibration_split: str = "train"
    int8_calibration_images: int = 256
    int8_method: str = "minmax"
    int8_eval_split: str | None = "val"
    int8_evaluators: Mapping[str, GraphEvaluator] | None = None


@dataclasses.dataclass
class _Graphs:
    """What the exported graphs add to the manifest: files by role, outputs, parity, the retrieval block."""

    models: dict[str, str]
    outputs: dict[str, Any]
    parity: dict[str, Any]
    int8_static: dict[str, Any] | None = None
    retrieval: dict[str, Any] | None = None
    embed_dim: int | None = None
    soft_dim: int | None = None


def export_bundle(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: ExportOptions | None = None,
    **overrides: Any,
) -> Path:
    """Export ``checkpoint`` into the bundle folder ``out_dir`` and return its path.

    ``options`` says how (:class:`ExportOptions`; the CLI builds one); ``overrides`` are fields of it for a
    one-off call (``export_bundle(ckpt, out, simplify=False)``).
    """
    from clear_sdk.training.models import load_checkpoint

    opts = dataclasses.replace(options or ExportOptions(), **overrides)
    precisions = _precisions(opts.engine, opts.fp16, opts.int8)
    _check_options(
        precisions, opts.batch_sizes, opts.calib_dir, opts.cpu_int8_static, opts.int8_dataset,
        opts.calibrate_thresholds, opts.val_dataset,
    )  # fmt: skip
    if existing := _existing_non_bundle(Path(out_dir)):
        raise FileExistsError(existing)

    ckpt = resolve_checkpoint(checkpoint)
    model, meta = load_checkpoint(ckpt)
    model.eval()
    cfg = model.cfg
    names = list(cfg.attribute_names or (meta.get("dataset") or {}).get("attributes") or [])
    if len(names) != cfg.num_attrs:
        raise ExportError(
            f"{ckpt.name} records {len(names)} attribute names for {cfg.num_attrs} outputs; "
            "a bundle needs the names: retrain with a dataset, or set model.attribute_names in the checkpoint JSON"
        )
    pp = cfg.preprocessing

    out_dir = Path(out_dir).expanduser().absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        graphs, rec = _write_graphs(model, meta, ckpt, names, tmp, opts)
        if opts.checkpoint_copy:
            (tmp / "checkpoint").mkdir()
            shutil.copy2(ckpt, tmp / "checkpoint" / "model.safetensors")
            shutil.copy2(ckpt.with_suffix(".json"), tmp / "checkpoint" / "model.json")
            graphs.models["checkpoint"] = "checkpoint/model.safetensors"
            graphs.models["checkpoint_config"] = "checkpoint/model.json"

        thresholds, calibration = {n: 0.5 for n in names}, None
        if opts.calibrate_thresholds:
            dataset = _with_checkpoint_kwargs(opts.val_dataset, meta)
            thresholds, calibration = _calibrated_thresholds(
                tmp / "recognizer.onnx", pp, names, dataset, opts.calibration_split, opts.threshold_criterion
            )
        engines = _build_engines(tmp, out_dir, pp, precisions, opts)
        info = _info(cfg, meta, ckpt, opts.checkpoint_copy, rec, graphs.parity, graphs.int8_static, calibration,
                     bool(engines))  # fmt: skip
        spec = _manifest(model, names, meta, thresholds, graphs, engines, info, tmp)
        (tmp / MANIFEST_NAME).write_text(json.dumps(spec.to_dict(), indent=2, default=_json_default) + "\n")
        Bundle.open(tmp)  # what the runtime will check, before the bundle replaces anything
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("bundle written to %s", out_dir)
    return out_dir


def _write_graphs(
    model: Any, meta: dict[str, Any], ckpt: Path, names: list[str], tmp: Path, opts: ExportOptions
) -> tuple[_Graphs, dict[str, Any]]:
    """recognizer.onnx (+ its int8 forms) and the retrieval graphs; also returns the recognizer's export record."""
    pp = model.cfg.preprocessing
    rec = export_recognizer(model, tmp / "recognizer.onnx", opset=opts.opset, simplify=opts.simplify)
    graphs = _Graphs({"recognizer": "recognizer.onnx"}, {"recognizer": rec["outputs"]}, {})
    graphs.parity["recognizer"] = rec["parity_max_abs"]
    stamp_graph(tmp / "recognizer.onnx", names, pp)
    if opts.cpu_int8:
        q8 = quantize_recognizer_int8(tmp / "recognizer.onnx", tmp / "recognizer.int8.onnx")
        stamp_graph(tmp / "recognizer.int8.onnx", names, pp)
        graphs.models["recognizer_int8"] = "recognizer.int8.onnx"
        graphs.parity["recognizer_int8_vs_fp32"] = q8["parity_max_abs_vs_fp32"]
    if opts.cpu_int8_static:
        evaluators = dict(opts.int8_evaluators or {})
        source: Any = opts.calib_dir
        if opts.int8_dataset is not None:
            source = _with_checkpoint_kwargs(opts.int8_dataset, meta)
            if opts.int8_eval_split:
                name = f"{_dataset_spec(source)[0]}/{opts.int8_eval_split}"
                evaluators = {name: dataset_evaluator(source, names, pp, opts.int8_eval_split), **evaluators}
        calibration_set = (source, opts.int8_calibration_split, opts.int8_calibration_images, opts.int8_method)
        graphs.int8_static = _add_static_int8(tmp, names, pp, calibration_set, evaluators, graphs.models, graphs.parity)
    if model.retrieval is not None:
        graphs.retrieval, graphs.embed_dim, graphs.soft_dim = _export_retrieval(
            model, meta, tmp, opts.opset, opts.simplify, opts.text, graphs.models, graphs.outputs, graphs.parity, ckpt
        )
    return graphs, rec


def _build_engines(
    tmp: Path, out_dir: Path, pp: Preprocessing, precisions: Sequence[str], opts: ExportOptions
) -> list[dict[str, Any]]:
    """The TensorRT engines asked for (none for ``engine="onnx"``), reusing an earlier int8 build's scales."""
    if not precisions:
        return []
    from .tensorrt_build import build_engine

    for cache in out_dir.glob("calibration.*.cache") if out_dir.is_dir() else []:
        shutil.copy2(cache, tmp / cache.name)  # reuse the scales of an earlier int8 build
    return [
        build_engine(
            tmp / "recognizer.onnx", tmp, precision, opts.batch_sizes, preprocessing=pp, calib_dir=opts.calib_dir
        )
        for precision in precisions
    ]


def _manifest(
    model: Any,
    names: list[str],
    meta: dict[str, Any],
    thresholds: Mapping[str, float],
    graphs: _Graphs,
    engines: list[dict[str, Any]],
    info: dict[str, Any],
    tmp: Path,
) -> Manifest:
    """The bundle's manifest, hashing every file written to ``tmp``.

    Built lax (numpy floats, tuples): what is written is then read back strictly by ``Bundle.open``.
    """
    cfg = model.cfg
    dims = Dims(
        num_attrs=cfg.num_attrs, feature_dim=int(model.num_features), embed_dim=graphs.embed_dim,
        soft_dim=graphs.soft_dim,
    )  # fmt: skip
    return Manifest.model_validate(
        {
            **info,
            "attributes": names,
            "groups": _groups(meta, names),
            "thresholds": thresholds,
            "preprocessing": cfg.preprocessing,
            "dims": dims,
            "outputs": graphs.outputs,
            "retrieval": None if graphs.retrieval is None else _retrieval_spec(graphs.retrieval),
            "models": graphs.models,
            "engines": [{k: v for k, v in e.items() if k in EngineSpec.model_fields} for e in engines],
            "files": _hash_files(tmp),
        },
        strict=False,
    )


def _info(
    cfg: Any,
    meta: Mapping[str, Any],
    ckpt: Path,
    checkpoint_copy: bool,
    rec: Mapping[str, Any],
    parity: Mapping[str, Any],
    int8_static: Mapping[str, Any] | None,
    calibration: Mapping[str, Any] | None,
    engines: bool,
) -> dict[str, Any]:
    """The manifest's informational keys: model, dataset, calibration, ONNX export, source checkpoint, producer."""
    return {
        # the model config once per bundle: in the copied (hashed) checkpoint config, else here
        "model": {"name": cfg.name, "arch": cfg.arch, "variant": cfg.variant}
        | ({} if checkpoint_copy else {"config": cfg.to_dict()}),
        "dataset": (meta.get("dataset") or {}).get("name"),
        "threshold_calibration": calibration,
        "onnx": {
            "opset": rec["opset"],
            "exporter": rec["exporter"],
            "simplified": rec["simplified"],
            "dynamic_batch": True,
            "parity_max_abs": parity,
            "parity_inputs": "seeded random, batch 1 and 3 (query: 1 and 5)",
            **({"int8_static": int8_static} if int8_static else {}),
        },
        "source_checkpoint": {
            "file": ckpt.name,
            "stage": meta.get("stage"),
            "epoch": meta.get("epoch"),
            "val": meta.get("val"),
        },
        "producer": {
            **_versions(("tensorrt",) if engines else ()),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
    }


def _check_options(
    precisions: Sequence[str],
    batch_sizes: Sequence[int],
    calib_dir: Any,
    cpu_int8_static: bool,
    int8_dataset: Any,
    calibrate_thresholds: bool,
    val_dataset: Any,
) -> None:
    """Fail fast, before minutes of export: TensorRT that cannot run here, calibration data that is missing."""
    if precisions:
        from .tensorrt_build import profile_batches, tensorrt_status

        tensorrt_status()
        profile_batches(batch_sizes)
        if "int8" in precisions and calib_dir is None:
            raise ValueError("--int8 needs calibration images: pass --calib DIR (a folder of person crops)")
    if cpu_int8_static and int8_dataset is None and calib_dir is None:
        raise ValueError(
            "--cpu-int8-static needs calibration images: pass --dataset NAME --root DIR (its train split) "
            "or --calib DIR (a folder of person crops)"
        )
    if calibrate_thresholds and val_dataset is None:
        raise ValueError("--calibrate-thresholds needs a validation split: pass the dataset name and its root")


def _add_static_int8(
    tmp: Path,
    names: list[str],
    pp: Preprocessing,
    calibration_set: tuple[Any, str, int, str],
    evaluators: Mapping[str, Any],
    models: dict[str, str],
    parity: dict[str, Any],
) -> dict[str, Any]:
    """recognizer.int8-static.onnx beside the fp32 graph; returns what the manifest records of it."""
    source, split, images, method = calibration_set
    q8s = _static_int8(tmp, pp, source, split, images, method, evaluators)
    stamp_graph(tmp / "recognizer.int8-static.onnx", names, pp)
    models["recognizer_int8_static"] = "recognizer.int8-static.onnx"
    parity["recognizer_int8_static_vs_fp32"] = q8s["parity"]
    return q8s["info"]


def _export_retrieval(
    model: Any,
    meta: Mapping[str, Any],
    tmp: Path,
    opset: int,
    simplify: bool,
    text: bool,
    models: dict[str, str],
    outputs: dict[str, Any],
    parity: dict[str, Any],
    ckpt: Path,
) -> tuple[dict[str, Any], int, int | None]:
    """query.onnx (and text.onnx + tokenizer where the query form reads text); fills models/outputs/parity.

    Returns the manifest's retrieval block (before the text encoder's files are named once), D and the
    soft input's width (None for HA, which has no soft input).
    """
    rcfg = model.cfg.retrieval
    q = export_query(model, tmp / "query.onnx", opset=opset, simplify=simplify)
    parity["query"] = q["parity_max_abs"]
    outputs["query"] = q["outputs"]
    models["query"] = "query.onnx"
    soft_dim = rcfg.soft_dim if rcfg.uses_text else None
    retrieval: dict[str, Any] = {"description_template": meta.get("description_template"), "text_encoder": None}
    if rcfg.query_form != DEFAULT_QUERY_FORM:  # older readers know only HA+SP: keep the key out then
        retrieval["query_form"] = rcfg.query_form
    if getattr(rcfg, "query_encoding", "binary") != "binary":  # likewise: older readers know only binary
        retrieval["query_encoding"] = rcfg.query_encoding
    if text and meta.get("text_encoder") and rcfg.uses_text:
        info = _export_text(meta["text_encoder"], tmp, opset, soft_dim)
        retrieval["text_encoder"] = info
        models["text"], models["tokenizer"] = info["onnx"], info["tokenizer"]
        if "max_abs_diff" in info:
            parity["text"] = {"soft_query": info["max_abs_diff"]}
    elif text and rcfg.uses_text:
        logger.warning("%s records no text encoder: the bundle has no text.onnx (queries need soft input)", ckpt)
    return retrieval, rcfg.embed_dim, soft_dim


def _calibrated_thresholds(
    recognizer: Path, pp: Preprocessing, names: list[str], dataset: Any, split: str, criterion: str
) -> tuple[dict[str, float], dict[str, Any]]:
    """Per-attribute thresholds picked on ``split`` of ``dataset`` by the exported graph, and the record of it."""
    probs, labels, source = val_probabilities(recognizer, pp, names, dataset, split=split)
    thr = best_thresholds(probs, labels, criterion=criterion)
    at05, cal = attribute_metrics(probs, labels), attribute_metrics(probs, labels, thr)
    calibration = {
        "source": source,
        "num_images": int(len(labels)),
        "criterion": {
            "balanced_accuracy": "per-attribute balanced accuracy (TP/P + TN/N) / 2",
            "f1": "per-attribute F1 2TP / (2TP + FP + FN)",
            "mean": "per-attribute mean of balanced accuracy and F1",
        }[criterion],
        "mA_at_0.5": at05["mA"],
        "mA_calibrated": cal["mA"],
        "f1_at_0.5": at05["f1"],
        "f1_calibrated": cal["f1"],
        "note": "both mA values are measured on the split the thresholds were chosen on",
    }
    return {n: float(t) for n, t in zip(names, thr)}, calibration


def _hash_files(tmp: Path) -> dict[str, FileEntry]:
    """sha256 and size of every file of the bundle being written (the manifest itself is not hashed)."""
    return {
        f.relative_to(tmp).as_posix(): FileEntry(sha256=sha256_file(f), size=f.stat().st_size)
        for f in sorted(tmp.rglob("*"))
        if f.is_file() and f.name != MANIFEST_NAME
    }


def _retrieval_spec(retrieval: Mapping[str, Any]) -> Retrieval:
    """The manifest's retrieval block; the text encoder's files are named once, in models.text / models.tokenizer."""
    text = retrieval.get("text_encoder")
    if text:
        text = {k: v for k, v in text.items() if k not in ("onnx", "tokenizer")}
    return Retrieval.model_validate({**retrieval, "text_encoder": text or None}, strict=False)


def _existing_non_bundle(out_dir: Path) -> str | None:
    """A reason to refuse ``out_dir``: it exists and is neither an empty folder nor a bundle."""
    if not out_dir.exists():
        return None
    if not out_dir.is_dir():
        return f"{out_dir} exists and is a file; pass a folder for the bundle"
    if any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).is_file():
        return f"{out_dir} is a non-empty folder that is not a bundle; pass a new or empty folder"
    return None


def _export_text(text_meta: dict[str, Any], out_dir: Path, opset: int, soft_dim: int) -> dict[str, Any]:
    """text.onnx + tokenizer.json of the checkpoint's frozen language model (export/text_onnx.py)."""
    from clear_sdk.training.text_encoder import TextEncoder

    from .text_onnx import export_text_encoder

    encoder = TextEncoder.from_config(text_meta)
    if encoder.soft_dim != soft_dim:
        raise ExportError(
            f"the text encoder gives soft queries of {encoder.soft_dim} values but f_text takes {soft_dim}: "
            "the checkpoint's text_encoder entry does not match its adapters"
        )
    return dict(export_text_encoder(encoder, out_dir, opset=opset).info)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, (np.ndarray, tuple, set)):
        return list(obj.tolist() if isinstance(obj, np.ndarray) else obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
