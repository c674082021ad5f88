"""Export the frozen text encoder to ``text.onnx`` + ``tokenizer.json`` for the torch-free runtime.

The graph is :class:`clear_sdk.training.text_encoder.SoftQuery`: ``input_ids``, ``attention_mask``
int64 [Q, N_w] -> ``soft_query`` float32 [Q, N_w * d_w], already masked and flattened, with a dynamic
query count Q. The TorchScript exporter (``dynamo=False``) is tried first: with torch 2.14 and
transformers 5 it exports BERT-style models in about a second and matches torch to ~3e-6; the
``torch.export`` exporter (``dynamo=True``, opset >= 18) also works but takes ~30 s on 2 CPU
cores, so it is the fallback. The export is checked with ``onnx.checker`` and, by default, run in
onnxruntime through :class:`clear_sdk.text.OnnxTextEncoder` against the torch encoder.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from clear_sdk.training.text_encoder import TextEncoder

logger = logging.getLogger(__name__)

__all__ = ["TextExport", "export_text_encoder"]

FORMAT_VERSION = 1
# Sentences of different lengths (one filling N_w) used to trace the graph and to verify it.
_SAMPLES = (
    "This is a photo of a man.",
    "This is a photo of an adult woman taken from the back with long hair, is dressed in black trousers and a "
    "white top with short sleeves, is wearing a hat, carrying a handbag and no backpack.",
    "This is a photo of a young woman with short hair, is dressed in a skirt and a red top with long sleeves, "
    "walking in boots, is wearing no hat or glasses, carrying no bag and a backpack. " * 4,
)


@dataclasses.dataclass
class TextExport:
    """Where the export wrote its files, and the info dict for the bundle manifest."""

    onnx_path: Path
    tokenizer_path: Path
    info: dict[str, Any]


def export_text_encoder(
    encoder: TextEncoder | str = "minilm",
    out_dir: str | os.PathLike = ".",
    *,
    n_w: int | None = None,
    opset: int = 17,
    filename: str = "text.onnx",
    verify: bool = True,
    atol: float = 1e-4,
) -> TextExport:
    """Write ``text.onnx`` and ``tokenizer.json`` into ``out_dir`` and return their paths and info.

    ``encoder`` is a loaded :class:`TextEncoder` or a name for :meth:`TextEncoder.from_pretrained`
    (then ``n_w`` applies). ``verify`` runs the graph in onnxruntime and raises if the soft queries
    differ from torch by more than ``atol`` or the runtime tokenizer's ids differ from training's.
    """
    import onnx

    if opset < 17:
        raise ValueError(f"opset must be >= 17 (LayerNormalization), got {opset}")
    if isinstance(encoder, str):
        encoder = TextEncoder.from_pretrained(encoder, **({"n_w": n_w} if n_w else {}))
    elif n_w is not None and n_w != encoder.n_w:
        raise ValueError(f"n_w={n_w} given but the encoder was built with N_w={encoder.n_w}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / filename
    tokenizer_path = out_dir / "tokenizer.json"

    device = encoder.device
    encoder.to("cpu")
    try:
        batch = encoder.tokenize(list(_SAMPLES[:2]))
        exporter, used_opset = _export(encoder.module, batch, onnx_path, opset)
    finally:
        encoder.to(device)
    _fix_output_shape(onnx_path, encoder.soft_dim)
    onnx.checker.check_model(str(onnx_path))

    backend = encoder.tokenizer.backend_tokenizer
    from tokenizers import Tokenizer

    plain = Tokenizer.from_str(backend.to_str())  # a copy without the per-call padding/truncation state
    plain.no_padding()
    plain.no_truncation()
    tmp = tokenizer_path.with_name(tokenizer_path.name + ".tmp")
    plain.save(str(tmp))
    os.replace(tmp, tokenizer_path)

    cfg = encoder.config
    info: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": cfg.name,
        "model_id": cfg.model_id,
        "fingerprint": cfg.fingerprint,
        "n_w": cfg.n_w,
        "d_w": cfg.d_w,
        "soft_dim": encoder.soft_dim,
        "max_length": cfg.n_w,
        "pad_id": encoder.pad_token_id,
        "pad_token": encoder.pad_token,
        "padding_side": "right",
        "onnx": onnx_path.name,
        "tokenizer": tokenizer_path.name,
        "inputs": ["input_ids", "attention_mask"],
        "output": "soft_query",
        "opset": used_opset,
        "exporter": exporter,
        "torch_version": torch.__version__,
    }
    if verify:
        info["max_abs_diff"] = _verify(encoder, out_dir, info, atol)
    logger.info("exported text encoder %s to %s (%s, opset %d)", cfg.model_id, onnx_path, exporter, used_opset)
    return TextExport(onnx_path=onnx_path, tokenizer_path=tokenizer_path, info=info)


def _export(module: torch.nn.Module, batch: dict[str, torch.Tensor], path: Path, opset: int) -> tuple[str, int]:
    """TorchScript exporter first, torch.export-based one if that fails; returns (exporter, opset)."""
    args = (batch["input_ids"], batch["attention_mask"])
    names = {"input_names": ["input_ids", "attention_mask"], "output_names": ["soft_query"]}
    tmp = path.with_name(path.name + ".tmp")
    try:
        with warnings.catch_warnings():
            # the legacy exporter's deprecation notice and transformers' shape-only tracer warnings
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*aten::index.*", category=UserWarning)
            torch.onnx.export(
                module,
                args,
                str(tmp),
                opset_version=opset,
                dynamo=False,
                dynamic_axes={"input_ids": {0: "Q"}, "attention_mask": {0: "Q"}, "soft_query": {0: "Q"}},
                **names,
            )
        exporter, used = "torchscript", opset
    except Exception as e:  # noqa: BLE001 - any exporter failure means: try the other exporter
        logger.warning(
            "TorchScript ONNX export failed (%s: %s); trying the torch.export-based exporter", type(e).__name__, e
        )
        q = torch.export.Dim("Q", min=1, max=65536)
        used = max(opset, 18)
        torch.onnx.export(
            module,
            args,
            str(tmp),
            opset_version=used,
            dynamo=True,
            external_data=False,
            dynamic_shapes={"input_ids": {0: q}, "attention_mask": {0: q}},
            **names,
        )
        exporter = "dynamo"
    os.replace(tmp, path)
    return exporter, used


def _fix_output_shape(path: Path, soft_dim: int) -> None:
    """Record the static width N_w * d_w of the output where the exporter left it symbolic (GPT-2 does)."""
    import onnx

    model = onnx.load(str(path))
    dim = model.graph.output[0].type.tensor_type.shape.dim[1]
    if dim.HasField("dim_value"):
        if dim.dim_value != soft_dim:
            raise RuntimeError(f"exported output width {dim.dim_value} != N_w * d_w = {soft_dim}")
        return
    dim.ClearField("dim_param")
    dim.dim_value = soft_dim
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)


def _verify(encoder: TextEncoder, out_dir: Path, info: dict[str, Any], atol: float) -> float:
    """Run the exported graph with the runtime encoder; token ids must match and outputs agree to atol."""
    import numpy as np

    from clear_sdk.description import describe, get_template, list_templates
    from clear_sdk.text import OnnxTextEncoder

    sentences = list(_SAMPLES)
    for name in list_templates():
        tpl = get_template(name)
        names = tpl.attribute_names or ["LongHair", "Backpack"]
        sentences.append(describe(names[::3], names, tpl))
    runtime = OnnxTextEncoder.from_info(out_dir, info)
    quiet = [logging.getLogger(n) for n in ("clear_sdk.text", "clear_sdk.training.text_encoder")]
    levels = [q.level for q in quiet]
    for q in quiet:  # the last sample is truncated on purpose: no warning for it
        q.setLevel(logging.ERROR)
    try:
        ids, mask = runtime.tokenize(sentences)
        ref_batch = encoder.tokenize(sentences)
        got = runtime.encode(sentences)
        want = encoder.encode_flat(sentences).cpu().numpy()
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    if not (
        np.array_equal(ids, ref_batch["input_ids"].numpy())
        and np.array_equal(mask, ref_batch["attention_mask"].numpy())
    ):
        raise RuntimeError(
            "the exported tokenizer.json does not reproduce the training tokenizer's ids; the runtime would build "
            "different soft queries. Check the tokenizer's padding/truncation settings"
        )
    diff = float(np.abs(got - want).max())
    if not diff <= atol:
        raise RuntimeError(f"text.onnx differs from torch by {diff:.2e} (> {atol:.0e}); the export is not usable")
    return diff
