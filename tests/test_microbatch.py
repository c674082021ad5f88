"""Recognizer micro-batching: single-crop calls from many threads share backend batches, and every
caller gets its own answers, in its own order."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from clear_sdk.backends import create_backend
from clear_sdk.recognizer import Recognizer


class CountingBackend:
    """Wraps a real onnxruntime backend and records the size of every batch it is asked to run."""

    def __init__(self, inner):
        self.inner, self.sizes, self._lock = inner, [], threading.Lock()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def run_images(self, batch):
        with self._lock:
            self.sizes.append(len(batch))
        return self.inner.run_images(batch)


@pytest.fixture(scope="module")
def crops():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (80 + i % 7, 40 + i % 5, 3), dtype=np.uint8) for i in range(8 * 12)]


def test_each_of_8_threads_gets_its_own_answers_in_order(tiny_bundle, crops):
    plain = Recognizer(tiny_bundle, backend="onnxruntime", device="cpu", threads=1)
    expected_p = plain.predict_proba(crops)
    expected_e = plain.embed(crops)
    rec = Recognizer(tiny_bundle, backend="onnxruntime", device="cpu", threads=1, micro_batch_ms=20, batch_size=8)
    counting = CountingBackend(rec.backend)
    rec._batcher.backend = counting
    per_thread = 12
    got: dict[int, list] = {}
    start = threading.Barrier(8)
    errors = []

    def worker(t: int) -> None:
        try:
            start.wait()
            mine = []
            for k in range(per_thread):  # one crop per call, as a video pipeline sends them
                i = t * per_thread + k
                probs = rec.predict_proba([crops[i]])
                emb = rec.embed(crops[i])
                mine.append((i, probs[0], emb[0]))
            got[t] = mine
        except Exception as e:  # surfaced below with the thread's number
            errors.append((t, e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    for t in range(8):
        assert [i for i, *_ in got[t]] == list(range(t * per_thread, (t + 1) * per_thread))
        for i, p, e in got[t]:
            np.testing.assert_allclose(p, expected_p[i], atol=1e-5, rtol=0)
            np.testing.assert_allclose(e, expected_e[i], atol=1e-5, rtol=0)
    calls = 8 * per_thread * 2
    assert sum(counting.sizes) == calls and max(counting.sizes) <= 8
    assert len(counting.sizes) < calls, "no two calls were ever gathered into one batch"
    rec.close()
    with pytest.raises(RuntimeError, match="closed"):
        rec.predict_proba([crops[0]])


def test_micro_batching_errors_reach_their_caller(tiny_bundle, crops):
    with Recognizer(tiny_bundle, backend="onnxruntime", device="cpu", threads=1, micro_batch_ms=1) as rec:
        with pytest.raises(ValueError, match=r"expects preprocessed images \[N, 3, 64, 32\]"):
            rec.run_batch(np.zeros((1, 3, 8, 8), np.float32))
        assert rec.predict_proba(crops[:3]).shape == (3, len(rec.attribute_names))
        many = rec.run_batch(rec.preprocess(crops[:40])[0])[0]  # >= batch_size: runs directly
        np.testing.assert_allclose(many, create_backend(rec.bundle, "onnxruntime").run_images(
            rec.preprocess(crops[:40])[0])[0], atol=1e-5, rtol=0)  # fmt: skip
    with pytest.raises(ValueError, match="micro_batch_ms must be between 0 and 1000"):
        Recognizer(tiny_bundle, micro_batch_ms=-1)
