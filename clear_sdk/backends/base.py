"""Inference backends behind one small interface (DESIGN §5).

A :class:`Backend` runs a bundle's two graphs on preprocessed arrays:

- ``run_images(batch float32 [N, 3, H, W]) -> (probs [N, A], embedding [N, D] or None)``
- ``run_query(hard [Q, A], soft [Q, soft_dim]) -> query embedding [Q, D]``

Implementations:

- :class:`OnnxRuntimeBackend`: ``recognizer.onnx`` / ``query.onnx`` in onnxruntime, on CPU or, with
  onnxruntime-gpu, the CUDA (and TensorRT) execution providers. One ``InferenceSession`` per graph is
  shared by every calling thread (``InferenceSession.run`` is thread-safe).
- :class:`TensorRTBackend`: the bundle's TensorRT engine built for this GPU model and TensorRT
  version, run through the ``tensorrt`` Python API with device buffers from CUDA Python
  (``cuda-python``); both are optional imports (``pip install 'clear-sdk[trt]'``). The tiny query
  graph stays on onnxruntime.
- :class:`TorchBackend`: the PyTorch checkpoint the bundle was exported from (``checkpoint/``), for
  parity checks and debugging; needs the training extra and imports torch only when constructed.

:func:`create_backend` with ``backend="auto"`` picks TensorRT when an engine for this GPU is in the
bundle and TensorRT works, else onnxruntime on CUDA when onnxruntime-gpu sees a GPU, else onnxruntime
on CPU. Importing this module imports neither torch nor tensorrt.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clear_sdk.bundle import MANIFEST_NAME, ONNX_META_ATTRIBUTES, ONNX_META_INPUT_SIZE, Bundle, EngineInfo
from clear_sdk.errors import BundleError, ClearSDKError

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendUnavailable",
    "OnnxRuntimeBackend",
    "TensorRTBackend",
    "TensorRTUnavailable",
    "TorchBackend",
    "create_backend",
    "cuda_device_name",
    "import_tensorrt",
]

logger = logging.getLogger(__name__)

#: Names accepted by :func:`create_backend` (and ``--backend``), with their aliases.
BACKENDS = ("auto", "onnxruntime", "onnxruntime-int8", "tensorrt", "torch")
_ALIASES = {
    "ort": "onnxruntime", "onnx": "onnxruntime", "trt": "tensorrt", "pytorch": "torch", "ort-int8": "onnxruntime-int8",
}  # fmt: skip

#: Engine precisions in the order ``TensorRTBackend`` prefers them when none is asked for: fp16 is the
#: fast choice that keeps accuracy; int8 changes results and is used only when asked for or alone.
PRECISION_PREFERENCE = ("fp16", "fp32", "int8")


class BackendUnavailable(ClearSDKError, RuntimeError):
    """A requested backend or device cannot be used here; the message says why and what to install."""


class TensorRTUnavailable(BackendUnavailable):
    """TensorRT (or CUDA Python, or an NVIDIA GPU, or a matching engine) is not available."""


# ----------------------------------------------------------------------------------------------- CUDA


def import_tensorrt() -> Any:
    """``import tensorrt``, or :class:`TensorRTUnavailable` with a one-line reason."""
    if importlib.util.find_spec("tensorrt") is None:
        raise TensorRTUnavailable(
            "TensorRT is not installed: install it with pip install 'clear-sdk[trt]' on a machine with an NVIDIA GPU"
        )
    try:
        import tensorrt
    except (ImportError, OSError) as e:  # a wheel without its CUDA libraries fails with OSError
        raise TensorRTUnavailable(f"TensorRT is installed but does not load ({type(e).__name__}: {e})") from e
    return tensorrt


def cudart() -> Any:
    """CUDA Python's runtime module (``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6)."""
    try:
        from cuda.bindings import runtime

        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart as runtime

        return runtime
    except ImportError as e:
        raise TensorRTUnavailable(
            "CUDA Python is not installed (TensorRT needs it for device memory): pip install 'clear-sdk[trt]'"
        ) from e


def cuda_check(result: Any, what: str) -> Any:
    """Unpack a CUDA Python ``(err, *values)`` result, raising on an error code."""
    rt = cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != rt.cudaError_t.cudaSuccess:
        raise TensorRTUnavailable(f"CUDA call {what} failed: {err}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def cuda_device_name(index: int = 0) -> str:
    """The model name of CUDA device ``index`` (``"NVIDIA H100 80GB HBM3"``), or TensorRTUnavailable."""
    rt = cudart()
    err, count = rt.cudaGetDeviceCount()
    if err != rt.cudaError_t.cudaSuccess or count == 0:
        raise TensorRTUnavailable(
            f"no NVIDIA GPU is visible ({err if err != rt.cudaError_t.cudaSuccess else 0} devices)"
        )
    if index >= count:
        raise TensorRTUnavailable(f"cuda:{index} asked for but only {count} GPU(s) are visible")
    props = cuda_check(rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = props.name
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b"\0", 1)[0].decode("utf-8", "replace")
    return str(name).strip()


def _device_index(device: str | None) -> int:
    if device in (None, "cuda", "gpu"):
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise ValueError(f"device {device!r} is not a CUDA device; use 'cuda' or 'cuda:N'")


# ------------------------------------------------------------------------------------------- interface


class Backend(ABC):
    """Runs a bundle's graphs on preprocessed float32 arrays. Implementations are thread-safe."""

    name: str = "backend"

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.device: str = "cpu"

    @abstractmethod
    def _run_images(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...

    @abstractmethod
    def _run_query(self, hard: np.ndarray, soft: np.ndarray) -> np.ndarray: ...

    def run_images(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Preprocessed images float32 [N, 3, H, W] -> (probs [N, A], embedding [N, D] or None)."""
        batch = self._check_images(batch)
        if batch.shape[0] == 0:
            d = self.bundle.embed_dim
            return np.zeros((0, self.bundle.num_attrs), np.float32), (
                None if d is None else np.zeros((0, d), np.float32)
            )
        probs, emb = self._run_images(batch)
        return np.asarray(probs, dtype=np.float32), (None if emb is None else np.asarray(emb, dtype=np.float32))

    def _query_feed(self, hard: np.ndarray, soft: np.ndarray | None) -> dict[str, np.ndarray]:
        """The query graph's inputs for the bundle's query form (HA: hard; SP/W: soft; HA+SP: both)."""
        form = self.bundle.query_form
        feed = {"hard": hard} if form in ("hard", "hard+soft") else {}
        if form != "hard":
            feed["soft"] = soft
        return feed

    def run_query(self, hard: np.ndarray, soft: np.ndarray | None) -> np.ndarray:
        """hard [Q, A] (0/1) and soft [Q, soft_dim] (None for a hard-only bundle) -> query embeddings [Q, D]."""
        b = self.bundle
        if not b.has_retrieval:
            raise BackendUnavailable(
                f"{b.path} has no retrieval stage (no query.onnx): export a checkpoint trained with stage 2"
            )
        hard = np.ascontiguousarray(hard, dtype=np.float32)
        if hard.ndim != 2 or hard.shape[1] != b.num_attrs:
            raise ValueError(f"hard must be [Q, {b.num_attrs}], got shape {hard.shape}")
        if b.query_form == "hard":  # HA: the query graph reads the attribute vector alone
            soft = None
        else:
            if soft is None:
                raise ValueError(f"{b.path} encodes {b.query_form} queries: pass soft [Q, {b.soft_dim}]")
            soft = np.ascontiguousarray(soft, dtype=np.float32)
            if soft.ndim != 2 or soft.shape[1] != b.soft_dim or soft.shape[0] != hard.shape[0]:
                raise ValueError(f"soft must be [{hard.shape[0]}, {b.soft_dim}], got shape {soft.shape}")
        if hard.shape[0] == 0:
            return np.zeros((0, b.embed_dim), np.float32)
        return np.asarray(self._run_query(hard, soft), dtype=np.float32)

    def _check_images(self, batch: np.ndarray) -> np.ndarray:
        h, w = self.bundle.preprocessing.input_size
        if not isinstance(batch, np.ndarray):
            raise TypeError(f"run_images takes a numpy array [N, 3, {h}, {w}], got {type(batch).__name__}")
        if batch.ndim != 4 or batch.shape[1:] != (3, h, w):
            raise ValueError(
                f"run_images expects preprocessed images [N, 3, {h}, {w}], got shape {batch.shape}; "
                "use Recognizer (or clear_sdk.preprocess.preprocess_batch) to prepare them"
            )
        return np.ascontiguousarray(batch, dtype=np.float32)

    def close(self) -> None:  # noqa: B027 - optional hook: only device backends hold resources to free
        """Release device resources (sessions and buffers are also freed when the object is collected)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bundle={str(self.bundle.path)!r}, device={self.device!r})"


# ---------------------------------------------------------------------------------------- onnxruntime


def _ort_cache_dir(bundle: Bundle) -> Path:
    base = Path(os.environ.get("CLEAR_SDK_CACHE", Path.home() / ".cache" / "clear-sdk"))
    digest = bundle.files[bundle.manifest["models"]["recognizer"]]["sha256"][:16]
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
    fed = {"hard": ["hard"], "soft": ["soft"], "words": ["soft"]}.get(form, ["hard", "soft"])
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
    ``"cuda:N"``. ``threads``: intra-op threads of each session (onnxruntime's default: all cores).
    On CUDA the TensorRT execution provider goes first when present; it caches the engines it builds
    under ``$CLEAR_SDK_CACHE`` (default ``~/.cache/clear-sdk``), because the bundle may be read-only.
    """

    name = "onnxruntime"

    def __init__(
        self, bundle: Bundle, device: str | None = None, threads: int | None = None, precision: str = "fp32"
    ) -> None:
        super().__init__(bundle)
        import onnxruntime as ort

        if precision not in ("fp32", "int8"):
            raise ValueError(f"onnxruntime precision must be 'fp32' or 'int8', got {precision!r}")
        graph = bundle.recognizer_path
        if precision == "int8":
            if bundle.recognizer_int8_path is None:
                raise BackendUnavailable(
                    f"{bundle.path} has no int8 CPU graph: re-export it with `clear-sdk export ... --cpu-int8`"
                )
            if device not in (None, "cpu"):
                raise BackendUnavailable(
                    "the int8 graph is for CPUs (dynamic quantization); on a GPU use TensorRT int8"
                )
            graph, device, self.name = bundle.recognizer_int8_path, "cpu", "onnxruntime-int8"
        self.precision = precision

        available = ort.get_available_providers()
        gpu_ok = "CUDAExecutionProvider" in available
        if device == "cpu" or (device is None and not gpu_ok):
            providers: list[Any] = ["CPUExecutionProvider"]
            index = None
        else:
            index = _device_index(device)
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
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be >= 1, got {threads}")
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self._session = _ort_session(ort, graph, opts, providers)
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._input = self._session.get_inputs()[0].name
        check_recognizer_graph(self._session, bundle, graph)
        self._query = None
        if bundle.query_path is not None:
            q_providers = [p for p in providers if (p if isinstance(p, str) else p[0]) != "TensorrtExecutionProvider"]
            self._query = _ort_session(ort, bundle.query_path, opts, q_providers)
            check_query_graph(self._query, bundle, bundle.query_path)
        used = self._session.get_providers()
        self.providers: list[str] = list(used)
        self.device = "cpu" if used[0] == "CPUExecutionProvider" else f"cuda:{index or 0}"
        if index is not None and self.device == "cpu":
            logger.warning("onnxruntime fell back to CPU although %s was asked for", device)

    def _run_images(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        out = self._session.run(self._outputs, {self._input: batch})
        return out[0], (out[1] if len(out) > 1 else None)

    def _run_query(self, hard: np.ndarray, soft: np.ndarray) -> np.ndarray:
        return self._query.run(None, self._query_feed(hard, soft))[0]


# ------------------------------------------------------------------------------------------- TensorRT


def select_engine(bundle: Bundle, gpu_name: str, trt_version: str, precision: str | None = None) -> EngineInfo:
    """The bundle's engine for this GPU model and TensorRT version (``precision`` or the preferred one)."""
    matching = [e for e in bundle.engines if e.matches(gpu_name, trt_version)]
    if precision is not None:
        matching = [e for e in matching if e.precision == precision]
    if not matching:
        have = ", ".join(f"{e.gpu} / TensorRT {e.tensorrt} / {e.precision}" for e in bundle.engines) or "none"
        want = f"{gpu_name} / TensorRT {trt_version}" + (f" / {precision}" if precision else "")
        raise TensorRTUnavailable(
            f"{bundle.path} has no TensorRT engine for {want} (it has: {have}); engines are not portable, "
            f"build one on this machine: clear-sdk export CHECKPOINT --out {bundle.path} --engine trt"
        )
    order = {p: i for i, p in enumerate(PRECISION_PREFERENCE)}
    return min(matching, key=lambda e: order.get(e.precision, len(order)))


class TensorRTBackend(Backend):
    """The bundle's TensorRT engine for this GPU, executed with ``execute_async_v3`` on one CUDA stream.

    One execution context serves all threads behind a lock (a TensorRT context is not thread-safe);
    device buffers are allocated once for the engine's largest batch, and larger batches are split.
    """

    name = "tensorrt"

    def __init__(self, bundle: Bundle, device: str | None = None, precision: str | None = None) -> None:
        super().__init__(bundle)
        trt = import_tensorrt()
        rt = cudart()
        index = _device_index(device)
        gpu = cuda_device_name(index)
        cuda_check(rt.cudaSetDevice(index), "cudaSetDevice")
        self.engine_info = select_engine(bundle, gpu, trt.__version__, precision)
        self._trt, self._rt, self._index = trt, rt, index
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_info.path.read_bytes())
        if self._engine is None:
            raise TensorRTUnavailable(
                f"TensorRT could not load {self.engine_info.path.name}; rebuild it on this machine"
            )
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise TensorRTUnavailable(f"{self.engine_info.file} has inputs {inputs}; expected one image input")
        self._input = inputs[0]
        self._outputs = [n for n in bundle.outputs if n in names]
        self._max_batch = self.engine_info.max_batch
        self._min_batch = self.engine_info.min_batch
        h, w = bundle.preprocessing.input_size
        self._image_shape = (3, h, w)
        self._widths = {"probs": bundle.num_attrs, "embedding": bundle.embed_dim}
        self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
        self._buffers: dict[str, int] = {}
        self._stream = cuda_check(rt.cudaStreamCreate(), "cudaStreamCreate")
        self._buffers[self._input] = self._malloc(self._max_batch * int(np.prod(self._image_shape)) * 4)
        for n in self._outputs:
            self._buffers[n] = self._malloc(self._max_batch * self._widths[n] * self._dtypes[n].itemsize)
        for n, ptr in self._buffers.items():
            self._context.set_tensor_address(n, ptr)
        self._lock = threading.Lock()
        self.device = f"cuda:{index}"
        self.precision = self.engine_info.precision
        self._query = None
        if bundle.query_path is not None:
            import onnxruntime as ort

            self._query = ort.InferenceSession(str(bundle.query_path), providers=["CPUExecutionProvider"])

    def _malloc(self, nbytes: int) -> int:
        return int(cuda_check(self._rt.cudaMalloc(nbytes), "cudaMalloc"))

    def _run_chunk(self, x: np.ndarray) -> list[np.ndarray]:
        rt = self._rt
        n = x.shape[0]
        real = n
        if n < self._min_batch:  # the profile does not accept it: pad with zero images
            x = np.concatenate([x, np.zeros((self._min_batch - n, *self._image_shape), np.float32)])
            n = self._min_batch
        outs = [np.empty((n, self._widths[o]), self._dtypes[o]) for o in self._outputs]
        h2d = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        with self._lock:
            self._context.set_input_shape(self._input, (n, *self._image_shape))
            cuda_check(
                rt.cudaMemcpyAsync(self._buffers[self._input], x.ctypes.data, x.nbytes, h2d, self._stream), "memcpy"
            )
            if not self._context.execute_async_v3(int(self._stream)):
                raise RuntimeError(f"TensorRT execution of {self.engine_info.file} failed")
            for o, host in zip(self._outputs, outs):
                cuda_check(
                    rt.cudaMemcpyAsync(host.ctypes.data, self._buffers[o], host.nbytes, d2h, self._stream), "memcpy"
                )
            cuda_check(rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return [o[:real] for o in outs]

    def _run_images(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        chunks = [self._run_chunk(batch[i : i + self._max_batch]) for i in range(0, len(batch), self._max_batch)]
        merged = [np.concatenate([c[k] for c in chunks]) for k in range(len(self._outputs))]
        return merged[0], (merged[1] if len(merged) > 1 else None)

    def _run_query(self, hard: np.ndarray, soft: np.ndarray) -> np.ndarray:
        return self._query.run(None, self._query_feed(hard, soft))[0]

    def close(self) -> None:
        rt = getattr(self, "_rt", None)
        if rt is None:
            return
        for ptr in getattr(self, "_buffers", {}).values():
            rt.cudaFree(ptr)
        self._buffers = {}
        if getattr(self, "_stream", None) is not None:
            rt.cudaStreamDestroy(self._stream)
            self._stream = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: CUDA may already be gone
            pass


# ---------------------------------------------------------------------------------------------- torch


class TorchBackend(Backend):
    """The bundle's PyTorch checkpoint (``checkpoint/``): for parity checks and debugging.

    ``device`` defaults to ``"cpu"``; ``threads`` sets torch's intra-op threads, which is
    process-wide in PyTorch (it changes every torch user in the process).
    """

    name = "torch"

    def __init__(self, bundle: Bundle, device: str | None = None, threads: int | None = None) -> None:
        super().__init__(bundle)
        try:
            import torch

            from clear_sdk.training.models import CheckpointError, load_checkpoint
        except ImportError as e:
            raise BackendUnavailable(
                f"the torch backend needs the training extra ({e.name} is missing): pip install 'clear-sdk[train]'"
            ) from e
        ckpt = bundle.checkpoint_path
        if ckpt is None:
            raise BackendUnavailable(f"{bundle.path} holds no checkpoint/: re-export it to use the torch backend")
        if threads is not None:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = device or "cpu"
        try:
            model, _ = load_checkpoint(ckpt, map_location=self.device)
        except (CheckpointError, ValueError, KeyError, OSError) as e:
            reason = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
            raise BackendUnavailable(f"the torch backend cannot load {ckpt}: {reason}") from e
        if model.cfg.attribute_names and list(model.cfg.attribute_names) != bundle.attribute_names:
            raise BackendUnavailable(f"{ckpt} predicts other attributes than {bundle.path}'s manifest; re-export")
        self._model = model.eval()

    def _run_images(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        torch, m = self._torch, self._model
        with torch.inference_mode():
            f = m.forward_features(torch.from_numpy(batch).to(self.device))
            probs = torch.sigmoid(m.forward_head(f)).cpu().numpy()
            emb = m.image_embedding(f, normalize=True).cpu().numpy() if m.retrieval is not None else None
        return probs, emb

    def _run_query(self, hard: np.ndarray, soft: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            soft_t = None if soft is None else torch.from_numpy(soft).to(self.device)
            q = self._model.encode_query(torch.from_numpy(hard).to(self.device), soft_t)
        return q.cpu().numpy()


# -------------------------------------------------------------------------------------------- factory


def create_backend(
    bundle: Bundle | str | os.PathLike[str],
    backend: str | Backend = "auto",
    device: str | None = None,
    threads: int | None = None,
) -> Backend:
    """Build a backend by name: ``auto``, ``onnxruntime`` (``ort``), ``onnxruntime-int8`` (the bundle's
    dynamic-int8 CPU graph, ``export --cpu-int8``), ``tensorrt`` (``trt``) or ``torch``.

    ``auto``: TensorRT when this GPU has an engine in the bundle and TensorRT loads, else onnxruntime
    (on CUDA when onnxruntime-gpu sees a GPU and ``device`` is not ``"cpu"``). A :class:`Backend`
    instance is returned unchanged.
    """
    if isinstance(backend, Backend):
        return backend
    b = Bundle.open(bundle)
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a name ({', '.join(BACKENDS)}) or a Backend, got {type(backend).__name__}")
    name = _ALIASES.get(backend.lower(), backend.lower())
    if name == "onnxruntime":
        return OnnxRuntimeBackend(b, device=device, threads=threads)
    if name == "onnxruntime-int8":
        return OnnxRuntimeBackend(b, device=device, threads=threads, precision="int8")
    if name == "tensorrt":
        return TensorRTBackend(b, device=device)
    if name == "torch":
        return TorchBackend(b, device=device, threads=threads)
    if name != "auto":
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if device != "cpu" and b.engines and importlib.util.find_spec("tensorrt") is not None:
        try:
            return TensorRTBackend(b, device=device)
        except TensorRTUnavailable as e:
            logger.info("not using TensorRT: %s", e)
    return OnnxRuntimeBackend(b, device=device, threads=threads)
