"""``clear-sdk info``'s facts: versions, inference backends, registered and shipped models.

Part of the CLI room: the registered models come from the training package when it is installed.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from clear_sdk import __version__
from clear_sdk.paths import package_versions


def describe_environment() -> dict[str, Any]:
    """Versions of the runtime and optional backends, onnxruntime providers, CUDA device, models."""
    v = package_versions(("onnxruntime", "onnxruntime-gpu", "tensorrt", "torch"))
    backends: dict[str, Any] = {"onnxruntime": v["onnxruntime"] or v["onnxruntime-gpu"]}
    try:
        import onnxruntime

        backends["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        backends["onnxruntime_providers"] = []
    backends["tensorrt"] = v["tensorrt"] if importlib.util.find_spec("tensorrt") else None
    backends["torch"] = v["torch"] if importlib.util.find_spec("torch") else None
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
