"""The CLEAR models: every registered config and variant, the blocks against their equations, checkpoints."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from typer.testing import CliRunner  # noqa: E402

from clear_sdk.training.losses import bce_loss, margin_loss, retrieval_loss  # noqa: E402
from clear_sdk.training.models import (  # noqa: E402
    VARIANTS,
    CheckpointError,
    RetrievalConfig,
    create_model,
    list_models,
    load_checkpoint,
    save_checkpoint,
)
from clear_sdk.training.models.blocks import CASA, CrossFusion, SwinBlock  # noqa: E402

torch.set_num_threads(1)

# Small widths so that every config builds and back-propagates in well under a second; the grid
# (112x64 -> Swin 28x16, window 12) still pads and shifts in stages 1-2 and clamps in 3-4.
TINY = dict(
    img_size=(112, 64),
    vit={"dim": 32, "depth": 1, "num_heads": 2},
    swin={"dims": (8, 16, 32, 64), "depths": (2, 2, 2, 2), "num_heads": (1, 2, 2, 4), "out_dim": 32},
    fusion_dim=16,
    fusion_heads=2,
    num_attrs=7,
)
RET = RetrievalConfig(embed_dim=16, hidden_dim=24, soft_dim=40)


# promptpar-*: CLIP towers shrunk to two narrow layers (the paper-size ones take minutes to build)
PROMPTPAR_TINY = {
    "width": 64, "layers": 2, "heads": 2, "embed_dim": 64, "text_width": 32, "text_layers": 1, "text_heads": 2,
    "context_length": 24, "global_prompts": 2, "regions": 2, "region_prompts": 2,
}  # fmt: skip


def _tiny(name: str, variant: str | None = None, retrieval: bool = True):
    kw: dict = {"img_size": (112, 64), "num_attrs": 7}
    if name.startswith("clear"):
        kw = dict(TINY)
    elif name.startswith("promptpar"):
        kw.update(promptpar=PROMPTPAR_TINY, attribute_names=[f"attr{i}" for i in range(7)])
    return create_model(name, variant=variant, retrieval=RET if retrieval else None, **kw)


# every registered model: the CLEAR configs (clear-lite* on its CNN trunk included) in every Table 5
# variant, every other family (baselines, PromptPAR, whatever is registered next) as it is
CASES = [(n, v) for n in list_models() for v in (VARIANTS if n.startswith("clear") else [None])]


@pytest.mark.parametrize("name,variant", CASES)
def test_shapes_finite_and_every_parameter_gets_a_gradient(name: str, variant: str | None) -> None:
    torch.manual_seed(0)
    model = _tiny(name, variant)
    x = torch.randn(3, 3, 112, 64)
    logits = model(x)
    assert logits.shape == (3, 7)
    assert torch.isfinite(logits).all()
    feats = model.forward_features(x)
    assert feats.shape == (3, model.num_features)
    targets = torch.randint(0, 2, (3, 7)).float()
    emb = model.retrieval.f_vis(feats)
    hard = model.retrieval.f_attr(targets)
    soft = model.retrieval.f_text(torch.randn(3, 40))
    loss = bce_loss(model.forward_head(feats), targets) + retrieval_loss(emb, hard, soft, torch.arange(3))
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not no_grad, f"parameters without gradient: {no_grad}"


def test_registry_lists_and_rejects_unknown_names() -> None:
    assert {"clear-base", "clear-small", "clear-tiny", "resnet50"} <= set(list_models())
    assert list_models("clear*") == [
        "clear-base", "clear-lite0", "clear-lite1", "clear-lite2", "clear-small", "clear-tiny"
    ]  # fmt: skip
    assert list_models("lite*") == ["lite0", "lite1", "lite2"]
    with pytest.raises(KeyError, match="registered: clear-base"):
        create_model("clear-huge")
    with pytest.raises(ValueError, match="unknown variant"):
        create_model("clear-tiny", variant="crossed")
    with pytest.raises(TypeError, match="unknown model arguments"):
        create_model("clear-tiny", depth=3)


def test_paper_size_token_grids_and_windows() -> None:
    with torch.device("meta"):
        model = create_model("clear-base")
    grids = model.token_grids()
    assert grids["vit"] == [18, 9] and grids["vit_tokens"] == 163
    assert grids["swin"] == [[64, 32], [32, 16], [16, 8], [8, 4]]
    # window 12 where the grid allows, clamped to the grid where it is smaller
    assert grids["swin_windows"][2][0] == [12, 8] and grids["swin_windows"][3][0] == [8, 4]


def test_casa_matches_a_naive_loop_of_its_equation() -> None:
    torch.manual_seed(0)
    casa = CASA(dim=5, grid=(3, 2))
    x = torch.randn(2, 3, 2, 5)
    out = casa(x)
    hw = 6
    wq, wk, wv = casa.q.weight, casa.k.weight, casa.v.weight  # Linear computes t @ W^T
    for b in range(2):
        z = x[b].reshape(hw, 5).t()  # channels are the tokens: [C, hw]
        q, k, v = z @ wq.t(), z @ wk.t(), z @ wv.t()
        for c in range(5):
            logits = [sum(q[c, i] * k[c2, i] for i in range(hw)) / math.sqrt(hw) for c2 in range(5)]
            att = torch.softmax(torch.stack(logits), 0)
            expect = z[c] + sum(att[c2] * v[c2] for c2 in range(5))
            got = out[b].reshape(hw, 5)[:, c]
            torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-5)


def test_cross_fusion_matches_a_naive_loop_of_eq3() -> None:
    torch.manual_seed(0)
    cf = CrossFusion(query_dim=6, token_dim=5, width=8, num_heads=2, out_dim=7)
    query, tokens = torch.randn(2, 6), torch.randn(2, 4, 5)
    out = cf(query, tokens)
    assert out.shape == (2, 7)
    for b in range(2):
        za = cf.align_in(query[b])  # W^{a,1}
        zc = [za] + [cf.kv_align(tokens[b, n]) for n in range(4)]
        q, ks, vs = cf.q(za), [cf.k(t) for t in zc], [cf.v(t) for t in zc]
        heads = []
        for h in range(2):
            sl = slice(4 * h, 4 * h + 4)
            att = torch.softmax(torch.stack([(q[sl] * k[sl]).sum() / 2.0 for k in ks]), 0)
            heads.append(sum(a * v[sl] for a, v in zip(att, vs)))
        expect = cf.align_out(za + cf.proj(torch.cat(heads)))  # W^{a,2}
        torch.testing.assert_close(out[b], expect, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shift", [False, True])
def test_swin_padding_never_changes_real_tokens(shift: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    block = SwinBlock(dim=8, num_heads=2, grid=(13, 9), window_size=6, shift=shift).eval()
    x = torch.randn(2, 13, 9, 8)
    ref = block(x)
    import clear_sdk.training.models.blocks as blocks

    real_pad = torch.nn.functional.pad

    def noisy_pad(t, pad, *a, **k):  # fill the padding with large noise instead of zeros
        out = real_pad(t, pad, *a, **k)
        noise = torch.randn_like(out) * 10
        mask = torch.ones_like(out, dtype=torch.bool)
        mask[:, : t.shape[1], : t.shape[2], :] = False
        return torch.where(mask, noise, out)

    monkeypatch.setattr(blocks.F, "pad", noisy_pad)
    torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=1e-5)
    # the check can fail: without the padding mask the noise leaks into real tokens
    block.attn_mask = torch.zeros_like(block.attn_mask)
    assert not torch.allclose(block(x), ref, atol=1e-3)


def test_margin_loss_matches_a_hand_computed_value() -> None:
    # f = (1, 0); proxies at 0 and 90 degrees; class 0; s = 2, m = 0.5
    f = torch.tensor([[1.0, 0.0]])
    g = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    loss = margin_loss(f, g, torch.tensor([0]), scale=2.0, margin=0.5)
    pos, neg = 2 * math.cos(0.5), 2 * math.cos(math.pi / 2)
    expect = -math.log(math.exp(pos) / (math.exp(pos) + math.exp(neg)))
    assert loss.item() == pytest.approx(expect, rel=1e-6)
    # total = 0.3 * L(v1, h) + 0.7 * L(v2, s)
    e = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    total = retrieval_loss(e, g, torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([0]), scale=2.0, margin=0.5)
    assert total.item() == pytest.approx(expect, rel=1e-6)


def test_weighted_bce_weights_rare_positives_more() -> None:
    logits, targets = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    r = torch.tensor([0.1, 0.1])
    expect = (math.exp(0.9) * math.log(2) + math.exp(0.1) * math.log(2)) / 2
    assert bce_loss(logits, targets, r).item() == pytest.approx(expect, rel=1e-6)
    assert bce_loss(logits, targets).item() == pytest.approx(math.log(2), rel=1e-6)


def test_balanced_bce_gives_positives_and_negatives_equal_total_weight() -> None:
    """balanced_bce weighs by 1/(2r) and 1/(2(1-r)): the class balance mA scores."""
    logits, targets = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    r = torch.tensor([0.2, 0.2])
    expect = (0.5 / 0.2 * math.log(2) + 0.5 / 0.8 * math.log(2)) / 2
    assert bce_loss(logits, targets, r, balanced=True).item() == pytest.approx(expect, rel=1e-6)
    # over a training set with that ratio, both classes carry the same total weight
    y = torch.tensor([[1.0]] * 2 + [[0.0]] * 8)
    z = torch.full((10, 1), 0.3)
    pos = bce_loss(z[:2], y[:2], torch.tensor([0.2]), balanced=True).item() * 2
    neg = bce_loss(z[2:], y[2:], torch.tensor([0.2]), balanced=True).item() * 8
    per_pos = torch.nn.functional.softplus(-z[0]).item()
    per_neg = torch.nn.functional.softplus(z[0]).item()
    assert pos / per_pos == pytest.approx(neg / per_neg, rel=1e-6)
    # an attribute absent from train keeps a finite weight
    assert math.isfinite(bce_loss(logits, targets, torch.tensor([0.0, 1.0]), balanced=True).item())


def test_encode_image_and_query_shapes_and_norms() -> None:
    torch.manual_seed(0)
    model = _tiny("clear-tiny").eval()
    e = model.encode_image(torch.randn(4, 3, 112, 64))
    q = model.encode_query(torch.randint(0, 2, (5, 7)).float(), torch.randn(5, 40))
    assert e.shape == (4, 16) and q.shape == (5, 16)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(q.norm(dim=1), torch.ones(5))
    # the score is the mean of the two cosines the margin loss trains
    eu = model.encode_image(torch.randn(1, 3, 112, 64), normalize=False)
    qu = model.encode_query(torch.ones(1, 7), torch.ones(1, 40), normalize=False)
    cos = torch.nn.functional.cosine_similarity
    mean_cos = (cos(eu[:, :8], qu[:, :8]) + cos(eu[:, 8:], qu[:, 8:])) / 2
    from clear_sdk.training.models.clear import _halves_normalized

    torch.testing.assert_close((_halves_normalized(eu) * _halves_normalized(qu)).sum(1), mean_cos)
    with pytest.raises(RuntimeError, match="stage 2"):
        _tiny("clear-tiny", retrieval=False).encode_image(torch.randn(1, 3, 112, 64))


def test_checkpoint_round_trip_and_clear_errors(tmp_path) -> None:
    torch.manual_seed(0)
    model = _tiny("clear-tiny", "cross").eval()
    model.cfg.attribute_names = [f"a{i}" for i in range(7)]
    path = save_checkpoint(model, tmp_path / "m.safetensors", extra={"training": {"epochs": 1}})
    assert path.is_file() and (tmp_path / "m.json").is_file()
    loaded, meta = load_checkpoint(path)
    loaded.eval()
    x = torch.randn(2, 3, 112, 64)
    torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)
    torch.testing.assert_close(loaded.encode_image(x), model.encode_image(x), atol=0, rtol=0)
    assert meta["training"] == {"epochs": 1} and loaded.cfg.attribute_names == model.cfg.attribute_names
    assert json.loads((tmp_path / "m.json").read_text())["model"]["variant"] == "cross"

    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    (tmp_path / "t.json").write_text((tmp_path / "m.json").read_text())
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(truncated)

    other = _tiny("clear-tiny", "vit")
    with pytest.raises(CheckpointError, match="unexpected keys .*par.svcf"):
        create_model("clear-tiny", pretrained=path, variant="concat", retrieval=RET, **TINY)
    save_checkpoint(other, tmp_path / "vit.safetensors")
    with pytest.raises(CheckpointError, match=r"unexpected keys|missing keys"):
        create_model("clear-tiny", pretrained=tmp_path / "vit.safetensors", variant="cross", retrieval=RET, **TINY)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.safetensors")
    (tmp_path / "n.safetensors").write_bytes(path.read_bytes())
    with pytest.raises(CheckpointError, match="n.json is missing"):
        load_checkpoint(tmp_path / "n.safetensors")


def test_pretrained_own_checkpoint_and_timm_branch_weights(tmp_path) -> None:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    src = _tiny("clear-tiny")
    save_checkpoint(src, tmp_path / "own.safetensors")
    dst = create_model("clear-tiny", pretrained=tmp_path / "own.safetensors", retrieval=RET, **TINY)
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(a, b), k

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, embed_dim=32, depth=1, num_heads=2)
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    model = create_model("clear-tiny", pretrained=tmp_path / "vit.safetensors", retrieval=RET, **TINY)
    torch.testing.assert_close(model.par.vit.blocks[0].mlp.fc1.weight, vit.blocks[0].mlp.fc1.weight)
    assert model.par.vit.pos_embed.shape[1] == 1 + 8 * 4  # resampled from 14x14 to the 8x4 grid

    swin = timm.create_model(
        "swin_tiny_patch4_window7_224",
        pretrained=False,
        img_size=(112, 64),
        embed_dim=8,
        depths=(2, 2, 2, 2),
        num_heads=(1, 2, 2, 4),
        window_size=12,
    )
    torch.save(swin.state_dict(), tmp_path / "swin.pth")
    model = create_model("clear-tiny", pretrained=tmp_path / "swin.pth", retrieval=RET, **TINY)
    torch.testing.assert_close(
        model.par.swin.layers[1].blocks[0].attn.qkv.weight, swin.layers[1].blocks[0].attn.qkv.weight
    )

    bad = tmp_path / "bad.safetensors"
    save_file({"something.weight": torch.zeros(2)}, str(bad))
    with pytest.raises(CheckpointError, match="matches neither"):
        create_model("clear-tiny", pretrained=bad, retrieval=RET, **TINY)


def test_info_reports_the_paper_size_model() -> None:
    from clear_sdk.cli import app

    result = CliRunner().invoke(app, ["info", "--model", "clear-base", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    m = report["model"]
    assert m["name"] == "clear-base" and m["variant"] == "cross"
    assert m["token_grids"]["vit"] == [18, 9]
    assert m["token_grids"]["swin"][0] == [64, 32]
    assert m["parameters"] == sum(m["parameters_by_part"].values())
    assert 250e6 < m["parameters"] < 265e6
    assert m["flops_per_image"] > 1e10
    assert "clear-tiny" in report["models"]
