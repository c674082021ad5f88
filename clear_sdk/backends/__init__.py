"""Inference backends: one interface (:mod:`.base`), onnxruntime (:mod:`.onnxruntime`), TensorRT
(:mod:`.tensorrt`) and the CUDA helpers they and the engine builder share (:mod:`.cuda`).

Every public name is importable from here as before the package split. ``TorchBackend`` is the
``torch`` plug-in (``clear_sdk.training.backend``); ``clear_sdk.backends.TorchBackend`` loads it
through its entry point on first access, so importing this package never reaches the training code.
"""

from __future__ import annotations

from typing import Any

from clear_sdk.backends.base import (
    BACKENDS,
    ENTRY_POINT_GROUP,
    Backend,
    BackendUnavailable,
    TensorRTUnavailable,
    available_backends,
    create_backend,
    load_backend_class,
)
from clear_sdk.backends.cuda import cuda_check, cuda_device_name, cudart, import_tensorrt
from clear_sdk.backends.onnxruntime import (
    DEFAULT_QUERY_SETTINGS,
    DEFAULT_SETTINGS,
    DEFAULT_TEXT_SETTINGS,
    OnnxRuntimeBackend,
    SessionSettings,
    check_query_graph,
    check_recognizer_graph,
)
from clear_sdk.backends.tensorrt import PRECISION_PREFERENCE, TensorRTBackend, select_engine

__all__ = [
    "BACKENDS",
    "DEFAULT_QUERY_SETTINGS",
    "DEFAULT_SETTINGS",
    "DEFAULT_TEXT_SETTINGS",
    "ENTRY_POINT_GROUP",
    "PRECISION_PREFERENCE",
    "Backend",
    "BackendUnavailable",
    "OnnxRuntimeBackend",
    "SessionSettings",
    "TensorRTBackend",
    "TensorRTUnavailable",
    "TorchBackend",
    "available_backends",
    "check_query_graph",
    "check_recognizer_graph",
    "create_backend",
    "cuda_check",
    "cuda_device_name",
    "cudart",
    "import_tensorrt",
    "load_backend_class",
    "select_engine",
]


def __getattr__(name: str) -> Any:
    if name == "TorchBackend":  # the torch plug-in, through its entry point (needs the training extra)
        return load_backend_class("torch")[0]
    raise AttributeError(f"module 'clear_sdk.backends' has no attribute {name!r}")
