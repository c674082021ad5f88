"""TensorRT engines from ``recognizer.onnx``, with NVIDIA's ``tensorrt`` Python API (GPU only).

``build_engine`` parses the ONNX graph (``OnnxParser``), sets one optimisation profile over the batch
sizes asked (min / opt / max), and builds a serialized engine in fp32, fp16 (``BuilderFlag.FP16``) or
int8 (``BuilderFlag.INT8`` with an ``IInt8EntropyCalibrator2`` over a folder of images preprocessed
exactly as the runtime does; the calibration cache is written beside the engine and reused by later
builds). Engines only run on the GPU model and TensorRT version that built them, so the file is named
``recognizer.<gpu-model-slug>.trt<version>.<precision>.plan`` and recorded in the manifest.

The fp16 and int8 builder flags and the implicit-quantization calibrators exist in TensorRT 8.x-10.x;
TensorRT 11 removed them in favour of strongly typed networks and explicit Q/DQ quantization, so there
this module builds fp32 engines only and says so. Without ``tensorrt``, CUDA Python or a GPU every
entry point raises :class:`~clear_sdk.backends.TensorRTUnavailable` with a one-line reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clear_sdk.backends.base import TensorRTUnavailable
from clear_sdk.backends.cuda import cuda_check, cuda_device_name, cudart, import_tensorrt
from clear_sdk.bundle import engine_filename, gpu_slug
from clear_sdk.errors import ClearSDKError
from clear_sdk.paths import IMAGE_SUFFIXES, list_images
from clear_sdk.preprocess import Preprocessing, preprocess_batch

__all__ = [
    "PRECISIONS",
    "EngineBuildError",
    "TensorRTUnavailable",
    "build_engine",
    "calibration_cache_name",
    "profile_batches",
    "tensorrt_status",
]

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")


class EngineBuildError(ClearSDKError):
    """TensorRT is present but could not parse the graph or build an engine from it."""


def tensorrt_status(device_index: int = 0) -> tuple[Any, str]:
    """(the tensorrt module, the GPU model name), or TensorRTUnavailable saying what is missing."""
    trt = import_tensorrt()
    gpu = cuda_device_name(device_index)
    return trt, gpu


def profile_batches(batch_sizes: Sequence[int]) -> tuple[int, int, int]:
    """(min, opt, max) of an optimisation profile from the batch sizes asked: opt is the middle one."""
    sizes = sorted({int(b) for b in batch_sizes})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    return sizes[0], sizes[len(sizes) // 2], sizes[-1]


def calibration_cache_name(gpu: str, trt_version: str) -> str:
    """``calibration.<gpu-slug>.trt<version>.cache``: the scales TensorRT measured, reused by later builds."""
    return f"calibration.{gpu_slug(gpu)}.trt{trt_version}.cache"


def _calibration_images(calib_dir: str | Path) -> list[Path]:
    d = Path(calib_dir)
    if not d.is_dir():
        raise ValueError(f"--calib {d}: not a folder; pass a folder of representative person crops")
    files = list_images(d)
    if not files:
        raise ValueError(f"--calib {d}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    return files


def _make_calibrator(trt: Any, files: list[Path], pp: Preprocessing, batch_size: int, cache_path: Path) -> Any:
    """An IInt8EntropyCalibrator2 feeding preprocessed batches from device memory; the cache is kept."""
    rt = cudart()
    h, w = pp.input_size

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.files = files
            self.batch_size = batch_size
            self.position = 0
            self.nbytes = batch_size * 3 * h * w * 4
            self.device_ptr = int(cuda_check(rt.cudaMalloc(self.nbytes), "cudaMalloc"))

        def get_batch_size(self) -> int:
            return self.batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            while self.position + self.batch_size <= len(self.files):
                chunk = self.files[self.position : self.position + self.batch_size]
                self.position += self.batch_size
                batch, _, failures = preprocess_batch(chunk, pp, errors="skip")
                if failures:
                    logger.warning("calibration: skipped %d unreadable images", len(failures))
                if len(batch) < self.batch_size:  # refill the holes by repeating good images
                    if len(batch) == 0:
                        continue
                    batch = np.concatenate([batch] * (self.batch_size // len(batch) + 1))[: self.batch_size]
                batch = np.ascontiguousarray(batch, dtype=np.float32)
                kind = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
                cuda_check(rt.cudaMemcpy(self.device_ptr, batch.ctypes.data, self.nbytes, kind), "cudaMemcpy")
                return [self.device_ptr]
            return None

        def read_calibration_cache(self) -> bytes | None:
            if cache_path.is_file():
                logger.info("reusing INT8 calibration cache %s", cache_path)
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            tmp = cache_path.with_name(cache_path.name + ".tmp")
            tmp.write_bytes(bytes(cache))
            os.replace(tmp, cache_path)

        def free(self) -> None:
            if self.device_ptr:
                rt.cudaFree(self.device_ptr)
                self.device_ptr = 0

    return EntropyCalibrator()


def build_engine(
    onnx_path: str | Path,
    out_dir: str | Path,
    precision: str = "fp32",
    batch_sizes: Sequence[int] = (1, 8, 32),
    preprocessing: Preprocessing | None = None,
    calib_dir: str | Path | None = None,
    calib_cache: str | Path | None = None,
    workspace_bytes: int = 4 << 30,
    device_index: int = 0,
) -> dict[str, Any]:
    """Build ``recognizer.<gpu>.trt<ver>.<precision>.plan`` in ``out_dir``; returns its manifest entry.

    int8 needs ``calib_dir`` (a folder of images) and ``preprocessing``; its calibration cache goes to
    ``calib_cache`` (default ``out_dir/calibration.<gpu>.trt<ver>.cache``) and is reused when present.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    trt, gpu = tensorrt_status(device_index)
    version = trt.__version__
    _require_precision(trt, precision)
    calib_files: list[Path] = []
    if precision == "int8":
        if calib_dir is None or preprocessing is None:
            raise ValueError("int8 engines need calibration images: pass --calib DIR (a folder of person crops)")
        calib_files = _calibration_images(calib_dir)
    mn, opt, mx = profile_batches(batch_sizes)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cuda_check(cudart().cudaSetDevice(device_index), "cudaSetDevice")

    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    network, _parser = _parse_onnx(trt, builder, trt_logger, onnx_path)  # the parser owns the weights: keep it
    image = network.get_input(0)
    config = _builder_config(trt, builder, image, (mn, opt, mx), precision, workspace_bytes)
    calibrator = None
    cache_path: Path | None = None
    if precision == "int8":
        cache_path = Path(calib_cache) if calib_cache else out_dir / calibration_cache_name(gpu, version)
        calibrator = _attach_calibrator(trt, builder, config, image, calib_files, preprocessing,
                                        min(opt, len(calib_files)), cache_path)  # fmt: skip

    logger.info("building TensorRT %s %s engine for %s (batch %d/%d/%d)", version, precision, gpu, mn, opt, mx)
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.free()
    if serialized is None:
        raise EngineBuildError(f"TensorRT {version} failed to build a {precision} engine for {gpu} (see its log above)")
    name = engine_filename(gpu, version, precision)
    tmp = out_dir / (name + ".tmp")
    tmp.write_bytes(bytes(serialized))
    os.replace(tmp, out_dir / name)
    entry: dict[str, Any] = {"file": name, "gpu": gpu, "tensorrt": version, "precision": precision,
                             "min_batch": mn, "opt_batch": opt, "max_batch": mx, "calibration_cache": None}  # fmt: skip
    if cache_path is not None:
        entry["calibration_cache"] = cache_path.name if cache_path.parent == out_dir else str(cache_path)
        entry["calibration_images"] = len(calib_files)
    return entry


def _require_precision(trt: Any, precision: str) -> None:
    """fp16 and int8 need their builder flag, which TensorRT 11 removed (strongly typed networks instead)."""
    if precision in ("fp16", "int8") and not hasattr(trt.BuilderFlag, precision.upper()):
        raise TensorRTUnavailable(
            f"TensorRT {trt.__version__} has no BuilderFlag.{precision.upper()} (removed in TensorRT 11); build fp32 "
            "here, or install tensorrt>=10,<11 for fp16/int8 engines"
        )


def _parse_onnx(trt: Any, builder: Any, trt_logger: Any, onnx_path: str | Path) -> tuple[Any, Any]:
    """(the network parsed from ``onnx_path``, its parser): keep the parser until the engine is built, it owns
    the network's weights."""
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:  # explicit batch is the only mode from TensorRT 10 on
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT {trt.__version__} could not parse {Path(onnx_path).name}: {errors}")
    return network, parser


def _builder_config(trt: Any, builder: Any, image: Any, batches: tuple[int, int, int], precision: str,
                    workspace_bytes: int) -> Any:  # fmt: skip
    """The builder config: the workspace, one optimisation profile over ``batches`` (min, opt, max) for the image
    input, and the precision's flags (int8 also enables fp16: layers TensorRT cannot quantise run in fp16)."""
    mn, opt, mx = batches
    _, c, h, w = tuple(image.shape)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    profile = builder.create_optimization_profile()
    profile.set_shape(image.name, (mn, c, h, w), (opt, c, h, w), (mx, c, h, w))
    config.add_optimization_profile(profile)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
    return config


def _attach_calibrator(trt: Any, builder: Any, config: Any, image: Any, files: list[Path], pp: Preprocessing,
                       batch_size: int, cache_path: Path) -> Any:  # fmt: skip
    """Give ``config`` an int8 calibrator over ``files`` and a calibration profile at ``batch_size``; returns the
    calibrator (free it once the engine is built)."""
    _, c, h, w = tuple(image.shape)
    calibrator = _make_calibrator(trt, files, pp, batch_size, cache_path)
    config.int8_calibrator = calibrator
    calib_profile = builder.create_optimization_profile()
    shape = (batch_size, c, h, w)
    calib_profile.set_shape(image.name, shape, shape, shape)
    config.set_calibration_profile(calib_profile)
    return calibrator
