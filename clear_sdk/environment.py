"""What is installed: versions and inference backends, probed without importing torch unless present."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Any

from clear_sdk import __version__


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_environment() -> dict[str, Any]:
    """Versions of the runtime and optional backends, onnxruntime providers, CUDA device, models."""
    backends: dict[str, Any] = {"onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu")}
    try:
        import onnxruntime

        backends["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        backends["onnxruntime_providers"] = []
    backends["tensorrt"] = _version("tensorrt") if importlib.util.find_spec("tensorrt") else None
    backends["torch"] = _version("torch") if importlib.util.find_spec("torch") else None
    backends["cuda_device"] = None
    models: list[str] = []
    if backends["torch"]:
        import torch

        if torch.cuda.is_available():
            backends["cuda_device"] = torch.cuda.get_device_name(0)
        try:
            from clear_sdk.training.models import list_models

            models = list_models()
        except ImportError:  # torch without timm: the [train] extra is not installed
            models = []
    from clear_sdk.models import list_shipped

    return {"version": __version__, "backends": backends, "models": models, "shipped_models": list_shipped()}
