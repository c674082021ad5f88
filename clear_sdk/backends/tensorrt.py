"""The TensorRT backend: the bundle's engine for this GPU model and TensorRT version.

Run through the ``tensorrt`` Python API with device buffers from CUDA Python (``cuda-python``); both
are optional imports (``pip install 'clear-sdk[trt]'``), made only when the backend is built. The
tiny query graph stays on onnxruntime.
"""

from __future__ import annotations

import threading

import numpy as np

from clear_sdk.backends.base import Backend, TensorRTUnavailable
from clear_sdk.backends.cuda import cuda_check, cuda_device_name, cudart, device_index, import_tensorrt
from clear_sdk.bundle import Bundle, EngineInfo

__all__ = ["PRECISION_PREFERENCE", "TensorRTBackend", "select_engine"]

#: Engine precisions in the order ``TensorRTBackend`` prefers them when none is asked for: fp16 is the
#: fast choice that keeps accuracy; int8 changes results and is used only when asked for or alone.
PRECISION_PREFERENCE = ("fp16", "fp32", "int8")


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
        bundle = self.bundle
        trt = import_tensorrt()
        rt = cudart()
        index = device_index(device)
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
