"""Torch-free text encoder of the runtime: pseudo-description -> soft query, with onnxruntime.

Runs the ``text.onnx`` graph written by ``clear_sdk.export.text_onnx`` (the frozen language model,
masking and flattening included) on token ids made by the ``tokenizers`` library from the
``tokenizer.json`` saved beside it. Padding and truncation to N_w are configured here exactly as
the Hugging Face tokenizer does them in training (right padding with the model's pad token,
truncation to N_w keeping the special tokens), so the runtime's soft query equals training's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BundleError

logger = logging.getLogger(__name__)

__all__ = ["OnnxTextEncoder"]

INPUT_NAMES = ("input_ids", "attention_mask")


def _one_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class OnnxTextEncoder:
    """Sentences -> soft queries [Q, N_w * d_w] float32, with onnxruntime and ``tokenizers``.

    ``pad_id`` / ``pad_token`` default to the tokenizer's padding settings, else its ``[PAD]`` /
    ``<pad>`` token; pass them (the export info records them) for tokenizers that pad with
    another token (GPT-2 pads with its end-of-text token).
    """

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        tokenizer_json: str | os.PathLike,
        n_w: int,
        *,
        pad_id: int | None = None,
        pad_token: str | None = None,
        providers: Sequence[str] | None = None,
        session_options: Any = None,
        batch_size: int = 64,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        onnx_path, tokenizer_json = Path(onnx_path), Path(tokenizer_json)
        for p in (onnx_path, tokenizer_json):
            if not p.is_file():
                raise BundleError(f"text encoder file missing: {p}; re-export the bundle (clear-sdk export)")
        if n_w < 2:
            raise ValueError(f"n_w must be at least 2, got {n_w}")
        self.n_w = int(n_w)
        self.batch_size = int(batch_size)
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_json))
        except Exception as e:  # tokenizers raises a bare Exception for any unreadable file
            raise BundleError(
                f"{tokenizer_json} is not a tokenizers JSON file ({_one_line(e)}); re-export the bundle"
            ) from e
        pad_id, pad_token = self._pad(pad_id, pad_token)
        self.pad_id, self.pad_token = pad_id, pad_token
        self.tokenizer.enable_truncation(max_length=self.n_w)
        self.tokenizer.enable_padding(direction="right", pad_id=pad_id, pad_token=pad_token, length=self.n_w)

        if session_options is None:  # the measured defaults (clear_sdk.backends.onnxruntime, benchmarks/README.md)
            from clear_sdk.backends.onnxruntime import DEFAULT_TEXT_SETTINGS

            session_options = DEFAULT_TEXT_SETTINGS.session_options()
        try:
            self.session = ort.InferenceSession(
                str(onnx_path), sess_options=session_options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as e:  # onnxruntime raises its own exception types for a graph it cannot load
            raise BundleError(f"{onnx_path} is not a usable ONNX graph ({_one_line(e)}); re-export the bundle") from e
        inputs = {i.name: i for i in self.session.get_inputs()}
        if set(inputs) != set(INPUT_NAMES):
            raise BundleError(f"{onnx_path} has inputs {sorted(inputs)}, expected {list(INPUT_NAMES)}")
        for i in inputs.values():
            if isinstance(i.shape[1], int) and i.shape[1] != self.n_w:
                raise BundleError(f"{onnx_path} was exported for N_w={i.shape[1]}, but n_w={self.n_w} was given")
        out = self.session.get_outputs()[0]
        self.output_name = out.name
        soft_dim = out.shape[1] if len(out.shape) == 2 else None
        if not isinstance(soft_dim, int):  # a symbolic width: learn it from one run on a padding-only row
            pad = np.full((1, self.n_w), self.pad_id, np.int64)
            got = self.session.run([out.name], {"input_ids": pad, "attention_mask": np.ones_like(pad)})[0]
            soft_dim = int(got.shape[1]) if got.ndim == 2 else None
        if soft_dim is None or soft_dim % self.n_w:
            raise BundleError(f"{onnx_path}: output {out.name} has shape {out.shape}, not [Q, N_w * d_w]")
        self.soft_dim = soft_dim
        self.d_w = soft_dim // self.n_w

    @classmethod
    def from_info(cls, directory: str | os.PathLike, info: Mapping[str, Any], **kwargs: Any) -> OnnxTextEncoder:
        """Build from the text-encoder entry of a bundle manifest (the ``info`` of the ONNX export)."""
        directory = Path(directory)
        try:
            return cls(
                directory / info.get("onnx", "text.onnx"),
                directory / info.get("tokenizer", "tokenizer.json"),
                int(info["n_w"]),
                pad_id=info.get("pad_id"),
                pad_token=info.get("pad_token"),
                **kwargs,
            )
        except KeyError as e:
            raise BundleError(f"text-encoder info lacks {e}; re-export the bundle") from e

    def _pad(self, pad_id: int | None, pad_token: str | None) -> tuple[int, str]:
        """Resolve the padding token from the arguments, the tokenizer's own padding, or its vocabulary."""
        if pad_id is None and pad_token is None and self.tokenizer.padding:
            return int(self.tokenizer.padding["pad_id"]), str(self.tokenizer.padding["pad_token"])
        if pad_token is None and pad_id is not None:
            pad_token = self.tokenizer.id_to_token(int(pad_id))
        if pad_token is None:
            pad_token = next((t for t in ("[PAD]", "<pad>") if self.tokenizer.token_to_id(t) is not None), None)
        if pad_token is None:
            raise BundleError("the tokenizer has no pad token; pass pad_id / pad_token (the export info records them)")
        token_id = self.tokenizer.token_to_id(pad_token)
        if pad_id is None:
            pad_id = token_id
        if token_id is None or int(token_id) != int(pad_id):
            raise BundleError(f"pad token {pad_token!r} has id {token_id} in the tokenizer, not {pad_id}")
        return int(pad_id), pad_token

    def tokenize(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``input_ids``, ``attention_mask`` as int64 [Q, N_w]; warns when a sentence is truncated."""
        if isinstance(sentences, str):
            raise TypeError("pass a list of sentences, not one string")
        sentences = list(sentences)
        encodings = self.tokenizer.encode_batch(sentences)
        truncated = sum(1 for e in encodings if e.overflowing)
        if truncated:
            logger.warning(
                "%d of %d sentences are longer than N_w=%d tokens and were truncated",
                truncated,
                len(sentences),
                self.n_w,
            )
        ids = np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(sentences), self.n_w)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64).reshape(len(sentences), self.n_w)
        return ids, mask

    def encode(self, sentences: Sequence[str]) -> np.ndarray:
        """Soft queries [Q, N_w * d_w] float32 (token embeddings, zero at padding, flattened)."""
        ids, mask = self.tokenize(sentences)
        if not len(ids):
            return np.zeros((0, self.soft_dim), np.float32)
        out = [
            self.session.run(
                [self.output_name],
                {"input_ids": ids[i : i + self.batch_size], "attention_mask": mask[i : i + self.batch_size]},
            )[0]
            for i in range(0, len(ids), self.batch_size)
        ]
        return np.concatenate(out).astype(np.float32, copy=False)
