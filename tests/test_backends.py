"""Backend registry and onnxruntime settings: plug-ins found by entry point, clear errors, the runtime
kept apart from training, and session settings applied exactly as stated."""

from __future__ import annotations

import ast
import importlib.metadata
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import clear_sdk.backends.base as base
from clear_sdk.backends import (
    DEFAULT_QUERY_SETTINGS,
    DEFAULT_SETTINGS,
    DEFAULT_TEXT_SETTINGS,
    ENTRY_POINT_GROUP,
    BackendUnavailable,
    OnnxRuntimeBackend,
    SessionSettings,
    available_backends,
    create_backend,
    load_backend_class,
)
from clear_sdk.recognizer import Recognizer

ROOT = Path(__file__).resolve().parents[1]


def _applied(session: ort.InferenceSession) -> dict:
    """What a live session was configured with, read back from onnxruntime."""
    o = session.get_session_options()
    return {
        "intra": o.intra_op_num_threads,
        "inter": o.inter_op_num_threads,
        "mode": o.execution_mode,
        "opt": o.graph_optimization_level,
        "spin": o.get_session_config_entry("session.intra_op.allow_spinning"),
        "inter_spin": o.get_session_config_entry("session.inter_op.allow_spinning"),
    }


def test_settings_are_applied_as_stated(tiny_bundle):
    stated = SessionSettings(
        intra_op_threads=2, inter_op_threads=3, spinning=True, execution_mode="parallel", graph_optimization="basic"
    )
    query = SessionSettings(intra_op_threads=1, spinning=False, graph_optimization="extended")
    b = OnnxRuntimeBackend(tiny_bundle, device="cpu", settings=stated, query_settings=query)
    assert _applied(b._session) == {
        "intra": 2,
        "inter": 3,
        "mode": ort.ExecutionMode.ORT_PARALLEL,
        "opt": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "spin": "1",
        "inter_spin": "1",
    }
    q = _applied(b._query)
    assert (q["intra"], q["spin"], q["mode"]) == (1, "0", ort.ExecutionMode.ORT_SEQUENTIAL)
    assert q["opt"] == ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    assert b.describe()["settings"] == stated.to_dict() and b.describe()["query_settings"] == query.to_dict()

    # defaults: what Recognizer (and clear-sdk bench) use; threads= overrides the intra-op threads of both graphs
    rec = Recognizer(tiny_bundle, backend="onnxruntime", device="cpu")
    assert rec.backend.settings == DEFAULT_SETTINGS and rec.backend.query_settings == DEFAULT_QUERY_SETTINGS
    got = _applied(rec.backend._session)
    assert got["spin"] == ("1" if DEFAULT_SETTINGS.spinning else "0")
    assert got["mode"] == ort.ExecutionMode.ORT_SEQUENTIAL and got["inter"] == DEFAULT_SETTINGS.inter_op_threads
    assert got["opt"] == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if DEFAULT_SETTINGS.intra_op_threads is not None:
        assert got["intra"] == DEFAULT_SETTINGS.intra_op_threads
    assert _applied(rec.backend._query)["intra"] == (DEFAULT_QUERY_SETTINGS.intra_op_threads or 0)
    one = Recognizer(tiny_bundle, backend="onnxruntime", device="cpu", threads=1, settings=stated)
    assert _applied(one.backend._session)["intra"] == 1 and _applied(one.backend._session)["spin"] == "1"
    assert _applied(one.backend._query)["intra"] == 1


def test_text_encoder_uses_the_default_settings(tiny_bundle):
    from clear_sdk.bundle import Bundle
    from clear_sdk.text import OnnxTextEncoder

    b = Bundle.open(tiny_bundle)
    enc = OnnxTextEncoder(b.text_model_path, b.tokenizer_path, b.text_encoder.n_w)
    got = _applied(enc.session)
    assert got["spin"] == ("1" if DEFAULT_TEXT_SETTINGS.spinning else "0")
    if DEFAULT_TEXT_SETTINGS.intra_op_threads is not None:
        assert got["intra"] == DEFAULT_TEXT_SETTINGS.intra_op_threads


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"intra_op_threads": 0}, "intra_op_threads must be a positive integer"),
        ({"execution_mode": "async"}, "execution_mode must be one of sequential, parallel"),
        ({"graph_optimization": "max"}, "graph_optimization must be one of disable, basic, extended, all"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SessionSettings(**kwargs)
    with pytest.raises(ValueError, match="unknown session settings"):
        SessionSettings.from_dict({"threads": 2})


def test_torch_is_a_plug_in_found_by_its_entry_point(tiny_bundle):
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert eps["torch"] == "clear_sdk.training.backend:TorchBackend"
    assert "torch" in available_backends()
    cls, fixed = load_backend_class("pytorch")
    assert cls.__module__ == "clear_sdk.training.backend" and fixed == {}
    t = create_backend(tiny_bundle, "torch", threads=1)
    ort_b = create_backend(tiny_bundle, "onnxruntime", device="cpu")
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 32), dtype=np.float32)
    np.testing.assert_allclose(t.run_images(x)[0], ort_b.run_images(x)[0], atol=1e-4, rtol=0)


def test_a_plug_in_that_cannot_be_imported_says_what_is_missing(monkeypatch):
    ep = importlib.metadata.EntryPoint(name="fancy", value="clear_sdk_no_such_module:Fancy", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(base, "_plugins", lambda: {"fancy": ep})
    with pytest.raises(BackendUnavailable, match="the fancy backend .* cannot be imported: clear_sdk_no_such_module"):
        load_backend_class("fancy")
    bad = importlib.metadata.EntryPoint(name="notone", value="clear_sdk.errors:InputError", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(base, "_plugins", lambda: {"notone": bad})
    with pytest.raises(BackendUnavailable, match="is not a clear_sdk Backend class"):
        load_backend_class("notone")
    with pytest.raises(ValueError, match="unknown backend 'tflite'; choose one of auto, onnxruntime"):
        load_backend_class("tflite")


def test_the_runtime_never_imports_training_or_export():
    """No module of the runtime (clear_sdk/ outside the CLI room) names clear_sdk.training or clear_sdk.export."""
    offenders = []
    for path in sorted((ROOT / "clear_sdk").rglob("*.py")):
        if "cli" in path.relative_to(ROOT / "clear_sdk").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} {n}"
                for n in names
                if n.startswith(("clear_sdk.training", "clear_sdk.export"))
            ]
    assert not offenders, offenders


def test_backends_load_without_the_training_package(tiny_bundle, run_without_torch):
    code = textwrap.dedent(
        f"""
        import sys
        import clear_sdk.backends as b
        backend = b.create_backend({str(tiny_bundle)!r}, "onnxruntime", device="cpu")
        assert not [m for m in sys.modules if m.startswith("clear_sdk.training")], "training imported"
        try:
            b.create_backend({str(tiny_bundle)!r}, "torch")
        except b.BackendUnavailable as e:
            print(e)
        """
    )
    done = run_without_torch(code, ROOT)
    assert done.returncode == 0, done.stderr
    assert "torch is missing; pip install 'clear-sdk[train]'" in done.stdout
