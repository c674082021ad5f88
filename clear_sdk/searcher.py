"""Attribute-based person retrieval over a gallery index: ``AttributeSearcher``.

The searcher composes four parts, each usable alone: the :class:`~clear_sdk.recognizer.Recognizer`
(images -> probabilities and E^v), the :class:`~clear_sdk.query_encoder.QueryEncoder` (queries ->
vectors), the :class:`~clear_sdk.gallery_layout.GalleryLayout` (the stored row
``[E^v (D); log p (A); log(1 - p) (A)]`` and the columns each scorer reads: ``embedding``, CLEAR's;
``recognition``, the query's log-likelihood under the recogniser; ``fused``, both) and the gallery
index (:mod:`clear_sdk.index`). Which model made a gallery is :mod:`clear_sdk.identity`'s job.

The embedding scorer reads a partial query ("female, backpack") as training encoded its attribute
vectors (the bundle's ``query_encoding``: "binary", CLEAR's, reads unnamed attributes as absent;
"signed" leaves them unasked); the recognition scorer ignores unnamed attributes.
``clear-sdk bench --dataset`` measures which wins on your data.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from clear_sdk.bundle import Bundle
from clear_sdk.errors import BundleError, InputError, QueryError
from clear_sdk.gallery_layout import SCORERS, GalleryLayout, Scorer
from clear_sdk.identity import ModelIdentity, bind_index, read_searcher_file
from clear_sdk.index import is_milvus_uri, open_index
from clear_sdk.query_encoder import QueryEncoder
from clear_sdk.recognizer import Recognizer, as_image_list

logger = logging.getLogger(__name__)

DAY_SECONDS = 86400.0


def is_utf8(text: str) -> bool:
    """True when ``text`` encodes as UTF-8 (file names from a POSIX folder may hold surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Hit:
    """One search result: the item's id, its score under the scorer used, and its metadata."""

    id: str
    score: float
    metadata: dict[str, Any]


class AttributeSearcher:
    """Index person crops and find them by attributes ("female, backpack, long hair").

    ``index_dir``: a folder to persist the gallery in (vectors file + SQLite metadata; atomic
    writes; reopening restores it), or ``None`` for an in-memory gallery. ``index``: the same, or a
    Milvus location instead: a Milvus Lite file (``"gallery.db"``) or a server / cluster
    (``"milvus://host:19530/collection"``). ``scorer``: the default of :meth:`search`; ``"auto"`` follows
    what was measured for the bundle's kind: a three-state (``signed``) bundle such as the default model
    ranks by ``fused`` with ``fusion_weight`` 3 (on the val identities of Market-1501 and PETA it ties the
    best scorer on whole-vector and on partial queries alike: benchmarks/README.md, "Partial queries"); a
    binary bundle by CLEAR's embedding; a bundle without the retrieval stage by the recognition scorer.
    ``fusion_weight``: the fused scorer's weight of the mean log-likelihood of the asked attributes beside
    the embedding's cosine (``None``: 3 for a signed bundle, 0.1 otherwise).
    ``index_kwargs`` go to :class:`~clear_sdk.index.VectorIndex` (e.g. ``faiss_type="ivf"`` for
    approximate search at millions of items, ``precision="fp32"``) or :class:`~clear_sdk.index.MilvusIndex`.
    Each scorer reads only its own block of the stored vector (the embedding scorer the first D
    columns), and encoded queries are cached (:meth:`clear_query_cache`).

    Its parts: ``recognizer`` (a :class:`Recognizer`), ``query_encoder`` (a :class:`QueryEncoder`
    sharing the recognizer's backend), ``layout`` (the :class:`GalleryLayout`) and ``index``.
    """

    def __init__(
        self,
        bundle: str | os.PathLike[str] | Bundle,
        index_dir: str | os.PathLike[str] | None = None,
        backend: str = "auto",
        device: str | None = None,
        scorer: Scorer | Literal["auto"] = "auto",
        fusion_weight: float | None = None,
        batch_size: int = 32,
        index: str | os.PathLike[str] | None = None,
        **index_kwargs: Any,
    ) -> None:
        if index is not None and index_dir is not None:
            raise ValueError("pass index_dir or index, not both (index also takes a Milvus URI)")
        location = index if index is not None else index_dir
        self.recognizer = Recognizer(bundle, backend=backend, device=device, batch_size=batch_size)
        self.bundle = self.recognizer.bundle
        self.scorer: Scorer = _default_scorer(scorer, self.bundle)
        if fusion_weight is None:
            fusion_weight = SIGNED_FUSION_WEIGHT if self.bundle.query_encoding == "signed" else 0.1
        self.query_encoder = QueryEncoder(self.bundle, self.recognizer.backend, fusion_weight=fusion_weight)
        self.layout: GalleryLayout = self.query_encoder.layout
        if is_milvus_uri(location):  # one inner-product field per scorer block
            index_kwargs.setdefault("fields", self.layout.fields())
        self.index = open_index(location, self.layout.width, **index_kwargs)
        bind_index(self.index, ModelIdentity.of(self.bundle, self.layout), location, self.bundle)

    # ------------------------------------------------------------------------------ properties
    @property
    def embedding_dim(self) -> int:
        """D of the visual / query embeddings (0 for a recognition-only bundle)."""
        return self.layout.embed_dim

    @property
    def attribute_names(self) -> list[str]:
        return list(self.layout.attributes)

    @property
    def fusion_weight(self) -> float:
        """The weight of the mean attribute log-likelihood in the ``fused`` score."""
        return self.query_encoder.fusion_weight

    @fusion_weight.setter
    def fusion_weight(self, value: float) -> None:
        self.query_encoder.fusion_weight = float(value)

    def __len__(self) -> int:
        return len(self.index)

    def columns(self, scorer: Scorer | None = None) -> tuple[int, int]:
        """The columns of the stored vector a scorer reads: E^v for embedding, the log-probabilities for recognition."""
        return self.layout.columns(scorer or self.scorer)

    # ----------------------------------------------------------------------------------- adding
    def add(
        self,
        images: Any,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        color: Literal["bgr", "rgb"] = "bgr",
        errors: Literal["raise", "skip"] = "raise",
    ) -> list[str | None]:
        """Recognise and embed ``images`` and add them; returns their ids (``None`` for a skipped bad input).

        ``images`` as :meth:`Recognizer.predict` takes them. Metadata keys: camera, timestamp, track,
        bbox, source (a file path's source defaults to the path); other keys are kept too.
        ``errors="skip"`` leaves bad inputs out and logs them. All good images of the call are
        committed together: a crash loses at most this call.
        """
        items = as_image_list(images)
        entries, todo = _storable(items, ids, metadata, errors)
        rows, keep = [], []
        chunks = self.recognizer.run_chunks(
            [items[i] for i in todo], color, errors, want_embedding=self.bundle.has_retrieval
        )
        for start, _chunk, ok, failures, probs, emb in chunks:
            for _, err in failures:
                logger.warning("not indexed: %s", err)
            if ok:
                rows.append(self.layout.rows(probs, emb))
                keep.extend(todo[start + i] for i in ok)
        out: list[str | None] = [None] * len(items)
        if keep:
            kept_ids = [ids[i] for i in keep] if ids is not None else None
            added = self.index.add(np.concatenate(rows), kept_ids, [entries[i] for i in keep])
            for i, item_id in zip(keep, added):
                out[i] = item_id
        return out

    def add_embeddings(
        self,
        embeddings: np.ndarray,
        ids: Sequence[str],
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        probabilities: np.ndarray | None = None,
    ) -> list[str]:
        """Add precomputed ``Recognizer.embed`` vectors [N, D] (and, for the recognition scorer, probabilities [N, A]).

        Without ``probabilities`` every attribute is stored at p = 0.5, so the recognition scorer
        cannot rank these items (the embedding scorer can).
        """
        d, a = self.layout.embed_dim, len(self.layout.attributes)
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != d or not d:
            raise ValueError(f"embeddings must have shape [N, {d}] (this bundle's D), got {emb.shape}")
        probs = np.full((len(emb), a), 0.5, np.float32) if probabilities is None else probabilities
        probs = np.asarray(probs, dtype=np.float32)
        if probs.shape != (len(emb), a):
            raise ValueError(f"probabilities must have shape [{len(emb)}, {a}], got {probs.shape}")
        md = list(metadata) if metadata is not None else None  # the index validates (and never mutates) them
        return self.index.add(self.layout.rows(probs, emb), list(ids), md)

    def add_probabilities(
        self,
        probabilities: np.ndarray,
        ids: Sequence[str],
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        embeddings: np.ndarray | None = None,
        replace: bool = False,
    ) -> list[str]:
        """Add items from attribute probabilities [N, A] computed elsewhere (e.g. aggregated over a video track).

        No image is recognised again. ``embeddings`` [N, D] (the track's mean ``Recognizer.embed``) is
        required when the bundle has the retrieval stage, so that the embedding scorer can rank the items;
        a recognition-only bundle takes none. ``replace=True`` replaces items whose id is already in the
        index in the same transaction (re-indexing a growing track).
        """
        probs = _track_probabilities(probabilities, len(self.layout.attributes))
        emb = _track_embeddings(embeddings, len(probs), self.layout.embed_dim, self.bundle)
        ids = [ids] if isinstance(ids, str) else list(ids)
        md = list(metadata) if metadata is not None else None  # the index validates (and never mutates) them
        return self.index.add(self.layout.rows(probs, emb), ids, md, replace=replace)

    # -------------------------------------------------------------------------------- deleting
    def remove(
        self, ids: Sequence[str] | None = None, *, where: Mapping[str, Any] | None = None, everything: bool = False
    ) -> int:
        """Remove items by id, by a metadata filter (``where={"camera": "c3"}``) or all (``everything=True``; an
        empty filter is refused, so that a filter built from optional fields never empties a gallery); atomic;
        returns how many."""
        return self.index.remove(ids, where=where, everything=everything)

    def apply_retention(self, keep_days: float, now: float | None = None) -> int:
        """Retention policy: remove the items whose timestamp is older than ``keep_days`` days; returns how many.

        Items without a timestamp are kept. ``now`` (Unix seconds) defaults to the current time.
        """
        if isinstance(keep_days, bool) or not isinstance(keep_days, (int, float)) or not keep_days > 0:
            raise ValueError(f"keep_days must be a positive number of days, got {keep_days!r}")
        return self.index.remove_older_than(float(keep_days) * DAY_SECONDS, now=now)

    def time_span(self) -> tuple[float, float] | None:
        """(earliest, latest) item timestamp in Unix seconds, or None when no item has one."""
        return self.index.time_span()

    # ---------------------------------------------------------------------------------- queries
    def parse(self, query: Any) -> dict[str, bool]:
        """The attribute constraints of a query (text, list of names, or dict name -> bool)."""
        return self.query_encoder.parse(query)

    def encode_query(self, queries: Sequence[Any] | Any) -> np.ndarray:
        """CLEAR query embeddings [Q, D] (:meth:`QueryEncoder.encode`)."""
        return self.query_encoder.encode(queries)

    def clear_query_cache(self) -> None:
        """Forget the encoded queries (the cache holds the last 1024)."""
        self.query_encoder.clear_cache()

    def query_vectors(
        self, queries: Sequence[Any], scorer: Scorer | None = None, schema: str | None = None
    ) -> np.ndarray:
        """Each query as a vector against the stored ``[E^v; log p; log(1-p)]`` items: [Q, D + 2A] (cached).

        ``schema``: the queries are written in that dataset's attribute names (a unified-schema bundle's view,
        e.g. ``"market1501"``); attributes a query does not name are not asked.
        """
        return self.query_encoder.vectors(self.query_encoder.in_schema(queries, schema), scorer or self.scorer)

    def search(
        self,
        query: Any,
        k: int = 10,
        where: Mapping[str, Any] | None = None,
        scorer: Scorer | None = None,
        schema: str | None = None,
        **search_kw: Any,
    ) -> list[Hit]:
        """The ``k`` best gallery items for one query; ``where`` filters on metadata (``{"camera": "c1"}``).

        ``schema``: the query is in a dataset's own names (``"peta"``, ``"market1501"``, ``"pa100k"``; see
        :meth:`query_vectors`). ``search_kw`` go to the index's search: ``exact=False`` (approximate),
        ``precision="fp32"``, ``nprobe=`` / ``ef_search=``.
        """
        return self.search_many([query], k=k, where=where, scorer=scorer, schema=schema, **search_kw)[0]

    def search_many(
        self,
        queries: Sequence[Any],
        k: int = 10,
        where: Mapping[str, Any] | None = None,
        scorer: Scorer | None = None,
        schema: str | None = None,
        **search_kw: Any,
    ) -> list[list[Hit]]:
        """:meth:`search` for several queries in one pass over the gallery."""
        # the queries, k and the filter are checked the same way whether or not the gallery is empty
        qv = self.query_vectors(list(queries), scorer, schema)
        results = self.index.search(qv, k=k, where=where, columns=self.columns(scorer), **search_kw)
        return [[Hit(i, s, m) for i, s, m in row] for row in results]

    def score_matrix(
        self, queries: Sequence[Any], scorer: Scorer | None = None, schema: str | None = None
    ) -> tuple[np.ndarray, list[str]]:
        """Scores of every query against every gallery item [Q, N] and the items' ids (for evaluation)."""
        ids = self.index.ids
        vecs = self.index.get_vectors(ids)
        return self.query_vectors(list(queries), scorer, schema) @ vecs.T, ids

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> AttributeSearcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: the fused scorer's weight for three-state bundles: measured on the val identities (benchmarks/partial_queries.py
#: --fusion-weights): at 3, fused ties the best scorer on whole-vector queries (Market-1501 mAP 0.487, PETA 0.387)
#: and the recognition scorer on partial ones (0.809, 0.894 against 0.809, 0.896); the embedding alone: 0.743, 0.784
SIGNED_FUSION_WEIGHT = 3.0


def _default_scorer(scorer: str, bundle: Bundle) -> Scorer:
    """``"auto"`` resolved (CLEAR's embedding where the bundle has its retrieval stage), and checked."""
    if scorer == "auto":
        scorer = "embedding" if bundle.has_retrieval else "recognition"
        if bundle.has_retrieval and bundle.query_encoding == "signed":
            scorer = "fused"
    if scorer not in SCORERS:
        raise ValueError(f"scorer must be auto or one of {', '.join(SCORERS)}, got {scorer!r}")
    if scorer != "recognition" and not bundle.has_retrieval:
        raise BundleError(
            f"{bundle.path} has no retrieval stage: use scorer='recognition', or train stage 2 and re-export"
        )
    return scorer


def _track_probabilities(probabilities: np.ndarray, a: int) -> np.ndarray:
    """``add_probabilities``' probabilities as [N, A] float32 (one item's [A] too), finite and in [0, 1]."""
    probs = np.asarray(probabilities, dtype=np.float32)
    if probs.ndim == 1:
        probs = probs[None]
    if probs.shape != (len(probs), a):
        raise ValueError(f"probabilities must have shape [N, {a}] (this bundle's attributes), got {probs.shape}")
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
        raise ValueError("probabilities must be finite numbers in [0, 1]")
    return probs


def _track_embeddings(embeddings: np.ndarray | None, n: int, d: int, bundle: Bundle) -> np.ndarray | None:
    """``add_probabilities``' embeddings as [n, D] float32: required with the retrieval stage, refused without."""
    if not d:
        if embeddings is not None:
            raise ValueError(f"{bundle.path} has no retrieval stage: pass probabilities only (embeddings=None)")
        return None
    if embeddings is None:
        raise ValueError(f"{bundle.path} has the retrieval stage: pass embeddings [N, {d}] with the probabilities")
    emb = np.asarray(embeddings, dtype=np.float32)
    emb = emb[None] if emb.ndim == 1 else emb
    if emb.shape != (n, d):
        raise ValueError(f"embeddings must have shape [{n}, {d}] (this bundle's D), got {emb.shape}")
    return emb


def _storable(
    items: Sequence[Any],
    ids: Sequence[str] | None,
    metadata: Sequence[Mapping[str, Any] | None] | None,
    errors: str,
) -> tuple[list[dict[str, Any]], list[int]]:
    """Every input's metadata entry (source defaulting to its path), and the inputs whose id and source the
    index can store (UTF-8 text); the others raise, or with ``errors="skip"`` are logged and left out.
    Mismatched lengths and an unknown ``errors`` are a ValueError before anything is read."""
    if ids is not None and len(ids) != len(items):
        raise ValueError(f"{len(ids)} ids for {len(items)} images")
    if metadata is not None and len(metadata) != len(items):
        raise ValueError(f"{len(metadata)} metadata entries for {len(items)} images")
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
    entries: list[dict[str, Any]] = []
    todo: list[int] = []
    for i, item in enumerate(items):
        entry = dict(metadata[i] or {}) if metadata is not None else {}
        if "source" not in entry and isinstance(item, (str, os.PathLike)):
            entry["source"] = os.fsdecode(item)
        entries.append(entry)
        texts = {"source": entry.get("source"), "id": ids[i] if ids is not None else None}
        bad = next((k for k, v in texts.items() if isinstance(v, str) and not is_utf8(v)), None)
        if bad is None:
            todo.append(i)
            continue
        shown = str(texts[bad]).encode("utf-8", "backslashreplace").decode()
        err = InputError(
            f"{shown}: the {bad} is not valid UTF-8 (a file name with undecodable bytes), so the index cannot "
            "store it; rename the file (e.g. convmv), or pass ids and metadata source as UTF-8 text",
            source=shown,
        )
        if errors == "raise":
            raise err
        logger.warning("not indexed: %s", err)
    return entries, todo


__all__ = ["AttributeSearcher", "Hit", "InputError", "QueryError", "SCORERS", "read_searcher_file"]
