"""CLEAR models: the cross-transformers f_par, its ablation variants, the ResNet-50 baseline and the
retrieval adapters, built by name from a registry (``create_model('clear-tiny')``)."""

from .checkpoint import CheckpointError, load_checkpoint, load_pretrained, save_checkpoint
from .clear import CLEAR, RetrievalHeads
from .config import VARIANTS, ModelConfig, RetrievalConfig, SwinConfig, ViTConfig
from .registry import create_model, list_models, register_model

__all__ = [
    "CLEAR",
    "VARIANTS",
    "CheckpointError",
    "ModelConfig",
    "RetrievalConfig",
    "RetrievalHeads",
    "SwinConfig",
    "ViTConfig",
    "create_model",
    "list_models",
    "load_checkpoint",
    "load_pretrained",
    "register_model",
    "save_checkpoint",
]
