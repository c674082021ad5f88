"""CUDA helpers shared by the TensorRT backend and the TensorRT engine builder (``clear_sdk.export``).

``tensorrt`` and CUDA Python (``cuda-python``) are optional imports (``pip install 'clear-sdk[trt]'``);
every helper raises :class:`~clear_sdk.backends.base.TensorRTUnavailable` with a one-line reason
when they, or a GPU, are missing. Importing this module imports neither.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from clear_sdk.backends.base import TensorRTUnavailable

__all__ = ["cuda_check", "cuda_device_name", "cudart", "device_index", "import_tensorrt"]


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


def device_index(device: str | None) -> int:
    """``None`` / ``"cuda"`` / ``"gpu"`` -> 0, ``"cuda:N"`` -> N; anything else is a ValueError."""
    if device in (None, "cuda", "gpu"):
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise ValueError(f"device {device!r} is not a CUDA device; use 'cuda' or 'cuda:N'")
