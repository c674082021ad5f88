from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


_NO_TORCH = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
        return None

sys.meta_path.insert(0, NoTorch())
"""


@pytest.fixture
def run_without_torch():
    """Run Python ``code`` in a fresh interpreter where ``import torch`` fails; returns the CompletedProcess."""

    def run(code: str, cwd: Path) -> subprocess.CompletedProcess:
        script = _NO_TORCH + textwrap.dedent(code)
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, timeout=120)

    return run


#: clear-tiny shrunk for tests at 64x32 (one block per stage, narrow): builds and trains in a second.
#: Random weights: for plumbing, shapes and parity, never for accuracy.
TINY_CLEAR: dict = {
    "vit": {"dim": 32, "depth": 1, "num_heads": 2},
    "swin": {"dims": [8, 16, 32, 64], "depths": [1, 1, 1, 1], "num_heads": [1, 2, 2, 4], "out_dim": 32},
    "fusion_dim": 16,
    "fusion_heads": 2,
}


@pytest.fixture
def tiny_model_kwargs() -> dict:
    """``model_kwargs`` of the tests' clear-tiny (a fresh copy: a test may change it)."""
    return copy.deepcopy(TINY_CLEAR)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout (CI has it; a user's clone does not)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """clear-tiny at 64x32 on the synthetic attributes, with the retrieval stage and the real MiniLM text encoder,
    exported once per test session (random weights: for plumbing tests, not accuracy)."""
    import torch

    from clear_sdk.description import template_for
    from clear_sdk.export.bundle_writer import export_bundle
    from clear_sdk.synthetic import SYNTHETIC_ATTRIBUTES, SYNTHETIC_GROUPS
    from clear_sdk.training.models import RetrievalConfig, create_model, save_checkpoint
    from clear_sdk.training.text_encoder import TextEncoder

    torch.set_num_threads(1)
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("tiny_bundle")
    model = create_model(
        "clear-tiny",
        img_size=(64, 32),
        num_attrs=len(SYNTHETIC_ATTRIBUTES),
        attribute_names=SYNTHETIC_ATTRIBUTES,
        **TINY_CLEAR,
    )
    enc = TextEncoder.from_pretrained("minilm")
    model.add_retrieval(RetrievalConfig(embed_dim=16, hidden_dim=32, soft_dim=enc.soft_dim))
    extra = {
        "dataset": {"name": "synthetic", "attributes": SYNTHETIC_ATTRIBUTES, "groups": SYNTHETIC_GROUPS},
        "text_encoder": enc.config.to_dict(),
        "description_template": template_for(SYNTHETIC_ATTRIBUTES).to_dict(),
    }
    ckpt = save_checkpoint(model, tmp / "m.safetensors", extra=extra)
    return export_bundle(ckpt, tmp / "bundle", simplify=False)
