"""PromptPAR: shapes, which parameters train, the region mask, text-feature folding, weight loading, ONNX."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
open_clip = pytest.importorskip("open_clip")

from clear_sdk.training.models import CheckpointError, create_model, load_checkpoint, save_checkpoint  # noqa: E402
from clear_sdk.training.models.config import PromptPARConfig  # noqa: E402
from clear_sdk.training.models.model_profile import profile_model  # noqa: E402
from clear_sdk.training.models.promptpar import region_attention_mask, trainable_fraction  # noqa: E402

torch.set_num_threads(1)

# a promptpar-tiny shrunk further so each test runs in well under a second
SMALL = {
    "width": 64, "layers": 2, "heads": 2, "embed_dim": 64, "text_width": 32, "text_layers": 1, "text_heads": 2,
    "context_length": 24, "global_prompts": 2, "regions": 2, "region_prompts": 2,
}  # fmt: skip
NAMES = ["Female", "Hat", "LongHair", "Backpack", "ShortSleeve"]


def small(tune: str = "prompt", **pc) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(
        "promptpar-tiny", tune=tune, img_size=(64, 32), num_attrs=len(NAMES), attribute_names=NAMES,
        promptpar={**SMALL, **pc},
    )  # fmt: skip


def test_shapes_and_sentences():
    model = small().eval()
    x = torch.randn(3, 3, 64, 32)
    logits = model(x)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    assert model.forward_features(x).shape == (3, 5 * 64)
    sentences = model.cfg.promptpar.sentences
    assert sentences[2] == "A photo of a pedestrian with the attribute: long hair."
    assert len(sentences) == 5


def test_prompt_tuning_grads_only_on_prompts_and_heads():
    model = small("prompt").train()
    model(torch.randn(4, 3, 64, 32)).sum().backward()
    got = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert got == trainable
    assert {n.split(".")[1] for n in trainable} == {
        "visual_prompts", "text_prompts", "word_embed", "head_weight", "head_bias", "head_bn",
    }  # fmt: skip
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith(("par.clip.", "par.mm_")))


def test_full_tuning_reaches_every_used_parameter():
    model = small("full").train()
    model(torch.randn(4, 3, 64, 32)).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == ["par.clip.logit_scale"]  # CLIP's contrastive temperature is not part of PAR


def test_trainable_fraction_of_the_paper_model():
    """ViT-L/14 towers frozen: prompts + heads are a fraction of a percent (the paper reports 0.75%)."""
    info = profile_model("promptpar-vit-l14", num_attrs=26)
    assert 420e6 < info["parameters"] < 450e6  # CLIP ViT-L/14 is 428 M
    assert 0.002 < info["trainable_fraction"] < 0.0075
    full = profile_model("promptpar-vit-l14", num_attrs=26, tune="full")
    assert full["trainable_parameters"] == full["parameters"] - 1  # all but logit_scale


def test_region_mask_matches_its_definition():
    pc = PromptPARConfig(global_prompts=1, regions=2, region_prompts=1)
    m = region_attention_mask((4, 2), pc, with_prompts=True).numpy()
    # tokens: 0 CLS, 1 global prompt, 2 region-0 prompt, 3 region-1 prompt, 4..11 patches (rows 0-1 band 0)
    band0, band1 = list(range(4, 8)), list(range(8, 12))
    assert (m[[0, 1]] == 0).all() and (m[:, [0, 1]] == 0).all()  # CLS and global prompts see and are seen by all
    assert (m[2, band1] < 0).all() and (m[2, band0] == 0).all() and m[2, 3] < 0
    assert (m[3, band0] < 0).all() and (m[3, band1] == 0).all()
    assert (m[np.ix_(band1, [2])] < 0).all() and (m[np.ix_(band0, [2])] == 0).all()
    assert (m[np.ix_(band0 + band1, band0 + band1)] == 0).all()  # patches attend to each other freely


def test_region_prompts_do_not_see_other_bands():
    """After one layer, a top-band prompt's output is unchanged when only the bottom half of the image changes."""
    model = small("full", layers=1).eval()
    par = model.par
    x = torch.randn(1, 3, 64, 32)
    y = x.clone()
    y[:, :, 32:] += 5 * torch.randn(1, 3, 32, 32)
    region0 = slice(1 + 2, 1 + 2 + 2)  # after CLS and the 2 global prompts
    a, b = par.visual_tokens(x)[:, region0], par.visual_tokens(y)[:, region0]
    torch.testing.assert_close(a, b)
    g = slice(1, 3)  # the global prompts do see the change
    assert not torch.allclose(par.visual_tokens(x)[:, g], par.visual_tokens(y)[:, g])


def test_text_features_cached_in_eval_and_refreshed_on_load():
    model = small().eval()
    first = model.par.attribute_text_features()
    assert model.par.attribute_text_features() is first  # computed once per eval session
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    sd["par.text_prompts"] += 1.0
    model.load_state_dict(sd)
    assert not torch.allclose(model.par.attribute_text_features(), first)
    model.train()
    assert model.par.attribute_text_features().requires_grad


def test_checkpoint_round_trip_keeps_tune_mode(tmp_path):
    model = small("prompt").eval()
    path = save_checkpoint(model, tmp_path / "pp.safetensors")
    loaded, _ = load_checkpoint(path)
    loaded.eval()
    x = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(loaded(x), model(x))
    assert trainable_fraction(loaded) == trainable_fraction(model)


def _reference_clip(image: int = 32) -> torch.nn.Module:
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(1)
    return CLIP(
        64,
        CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=16, image_size=image),
        CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=1),
        quick_gelu=True,
    )


def test_loads_a_clip_checkpoint_with_positions_resampled(tmp_path):
    ref = _reference_clip(image=48)  # square 3x3 grid, as CLIP checkpoints are; our model is 4x2
    path = tmp_path / "clip.pt"
    torch.save(ref.state_dict(), path)
    model = create_model(
        "promptpar-tiny", pretrained=str(path), img_size=(64, 32), num_attrs=5, attribute_names=NAMES,
        promptpar=SMALL,
    )  # fmt: skip
    clip = model.par.clip
    torch.testing.assert_close(clip.visual.conv1.weight, ref.visual.conv1.weight)
    ours, theirs = clip.transformer.resblocks[0].attn, ref.transformer.resblocks[0].attn
    torch.testing.assert_close(ours.in_proj_weight, theirs.in_proj_weight)
    assert clip.visual.positional_embedding.shape == (1 + 8, 64)
    torch.testing.assert_close(clip.positional_embedding, ref.positional_embedding[:24])  # 77 -> 24 tokens


def test_clip_of_another_size_and_torchscript_are_refused(tmp_path):
    big = _reference_clip()
    big.visual.proj = torch.nn.Parameter(torch.zeros(64, 128))
    path = tmp_path / "other.pt"
    torch.save(big.state_dict(), path)
    with pytest.raises(CheckpointError, match="promptpar-vit-b16"):
        create_model(
            "promptpar-tiny", pretrained=str(path), img_size=(64, 32), num_attrs=5, promptpar=SMALL
        )
    jit = tmp_path / "ViT-B-16.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), jit)
    with pytest.raises(CheckpointError, match="TorchScript"):
        create_model("promptpar-tiny", pretrained=str(jit), img_size=(64, 32), num_attrs=5, promptpar=SMALL)


def test_mm_former_from_a_timm_vit(tmp_path):
    from safetensors.torch import save_file
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(img_size=32, patch_size=16, embed_dim=64, depth=3, num_heads=1, num_classes=0)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    model = small()
    from clear_sdk.training.models.checkpoint import load_pretrained

    load_pretrained(model, path)
    torch.testing.assert_close(model.par.mm_blocks[0].attn.qkv.weight, vit.blocks[2].attn.qkv.weight)
    torch.testing.assert_close(model.par.mm_norm.weight, vit.norm.weight)


def test_torchscript_is_refused_for_every_model(tmp_path):
    jit = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), jit)
    with pytest.raises(CheckpointError, match="TorchScript"):
        create_model("resnet50", pretrained=str(jit), num_attrs=5)


def test_onnx_export_folds_the_text_tower(tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from clear_sdk.export.onnx_export import export_recognizer

    model = small().eval()
    info = export_recognizer(model, tmp_path / "recognizer.onnx")
    assert info["parity_max_abs"]["probs"] < 1e-4
    graph = onnx.load(str(tmp_path / "recognizer.onnx")).graph
    assert [i.name for i in graph.input] == ["image"]
    biggest = max(int(np.prod(t.dims)) for t in graph.initializer)
    assert biggest < 49408 * 32  # CLIP's token embedding table is not in the graph: the text features are constants


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from clear_sdk.synthetic import SyntheticConfig, generate_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, SyntheticConfig(num_identities=20, images_per_identity=2, image_size=(64, 32), seed=2))
    return root


def test_prompt_tuning_trains_only_prompts_end_to_end(synthetic_root, tmp_path):
    """clear-sdk's trainer on PromptPAR (both stages): frozen weights come out bit-identical."""
    from clear_sdk.training.config import load_config
    from clear_sdk.training.models import load_checkpoint
    from clear_sdk.training.trainer import evaluate, train

    cfg = load_config(
        dataset="synthetic", root=str(synthetic_root), model="promptpar-tiny", img_size=(64, 32), out=str(tmp_path),
        model_kwargs={"promptpar": SMALL, "tune": "prompt"}, epochs=1, batch_size=8, lr=1e-2, retrieval_epochs=1,
        embed_dim=16, hidden_dim=32,
    )  # fmt: skip
    torch.manual_seed(0)
    summary = train(cfg, progress=False)
    assert 0 < summary["par"]["trainable_parameters"] < summary["par"]["parameters"]
    trained, _ = load_checkpoint(tmp_path / "par_last.safetensors")
    torch.manual_seed(0)
    fresh = create_model(
        "promptpar-tiny", tune="prompt", img_size=(64, 32), num_attrs=trained.cfg.num_attrs,
        attribute_names=trained.cfg.attribute_names, promptpar=SMALL,
    )  # fmt: skip
    a, b = trained.state_dict(), fresh.state_dict()
    for name, _ in fresh.named_parameters():
        if name.startswith(("par.clip.", "par.mm_")):
            assert torch.equal(a[name], b[name]), name
    assert not torch.equal(a["par.visual_prompts"], b["par.visual_prompts"])
    result = evaluate(tmp_path, "synthetic", str(synthetic_root), split="test")
    assert 0.0 <= result["recognition"]["mA"] <= 1.0 and "retrieval" in result

    # the runtime: an ONNX bundle read by Recognizer gives the checkpoint's probabilities
    pytest.importorskip("onnxruntime")
    from clear_sdk import Recognizer
    from clear_sdk.export.bundle_writer import export_bundle
    from clear_sdk.preprocess import load_image, preprocess
    from clear_sdk.training.data import create_dataset

    bundle = export_bundle(tmp_path / "par_best.safetensors", tmp_path / "bundle", text=False)
    paths = [r.path for r in create_dataset("synthetic", synthetic_root).split("test")[:3]]
    preds = Recognizer(bundle).predict(paths)
    model, _ = load_checkpoint(tmp_path / "par_best.safetensors")
    pp = model.cfg.preprocessing
    x = torch.from_numpy(np.stack([preprocess(load_image(p), pp) for p in paths]))
    with torch.no_grad():
        want = torch.sigmoid(model.eval()(x)).numpy()
    got = np.array([[p.probabilities[n] for n in model.cfg.attribute_names] for p in preds])
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_cli_tune_is_for_promptpar_only(tmp_path):
    from typer.testing import CliRunner

    from clear_sdk.cli import app

    res = CliRunner().invoke(app, ["train", "--dataset", "synthetic", "--model", "clear-tiny", "--tune", "full",
                                   "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code != 0 and "--tune applies to the promptpar-* models" in res.output


def test_info_reports_the_trainable_fraction():
    from typer.testing import CliRunner

    from clear_sdk.cli import app

    res = CliRunner().invoke(app, ["info", "--model", "promptpar-vit-b16", "--json"])
    assert res.exit_code == 0, res.output
    import json

    m = json.loads(res.output)["model"]
    assert m["arch"] == "promptpar" and m["input_size"] == [224, 224]
    assert 0 < m["trainable_fraction"] < 0.01
