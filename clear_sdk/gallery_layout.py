"""The gallery row layout: what ``AttributeSearcher`` stores per item and which columns each scorer reads.

Every gallery item is one float32 row ``[E^v (D); log p (A); log(1 - p) (A)]``: its visual
embedding and the log-probabilities the recogniser gives each attribute. Each scorer is then a
single inner product between a query row and the stored rows, over its own block of columns, so all
of them use the same exact blocked top-k (or FAISS, or a Milvus vector field per block):

- ``embedding`` (CLEAR, DESIGN §3): ``[E^h; E^s] . E^v`` = cos(E^v, [E^h; E^s]), exactly as training
  scored; columns ``[0, D)``;
- ``recognition``: the sum of the log-likelihoods of the query's attributes (wanted ones by log p,
  unwanted ones by log(1 - p)) under the recogniser's probabilities; columns ``[D, D + 2A)``;
- ``fused``: embedding score + ``fusion_weight`` x the mean per-attribute log-likelihood; all columns.

A recognition-only bundle (D = 0) stores the ``2A`` log-probabilities alone and serves the
recognition scorer only. This module is the one place that knows the layout.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from clear_sdk.bundle import Bundle

__all__ = ["LOG_FLOOR", "SCORERS", "GalleryLayout", "Scorer"]

Scorer = Literal["embedding", "recognition", "fused"]
SCORERS: tuple[Scorer, ...] = ("embedding", "recognition", "fused")
LOG_FLOOR = float(np.log(1e-6))  # log-probabilities are clipped here so one confident miss is not -inf
ROW_CHUNK = 16384  # rows built at a time: a chunk's [2, 16384, A] float32 scratch is a few MB


@dataclasses.dataclass(frozen=True)
class GalleryLayout:
    """The stored row ``[E^v (embed_dim); log p (A); log(1 - p) (A)]`` for a model's ``attributes``."""

    embed_dim: int
    attributes: tuple[str, ...]

    @classmethod
    def of(cls, bundle: Bundle) -> GalleryLayout:
        """The layout of a bundle's gallery (``embed_dim`` 0 without the retrieval stage)."""
        return cls(int(bundle.embed_dim or 0), tuple(bundle.attribute_names))

    @property
    def width(self) -> int:
        """Values per stored row: D + 2A."""
        return self.embed_dim + 2 * len(self.attributes)

    @property
    def scorers(self) -> tuple[Scorer, ...]:
        """The scorers a gallery of this layout can rank by: all three with E^v, else recognition alone."""
        return SCORERS if self.embed_dim else ("recognition",)

    def columns(self, scorer: Scorer) -> tuple[int, int]:
        """The columns ``[c0, c1)`` of a stored row that ``scorer`` reads."""
        d, width = self.embed_dim, self.width
        spans = {"embedding": (0, d), "recognition": (d, width), "fused": (0, width)}
        if scorer not in spans:
            raise ValueError(f"scorer must be one of {', '.join(SCORERS)}, got {scorer!r}")
        return spans[scorer]

    def fields(self) -> dict[str, tuple[int, int]]:
        """One named column range per scorer this layout serves (a Milvus collection's vector fields)."""
        return {scorer: self.columns(scorer) for scorer in self.scorers}

    # --------------------------------------------------------------------------------- stored rows
    def rows(self, probabilities: np.ndarray, embeddings: np.ndarray | None) -> np.ndarray:
        """The stored rows [N, width] (logs floored at ``LOG_FLOOR``), written in place in float32.

        Built ``ROW_CHUNK`` rows at a time: each chunk's log-probabilities are computed in a small buffer that
        stays in cache and is reused, rather than in gallery-sized temporaries (1M rows: 0.7 GB of them).
        """
        n, d, a = len(probabilities), self.embed_dim, len(self.attributes)
        out = np.empty((n, self.width), np.float32)
        probs = np.asarray(probabilities, np.float32)
        emb = np.asarray(embeddings) if d else None
        work = np.empty((2, min(n, ROW_CHUNK), a), np.float32)
        for start in range(0, n, ROW_CHUNK):
            stop = min(start + ROW_CHUNK, n)
            if emb is not None:
                out[start:stop, :d] = emb[start:stop]
            _log_probabilities(probs[start:stop], out[start:stop, d:], work[:, : stop - start])
        return out

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """The attribute probabilities [N, A] back from stored rows (exact down to the floor, 1e-6)."""
        d = self.embed_dim
        return np.exp(rows[:, d : d + len(self.attributes)])

    # --------------------------------------------------------------------------------- query rows
    def query_rows(
        self,
        constraints: Sequence[Mapping[str, bool]],
        scorer: Scorer,
        embeddings: np.ndarray | None = None,
        fusion_weight: float = 0.1,
    ) -> np.ndarray:
        """Queries as rows [Q, width] whose inner product with a stored row is that row's ``scorer`` score.

        ``constraints``: each query's parsed attributes (name -> wanted); ``embeddings``: the queries'
        CLEAR embeddings [Q, D] (for ``embedding`` and ``fused``). The recognition block holds 1 at
        log p of a wanted attribute and at log(1 - p) of an unwanted one (``fused``: ``fusion_weight``
        divided by the number of constraints, a mean); unnamed attributes weigh 0.
        """
        d, a = self.embed_dim, len(self.attributes)
        self.columns(scorer)  # an unknown scorer fails here
        out = np.zeros((len(constraints), self.width), np.float32)
        if scorer != "recognition":
            out[:, :d] = embeddings
        if scorer == "embedding":
            return out
        position = {name: j for j, name in enumerate(self.attributes)}
        for qi, parsed in enumerate(constraints):
            weight = 1.0 if scorer == "recognition" else fusion_weight / max(len(parsed), 1)
            for name, want in parsed.items():
                j = position[name]
                out[qi, d + (j if want else a + j)] = weight
        return out


def _log_probabilities(probs: np.ndarray, out: np.ndarray, work: np.ndarray) -> None:
    """``out`` [n, 2A] = [log p; log(1 - p)] of ``probs`` [n, A] clipped to [0, 1], floored at ``LOG_FLOOR``;
    ``work`` [2, n, A]: scratch."""
    a = probs.shape[1]
    p, q = work[0], work[1]
    np.clip(probs, 0.0, 1.0, out=p)
    np.subtract(np.float32(1), p, out=q)
    floor = np.float32(math.exp(LOG_FLOOR))
    for block, col in ((p, 0), (q, a)):
        np.maximum(block, floor, out=block)
        np.log(block, out=block)
        np.maximum(block, np.float32(LOG_FLOOR), out=out[:, col : col + a])  # log of the rounded floor may dip below
