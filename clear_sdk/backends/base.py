"""Inference backends behind one small interface (DESIGN §5), and the registry that builds them by name.

A :class:`Backend` runs a bundle's two graphs on preprocessed arrays:

- ``run_images(batch float32 [N, 3, H, W]) -> (probs [N, A], embedding [N, D] or None)``
- ``run_query(hard [Q, A], soft [Q, soft_dim]) -> query embedding [Q, D]``

Built in (this package): ``onnxruntime`` (:mod:`clear_sdk.backends.onnxruntime`, with its int8
graphs ``onnxruntime-int8`` and ``onnxruntime-int8-static``) and ``tensorrt``
(:mod:`clear_sdk.backends.tensorrt`). Other backends are plug-ins: a distribution names a
:class:`Backend` subclass under the entry-point group ``clear_sdk.backends`` (clear-sdk itself
registers ``torch = "clear_sdk.training.backend:TorchBackend"``, which loads the training
checkpoint and so lives with the training code). :func:`create_backend` looks a plug-in up, and
imports it, only when its name is asked for; the runtime never imports the training package itself.

``backend="auto"`` picks TensorRT when an engine for this GPU is in the bundle and TensorRT works,
else onnxruntime on CUDA when onnxruntime-gpu sees a GPU, else onnxruntime on CPU. Importing this
module imports neither onnxruntime, torch nor tensorrt.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import re
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from clear_sdk.bundle import Bundle
from clear_sdk.errors import ClearSDKError
from clear_sdk.query import query_form_inputs

__all__ = [
    "BACKENDS",
    "ENTRY_POINT_GROUP",
    "Backend",
    "BackendUnavailable",
    "TensorRTUnavailable",
    "available_backends",
    "create_backend",
    "load_backend_class",
]

logger = logging.getLogger(__name__)

#: Entry-point group under which distributions register backend plug-ins (name -> ``module:Class``).
ENTRY_POINT_GROUP = "clear_sdk.backends"

#: Built-in backends: name -> (module, class, fixed keyword arguments). Imported when first asked for.
_BUILTIN: dict[str, tuple[str, str, dict[str, Any]]] = {
    "onnxruntime": ("clear_sdk.backends.onnxruntime", "OnnxRuntimeBackend", {}),
    "onnxruntime-int8": ("clear_sdk.backends.onnxruntime", "OnnxRuntimeBackend", {"precision": "int8"}),
    "onnxruntime-int8-static": ("clear_sdk.backends.onnxruntime", "OnnxRuntimeBackend", {"precision": "int8-static"}),
    "tensorrt": ("clear_sdk.backends.tensorrt", "TensorRTBackend", {}),
}

#: Names accepted by :func:`create_backend` (and ``--backend``) with clear-sdk's own plug-in (torch);
#: :func:`available_backends` adds the plug-ins installed here.
BACKENDS = ("auto", *_BUILTIN, "torch")
_ALIASES = {
    "ort": "onnxruntime", "onnx": "onnxruntime", "trt": "tensorrt", "pytorch": "torch", "ort-int8": "onnxruntime-int8",
    "ort-int8-static": "onnxruntime-int8-static", "onnxruntime-qdq": "onnxruntime-int8-static",
}  # fmt: skip


class BackendUnavailable(ClearSDKError, RuntimeError):
    """A requested backend or device cannot be used here; the message says why and what to install."""


class TensorRTUnavailable(BackendUnavailable):
    """TensorRT (or CUDA Python, or an NVIDIA GPU, or a matching engine) is not available."""


# ------------------------------------------------------------------------------------------- interface


class Backend(ABC):
    """Runs a bundle's graphs on preprocessed float32 arrays. Implementations are thread-safe."""

    name: str = "backend"

    def __init__(self, bundle: Bundle | str | os.PathLike[str]) -> None:
        self.bundle = Bundle.open(bundle)  # a Bundle is returned as it is
        self.device: str = "cpu"

    @abstractmethod
    def _run_images(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...

    @abstractmethod
    def _run_query(self, hard: np.ndarray, soft: np.ndarray) -> np.ndarray: ...

    def run_images(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Preprocessed images float32 [N, 3, H, W] -> (probs [N, A], embedding [N, D] or None)."""
        batch = self.check_images(batch)
        if batch.shape[0] == 0:
            d = self.bundle.embed_dim
            return np.zeros((0, self.bundle.num_attrs), np.float32), (
                None if d is None else np.zeros((0, d), np.float32)
            )
        probs, emb = self._run_images(batch)
        return np.asarray(probs, dtype=np.float32), (None if emb is None else np.asarray(emb, dtype=np.float32))

    def _query_feed(self, hard: np.ndarray, soft: np.ndarray | None) -> dict[str, np.ndarray]:
        """The query graph's inputs for the bundle's query form (HA: hard; SP/W: soft; HA+SP: both)."""
        inputs = {"hard": hard, "soft": soft}
        return {name: inputs[name] for name in query_form_inputs(self.bundle.query_form)}

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

    def check_images(self, batch: np.ndarray) -> np.ndarray:
        """``batch`` as contiguous float32 [N, 3, H, W] of this bundle's input size, or a clear error."""
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

    def describe(self) -> dict[str, Any]:
        """The backend's name, device and settings (what ``clear-sdk bench`` records with its numbers)."""
        return {"backend": self.name, "device": self.device}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bundle={str(self.bundle.path)!r}, device={self.device!r})"


# ------------------------------------------------------------------------------------------- registry


def _plugins() -> dict[str, importlib.metadata.EntryPoint]:
    """The backend plug-ins installed here, by name (entry-point metadata only: nothing is imported)."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _extra_requirements(dist: importlib.metadata.Distribution | None) -> list[tuple[str, str]]:
    """(requirement name, extra) for each ``Requires-Dist`` of ``dist`` that belongs to an extra."""
    out = []
    for req in (dist.requires or []) if dist is not None else []:
        spec, _, marker = req.partition(";")
        found = re.match(r"\s*([A-Za-z0-9._-]+)", spec)
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if found and extra:
            out.append((found.group(1).lower().replace("-", "_"), extra.group(1)))
    return out


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _missing_extra(dist: importlib.metadata.Distribution | None, error: ImportError) -> tuple[str, str | None]:
    """What a plug-in lacks: (module, the extra of ``dist`` that provides it, or None).

    The module is the one the ImportError names, else the first requirement of an extra that cannot
    be found here (read from the distribution's metadata, e.g. ``torch==2.14.1; extra == "train"``).
    """
    reqs = _extra_requirements(dist)
    if error.name:
        module = error.name.split(".")[0]
        return module, next((x for r, x in reqs if r == module.lower()), None)
    for req, extra in reqs:
        if not _importable(req):
            return req, extra
    return str(error), None


def available_backends() -> list[str]:
    """Every name :func:`create_backend` accepts here: ``auto``, the built-ins and the installed plug-ins."""
    return ["auto", *_BUILTIN, *sorted(set(_plugins()) - set(_BUILTIN))]


def load_backend_class(name: str) -> tuple[type[Backend], dict[str, Any]]:
    """The :class:`Backend` class registered as ``name`` (built-in or plug-in) and its fixed arguments.

    A plug-in is imported here, on first use; one whose code cannot be imported (its extra is not
    installed) is a :class:`BackendUnavailable` that names what is missing.
    """
    name = _ALIASES.get(name.lower(), name.lower())
    if name in _BUILTIN:
        module, attr, fixed = _BUILTIN[name]
        return getattr(importlib.import_module(module), attr), dict(fixed)
    ep = _plugins().get(name)
    if ep is None:
        choices = ", ".join(dict.fromkeys([*available_backends(), *BACKENDS]))
        raise ValueError(f"unknown backend {name!r}; choose one of {choices}")
    dist = getattr(ep.dist, "name", None) or "its distribution"
    try:
        cls = ep.load()
    except ImportError as e:
        missing, extra = _missing_extra(ep.dist, e)
        fix = f"pip install '{dist}[{extra}]'" if extra else f"install what {dist} needs for it"
        raise BackendUnavailable(
            f"the {name} backend (plug-in {ep.value} from {dist}) cannot be imported: {missing} is missing; {fix}"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise BackendUnavailable(f"the {name} backend plug-in {ep.value} from {dist} is not a clear_sdk Backend class")
    return cls, {}


def create_backend(
    bundle: Bundle | str | os.PathLike[str],
    backend: str | Backend = "auto",
    device: str | None = None,
    threads: int | None = None,
    **options: Any,
) -> Backend:
    """Build a backend by name: ``auto``, ``onnxruntime`` (``ort``), ``onnxruntime-int8`` (the bundle's
    dynamic-int8 CPU graph, ``export --cpu-int8``), ``onnxruntime-int8-static`` (its static-int8 QDQ
    graph, ``export --cpu-int8-static``), ``tensorrt`` (``trt``), or an installed plug-in such as ``torch``.

    ``auto``: TensorRT when this GPU has an engine in the bundle and TensorRT loads, else onnxruntime
    (on CUDA when onnxruntime-gpu sees a GPU and ``device`` is not ``"cpu"``). ``options`` go to the
    backend's constructor (onnxruntime: ``settings=``, ``query_settings=``). A :class:`Backend`
    instance is returned unchanged.
    """
    if isinstance(backend, Backend):
        return backend
    b = Bundle.open(bundle)
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a name ({', '.join(BACKENDS)}) or a Backend, got {type(backend).__name__}")
    name = _ALIASES.get(backend.lower(), backend.lower())
    if name == "auto":
        if device != "cpu" and b.engines and importlib.util.find_spec("tensorrt") is not None:
            from clear_sdk.backends.tensorrt import TensorRTBackend

            try:
                return TensorRTBackend(b, device=device)
            except TensorRTUnavailable as e:
                logger.info("not using TensorRT: %s", e)
        name = "onnxruntime"
    cls, fixed = load_backend_class(name)
    kwargs: dict[str, Any] = {"device": device, **fixed, **options}
    if name != "tensorrt":  # a TensorRT engine fixes its own threading
        kwargs["threads"] = threads
    return cls(b, **kwargs)
