"""CLEAR -> ONNX: the recognizer graph (image -> probabilities, embedding) and the query graph.

``recognizer.onnx``: ``image`` float32 [B, 3, H, W] -> ``probs`` = sigmoid(logits) [B, A] and, when the
model has retrieval adapters, ``embedding`` = ``encode_image(x, normalize=True)`` [B, D]. A model
without adapters (stage 1 only) has the single output ``probs``; the manifest records the outputs.
``query.onnx``: ``hard`` [Q, A] + ``soft`` [Q, soft_dim] -> ``query_embedding`` [Q, D], exactly
``encode_query(hard, soft, normalize=True)``.

Export uses torch's TorchScript-based exporter (``dynamo=False``): on torch 2.14 it exports the timm
ViT, the padded/masked Swin windows (``torch.roll``, window partitioning) and CASA at opset 17 in a few
seconds, where the dynamo exporter takes about a minute for the same graph and emits opset 18; the
dynamo exporter is the fallback when the first one fails. Every graph is checked with
``onnx.checker``, run in onnxruntime against PyTorch on seeded random inputs (the max abs differences
are returned), and simplified with onnxslim when it is installed and the simplified graph gives the
same outputs as the unsimplified one (otherwise the unsimplified graph is kept).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from clear_sdk.errors import ClearSDKError

__all__ = [
    "PARITY_TOLERANCE",
    "ExportError",
    "QueryGraph",
    "RecognizerGraph",
    "export_query",
    "export_recognizer",
    "qdq_node_counts",
    "quantize_recognizer_int8",
    "quantize_recognizer_int8_static",
]

logger = logging.getLogger(__name__)

#: An export whose ONNX outputs differ from PyTorch by more than this (max abs) is refused.
PARITY_TOLERANCE = 1e-3
#: The simplified graph is kept only when it reproduces the unsimplified one to within this.
SIMPLIFY_TOLERANCE = 1e-5


class ExportError(ClearSDKError):
    """A model could not be exported to ONNX, or the exported graph does not match PyTorch."""


class RecognizerGraph(nn.Module):
    """image -> (probs, embedding), or probs alone for a model without retrieval adapters."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        features = self.model.forward_features(image)
        probs = torch.sigmoid(self.model.forward_head(features))
        if self.model.retrieval is None:
            return probs
        return probs, self.model.image_embedding(features, normalize=True)


class QueryGraph(nn.Module):
    """(hard, soft) -> the normalised query embedding [E^h; E^s]."""

    inputs = ("hard", "soft")

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
        return self.model.encode_query(hard, soft, normalize=True)


class SingleQueryGraph(nn.Module):
    """hard -> E^h, or soft -> E^s: the query graph of a single query form (Table 6's HA, SP or W).

    A fixed one-tensor signature, since the dynamo exporter does not take variable arguments.
    """

    def __init__(self, model: nn.Module, which: str) -> None:
        super().__init__()
        self.model = model
        self.inputs = (which,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hard, soft = (x, None) if self.inputs[0] == "hard" else (None, x)
        return self.model.encode_query(hard, soft, normalize=True)


def query_graph(model: nn.Module) -> nn.Module:
    names = query_inputs(model)
    return QueryGraph(model) if len(names) == 2 else SingleQueryGraph(model, names[0])


def query_inputs(model: nn.Module) -> list[str]:
    """The query graph's inputs: ``hard`` and/or ``soft``, as the model's query form uses them."""
    rc = model.cfg.retrieval
    return [n for n, used in (("hard", rc.uses_hard), ("soft", rc.uses_text)) if used]


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no_grad for the export, restoring the caller's training flags afterwards.

    The wrapper (not only the model) must be in eval mode: the exporter restores the wrapper's own
    flag after tracing, which would otherwise switch the model's dropout/drop-path back on.
    """
    was_training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in was_training.items():
            m.training = flag


def _export(
    graph: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    opset: int,
    dynamic_batch: bool,
) -> str:
    """Export with the TorchScript exporter, falling back to dynamo; returns the exporter used."""
    dynamic_axes = {n: {0: "batch"} for n in input_names + output_names} if dynamic_batch else None
    try:
        with warnings.catch_warnings():
            # The legacy exporter warns that it is deprecated, and the tracer warns about shape checks
            # that are constant for a fixed input size (the graph is built for one H x W by design).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                graph,
                args,
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
        return "torchscript"
    except Exception as first:  # the exporter raises many types (RuntimeError, SymbolicValueError, ...)
        logger.warning(
            "TorchScript ONNX export failed (%s: %s); trying the dynamo exporter", type(first).__name__, first
        )
        try:
            batch = torch.export.Dim("batch", min=1, max=4096)
            params = list(_forward_params(graph))
            dynamic_shapes = {p: {0: batch} for p in params} if dynamic_batch else None
            with warnings.catch_warnings():
                # inputs sharing the one batch Dim: the exporter notes it keeps a single axis name
                warnings.filterwarnings("ignore", message=".*will not be used, since it shares", category=UserWarning)
                program = torch.onnx.export(
                    graph,
                    args,
                    dynamo=True,
                    opset_version=max(opset, 18),
                    input_names=input_names,
                    output_names=output_names,
                    dynamic_shapes=dynamic_shapes,
                )
            program.save(str(path))
        except Exception as second:
            raise ExportError(
                f"ONNX export of {type(graph.model).__name__} failed with both exporters: "
                f"torchscript: {type(first).__name__}: {first}; dynamo: {type(second).__name__}: {second}"
            ) from second
        return "dynamo"


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _opset_of(path: Path) -> int:
    m = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))


def _forward_params(graph: nn.Module) -> Sequence[str]:
    import inspect

    return [p for p in inspect.signature(graph.forward).parameters if p != "self"]


def _session(path_or_bytes: Path | bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    src = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


def _max_abs(a: Sequence[np.ndarray], b: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, float]:
    return {n: float(np.max(np.abs(x - y))) if x.size else 0.0 for n, x, y in zip(names, a, b)}


def _check_and_compare(
    graph: nn.Module,
    path: Path,
    feeds: list[dict[str, np.ndarray]],
    output_names: list[str],
    simplify: bool,
) -> dict[str, Any]:
    """checker, parity torch vs onnxruntime over ``feeds``, then onnxslim where it changes nothing."""
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as e:
        raise ExportError(f"{path.name} fails onnx.checker: {e}") from e
    refs = []
    device = _device(graph)
    with torch.no_grad():
        for feed in feeds:
            out = graph(*[torch.from_numpy(v).to(device) for v in feed.values()])
            out = out if isinstance(out, tuple) else (out,)
            refs.append([o.float().cpu().numpy() for o in out])
    sess = _session(path)
    onnx_outs = [sess.run(output_names, feed) for feed in feeds]
    parity = {n: 0.0 for n in output_names}
    for ref, got in zip(refs, onnx_outs):
        for n, d in _max_abs(ref, got, output_names).items():
            parity[n] = max(parity[n], d)
    worst = max(parity.values())
    if not np.isfinite(worst) or worst > PARITY_TOLERANCE:
        raise ExportError(
            f"{path.name} does not match PyTorch: max abs differences {parity} exceed {PARITY_TOLERANCE}; "
            "this is an exporter bug for this model: report it with the model config"
        )
    info: dict[str, Any] = {"parity_max_abs": parity, "parity_batches": [len(next(iter(f.values()))) for f in feeds]}
    info["simplified"] = False
    if not simplify:
        info["simplify"] = "not asked"
        return info
    try:
        import onnxslim
    except ImportError:
        info["simplify"] = "onnxslim not installed (pip install onnxslim)"
        return info
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            slim = onnxslim.slim(onnx.load(str(path)))
        slim_bytes = slim.SerializeToString()
        onnx.checker.check_model(slim)
        slim_sess = _session(slim_bytes)
        diff = 0.0
        for feed, got in zip(feeds, onnx_outs):
            d = _max_abs(got, slim_sess.run(output_names, feed), output_names)
            diff = max(diff, *d.values())
    except Exception as e:  # onnxslim's passes raise assorted types; the unsimplified graph is still good
        logger.warning("onnxslim failed on %s (%s: %s); keeping the unsimplified graph", path.name, type(e).__name__, e)
        info["simplify"] = f"onnxslim failed: {type(e).__name__}"
        return info
    if diff <= SIMPLIFY_TOLERANCE:
        tmp = path.with_name(path.name + ".slim.tmp")
        tmp.write_bytes(slim_bytes)
        os.replace(tmp, path)
        info["simplified"] = True
        info["simplify"] = f"onnxslim {getattr(onnxslim, '__version__', '?')} (max abs change {diff:.2e})"
    else:
        logger.warning("onnxslim changed %s outputs by %.3g; keeping the unsimplified graph", path.name, diff)
        info["simplify"] = f"onnxslim changed outputs by {diff:.2e}; kept the unsimplified graph"
    return info


def export_recognizer(
    model: nn.Module,
    path: str | Path,
    opset: int = 17,
    dynamic_batch: bool = True,
    simplify: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Write ``recognizer.onnx`` for ``model`` (a CLEAR) and return what was checked.

    Returns ``{"path", "opset", "exporter", "inputs", "outputs", "parity_max_abs": {output: max abs
    diff}, "parity_batches", "simplified", "simplify"}``. Parity is measured on seeded random images
    (normal, as normalised pixels are) at batch 1 and 3 (or the fixed batch 1 without ``dynamic_batch``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = model.cfg.img_size
    outputs = ["probs"] if model.retrieval is None else ["probs", "embedding"]
    graph = RecognizerGraph(model)
    rng = np.random.default_rng(seed)
    with _eval_mode(graph):
        example = torch.from_numpy(rng.standard_normal((2 if dynamic_batch else 1, 3, h, w), dtype=np.float32))
        example = example.to(_device(model))
        with torch.no_grad():
            # one forward before tracing: inputs-independent state a model caches in eval mode
            # (PromptPAR's attribute text features) is then a constant of the graph, not traced ops
            graph(example)
        exporter = _export(graph, (example,), path, ["image"], outputs, opset, dynamic_batch)
        feeds = [
            {"image": rng.standard_normal((b, 3, h, w), dtype=np.float32)} for b in ((1, 3) if dynamic_batch else (1,))
        ]
        info = _check_and_compare(graph, path, feeds, outputs, simplify)
    info.update(
        path=str(path),
        opset=_opset_of(path),
        exporter=exporter,
        inputs={"image": ["batch" if dynamic_batch else 1, 3, h, w]},
        outputs=outputs,
    )
    logger.info("exported %s (%s): parity %s", path.name, exporter, info["parity_max_abs"])
    return info


def export_query(
    model: nn.Module, path: str | Path, opset: int = 17, simplify: bool = True, seed: int = 0
) -> dict[str, Any]:
    """Write ``query.onnx``: hard [Q, A], soft [Q, soft_dim] -> query_embedding [Q, D] (see export_recognizer)."""
    if getattr(model, "retrieval", None) is None:
        raise ExportError("the model has no retrieval adapters, so there is no query graph: train stage 2 first")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    num_attrs, soft_dim = model.cfg.num_attrs, model.cfg.retrieval.soft_dim
    graph = query_graph(model)
    rng = np.random.default_rng(seed)

    def feed(q: int) -> dict[str, np.ndarray]:
        full = {
            "hard": (rng.random((q, num_attrs)) < 0.3).astype(np.float32),
            "soft": rng.standard_normal((q, soft_dim), dtype=np.float32),
        }
        return {k: full[k] for k in graph.inputs}

    with _eval_mode(graph):
        ex = feed(2)
        exporter = _export(
            graph,
            tuple(torch.from_numpy(v).to(_device(model)) for v in ex.values()),
            path,
            list(graph.inputs),
            ["query_embedding"],
            opset,
            dynamic_batch=True,
        )
        info = _check_and_compare(graph, path, [feed(1), feed(5)], ["query_embedding"], simplify)
    sizes = {"hard": ["batch", num_attrs], "soft": ["batch", soft_dim]}
    info.update(
        path=str(path),
        opset=_opset_of(path),
        exporter=exporter,
        inputs={k: sizes[k] for k in graph.inputs},
        outputs=["query_embedding"],
        query_form=model.cfg.retrieval.query_form,
    )
    return info


def quantize_recognizer_int8(fp32_path: str | Path, out_path: str | Path, seed: int = 0) -> dict[str, Any]:
    """``recognizer.int8.onnx``: onnxruntime dynamic int8 quantization of the MatMul/Gemm weights.

    For CPUs: weights are stored as per-channel int8 and activations are quantized on the fly, so
    the large matrix products run as int8 GEMMs (VNNI where the CPU has it) with no calibration
    data. It is a different precision, not the same numbers: the returned ``parity_max_abs`` is
    measured against the fp32 graph on seeded random images and recorded in the manifest; measure
    accuracy with ``clear-sdk bench --dataset`` before deploying it.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    quantize_dynamic(
        str(fp32_path),
        str(out_path),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Gemm"],
    )
    ref, q = _session(fp32_path), _session(out_path)
    inp = ref.get_inputs()[0]
    _, c, h, w = inp.shape
    rng = np.random.default_rng(seed)
    names = [o.name for o in ref.get_outputs()]
    parity = {n: 0.0 for n in names}
    for b in (1, 3):
        feed = {inp.name: rng.standard_normal((b, c, h, w), dtype=np.float32)}
        for n, d in _max_abs(ref.run(names, feed), q.run(names, feed), names).items():
            parity[n] = max(parity[n], d)
    if not all(np.isfinite(v) for v in parity.values()):
        raise ExportError(f"{out_path.name} gives non-finite outputs; export without --cpu-int8")
    return {"path": str(out_path), "parity_max_abs_vs_fp32": parity, "method": "onnxruntime quantize_dynamic, "
            "QInt8 per-channel weights, MatMul/Gemm"}  # fmt: skip


def qdq_node_counts(path: str | Path) -> dict[str, int]:
    """How many QuantizeLinear / DequantizeLinear nodes a graph holds, and of its ops how many are Conv."""
    graph = onnx.load(str(path), load_external_data=False).graph
    ops = [n.op_type for n in graph.node]
    return {op: ops.count(op) for op in ("QuantizeLinear", "DequantizeLinear", "Conv")}


def quantize_recognizer_int8_static(
    fp32_path: str | Path,
    out_path: str | Path,
    calibration: np.ndarray,
    batch_size: int = 16,
    method: str = "minmax",
    seed: int = 0,
) -> dict[str, Any]:
    """``recognizer.int8-static.onnx``: onnxruntime static int8 quantization in QDQ form, for conv trunks.

    Dynamic int8 (:func:`quantize_recognizer_int8`) quantizes only MatMul/Gemm, which leaves a
    convolutional trunk in fp32. Here every supported op (the convolutions first of all) gets int8
    weights, per output channel, and int8 activations whose scales come from ``calibration``
    (preprocessed images float32 [N, 3, H, W], typically a few hundred from the training split),
    with onnxruntime's ``quantize_static``: ``QuantizeLinear``/``DequantizeLinear`` pairs (QDQ) that
    onnxruntime's CPU provider fuses into int8 kernels (VNNI where the CPU has it). The graph is
    first prepared with ``quant_pre_process`` (shape inference and fp32 graph optimisation), as
    onnxruntime recommends. Activations are uint8 and weights int8 (U8S8, onnxruntime's fast x86
    combination). ``method``: ``minmax``, ``percentile`` (99.999) or ``entropy``. It changes the
    numbers: measure accuracy on real data (the exporter records it in the manifest).
    """
    import tempfile

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    if method not in methods:
        raise ValueError(f"static int8 calibration method must be one of {', '.join(methods)}, got {method!r}")
    calibration = np.ascontiguousarray(calibration, dtype=np.float32)
    if calibration.ndim != 4 or len(calibration) == 0:
        raise ExportError(f"static int8 needs calibration images [N, 3, H, W]; got shape {calibration.shape}")
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    input_name = _session(fp32_path).get_inputs()[0].name

    class _Reader(CalibrationDataReader):
        """The calibration images, ``batch_size`` at a time, as onnxruntime's calibrator reads them."""

        def __init__(self) -> None:
            self.start = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.start >= len(calibration):
                return None
            batch = calibration[self.start : self.start + batch_size]
            self.start += batch_size
            return {input_name: batch}

    with tempfile.TemporaryDirectory(prefix="clear-q8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # ONNX's shape inference is enough for these graphs (static but for the batch); onnxruntime's
        # symbolic one is slow and gives up on attention graphs after minutes
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-channel notes about 1-D (BatchNorm) weights it leaves alone
            quantize_static(
                str(prepared),
                str(out_path),
                _Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=methods[method],
                extra_options={"CalibPercentile": 99.999} if method == "percentile" else {},
            )
    return _static_int8_report(fp32_path, out_path, input_name, calibration, method, seed)


def _static_int8_report(
    fp32_path: Path, out_path: Path, input_name: str, calibration: np.ndarray, method: str, seed: int
) -> dict[str, Any]:
    """Check the static int8 graph (finite outputs, QDQ nodes present) and describe it, with its parity vs fp32."""
    ref, q = _session(fp32_path), _session(out_path)
    names = [o.name for o in ref.get_outputs()]
    parity = {n: 0.0 for n in names}
    rng = np.random.default_rng(seed)
    sample = calibration[rng.choice(len(calibration), min(8, len(calibration)), replace=False)]
    for n, d in _max_abs(ref.run(names, {input_name: sample}), q.run(names, {input_name: sample}), names).items():
        parity[n] = d
    if not all(np.isfinite(v) for v in parity.values()):
        raise ExportError(f"{out_path.name} gives non-finite outputs; export without --cpu-int8-static")
    counts = qdq_node_counts(out_path)
    if not counts["QuantizeLinear"] or not counts["DequantizeLinear"]:
        raise ExportError(f"{out_path.name}: onnxruntime quantized nothing (no QDQ nodes); the graph has no int8 ops")
    return {
        "path": str(out_path),
        "parity_max_abs_vs_fp32": parity,
        "parity_inputs": f"{len(sample)} calibration images",
        "qdq_nodes": counts,
        "method": f"onnxruntime quantize_static, QDQ, per-channel QInt8 weights, QUInt8 activations, {method} "
        f"calibration on {len(calibration)} images",
    }
