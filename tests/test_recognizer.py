"""Recognizer and backends: predictions, embeddings, inputs and errors, preprocessing parity with
training, thread safety, torch == onnxruntime, and a runtime that works where torch cannot be imported."""

from __future__ import annotations

import importlib.util
import json
import textwrap
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from clear_sdk.backends import (
    Backend,
    BackendUnavailable,
    OnnxRuntimeBackend,
    TensorRTUnavailable,
    TorchBackend,
    create_backend,
)
from clear_sdk.bundle import Bundle
from clear_sdk.errors import InputError
from clear_sdk.export.bundle_writer import export_bundle
from clear_sdk.preprocess import load_image, preprocess
from clear_sdk.recognizer import Prediction, Recognizer
from clear_sdk.training.models import RetrievalConfig, create_model, save_checkpoint

NAMES = ["Female", "AgeOver60", "Age18-60", "AgeLess18", "Hat", "Backpack", "Trousers"]
GROUPS = {"gender": ["Female"], "age": ["AgeOver60", "Age18-60", "AgeLess18"], "head": ["Hat"]}
GROUPS |= {"bag": ["Backpack"], "lower": ["Trousers"]}
TINY = dict(
    img_size=(112, 64),
    vit={"dim": 32, "depth": 1, "num_heads": 2},
    swin={"dims": (8, 16, 32, 64), "depths": (2, 2, 2, 2), "num_heads": (1, 2, 2, 4), "out_dim": 32},
    fusion_dim=16,
    fusion_heads=2,
)
ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def _export(tmp: Path, retrieval: bool, thresholds: dict[str, float] | None = None) -> Path:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    kw = {"retrieval": RetrievalConfig(embed_dim=16, hidden_dim=24, soft_dim=40)} if retrieval else {}
    model = create_model("clear-tiny", **TINY, num_attrs=len(NAMES), attribute_names=NAMES, **kw)
    ckpt = save_checkpoint(
        model, tmp / "model.safetensors", extra={"dataset": {"name": "x", "attributes": NAMES, "groups": GROUPS}}
    )
    out = export_bundle(ckpt, tmp / "bundle", simplify=False)
    if thresholds:  # a calibrated-looking bundle: rewrite the thresholds (the manifest is not hashed)
        m = json.loads((out / "manifest.json").read_text())
        m["thresholds"].update(thresholds)
        (out / "manifest.json").write_text(json.dumps(m))
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return _export(tmp_path_factory.mktemp("rec"), retrieval=True, thresholds={"Hat": 0.9, "Backpack": 0.1})


@pytest.fixture(scope="module")
def bundle_par_only(tmp_path_factory) -> Path:
    return _export(tmp_path_factory.mktemp("par"), retrieval=False)


@pytest.fixture(scope="module")
def rec(bundle) -> Recognizer:
    return Recognizer(bundle, backend="onnxruntime", threads=1)


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> list[Path]:
    """Person-crop-sized PNG and JPEG files of different sizes."""
    d = tmp_path_factory.mktemp("img")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        img = cv2.GaussianBlur(rng.integers(0, 256, (90 + 13 * i, 40 + 7 * i, 3), dtype=np.uint8), (5, 5), 0)
        p = d / (f"{i}.png" if i % 2 else f"{i}.jpg")
        cv2.imwrite(str(p), img)
        paths.append(p)
    return paths


# --------------------------------------------------------------------------------------- predict


def test_predict_types_and_decisions(rec, crops):
    preds = rec.predict(crops)
    assert len(preds) == len(crops) and all(isinstance(p, Prediction) for p in preds)
    thr = rec.thresholds
    assert thr["Hat"] == 0.9 and thr["Backpack"] == 0.1 and thr["Female"] == 0.5
    for path, p in zip(crops, preds):
        assert p.ok and p.error is None and p.source == str(path)
        assert list(p.probabilities) == NAMES
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in p.probabilities.values())
        assert p.attributes == [n for n in NAMES if p.probabilities[n] > thr[n]]
        assert "Backpack" in p.attributes and "Hat" not in p.attributes  # sigmoid of a fresh model ~ 0.5
        assert set(p.groups) == set(GROUPS)
        assert p.groups["age"] == {a: p.probabilities[a] for a in GROUPS["age"]}
        name, prob = p.top("age")
        assert prob == max(p.groups["age"].values()) and p.groups["age"][name] == prob
        d = json.loads(json.dumps(p.to_dict()))
        assert d["source"] == str(path) and d["attributes"] == p.attributes and d["probabilities"] == p.probabilities
    with pytest.raises(KeyError, match="no group 'colour'; this model's groups: gender, age"):
        preds[0].top("colour")
    np.testing.assert_allclose(
        rec.predict_proba(crops), [[p.probabilities[n] for n in NAMES] for p in preds], atol=0, rtol=0
    )


def test_properties(rec):
    assert rec.attribute_names == NAMES and rec.groups == GROUPS
    assert rec.embedding_dim == 16 and rec.backend_name == "onnxruntime" and rec.device == "cpu"
    assert rec.preprocessing.input_size == (112, 64)
    assert "onnxruntime" in repr(rec)


def test_inputs_of_every_kind_agree(rec, crops):
    bgr = cv2.imread(str(crops[1]))
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    want = rec.predict_proba([crops[1]])
    np.testing.assert_array_equal(rec.predict_proba([bgr]), want)
    np.testing.assert_array_equal(rec.predict_proba([rgb], color="rgb"), want)
    np.testing.assert_array_equal(rec.predict_proba([crops[1].read_bytes()]), want)
    np.testing.assert_array_equal(rec.predict_proba([str(crops[1])]), want)
    np.testing.assert_array_equal(rec.predict_proba(iter([crops[1]])), want)
    # one image on its own is a list of one
    (single,) = rec.predict(bgr)
    assert single.source == "images[0] (ndarray)" and single.probabilities == rec.predict([bgr])[0].probabilities
    assert len(rec.predict(str(crops[1]))) == 1
    pil = pytest.importorskip("PIL.Image")
    np.testing.assert_array_equal(rec.predict_proba([pil.fromarray(rgb)]), want)


def test_empty_input(rec):
    assert rec.predict([]) == []
    assert rec.predict_proba([]).shape == (0, len(NAMES))
    emb = rec.embed([])
    assert emb.shape == (0, 16) and emb.dtype == np.float32


def test_batching_does_not_change_answers(bundle, rec, crops):
    small = Recognizer(bundle, backend="onnxruntime", batch_size=4, threads=1)
    images = crops + crops[:3]  # 9 images: chunks of 4, 4, 1
    np.testing.assert_allclose(small.predict_proba(images), rec.predict_proba(images), atol=1e-6, rtol=0)
    assert [p.source for p in small.predict(images)] == [str(p) for p in images]
    with pytest.raises(ValueError, match="batch_size"):
        Recognizer(bundle, batch_size=0)


def test_bad_inputs_raise_or_skip(rec, crops, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(crops[0].read_bytes()[:300])  # a truncated JPEG
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    images = [crops[0], corrupt, crops[1], np.zeros((1, 1, 3), np.uint8), text, crops[2]]
    with pytest.raises(InputError, match=r"corrupt\.jpg: truncated JPEG") as e:
        rec.predict(images)
    assert e.value.source == str(corrupt)
    preds = Recognizer(rec.bundle, backend=rec.backend, batch_size=4).predict(images, errors="skip")
    assert [p.ok for p in preds] == [True, False, True, False, False, True]
    assert preds[1].source == str(corrupt) and "truncated JPEG" in preds[1].error
    assert preds[3].source == "images[3] (ndarray)" and "1x1" in preds[3].error
    assert "text file" in preds[4].error
    for p in (preds[1], preds[3], preds[4]):
        assert p.probabilities == {} and p.attributes == [] and p.groups == {}
        assert set(p.to_dict()) == {"source", "error"}
        with pytest.raises(ValueError, match="no prediction"):
            p.top("age")
    good = rec.predict([crops[0], crops[1], crops[2]])
    for a, b in zip([preds[0], preds[2], preds[5]], good):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
    with pytest.raises(InputError, match="float image values span"):
        rec.embed([np.full((20, 10, 3), 7.0, np.float32)])
    with pytest.raises(ValueError, match="errors must be"):
        rec.predict(crops, errors="ignore")


# ----------------------------------------------------------------------------------------- embed


def test_embed(rec, crops):
    emb = rec.embed(crops)
    assert emb.shape == (len(crops), 16) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(emb[0], emb[1])


def test_bundle_without_retrieval(bundle_par_only, crops):
    r = Recognizer(bundle_par_only, backend="onnxruntime")
    assert r.embedding_dim is None and len(r.predict(crops[:2])) == 2
    with pytest.raises(BackendUnavailable, match="no retrieval stage.*re-export"):
        r.embed(crops[:1])
    with pytest.raises(BackendUnavailable, match="no retrieval stage"):
        r.backend.run_query(np.zeros((1, 7), np.float32), np.zeros((1, 40), np.float32))


# ------------------------------------------------------------------------------ preprocessing parity


def test_preprocessing_matches_training(rec, crops):
    """The runtime's batch equals what the trainer feeds the model for the same files (real crops when present)."""
    from clear_sdk.training.data.base import Record
    from clear_sdk.training.datasets_torch import ImageDataset

    real = sorted((SHARED_DATA / "pa100k-2k" / "images").glob("*.jpg"))[:4]
    files = [str(p) for p in crops + real]
    batch, ok, failures = rec.preprocess(files)
    assert ok == list(range(len(files))) and failures == []
    pp = rec.preprocessing
    np.testing.assert_array_equal(batch, np.stack([preprocess(load_image(f), pp) for f in files]))
    records = [Record(f, np.zeros(len(NAMES), np.uint8)) for f in files]
    ds = ImageDataset(records, pp, train=False, cache=False)
    np.testing.assert_array_equal(batch, np.stack([ds[i][0].numpy() for i in range(len(files))]))


# ---------------------------------------------------------------------------------- thread safety


def test_threads_share_one_recognizer(bundle, crops):
    shared = Recognizer(bundle, backend="onnxruntime", batch_size=3, threads=1)
    work = [crops[i:] + crops[:i] for i in range(4)]  # each thread its own order and batches
    expected = [[(p.attributes, p.probabilities) for p in shared.predict(w)] for w in work]
    expected_emb = [shared.embed(w) for w in work]
    results: dict[int, list] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker(k: int) -> None:
        try:
            start.wait()
            for _ in range(3):
                preds = shared.predict(work[k])
                emb = shared.embed(work[k])
            results[k] = ([(p.attributes, p.probabilities) for p in preds], emb)
        except BaseException as e:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k in range(4):
        got, emb = results[k]
        assert [a for a, _ in got] == [a for a, _ in expected[k]]
        for (_, p), (_, q) in zip(got, expected[k]):
            assert p == pytest.approx(q, abs=1e-6)
        np.testing.assert_allclose(emb, expected_emb[k], atol=1e-6, rtol=0)


# -------------------------------------------------------------------------------------- backends


def test_torch_backend_matches_onnxruntime(bundle, rec, crops):
    t = Recognizer(bundle, backend="torch")
    assert t.backend_name == "torch" and isinstance(t.backend, TorchBackend)
    np.testing.assert_allclose(t.predict_proba(crops), rec.predict_proba(crops), atol=1e-4, rtol=0)
    np.testing.assert_allclose(t.embed(crops), rec.embed(crops), atol=1e-4, rtol=0)
    rng = np.random.default_rng(0)
    hard = (rng.random((5, 7)) < 0.5).astype(np.float32)
    soft = rng.standard_normal((5, 40), dtype=np.float32)
    q_ort = rec.backend.run_query(hard, soft)
    np.testing.assert_allclose(t.backend.run_query(hard, soft), q_ort, atol=1e-5, rtol=0)
    assert q_ort.shape == (5, 16) and rec.backend.run_query(hard[:0], soft[:0]).shape == (0, 16)


def test_create_backend(bundle):
    b = Bundle.open(bundle)
    auto = create_backend(b)  # no TensorRT engine in this bundle: onnxruntime
    assert isinstance(auto, OnnxRuntimeBackend) and isinstance(auto, Backend)
    assert create_backend(b, "ort", device="cpu").device == "cpu"
    assert create_backend(b, auto) is auto
    with pytest.raises(ValueError, match="unknown backend 'tflite'; choose one of auto, onnxruntime"):
        create_backend(b, "tflite")
    if "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers():
        with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
            create_backend(b, "onnxruntime", device="cuda")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_backend_unavailable_here(bundle):
    with pytest.raises(TensorRTUnavailable, match="TensorRT is not installed"):
        Recognizer(bundle, backend="tensorrt")


def test_run_images_checks_its_input(rec):
    with pytest.raises(ValueError, match=r"expects preprocessed images \[N, 3, 112, 64\]"):
        rec.backend.run_images(np.zeros((2, 3, 64, 32), np.float32))
    with pytest.raises(TypeError, match="numpy array"):
        rec.backend.run_images([[0.0]])
    probs, emb = rec.backend.run_images(np.zeros((0, 3, 112, 64), np.float32))
    assert probs.shape == (0, 7) and emb.shape == (0, 16)
    with pytest.raises(ValueError, match=r"soft must be \[1, 40\]"):
        rec.backend.run_query(np.zeros((1, 7)), np.zeros((1, 39)))


# --------------------------------------------------------------------------------- without torch


def test_runtime_works_where_torch_cannot_be_imported(bundle, crops, run_without_torch):
    code = textwrap.dedent(
        f"""
        import sys

        import clear_sdk, clear_sdk.bundle, clear_sdk.backends, clear_sdk.recognizer
        from clear_sdk.recognizer import Recognizer

        rec = Recognizer({str(bundle)!r})
        preds = rec.predict({[str(p) for p in crops[:3]]!r})
        emb = rec.embed({[str(p) for p in crops[:3]]!r})
        assert rec.backend_name == "onnxruntime", rec.backend_name
        assert len(preds) == 3 and emb.shape == (3, 16)
        try:
            Recognizer({str(bundle)!r}, backend="torch")
        except clear_sdk.backends.BackendUnavailable as e:
            assert "pip install 'clear-sdk[train]'" in str(e), e
        else:
            raise AssertionError("the torch backend loaded without torch")
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch got imported"
        print(preds[0].attributes)
        """
    )
    done = run_without_torch(code, ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("[")
