"""Model configuration as data: small dataclasses passed whole and saved beside every checkpoint."""

from __future__ import annotations

import dataclasses
from typing import Any

from clear_sdk.query import DEFAULT_QUERY_FORM, QUERY_ENCODINGS, query_form_inputs

VARIANTS = ("vit", "swin", "swin+casa", "concat", "cross")
HEADS = ("fc", "bn")


@dataclasses.dataclass
class ViTConfig:
    patch_size: int = 14
    dim: int = 1024
    depth: int = 12
    num_heads: int = 16
    mlp_ratio: float = 4.0


@dataclasses.dataclass
class SwinConfig:
    patch_size: int = 4
    dims: tuple[int, ...] = (128, 256, 512, 1024)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: int = 12
    mlp_ratio: float = 4.0
    #: size of z^s, the Flatten + FC vector of the Swin branch (the paper projects to the ViT width)
    out_dim: int = 1024


@dataclasses.dataclass
class RetrievalConfig:
    """Adapters of Sec. 3.3: f_vis -> D, f_attr and f_text -> D/2 each."""

    embed_dim: int = 256  # D; D/2 = 128 is the paper's default (Tables 6-7)
    hidden_dim: int = 512
    soft_dim: int = 64 * 384  # N_w * d_w of the frozen language model (MiniLM, N_w = 64)
    scale: float = 30.0  # sigma of L_MA
    margin: float = 0.2  # gamma of L_MA
    hard_weight: float = 0.3  # beta_1
    soft_weight: float = 0.7  # beta_2
    #: Table 6's query forms: "hard+soft" (HA+SP, the paper's), "hard" (HA: the binary attribute vector),
    #: "soft" (SP: the pseudo-description) or "words" (W: the attribute words alone, no template)
    query_form: str = DEFAULT_QUERY_FORM
    #: centre and scale the adapters' inputs (f_par features, hard vectors, the 24,576-d soft query) by
    #: their training-set mean and std: each shares a large common component that sends every embedding
    #: one way at the start of stage 2 (stored as buffers, exported as constants)
    standardize: bool = False
    #: HA+SP only. False (the paper): one f_vis whose output halves face E^h and E^s. True: two f_vis
    #: adapters, one per half, so the soft branch's gradients do not shape the hard half's features
    #: (measured on PETA: the shared f_vis leaves the hard half near its collapsed loss, Table 6)
    separate_vis: bool = False
    #: the hard query's encoding (clear_sdk.query.hard_input): "binary" (the paper) or "signed" (ours:
    #: present / absent / not asked, for partial queries and for datasets that leave attributes unannotated)
    query_encoding: str = "binary"

    def __post_init__(self) -> None:
        if self.query_encoding not in QUERY_ENCODINGS:
            raise ValueError(
                f"unknown query_encoding {self.query_encoding!r}; choose one of {', '.join(QUERY_ENCODINGS)}"
            )
        query_form_inputs(self.query_form)  # a ValueError naming the valid forms

    @property
    def uses_hard(self) -> bool:
        return "hard" in query_form_inputs(self.query_form)

    @property
    def uses_text(self) -> bool:
        return "soft" in query_form_inputs(self.query_form)

    @property
    def halves(self) -> bool:
        """E^v is two halves, one facing the hard query and one the soft (HA+SP)."""
        return self.uses_hard and self.uses_text


@dataclasses.dataclass
class PromptPARConfig:
    """PromptPAR (Wang et al., "Pedestrian Attribute Recognition via CLIP based Prompt Vision-Language
    Fusion"): CLIP towers, deep region-aware prompts, a multi-modal Transformer and per-attribute heads.

    The tower sizes default to OpenAI CLIP ViT-B/16 so that its checkpoint loads unchanged.
    """

    patch_size: int = 16
    width: int = 768  # vision tower width
    layers: int = 12
    heads: int = 12
    embed_dim: int = 512  # CLIP's joint embedding size (visual proj and text projection output)
    text_width: int = 512
    text_layers: int = 12
    text_heads: int = 8
    context_length: int = 77
    vocab_size: int = 49408
    quick_gelu: bool = True  # OpenAI CLIP checkpoints were trained with QuickGELU
    #: visual prompts per layer: ``global_prompts`` that see the whole image plus ``region_prompts``
    #: for each of ``regions`` horizontal bands (head, upper body, ...), masked to their band
    global_prompts: int = 10
    regions: int = 4
    region_prompts: int = 10
    prompt_depth: int | None = None  # layers with their own (deep) prompts; None: every layer
    text_prompts: int = 3  # learnable context vectors after the start token of every sentence
    mm_layers: int = 1  # multi-modal Transformer blocks over [attribute tokens; visual tokens]
    tune: str = "prompt"  # "prompt": only prompts and heads train (the paper); "full": everything
    #: one sentence per attribute; None: expanded from the attribute names at build time
    sentences: list[str] | None = None

    def __post_init__(self) -> None:
        if self.tune not in ("prompt", "full"):
            raise ValueError(f"unknown tune mode {self.tune!r}; choose 'prompt' or 'full'")
        if self.prompt_depth is not None and not 0 <= self.prompt_depth <= self.layers:
            raise ValueError(f"prompt_depth must be in 0..{self.layers}, got {self.prompt_depth}")

    @property
    def num_prompts(self) -> int:
        return self.global_prompts + self.regions * self.region_prompts


@dataclasses.dataclass
class ModelConfig:
    name: str = "clear-base"
    arch: str = "clear"  # "clear" (cross-transformers), "resnet50", "lite" (trunk + linear/BN head) or "promptpar"
    #: timm name of an ImageNet CNN trunk (``tf_efficientnet_lite0``...): for "clear" its stride-8/16 maps
    #: replace the patch embeddings (``clear-lite0``); for "lite" it is the whole network
    trunk: str | None = None
    variant: str = "cross"
    num_attrs: int = 26
    attribute_names: list[str] | None = None
    img_size: tuple[int, int] = (256, 128)
    vit: ViTConfig = dataclasses.field(default_factory=ViTConfig)
    swin: SwinConfig = dataclasses.field(default_factory=SwinConfig)
    fusion_dim: int = 768
    fusion_heads: int = 12
    drop_path_rate: float = 0.1
    #: ``arch="clear"`` only. The logits' layer: "fc" (the paper: one Linear over [M^s; M^v]) or "bn" (ours:
    #: Linear + BatchNorm1d over the logits, the head of the lite* baseline; under the weighted BCE the
    #: paper's FC left the rare attributes of PETA at mA 0.5 on a pretrained trunk)
    head: str = "fc"
    #: ``arch="clear"`` with a trunk only (ours): the fused vector also carries the whole trunk's pooled
    #: feature, [M^s; M^v; pool(trunk)], so that the network starts no worse than the lite* baseline
    pooled_trunk: bool = False
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    retrieval: RetrievalConfig | None = None
    promptpar: PromptPARConfig | None = None

    def __post_init__(self) -> None:
        if self.arch in ("resnet50", "lite"):
            if self.arch == "lite" and not self.trunk:
                raise ValueError("arch 'lite' needs a trunk, e.g. trunk='tf_efficientnet_lite0'")
            self.variant = "linear"  # the baseline has one trunk and a linear head: no Table 5 variants
        elif self.arch == "promptpar":
            self.variant = "promptpar"
            if self.promptpar is None:
                self.promptpar = PromptPARConfig()
        elif self.arch != "clear":
            raise ValueError(f"unknown arch {self.arch!r}; choose 'clear', 'resnet50', 'lite' or 'promptpar'")
        elif self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose one of {', '.join(HEADS)}")
        if self.pooled_trunk and not (self.arch == "clear" and self.trunk):
            raise ValueError("pooled_trunk needs a CLEAR model on a CNN trunk (clear-lite0/1/2)")
        if self.attribute_names is not None and len(self.attribute_names) != self.num_attrs:
            raise ValueError(f"{len(self.attribute_names)} attribute names given for num_attrs={self.num_attrs}")
        self.img_size = tuple(self.img_size)
        self.mean, self.std = tuple(self.mean), tuple(self.std)

    @property
    def preprocessing(self):  # -> clear_sdk.preprocess.Preprocessing
        from clear_sdk.preprocess import Preprocessing

        return Preprocessing(
            input_size=tuple(self.img_size),
            mean=tuple(self.mean),
            std=tuple(self.std),
            interpolation=self.interpolation,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are errors so a typo never passes silently."""
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        sub = {"vit": ViTConfig, "swin": SwinConfig, "retrieval": RetrievalConfig, "promptpar": PromptPARConfig}
        for key, typ in sub.items():
            if isinstance(d.get(key), dict):
                d[key] = _sub_from_dict(typ, d[key])
        for key in ("dims", "depths", "num_heads"):
            if key in getattr(d.get("swin"), "__dict__", {}):
                setattr(d["swin"], key, tuple(getattr(d["swin"], key)))
        return cls(**d)


def _sub_from_dict(typ: type, d: dict[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(typ)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {typ.__name__} keys: {', '.join(sorted(unknown))}")
    return typ(**d)
