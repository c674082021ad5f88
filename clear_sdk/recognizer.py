"""``Recognizer``: images -> pedestrian attributes (and retrieval embeddings) from a model bundle.

Typical use in a camera pipeline::

    from clear_sdk import Recognizer
    rec = Recognizer("bundles/pa100k")            # best backend available: TensorRT, ORT-CUDA, ORT-CPU
    for p in rec.predict([crop1, crop2]):        # numpy BGR crops (OpenCV order), paths, bytes, PIL
        print(p.attributes, p.top("age"))

Images are decoded and preprocessed by :mod:`clear_sdk.preprocess`, the same code the trainer uses,
and run through the backend in batches of ``batch_size``. One Recognizer can be shared by several
threads: ``predict`` and ``embed`` keep all their state in local variables and the backends are
thread-safe.

Many threads that each send one crop at a time (a video pipeline) leave the backend running batch 1,
its slowest rate. ``Recognizer(..., micro_batch_ms=5)`` gathers such calls into one backend batch:
each call waits at most ``micro_batch_ms`` for others to join (a batch closes early once
``batch_size`` images are in), and each caller gets its own rows back::

    rec = Recognizer("peta-lite0", micro_batch_ms=5)   # share it between threads
    rec.predict(crop)                                  # from any thread; answers are per caller
    rec.close()                                        # or: with Recognizer(...) as rec:
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any, Literal

import numpy as np

from clear_sdk.backends import Backend, BackendUnavailable, SessionSettings, create_backend
from clear_sdk.bundle import Bundle
from clear_sdk.errors import InputError
from clear_sdk.preprocess import Preprocessing, load_image, preprocess
from clear_sdk.schema import attribute_labels
from clear_sdk.views import OutputView, output_view

__all__ = ["Prediction", "Recognizer", "as_image_list"]


@dataclasses.dataclass
class Prediction:
    """The attributes of one image.

    ``probabilities`` maps every attribute to its probability; ``attributes`` lists those above the
    bundle's threshold (``prob > threshold``), in the model's attribute order; ``groups`` is the same
    probabilities grouped (gender, age, upper colour, ...) as the bundle's schema defines them.
    ``source`` names the input (a path, or ``images[i]``). With ``predict(..., errors="skip")`` an
    input that could not be read gives a Prediction whose ``error`` says why and whose
    probabilities are empty.
    """

    probabilities: dict[str, float]
    attributes: list[str]
    groups: dict[str, dict[str, float]]
    source: str | None = None
    error: str | None = None
    #: a label a person reads per attribute name ("carries a backpack"), where the schema has one
    labels: dict[str, str] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __str__(self) -> str:
        """The attributes above threshold as a person reads them: ``"female, long hair, carries a backpack"``."""
        if self.error is not None:
            return f"{self.source}: error: {self.error}"
        return ", ".join(self.labels.get(a, a) for a in self.attributes) or "(no attribute above its threshold)"

    @property
    def ok(self) -> bool:
        return self.error is None

    def top(self, group: str) -> tuple[str, float]:
        """The most probable member of a group and its probability, e.g. ``("Age18-60", 0.91)``.

        Meaningful for groups whose members exclude each other (age, view); for a one-attribute group
        (``gender`` with just ``Female``) compare the probability with the threshold instead.
        """
        if self.error is not None:
            raise ValueError(f"{self.source}: no prediction ({self.error})")
        if group not in self.groups:
            raise KeyError(f"no group {group!r}; this model's groups: {', '.join(self.groups) or '(none)'}")
        members = self.groups[group]
        name = max(members, key=members.__getitem__)
        return name, members[name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"source", "probabilities", "attributes", "groups"}`` or ``{"source", "error"}``."""
        if self.error is not None:
            return {"source": self.source, "error": self.error}
        return {
            "source": self.source,
            "probabilities": dict(self.probabilities),
            "attributes": list(self.attributes),
            "groups": {g: dict(m) for g, m in self.groups.items()},
        }


def _describe(item: Any, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return os.fsdecode(item)
    return f"images[{index}] ({type(item).__name__})"


def as_image_list(images: Any) -> Sequence[Any]:
    """A list of images; one image (path, bytes, PIL, a single H x W [x C] array) becomes a list of one."""
    if isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike)):
        return [images]
    if isinstance(images, np.ndarray):
        return [images] if images.ndim in (2, 3) else images
    if type(images).__module__.startswith("PIL.") and hasattr(images, "mode"):
        return [images]
    if isinstance(images, Sequence):
        return images
    if isinstance(images, Iterable):
        return list(images)
    raise TypeError(f"images must be a list of images (paths, bytes, numpy arrays, PIL images), got {type(images)}")


class _MicroBatcher:
    """One worker thread that runs the backend on the images of many concurrent callers at once.

    Written here because no library does in-process request batching for a plain callable (serving
    frameworks such as Triton or Ray Serve batch at their own network front-end). A call enqueues its
    preprocessed batch and waits on a Future. The worker takes the first waiting call, then gathers
    more for up to ``wait_s`` or until ``max_batch`` images are in, runs one backend call on the
    concatenation and hands each caller its own rows. A call already holding ``max_batch`` images
    or more runs directly in its own thread.
    """

    def __init__(self, backend: Backend, max_batch: int, wait_s: float) -> None:
        self.backend, self.max_batch, self.wait_s = backend, max_batch, wait_s
        self._queue: queue.SimpleQueue[tuple[np.ndarray, Future] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0  # backend calls made, and images in them: how well calls were gathered
        self.images = 0
        self._thread = threading.Thread(target=self._loop, name="clear-sdk-micro-batch", daemon=True)
        self._thread.start()

    def run_images(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        batch = self.backend.check_images(batch)  # a bad array fails its own caller, not the whole batch
        if batch.shape[0] >= self.max_batch or batch.shape[0] == 0:
            return self.backend.run_images(batch)
        fut: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("this Recognizer is closed; create a new one")
            self._queue.put((batch, fut))
        return fut.result()

    def _loop(self) -> None:
        carry: tuple[np.ndarray, Future] | None = None
        while True:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if first is None:
                return
            items, n = [first], len(first[0])
            deadline = time.monotonic() + self.wait_s
            stop = False
            while n < self.max_batch:
                try:
                    nxt = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                if n + len(nxt[0]) > self.max_batch:  # it starts the next batch
                    carry = nxt
                    break
                items.append(nxt)
                n += len(nxt[0])
            self._run(items)
            if stop:
                return

    def _run(self, items: list[tuple[np.ndarray, Future]]) -> None:
        try:
            batch = items[0][0] if len(items) == 1 else np.concatenate([x for x, _ in items])
            probs, emb = self.backend.run_images(batch)
        except BaseException as e:  # every waiting caller gets the backend's error
            for _, fut in items:
                fut.set_exception(e)
            return
        self.batches += 1
        self.images += len(batch)
        start = 0
        for x, fut in items:
            end = start + len(x)
            fut.set_result((probs[start:end], None if emb is None else emb[start:end]))
            start = end

    def stop(self) -> None:
        """Refuse new calls; the worker answers those already queued, then ends."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(None)

    def close(self) -> None:
        """:meth:`stop`, and wait for the worker to end."""
        self.stop()
        self._thread.join()


class Recognizer:
    """Pedestrian attribute recognition (and visual embeddings) from a model bundle.

    ``bundle``: a bundle folder, a shipped model's name, or ``"default"`` (the default: the shipped
    unified-schema model, which answers in every dataset's view, see :meth:`view`). ``backend``: ``"auto"``
    (TensorRT when the bundle has an engine for this GPU, else onnxruntime on
    CUDA when available, else on CPU), ``"onnxruntime"``, ``"onnxruntime-int8"``,
    ``"onnxruntime-int8-static"``, ``"tensorrt"``, ``"torch"`` (the training extra's plug-in), or a
    :class:`~clear_sdk.backends.Backend`. ``device``: ``None`` (automatic), ``"cpu"``, ``"cuda[:N]"``.
    ``threads``: intra-op threads of the backend (overrides ``settings``). ``settings``: onnxruntime
    :class:`~clear_sdk.backends.SessionSettings` (default: the measured
    :data:`~clear_sdk.backends.DEFAULT_SETTINGS`). ``batch_size``: images per backend call.
    ``micro_batch_ms``: gather calls of fewer than ``batch_size`` images from concurrent threads into
    one backend batch, each call waiting at most this long for others (``None``: off; see the module
    docstring). Call :meth:`close` (or use ``with``) to stop its worker thread.
    """

    def __init__(
        self,
        bundle: str | os.PathLike[str] | Bundle = "default",
        backend: str | Backend = "auto",
        device: str | None = None,
        batch_size: int = 32,
        threads: int | None = None,
        settings: SessionSettings | None = None,
        micro_batch_ms: float | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        if micro_batch_ms is not None and (isinstance(micro_batch_ms, bool) or not (0 <= micro_batch_ms <= 1000)):
            raise ValueError(f"micro_batch_ms must be between 0 and 1000 (milliseconds), got {micro_batch_ms}")
        self.bundle = Bundle.open(bundle)
        options = {} if settings is None else {"settings": settings}
        self.backend: Backend = create_backend(self.bundle, backend, device=device, threads=threads, **options)
        self.batch_size = int(batch_size)
        self.micro_batch_ms = micro_batch_ms
        self._closed = False
        self._batcher = None
        if micro_batch_ms is not None:
            self._batcher = _MicroBatcher(self.backend, self.batch_size, micro_batch_ms / 1e3)
            weakref.finalize(self, self._batcher.stop)  # a Recognizer dropped without close() frees its worker
        names = self.bundle.attribute_names
        self._names = tuple(names)
        self._thresholds = tuple(self.bundle.threshold_vector())
        index = {n: i for i, n in enumerate(names)}
        self._groups = {g: tuple((a, index[a]) for a in members) for g, members in self.bundle.groups.items()}
        self._views: dict[str | None, OutputView] = {}
        self._label_cache: dict[str | None, dict[str, str]] = {}

    # -------------------------------------------------------------------------------- properties
    @property
    def attribute_names(self) -> list[str]:
        return list(self._names)

    @property
    def groups(self) -> dict[str, list[str]]:
        return {g: [a for a, _ in m] for g, m in self._groups.items()}

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(zip(self._names, self._thresholds))

    @property
    def embedding_dim(self) -> int | None:
        """D of :meth:`embed`, or None for a bundle without the retrieval stage."""
        return self.bundle.embed_dim

    @property
    def preprocessing(self) -> Preprocessing:
        return self.bundle.preprocessing

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def device(self) -> str:
        return self.backend.device

    # ---------------------------------------------------------------------------------- inference
    def preprocess(
        self, images: Any, color: Literal["bgr", "rgb"] = "bgr", errors: Literal["raise", "skip"] = "raise"
    ) -> tuple[np.ndarray, list[int], list[tuple[int, InputError]]]:
        """Decode and preprocess: (batch float32 [N, 3, H, W], indices of the good inputs, failures).

        Exactly ``preprocess(load_image(image, color), bundle.preprocessing)`` per image, as in training.
        """
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
        items = as_image_list(images)
        pp = self.bundle.preprocessing
        h, w = pp.input_size
        out = np.empty((len(items), 3, h, w), dtype=np.float32)
        ok: list[int] = []
        failures: list[tuple[int, InputError]] = []
        for i in range(len(items)):
            try:
                out[len(ok)] = preprocess(load_image(items[i], color=color, source=_describe(items[i], i)), pp)
            except InputError as e:
                if errors == "raise":
                    raise
                failures.append((i, e))
                continue
            ok.append(i)
        return out[: len(ok)], ok, failures

    def run_batch(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Preprocessed images float32 [N, 3, H, W] (:meth:`preprocess`) -> (probs [N, A], embedding [N, D] or None).

        The backend's ``run_images``, through the micro-batcher when ``micro_batch_ms`` is set: use this
        rather than ``backend.run_images`` so that calls from several threads are gathered.
        """
        if self._closed:
            raise RuntimeError("this Recognizer is closed; create a new one")
        if self._batcher is None:
            return self.backend.run_images(batch)
        return self._batcher.run_images(batch)

    def close(self) -> None:
        """Stop the micro-batching worker (after answering queued calls) and release the backend; later calls raise."""
        self._closed = True
        if self._batcher is not None:
            self._batcher.close()
        self.backend.close()

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_chunks(self, images: Any, color: str = "bgr", errors: str = "raise", want_embedding: bool = False):
        """Yield (start, chunk, ok, failures, probs, embedding) per chunk of ``batch_size`` inputs.

        ``chunk`` holds inputs ``start`` onwards; ``probs`` (and ``embedding``) have one row per index in ``ok``,
        and ``failures`` lists (index, InputError) of the inputs skipped with ``errors="skip"``. The loop
        behind predict and embed, for callers that use the rows as they come (AttributeSearcher.add).
        """
        items = as_image_list(images)
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            batch, ok, failures = self.preprocess(chunk, color=color, errors=errors)
            probs, emb = self.run_batch(batch)
            if want_embedding and emb is None:
                raise BackendUnavailable(self._no_retrieval())
            yield start, chunk, ok, failures, probs, emb

    def predict(
        self,
        images: Any,
        color: Literal["bgr", "rgb"] = "bgr",
        errors: Literal["raise", "skip"] = "raise",
        schema: str | None = None,
    ) -> list[Prediction]:
        """One :class:`Prediction` per input, in input order.

        ``images``: a list of file paths, encoded bytes, numpy arrays (BGR unless ``color="rgb"``;
        gray, RGBA and 16-bit are converted) or PIL images; a single image is treated as a list of
        one. ``errors="raise"`` raises :class:`~clear_sdk.errors.InputError` naming the first bad
        input; ``errors="skip"`` returns an error entry for it and answers the rest. ``schema``: answer
        in a dataset's own attribute names (``"peta"``, ``"market1501"``, ``"pa100k"``; see
        :meth:`view`), for a unified-schema model such as the default one; ``None``: the model's names.
        """
        out = self.view(schema)
        results: list[Prediction] = []
        for start, chunk, ok, failures, probs, _ in self.run_chunks(images, color, errors, want_embedding=False):
            p, d = out.apply(list(self._names), probs, probs > np.asarray(self._thresholds, probs.dtype))
            by_index: dict[int, Prediction] = {}
            for row, i in enumerate(ok):
                by_index[i] = self._prediction(out, p[row], d[row], _describe(chunk[i], start + i))
            for i, err in failures:
                by_index[i] = Prediction({}, [], {}, source=_describe(chunk[i], start + i), error=str(err))
            results.extend(by_index[i] for i in range(len(chunk)))
        return results

    def predict_proba(
        self, images: Any, color: Literal["bgr", "rgb"] = "bgr", schema: str | None = None
    ) -> np.ndarray:
        """Attribute probabilities float32 [N, A] in :attr:`attribute_names` order, or in ``view(schema).names``."""
        out = self.view(schema)
        parts = [p for *_, p, _ in self.run_chunks(images, color, "raise", want_embedding=False)]
        probs = np.concatenate(parts) if parts else np.zeros((0, len(self._names)), np.float32)
        return out.apply(list(self._names), probs, np.zeros(probs.shape, bool))[0]

    def view(self, schema: str | None = None) -> OutputView:
        """How answers read in ``schema``'s names (``view(s).names``, ``.groups``); ``None``: the model's own.

        A unified-schema model (manifest ``dataset: unified``) has every dataset view of
        ``clear_sdk/data/attributes.json``: each attribute of the view the unified schema covers, by
        exact, complement or union mapping (:mod:`clear_sdk.views`). An unknown view is a QueryError.
        """
        key = schema.lower() if isinstance(schema, str) else schema
        if key not in self._views:
            self._views[key] = output_view(self.bundle.dataset, list(self._names), self.groups, schema)
        return self._views[key]

    def embed(self, images: Any, color: Literal["bgr", "rgb"] = "bgr") -> np.ndarray:
        """L2-normalised visual embeddings float32 [N, D] (the retrieval stage's E^v); bad input raises."""
        if self.bundle.embed_dim is None:
            raise BackendUnavailable(self._no_retrieval())
        parts = [e for *_, e in self.run_chunks(images, color, "raise", want_embedding=True)]
        return np.concatenate(parts) if parts else np.zeros((0, self.bundle.embed_dim), np.float32)

    def _no_retrieval(self) -> str:
        return (
            f"{self.bundle.path} has no retrieval stage, so there are no embeddings: "
            "train stage 2 (clear-sdk train --stage retrieval) and re-export the bundle"
        )

    def _prediction(self, out: OutputView, probs: np.ndarray, decisions: np.ndarray, source: str) -> Prediction:
        values = probs.tolist()
        probabilities = dict(zip(out.names, values))
        above = [n for n, d in zip(out.names, decisions.tolist()) if d]
        groups = {g: {a: probabilities[a] for a in members} for g, members in out.groups.items()}
        return Prediction(probabilities, above, groups, source=source, labels=self._labels(out))

    def _labels(self, out: OutputView) -> dict[str, str]:
        if out.dataset not in self._label_cache:
            self._label_cache[out.dataset] = attribute_labels(list(out.names), out.dataset)
        return self._label_cache[out.dataset]

    def __repr__(self) -> str:
        return (
            f"Recognizer({str(self.bundle.path)!r}, model={self.bundle.model_name!r}, backend={self.backend_name!r}, "
            f"device={self.device!r})"
        )
