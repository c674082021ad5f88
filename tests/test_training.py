"""Training and evaluation end to end on a small synthetic dataset: stages, checkpoints, resume, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from typer.testing import CliRunner  # noqa: E402

from clear_sdk.cli import app  # noqa: E402
from clear_sdk.synthetic import SyntheticConfig, generate_synthetic  # noqa: E402
from clear_sdk.training.config import load_config  # noqa: E402
from clear_sdk.training.data import create_dataset  # noqa: E402
from clear_sdk.training.datasets_torch import ImageDataset, augment  # noqa: E402
from clear_sdk.training.models import load_checkpoint  # noqa: E402
from clear_sdk.training.trainer import evaluate, resolve_checkpoint, train  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, SyntheticConfig(num_identities=30, images_per_identity=3, image_size=(64, 32), seed=1))
    return root


@pytest.fixture
def make_cfg(tiny_model_kwargs):
    """A TrainConfig for the tests' clear-tiny on a synthetic root: make_cfg(root, out, **overrides)."""
    return lambda root, out, **kw: _cfg(root, out, tiny_model_kwargs, **kw)


def _cfg(root, out, model_kwargs, **kw):
    base = dict(
        dataset="synthetic",
        root=str(root),
        model="clear-tiny",
        img_size=(64, 32),
        model_kwargs=model_kwargs,
        out=str(out),
        epochs=2,
        batch_size=16,
        retrieval_epochs=2,
        embed_dim=16,
        hidden_dim=32,
        lr=1e-3,
    )
    base.update(kw)
    return load_config(**base)


def test_config_merges_yaml_kwargs_and_overrides(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\nlr: 0.01\n")
    cfg = load_config(path, ["lr=0.5", "dataset_kwargs.partition=2", "flip=false"], batch_size=8)
    assert (cfg.epochs, cfg.lr, cfg.batch_size, cfg.flip) == (3, 0.5, 8, False)
    assert cfg.dataset_kwargs == {"partition": 2}
    with pytest.raises(ValueError, match="unknown config key 'lrr'"):
        load_config(None, ["lrr=1"])
    with pytest.raises(ValueError, match="scheduler="):
        load_config(None, ["scheduler=linear"])
    with pytest.raises(FileNotFoundError, match="synthetic_tiny"):
        load_config("nope.yaml")
    assert load_config("synthetic_tiny").img_size == (112, 56)


def test_training_pixels_equal_what_a_recognizer_computes_from_the_exported_bundle(tiny_bundle, tmp_path) -> None:
    """The pixels the trainer feeds (checkpoint's preprocessing, ImageDataset) are the pixels a Recognizer feeds
    the exported graph (bundle's manifest, Recognizer.preprocess), on crops that need resizing."""
    import cv2

    from clear_sdk.bundle import Bundle
    from clear_sdk.recognizer import Recognizer
    from clear_sdk.training.data.base import Record

    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(100, 47), (37, 20), (64, 32)]):
        paths.append(str(tmp_path / f"crop{i}.png"))
        cv2.imwrite(paths[-1], rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    model, _ = load_checkpoint(Bundle.open(tiny_bundle).checkpoint_path)
    train_ds = ImageDataset([Record(p, np.zeros(25, np.uint8)) for p in paths], model.cfg.preprocessing, train=False)
    runtime, ok, failed = Recognizer(tiny_bundle).preprocess(paths)
    assert ok == [0, 1, 2] and not failed and runtime.shape == (3, 3, 64, 32)
    for i in range(3):
        np.testing.assert_array_equal(train_ds[i][0].numpy(), runtime[i])
    assert np.abs(runtime).max() > 1.0  # normalised with the ImageNet mean/std, not left in [0, 1]


def test_augment_pads_crops_and_flips_without_changing_colours() -> None:
    np.random.seed(0)
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6)
    y = augment(x, pad=0, flip=True)
    assert torch.equal(y, x) or torch.equal(y, torch.flip(x, dims=[2]))
    z = augment(x, pad=2, flip=False)
    assert z.shape == x.shape
    assert set(z.unique().tolist()) <= set(x.unique().tolist()) | {0.0}


def test_two_stage_training_checkpoints_eval_and_resume(synthetic_root, tmp_path, make_cfg) -> None:
    out = tmp_path / "run"
    summary = train(make_cfg(synthetic_root, out), progress=False)
    for name in ("par_best", "par_last", "best"):
        assert (out / f"{name}.safetensors").is_file() and (out / f"{name}.json").is_file()
    assert json.loads((out / "config.json").read_text())["epochs"] == 2
    meta = json.loads((out / "best.json").read_text())
    assert meta["stage"] == "retrieval" and meta["training"]["model"] == "clear-tiny"
    assert meta["dataset"]["attributes"][0] == "Female"
    assert meta["text_encoder"]["n_w"] > 0 and meta["description_template"]
    assert 0.0 <= summary["par"]["best_val"]["mA"] <= 1.0
    assert summary["par"]["train_images_per_s"] > 0

    model, _ = load_checkpoint(resolve_checkpoint(out))
    assert model.retrieval is not None
    result = evaluate(out, "synthetic", synthetic_root, split="test")
    assert set(result["recognition"]) >= {"mA", "accuracy", "precision", "recall", "f1", "f1_mean"}
    assert set(result["retrieval"]) >= {"R-1", "R-5", "R-10", "mAP", "num_queries"}
    assert result["num_images"] == len(create_dataset("synthetic", synthetic_root).split("test"))

    # resume continues from the saved epoch instead of starting over
    history = json.loads((out / "history_par.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    train(make_cfg(synthetic_root, out, epochs=3, stage="par", resume=True), progress=False)
    history = json.loads((out / "history_par.json").read_text())
    assert [h["epoch"] for h in history] == [2]


def test_cli_train_eval_and_errors(synthetic_root, tmp_path, tiny_model_kwargs) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    args = [
        "train",
        "--dataset",
        "synthetic",
        "--root",
        str(synthetic_root),
        "--model",
        "clear-tiny",
        "--out",
        str(out),
        "--stage",
        "par",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--set",
        "img_size=[64, 32]",
        "--set",
        f"model_kwargs={json.dumps(tiny_model_kwargs)}",
        "--json",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["par"]["best_val"]["mA"] >= 0
    res = runner.invoke(app, ["eval", str(out), "--dataset", "synthetic", "--root", str(synthetic_root), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert "recognition" in report and "retrieval" not in report  # stage 1 only

    res = runner.invoke(app, ["train", "--dataset", "nope", "--root", str(tmp_path), "--out", str(out)])
    assert res.exit_code == 1 and "valid names" in res.output and "synthetic" in res.output
    res = runner.invoke(app, ["eval", str(tmp_path / "missing"), "--dataset", "synthetic", "--root", str(tmp_path)])
    assert res.exit_code == 1 and "not found" in res.output
    res = runner.invoke(app, ["train", "--dataset", "peta", "--root", str(tmp_path), "--out", str(out)])
    assert res.exit_code == 1 and "PETA.mat" in res.output


# --------------------------------------------------------------------------- stage 2 (retrieval issue)
def test_all_class_margin_loss_matches_a_naive_loop_and_the_collapsed_level() -> None:
    from clear_sdk.training.losses import collapsed_margin_loss, margin_loss

    torch.manual_seed(0)
    feats, proxies, y = (
        torch.randn(6, 5, dtype=torch.float64),
        torch.randn(9, 5, dtype=torch.float64),
        torch.tensor([0, 3, 3, 8, 1, 5]),
    )
    s, m = 30.0, 0.2
    naive = 0.0
    for i in range(6):  # Eq. 8 with every other class as a negative, one sample at a time
        f = feats[i] / feats[i].norm()
        cos = [float(f @ (p / p.norm())) for p in proxies]
        theta = np.arccos(np.clip(cos[y[i]], -1, 1))
        pos = s * np.cos(theta + m)
        den = np.exp(pos) + sum(np.exp(s * c) for j, c in enumerate(cos) if j != y[i])
        naive += -(pos - np.log(den)) / 6
    assert float(margin_loss(feats, proxies, y, s, m)) == pytest.approx(naive, rel=1e-9)
    # all embeddings and proxies one direction: the loss is exactly ln(1 + (C-1) e^{s(1-cos m)})
    same = torch.ones(4, 5, dtype=torch.float64)
    assert float(margin_loss(same, torch.ones(128, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 3]))) == (
        pytest.approx(collapsed_margin_loss(128, 30.0, 0.2), rel=1e-5)  # sin clamped at 1e-6
    )
    assert collapsed_margin_loss(128, 30.0, 0.2) == pytest.approx(5.45, abs=0.01)  # the value DESIGN quotes


def test_collapse_guard_fires_on_a_collapsed_embedding_and_stays_quiet_on_a_healthy_one() -> None:
    from clear_sdk.training.trainer import collapse_report, mean_pairwise_cosine

    torch.manual_seed(0)
    healthy = torch.randn(50, 16)
    collapsed = torch.ones(50, 16) + 0.01 * torch.randn(50, 16)
    naive = np.mean(
        [float(torch.cosine_similarity(healthy[i], healthy[j], 0)) for i in range(50) for j in range(50) if i != j]
    )
    assert mean_pairwise_cosine(healthy) == pytest.approx(naive, abs=1e-6)
    assert mean_pairwise_cosine(collapsed) > 0.99
    quiet = collapse_report({"max_mean_cosine": mean_pairwise_cosine(healthy)}, {"hard": 1.2}, {"hard": 5.45})
    assert quiet == {"collapsed": 0, "reasons": []}
    loud = collapse_report({"max_mean_cosine": mean_pairwise_cosine(collapsed)}, {"soft": 5.2}, {"soft": 5.45})
    assert loud["collapsed"] == 1 and len(loud["reasons"]) == 2 and "L_soft 5.200" in loud["reasons"][1]


@pytest.mark.parametrize("form", ["hard", "hard+soft"])
def test_stage2_query_forms_log_branches_and_flag_collapse(synthetic_root, tmp_path, form, make_cfg) -> None:
    from clear_sdk.training.losses import collapsed_margin_loss

    out = tmp_path / form
    train(make_cfg(synthetic_root, out, stage="par", epochs=1), progress=False)
    kw = dict(stage="retrieval", retrieval_epochs=2, query_form=form, max_classes_per_step=8)
    train(make_cfg(synthetic_root, out, **kw), progress=False)
    history = json.loads((out / "history_retrieval.json").read_text())
    n_classes = len(np.unique(create_dataset("synthetic", synthetic_root).labels("train"), axis=0))
    branches = ["hard"] if form == "hard" else ["hard", "soft"]
    for h in history:
        assert all(f"loss_{b}" in h for b in branches) and ("loss_soft" in h) == (form != "hard")
        # the hard branch scores every class; its collapsed level is ln(1 + (C-1) e^{s(1-cos m)}) for that C
        assert h["collapsed_loss_hard"] == pytest.approx(collapsed_margin_loss(n_classes, 30.0, 0.2))
        assert ("hard_mAP" in h) == (form == "hard+soft") and 0 <= h["max_mean_cosine"] <= 1
        assert h["collapsed"] == int(bool(h["reasons"]))
    model, meta = load_checkpoint(out / "best.safetensors")
    assert model.retrieval.cfg.query_form == form and (model.retrieval.f_text is None) == (form == "hard")
    assert ("text_encoder" in meta) == (form != "hard") and "collapse" in meta
    assert torch.allclose(model.retrieval.vis_mean, torch.zeros_like(model.retrieval.vis_mean)) is False
    result = evaluate(out, "synthetic", synthetic_root, split="test")
    assert result["collapse"]["collapsed"] == int(result["collapse"]["max_mean_cosine"] > 0.95)
    # a rate that sends every embedding one way: the epochs are flagged, and the history says why
    train(make_cfg(synthetic_root, out, **{**kw, "retrieval_lr": 3.0}), progress=False)
    flagged = json.loads((out / "history_retrieval.json").read_text())
    assert all(h["collapsed"] and h["reasons"] for h in flagged)


def test_stage2_signed_queries_with_random_masking(synthetic_root, tmp_path, make_cfg) -> None:
    out = tmp_path / "signed"
    train(make_cfg(synthetic_root, out, stage="par", epochs=1), progress=False)
    kw = dict(stage="retrieval", retrieval_epochs=1, query_form="hard", query_encoding="signed", query_mask_prob=0.5)
    kw["partial_query_weight"] = 1.0
    train(make_cfg(synthetic_root, out, **kw), progress=False)
    model, _ = load_checkpoint(out / "best.safetensors")
    assert model.retrieval.cfg.query_encoding == "signed"
    history = json.loads((out / "history_retrieval.json").read_text())
    assert history[0]["mAP"] > 0 and history[0]["loss_partial"] > 0
    with pytest.raises(ValueError, match="query_mask_prob needs query_encoding=signed"):
        make_cfg(synthetic_root, out, query_mask_prob=0.5)
