"""Bundle manifest checks: format version, file hashes and sizes, paths that would leave the bundle.

These tests write small bundles by hand (no torch, no export), so they pin down exactly what
``Bundle.open`` accepts and refuses.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from clear_sdk.bundle import FORMAT_VERSION, Bundle, engine_filename, gpu_slug, model_family, sha256_file
from clear_sdk.errors import BundleError

NAMES = ["Female", "AgeOver60", "Age18-60", "Backpack"]


def write_bundle(root: Path, **overrides) -> Path:
    """A syntactically complete bundle whose model files are placeholder bytes."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "recognizer.onnx": b"not really onnx, but hashed like one",
        "query.onnx": b"query graph bytes",
        "checkpoint/model.safetensors": b"weights",
        "checkpoint/model.json": b"{}",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": {"name": "clear-tiny", "variant": "cross"},
        "dataset": "pa100k",
        "attributes": NAMES,
        "groups": {"gender": ["Female"], "age": ["AgeOver60", "Age18-60"], "bag": ["Backpack"]},
        "thresholds": {"Female": 0.5, "AgeOver60": 0.3, "Age18-60": 0.5, "Backpack": 0.7},
        "preprocessing": {"input_size": [256, 128], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        "dims": {"num_attrs": 4, "feature_dim": 8, "embed_dim": 16, "soft_dim": 40},
        "outputs": {"recognizer": ["probs", "embedding"], "query": ["query_embedding"]},
        "retrieval": {"description_template": {"name": "pa100k"}, "text_encoder": None},
        "models": {
            "recognizer": "recognizer.onnx",
            "query": "query.onnx",
            "checkpoint": "checkpoint/model.safetensors",
            "checkpoint_config": "checkpoint/model.json",
        },
        "engines": [],
        "files": {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in files.items()},
    }
    manifest.update(overrides)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def edit_manifest(root: Path, fn) -> None:
    m = json.loads((root / "manifest.json").read_text())
    fn(m)
    (root / "manifest.json").write_text(json.dumps(m))


def test_open_reads_everything(tmp_path):
    b = Bundle.open(write_bundle(tmp_path / "b"))
    assert b.attribute_names == NAMES
    assert b.groups["age"] == ["AgeOver60", "Age18-60"]
    assert b.thresholds == {"Female": 0.5, "AgeOver60": 0.3, "Age18-60": 0.5, "Backpack": 0.7}
    assert b.threshold_vector() == [0.5, 0.3, 0.5, 0.7]
    assert b.preprocessing.input_size == (256, 128) and b.preprocessing.mean == (0.5, 0.5, 0.5)
    assert (b.num_attrs, b.embed_dim, b.soft_dim, b.has_retrieval) == (4, 16, 40, True)
    assert b.recognizer_path == tmp_path / "b" / "recognizer.onnx"
    assert b.query_path == tmp_path / "b" / "query.onnx"
    assert b.checkpoint_path == tmp_path / "b" / "checkpoint" / "model.safetensors"
    assert b.text_model_path is None and b.tokenizer_path is None
    assert b.description_template == {"name": "pa100k"}
    assert b.model_name == "clear-tiny" and b.engines == []
    # opening the manifest file itself, or an opened bundle, gives the same bundle
    assert Bundle.open(tmp_path / "b" / "manifest.json").path == b.path
    assert Bundle.open(b) is b
    assert json.loads(json.dumps(b.summary()))["num_attrs"] == 4


def test_missing_folder_and_manifest(tmp_path):
    with pytest.raises(BundleError, match="bundle not found"):
        Bundle.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match=r"manifest\.json is missing.*clear-sdk export"):
        Bundle.open(tmp_path / "empty")


def test_unreadable_manifest(tmp_path):
    root = write_bundle(tmp_path / "b")
    (root / "manifest.json").write_text("{ not json")
    with pytest.raises(BundleError, match="not readable JSON.*re-export"):
        Bundle.open(root)


def test_newer_format_is_refused(tmp_path):
    root = write_bundle(tmp_path / "b", format_version=999)
    with pytest.raises(BundleError, match=r"format_version 999 is newer.*upgrade clear-sdk") as e:
        Bundle.open(root)
    assert "manifest.json" in str(e.value)


@pytest.mark.parametrize("bad", [None, "1", 0, 1.5, True])
def test_invalid_format_version(tmp_path, bad):
    root = write_bundle(tmp_path / "b", format_version=bad)
    with pytest.raises(BundleError, match="format_version"):
        Bundle.open(root)


def test_tampered_byte_fails_the_hash(tmp_path):
    root = write_bundle(tmp_path / "b")
    data = bytearray((root / "recognizer.onnx").read_bytes())
    data[3] ^= 0x01  # same size, one bit different
    (root / "recognizer.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"recognizer\.onnx: sha256 differs.*re-export the bundle"):
        Bundle.open(root)
    # verify=False skips the hashes (only sizes are checked)
    assert Bundle.open(root, verify=False).num_attrs == 4


def test_truncated_and_missing_files(tmp_path):
    root = write_bundle(tmp_path / "b")
    (root / "query.onnx").write_bytes(b"query")
    with pytest.raises(BundleError, match=r"query\.onnx: 5 bytes but manifest\.json records 17.*re-export"):
        Bundle.open(root, verify=False)
    root2 = write_bundle(tmp_path / "c")
    (root2 / "checkpoint" / "model.json").unlink()
    with pytest.raises(BundleError, match=r"model\.json: listed in manifest\.json but missing"):
        Bundle.open(root2)


@pytest.mark.parametrize(
    "name, why",
    [
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("/etc/passwd", "absolute"),
        ("C:\\x", "absolute"),
        ("a\\b", "backslash"),
    ],
)
def test_paths_outside_the_bundle_are_refused(tmp_path, name, why):
    root = write_bundle(tmp_path / "b")
    edit_manifest(root, lambda m: m["files"].__setitem__(name, {"sha256": "0" * 64, "size": 1}))
    with pytest.raises(BundleError, match="points outside the bundle") as e:
        Bundle.open(root)
    assert why in str(e.value) and repr(name) in str(e.value)


def test_symlink_escaping_the_bundle_is_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"outside")
    root = write_bundle(tmp_path / "b")
    os.symlink(secret, root / "link.bin")
    edit_manifest(root, lambda m: m["files"].__setitem__("link.bin", {"sha256": sha256_file(secret), "size": 7}))
    with pytest.raises(BundleError, match="symlink leading out of the bundle"):
        Bundle.open(root)


def test_symlink_inside_the_bundle_is_fine(tmp_path):
    root = write_bundle(tmp_path / "b")
    os.symlink(root / "query.onnx", root / "alias.onnx")
    edit_manifest(root, lambda m: m["files"].__setitem__("alias.onnx", dict(m["files"]["query.onnx"])))
    assert Bundle.open(root).num_attrs == 4


def test_model_without_hash_entry_is_refused(tmp_path):
    root = write_bundle(tmp_path / "b")
    (root / "extra.onnx").write_bytes(b"x")
    edit_manifest(root, lambda m: m["models"].__setitem__("text", "extra.onnx"))
    with pytest.raises(BundleError, match="models.text names 'extra.onnx', which has no sha256"):
        Bundle.open(root)


def test_inconsistent_schema_is_refused(tmp_path):
    root = write_bundle(tmp_path / "b", thresholds={"Female": 0.5})
    with pytest.raises(BundleError, match="one value per attribute"):
        Bundle.open(root)
    root = write_bundle(tmp_path / "c", groups={"bag": ["Handbag"]})
    with pytest.raises(BundleError, match=r"unknown attributes \['Handbag'\]"):
        Bundle.open(root)
    root = write_bundle(tmp_path / "d", dims={"num_attrs": 5})
    with pytest.raises(BundleError, match="num_attrs=5 but 4 attributes"):
        Bundle.open(root)


def test_engines_are_listed_and_hashed(tmp_path):
    root = write_bundle(tmp_path / "b")
    name = engine_filename("NVIDIA H100 80GB HBM3", "10.5.0", "fp16")
    assert name == "recognizer.nvidia-h100-80gb-hbm3.trt10.5.0.fp16.plan"
    (root / name).write_bytes(b"plan")
    entry = {"file": name, "gpu": "NVIDIA H100 80GB HBM3", "tensorrt": "10.5.0", "precision": "fp16"}
    entry |= {"min_batch": 1, "opt_batch": 8, "max_batch": 32}

    def add(m):
        m["engines"] = [entry]
        m["files"][name] = {"sha256": sha256_file(root / name), "size": 4}

    edit_manifest(root, add)
    (engine,) = Bundle.open(root).engines
    assert engine.path == root / name and engine.max_batch == 32
    assert engine.matches("NVIDIA H100 80GB HBM3", "10.5.0")
    assert not engine.matches("NVIDIA H100 80GB HBM3", "10.6.0")
    assert not engine.matches("NVIDIA A100-SXM4-40GB", "10.5.0")
    edit_manifest(root, lambda m: m["files"].pop(name))
    with pytest.raises(BundleError, match="has no sha256/size entry"):
        Bundle.open(root)


def test_gpu_slug():
    assert gpu_slug("NVIDIA GeForce RTX 4090") == "nvidia-geforce-rtx-4090"
    assert gpu_slug("  ") == "unknown-gpu"


@pytest.mark.parametrize(
    "section,key",
    [(None, "thresholdz"), ("dims", "embed_dims"), ("retrieval", "query_from")],
)
def test_unknown_manifest_keys_are_refused_by_their_path(tmp_path, section, key) -> None:
    root = write_bundle(tmp_path / "b")
    Bundle.open(root)  # the untouched manifest opens
    m = json.loads((root / "manifest.json").read_text())
    target = m if section is None else (m.get(section) or m.setdefault(section, {}))
    if section is not None:
        m[section] = target
    target[key] = 1
    (root / "manifest.json").write_text(json.dumps(m))
    path = key if section is None else f"{section}.{key}"
    with pytest.raises(BundleError, match=rf"unknown key {path} \(format {FORMAT_VERSION} defines"):
        Bundle.open(root)


def test_the_typed_manifest_writes_back_what_it_read() -> None:
    from clear_sdk.bundle import Manifest

    bundle = Bundle.open("peta-lite0")
    raw = json.loads((bundle.path / "manifest.json").read_text())
    assert isinstance(bundle.manifest, Manifest) and bundle.manifest.to_dict() == raw
    assert Manifest.from_dict(bundle.manifest.to_dict(), bundle.path) == bundle.manifest


def test_model_family_says_which_network_a_bundle_carries() -> None:
    clear = {"arch": "clear", "variant": "cross", "trunk": "tf_efficientnet_lite0", "head": "bn", "pooled_trunk": True}
    assert model_family(clear, 256) == (
        "CLEAR cross-transformers (cross) on tf_efficientnet_lite0, BatchNorm head + pooled trunk; "
        "CLEAR retrieval adapters (E^v 256-d)"
    )
    assert (
        model_family({"arch": "clear", "variant": "swin+casa"})
        == "CLEAR cross-transformers (swin+casa); recognition only"
    )
    assert model_family({"arch": "lite", "trunk": "tf_efficientnet_lite0"}, 64).startswith("CNN baseline on tf_eff")
    assert model_family({}).startswith("unknown network")
