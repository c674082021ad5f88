"""The ``torch`` backend plug-in: runs a bundle's PyTorch checkpoint, for parity checks and debugging.

It loads a training checkpoint, so it lives with the training code and needs the ``[train]`` extra.
clear-sdk registers it under the entry-point group ``clear_sdk.backends`` (pyproject.toml:
``torch = "clear_sdk.training.backend:TorchBackend"``); the runtime's registry imports this module only
when ``backend="torch"`` is asked for, e.g. ``Recognizer(bundle, backend="torch")``.
"""

from __future__ import annotations

import numpy as np
import torch

from clear_sdk.backends.base import Backend, BackendUnavailable
from clear_sdk.bundle import Bundle
from clear_sdk.training.models import CheckpointError, load_checkpoint

__all__ = ["TorchBackend"]


class TorchBackend(Backend):
    """The bundle's PyTorch checkpoint (``checkpoint/``): for parity checks and debugging.

    ``device`` defaults to ``"cpu"``; ``threads`` sets torch's intra-op threads, which is
    process-wide in PyTorch (it changes every torch user in the process).
    """

    name = "torch"

    def __init__(self, bundle: Bundle, device: str | None = None, threads: int | None = None) -> None:
        super().__init__(bundle)
        bundle = self.bundle
        ckpt = bundle.checkpoint_path
        if ckpt is None:
            raise BackendUnavailable(f"{bundle.path} holds no checkpoint/: re-export it to use the torch backend")
        if threads is not None:
            torch.set_num_threads(threads)
        self.device = device or "cpu"
        try:
            model, _ = load_checkpoint(ckpt, map_location=self.device)
        except (CheckpointError, ValueError, KeyError, OSError) as e:
            reason = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
            raise BackendUnavailable(f"the torch backend cannot load {ckpt}: {reason}") from e
        if model.cfg.attribute_names and list(model.cfg.attribute_names) != bundle.attribute_names:
            raise BackendUnavailable(f"{ckpt} predicts other attributes than {bundle.path}'s manifest; re-export")
        self._model = model.eval()

    def describe(self) -> dict:
        return {**super().describe(), "torch_threads": torch.get_num_threads()}

    def _run_images(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        m = self._model
        with torch.inference_mode():
            f = m.forward_features(torch.from_numpy(batch).to(self.device))
            probs = torch.sigmoid(m.forward_head(f)).cpu().numpy()
            emb = m.image_embedding(f, normalize=True).cpu().numpy() if m.retrieval is not None else None
        return probs, emb

    def _run_query(self, hard: np.ndarray, soft: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            soft_t = None if soft is None else torch.from_numpy(soft).to(self.device)
            q = self._model.encode_query(torch.from_numpy(hard).to(self.device), soft_t)
        return q.cpu().numpy()
