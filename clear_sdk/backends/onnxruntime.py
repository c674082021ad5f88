"""The onnxruntime backend and the session settings every onnxruntime graph of the runtime uses.

:class:`OnnxRuntimeBackend` runs ``recognizer.onnx`` (or one of its int8 graphs) and ``query.onnx``
on CPU or, with onnxruntime-gpu, the CUDA (and TensorRT) execution providers. One
``InferenceSession`` per graph is shared by every calling thread (``InferenceSession.run`` is
thread-safe).

:class:`SessionSettings` are the knobs onnxruntime offers for CPU speed (intra/inter-op threads,
spin-waiting of idle workers, execution mode, graph optimisation level). The defaults below were
picked by measurement (``benchmarks/ort_sweep.py``, results in ``benchmarks/results/ort_sweep*.json``
and ``benchmarks/README.md``): spinning is off because a spinning worker burns the core that a
video decoder or another process needs, which made onnxruntime slower than torch under load.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clear_sdk.backends.base import Backend, BackendUnavailable
from clear_sdk.backends.cuda import device_index
from clear_sdk.bundle import MANIFEST_NAME, ONNX_META_ATTRIBUTES, ONNX_META_INPUT_SIZE, Bundle
from clear_sdk.errors import BundleError
from clear_sdk.query import query_form_inputs

__all__ = [
    "DEFAULT_QUERY_SETTINGS",
    "DEFAULT_SETTINGS",
    "DEFAULT_TEXT_SETTINGS",
    "PRECISIONS",
    "OnnxRuntimeBackend",
    "SessionSettings",
    "check_query_graph",
    "check_recognizer_graph",
]

logger = logging.getLogger(__name__)

_EXECUTION_MODES = ("sequential", "parallel")
_OPT_LEVELS = ("disable", "basic", "extended", "all")

#: Recognizer graph precisions: the fp32 graph, the dynamic-int8 CPU graph (``export --cpu-int8``)
#: and the static-int8 QDQ CPU graph (``export --cpu-int8-static``), with the manifest role of each.
PRECISIONS = {"fp32": "recognizer", "int8": "recognizer_int8", "int8-static": "recognizer_int8_static"}
_EXPORT_FLAG = {"int8": "--cpu-int8", "int8-static": "--cpu-int8-static --calib-dataset NAME --calib-root DIR"}


@dataclasses.dataclass(frozen=True)
class SessionSettings:
    """onnxruntime CPU settings of one session.

    ``intra_op_threads``: threads inside an operator (``None``: onnxruntime's default, one per
    physical core). ``inter_op_threads``: threads running independent operators, used only with
    ``execution_mode="parallel"``. ``spinning``: idle intra-op workers spin-wait for the next
    operator instead of sleeping (``session.intra_op.allow_spinning``; spinning saves microseconds
    on an idle machine and costs a core on a shared one). ``spin_duration_us``: with spinning, how
    long a worker spins before it sleeps (``session.intra_op.spin_duration_us``; ``None``:
    onnxruntime's own spin count). ``graph_optimization``: ``disable``, ``basic``, ``extended`` or ``all``.
    """

    intra_op_threads: int | None = None
    inter_op_threads: int = 1
    spinning: bool = False
    spin_duration_us: int | None = None
    execution_mode: str = "sequential"
    graph_optimization: str = "all"

    def __post_init__(self) -> None:
        for key in ("intra_op_threads", "inter_op_threads", "spin_duration_us"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"{key} must be a positive integer, got {v!r}")
        if self.execution_mode not in _EXECUTION_MODES:
            modes = ", ".join(_EXECUTION_MODES)
            raise ValueError(f"execution_mode must be one of {modes}, got {self.execution_mode!r}")
        if self.graph_optimization not in _OPT_LEVELS:
            raise ValueError(
                f"graph_optimization must be one of {', '.join(_OPT_LEVELS)}, got {self.graph_optimization!r}"
            )

    def replace(self, **changes: Any) -> SessionSettings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SessionSettings:
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown session settings {unknown}; known: {', '.join(cls.__dataclass_fields__)}")
        return cls(**d)

    def session_options(self) -> Any:
        """These settings as an ``onnxruntime.SessionOptions`` (warnings-only logging)."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.intra_op_threads is not None:
            opts.intra_op_num_threads = self.intra_op_threads
        opts.inter_op_num_threads = self.inter_op_threads
        opts.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL if self.execution_mode == "parallel" else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.graph_optimization]
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if self.spinning else "0")
        if self.spinning and self.spin_duration_us is not None:
            for pool in ("intra_op", "inter_op"):
                opts.add_session_config_entry(f"session.{pool}.spin_duration_us", str(self.spin_duration_us))
        return opts


#: The recognizer graph's defaults (Recognizer, AttributeSearcher's gallery, ``clear-sdk bench``): one
#: intra-op thread per core (onnxruntime's count), no spinning, sequential, every graph optimisation.
#: In the sweep (benchmarks/results/ort_sweep_recognizer_*.json, 2 cores) this was the most robust
#: choice: worst case 0.91 (peta-lite0) / 0.84 (demo) of the best setting of each (batch, load)
#: cell, and the best or within noise of it with 2 busy processes; unbounded spinning gained up to
#: ~9 % on an idle machine and lost up to 23 % (peta-lite0) / 36 % (demo) under load.
DEFAULT_SETTINGS = SessionSettings()
#: query.onnx (AttributeSearcher's query path): the same; one thread was 0.56-0.68 of the best
#: (benchmarks/results/ort_sweep_query_demo.json).
DEFAULT_QUERY_SETTINGS = SessionSettings()
#: text.onnx (the frozen language model of the text encoder): the same
#: (benchmarks/results/ort_sweep_text_demo.json: worst case 0.87 of the best, spinning 0.46-0.67).
DEFAULT_TEXT_SETTINGS = SessionSettings()


def _ort_cache_dir(bundle: Bundle) -> Path:
    base = Path(os.environ.get("CLEAR_SDK_CACHE", Path.home() / ".cache" / "clear-sdk"))
    digest = bundle.files[bundle.manifest.models["recognizer"]].sha256[:16]
    return base / "ort-tensorrt" / digest


def _ort_session(ort: Any, path: Path, opts: Any, providers: list[Any]) -> Any:
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
        reason = " ".join(str(e).split())[:200]
        raise BundleError(f"{path}: onnxruntime cannot load this graph ({reason}); re-export the bundle") from e


def _width(shape: Sequence[Any]) -> int | None:
    """The static last dimension of a [N, W] tensor, or None where it is symbolic."""
    return shape[-1] if len(shape) == 2 and isinstance(shape[-1], int) else None


def check_recognizer_graph(session: Any, bundle: Bundle, path: Path) -> None:
    """The recognizer graph takes the manifest's input size and predicts its attributes, in its order.

    Shapes come from the graph's declared inputs and outputs; the attribute names from the ONNX
    metadata that export records in the graph (hashed with it), where present.
    """
    mp = bundle.path / MANIFEST_NAME
    h, w = bundle.preprocessing.input_size
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise BundleError(f"{path} has {len(inputs)} inputs; a recognizer graph takes one image batch. Re-export")
    shape = list(inputs[0].shape)
    if len(shape) != 4 or any(isinstance(v, int) and v != want for v, want in zip(shape[1:], (3, h, w))):
        raise BundleError(
            f"{path} takes images of shape {shape} but {mp} says [N, 3, {h}, {w}] (preprocessing.input_size); "
            "the manifest was edited or belongs to another graph: re-export the bundle"
        )
    outputs = {o.name: list(o.shape) for o in session.get_outputs()}
    first = next(iter(outputs))
    width = _width(outputs[first])
    if width is not None and width != bundle.num_attrs:
        raise BundleError(
            f"{path} predicts {width} attributes but {mp} names {bundle.num_attrs}; "
            "the manifest was edited or belongs to another graph: re-export the bundle"
        )
    if bundle.embed_dim is not None:
        emb = list(outputs.values())[1] if len(outputs) > 1 else None
        if emb is None or (_width(emb) is not None and _width(emb) != bundle.embed_dim):
            got = "no embedding output" if emb is None else f"embeddings of shape {emb}"
            raise BundleError(f"{path} has {got} but {mp} says dims.embed_dim={bundle.embed_dim}; re-export the bundle")
    meta = session.get_modelmeta().custom_metadata_map
    for key, want, what in (
        (ONNX_META_ATTRIBUTES, bundle.attribute_names, "attributes"),
        (ONNX_META_INPUT_SIZE, [h, w], "preprocessing.input_size"),
    ):
        if key not in meta:
            continue  # graphs exported before the metadata was recorded: the shape checks above still ran
        try:
            recorded = json.loads(meta[key])
        except (ValueError, RecursionError) as e:
            raise BundleError(f"{path}: its metadata {key} is not JSON; re-export the bundle") from e
        if recorded != want:
            raise BundleError(
                f"{mp}: '{what}' differ from those recorded in {path.name} ({recorded}); the manifest was edited "
                "and predictions would be mislabelled: re-export the bundle"
            )


def check_query_graph(session: Any, bundle: Bundle, path: Path) -> None:
    """query.onnx takes hard [Q, A] and soft [Q, soft_dim] and gives [Q, embed_dim], as the manifest says."""
    mp = bundle.path / MANIFEST_NAME
    inputs = {i.name: list(i.shape) for i in session.get_inputs()}
    want = {"hard": bundle.num_attrs, "soft": bundle.soft_dim}
    form = bundle.query_form
    fed = list(query_form_inputs(form))
    if sorted(inputs) != sorted(fed):  # what _query_feed gives the graph for the manifest's query form
        raise BundleError(
            f"{path} has inputs {sorted(inputs)} but {mp} says query_form={form!r}, which feeds {fed}; "
            "the manifest was edited or belongs to another graph: re-export the bundle"
        )
    for name in inputs:
        got, width = _width(inputs[name]), want[name]
        if got is not None and width is not None and got != width:
            raise BundleError(f"{path}: input {name!r} is [Q, {got}] but {mp} implies [Q, {width}]; re-export")
    out = _width(list(session.get_outputs()[0].shape))
    if out is not None and out != bundle.embed_dim:
        raise BundleError(f"{path} gives [Q, {out}] embeddings but {mp} says embed_dim={bundle.embed_dim}; re-export")


class OnnxRuntimeBackend(Backend):
    """onnxruntime sessions for the bundle's graphs, on CPU or (with onnxruntime-gpu) CUDA / TensorRT EPs.

    ``device``: ``None`` (CUDA when onnxruntime offers it, else CPU), ``"cpu"``, ``"cuda"`` or
    ``"cuda:N"``. ``precision``: ``"fp32"``, ``"int8"`` (dynamic) or ``"int8-static"`` (QDQ); the
    int8 graphs are CPU graphs. ``settings`` (:class:`SessionSettings`, default
    :data:`DEFAULT_SETTINGS`) configure the recognizer session, ``query_settings`` (default
    :data:`DEFAULT_QUERY_SETTINGS`) the query session; ``threads`` overrides the intra-op threads of
    both. On CUDA the TensorRT execution provider goes first when present; it caches the engines it
    builds under ``$CLEAR_SDK_CACHE`` (default ``~/.cache/clear-sdk``), because the bundle may be read-only.
    """

    name = "onnxruntime"

    def __init__(
        self,
        bundle: Bundle,
        device: str | None = None,
        threads: int | None = None,
        precision: str = "fp32",
        settings: SessionSettings | None = None,
        query_settings: SessionSettings | None = None,
    ) -> None:
        super().__init__(bundle)
        bundle = self.bundle
        import onnxruntime as ort

        if precision not in PRECISIONS:
            raise ValueError(f"onnxruntime precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be >= 1, got {threads}")
        settings = settings or DEFAULT_SETTINGS
        query_settings = query_settings or DEFAULT_QUERY_SETTINGS
        if threads is not None:
            settings = settings.replace(intra_op_threads=threads)
            query_settings = query_settings.replace(intra_op_threads=threads)
        graph = bundle.recognizer_path
        if precision != "fp32":
            graph = bundle.model_path(PRECISIONS[precision])
            if graph is None:
                raise BackendUnavailable(
                    f"{bundle.path} has no {precision} CPU graph: re-export it with "
                    f"`clear-sdk export ... {_EXPORT_FLAG[precision]}`"
                )
            if device not in (None, "cpu"):
                raise BackendUnavailable(f"the {precision} graph is for CPUs; on a GPU use TensorRT int8")
            device, self.name = "cpu", f"onnxruntime-{precision}"
        self.precision = precision
        self.settings, self.query_settings = settings, query_settings

        available = ort.get_available_providers()
        gpu_ok = "CUDAExecutionProvider" in available
        if device == "cpu" or (device is None and not gpu_ok):
            providers: list[Any] = ["CPUExecutionProvider"]
            index = None
        else:
            index = device_index(device)
            if not gpu_ok:
                raise BackendUnavailable(
                    f"device={device!r} needs onnxruntime's CUDAExecutionProvider (pip install onnxruntime-gpu); "
                    f"this onnxruntime offers {', '.join(available)}"
                )
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
            if "TensorrtExecutionProvider" in available:
                cache = _ort_cache_dir(bundle)
                providers.insert(
                    0,
                    (
                        "TensorrtExecutionProvider",
                        {"device_id": index, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)},
                    ),
                )
        self._session = _ort_session(ort, graph, settings.session_options(), providers)
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._input = self._session.get_inputs()[0].name
        check_recognizer_graph(self._session, bundle, graph)
        self._query = None
        if bundle.query_path is not None:
            q_providers = [p for p in providers if (p if isinstance(p, str) else p[0]) != "TensorrtExecutionProvider"]
            self._query = _ort_session(ort, bundle.query_path, query_settings.session_options(), q_providers)
            check_query_graph(self._query, bundle, bundle.query_path)
        used = self._session.get_providers()
        self.providers: list[str] = list(used)
        self.device = "cpu" if used[0] == "CPUExecutionProvider" else f"cuda:{index or 0}"
        if index is not None and self.device == "cpu":
            logger.warning("onnxruntime fell back to CPU although %s was asked for", device)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "precision": self.precision,
            "settings": self.settings.to_dict(),
            "query_settings": self.query_settings.to_dict(),
        }

    def _run_images(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        out = self._session.run(self._outputs, {self._input: batch})
        return out[0], (out[1] if len(out) > 1 else None)

    def _run_query(self, hard: np.ndarray, soft: np.ndarray) -> np.ndarray:
        return self._query.run(None, self._query_feed(hard, soft))[0]
