"""Training config: YAML and --set values coerced to each field's type, with errors that name the field."""

from __future__ import annotations

import pytest

pytest.importorskip("yaml")

from clear_sdk.training.config import load_config  # noqa: E402


def test_set_values_are_coerced_to_the_field_type() -> None:
    # YAML 1.1 reads 1e-4 and 1e3 (no dot) as strings: Adam then raised a TypeError
    cfg = load_config(
        overrides=["retrieval_lr=1e-4", "lr=3E-4", "epochs=1e1", "flip=true", "cache_images=no", "img_size=[192, 96]",
                   "trunk_lr=5e-4", "pretrained=imagenet", "time_budget_s=60", "max_classes_per_step=1024.0"]
    )  # fmt: skip
    assert cfg.retrieval_lr == 1e-4 and isinstance(cfg.retrieval_lr, float)
    assert cfg.lr == 3e-4 and cfg.epochs == 10 and isinstance(cfg.epochs, int)
    assert cfg.flip is True and cfg.cache_images is False
    assert cfg.img_size == (192, 96) and cfg.trunk_lr == 5e-4 and cfg.pretrained == "imagenet"
    assert cfg.time_budget_s == 60.0 and cfg.max_classes_per_step == 1024
    assert load_config(overrides=["trunk_lr=null", "img_size=null"]).trunk_lr is None


def test_yaml_file_values_are_coerced_too(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-4\nretrieval_lr: 2e-5\nepochs: '3'\nimg_size: [112, 56]\n")
    cfg = load_config(path)
    assert (cfg.lr, cfg.retrieval_lr, cfg.epochs, cfg.img_size) == (1e-4, 2e-5, 3, (112, 56))


@pytest.mark.parametrize(
    "item,message",
    [
        ("lr=fast", r"config lr='fast': expected float"),
        ("epochs=1.5", r"config epochs=1.5: expected int"),
        ("flip=maybe", r"config flip='maybe': expected bool"),
        ("img_size=[1, 2, 3]", r"config img_size=\[1, 2, 3\]: expected"),
        ("epochs=true", r"config epochs=True: expected int"),
    ],
)
def test_a_value_that_cannot_be_coerced_names_field_value_and_type(item: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(overrides=[item])


def test_stage2_settings_nest_in_retrieval_and_the_flat_keys_still_work(tmp_path) -> None:
    cfg = load_config(overrides=["embed_dim=64", "query_form=hard", "standardize_retrieval_inputs=false",
                                 "separate_visual_adapters=true", "retrieval.margin=0.3"])  # fmt: skip
    r = cfg.retrieval
    assert (r.embed_dim, r.query_form, r.standardize, r.separate_vis, r.margin) == (64, "hard", False, True, 0.3)
    assert load_config().retrieval.standardize is True  # stage 2's default, stated once
    assert load_config("unified_lite0").retrieval.query_encoding == "signed"  # a shipped recipe's flat keys
    with pytest.raises(ValueError, match="unknown config key 'retrieval.embed_dims'"):
        load_config(overrides=["retrieval.embed_dims=3"])


def test_a_saved_training_config_loads_back_flat_or_nested(tmp_path) -> None:
    import json

    cfg = load_config(overrides=["embed_dim=32", "query_form=soft"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_dict()))  # what train() writes beside the checkpoints
    assert load_config(path) == cfg
    old = {k: v for k, v in cfg.to_dict().items() if k != "retrieval"}  # a config written before the nesting
    old |= {"embed_dim": 32, "query_form": "soft", "standardize_retrieval_inputs": False}
    path.write_text(json.dumps(old))
    r = load_config(path).retrieval
    assert (r.embed_dim, r.query_form, r.standardize) == (32, "soft", False)
