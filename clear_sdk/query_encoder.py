"""``QueryEncoder``: attribute queries -> vectors, from a bundle alone (no index needed).

The partner of :meth:`Recognizer.embed <clear_sdk.recognizer.Recognizer.embed>`, as open_clip pairs
``encode_text`` with ``encode_image``: ``encode`` gives CLEAR's query embeddings [Q, D], whose inner
product with image embeddings is the embedding score::

    rec, enc = Recognizer("bundles/pa100k"), QueryEncoder("bundles/pa100k")
    scores = enc.encode(["female, backpack"]) @ rec.embed(crops).T

``vectors`` gives each query as a row against a gallery's stored rows for a scorer
(:class:`~clear_sdk.gallery_layout.GalleryLayout`), cached: people re-run and refine the same queries.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from clear_sdk.backends import Backend, create_backend
from clear_sdk.bundle import Bundle
from clear_sdk.description import DescriptionTemplate, template_for
from clear_sdk.errors import BundleError
from clear_sdk.gallery_layout import GalleryLayout, Scorer
from clear_sdk.query import hard_input, parse_query, query_to_vectors
from clear_sdk.views import output_view, query_to_unified

__all__ = ["QueryEncoder"]

QUERY_CACHE_SIZE = 1024  # encoded queries kept (a few KB each)


class QueryEncoder:
    """Attribute queries (text, a list of names, or a dict name -> bool) as CLEAR embeddings and scorer rows.

    ``backend``: a name for :func:`~clear_sdk.backends.create_backend` (this encoder then owns it and
    :meth:`close` releases it), or a :class:`~clear_sdk.backends.Backend` to share, e.g. a
    Recognizer's. Table 6's query forms come from the bundle: HA+SP (the paper's) and SP / W read
    text through the bundle's language model (``text.onnx``), HA needs none.
    """

    def __init__(
        self,
        bundle: str | os.PathLike[str] | Bundle,
        backend: str | Backend = "auto",
        device: str | None = None,
        *,
        fusion_weight: float = 0.1,
    ) -> None:
        self.bundle = Bundle.open(bundle)
        self._owns_backend = not isinstance(backend, Backend)
        self.backend = create_backend(self.bundle, backend, device=device)
        self.layout = GalleryLayout.of(self.bundle)
        self.fusion_weight = float(fusion_weight)
        self._form = self.bundle.query_form
        self._text, self._template = _text_encoder(self.bundle) if self.bundle.has_retrieval else (None, None)
        self._cache: OrderedDict[tuple[str, float, str], np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    def parse(self, query: Any) -> dict[str, bool]:
        """The attribute constraints of a query (text, list of names, or dict name -> bool)."""
        return parse_query(query, self.bundle.attribute_names, self.bundle.groups)

    def in_schema(self, queries: Sequence[Any], schema: str | None) -> list[Any]:
        """Queries written in a dataset view's names (``schema="market1501"``) as queries in the bundle's names.

        ``None`` (or the bundle's own dataset) leaves them as they are. A unified-schema bundle maps each
        view's attributes (:func:`clear_sdk.views.query_to_unified`); attributes a query does not name stay
        not asked.
        """
        if schema is None:  # every search passes here: no view to build
            return list(queries)
        out = output_view(self.bundle.dataset, self.bundle.attribute_names, self.bundle.groups, schema)
        if out.view is None:
            return list(queries)
        names, groups = list(out.names), out.groups
        return [query_to_unified(out.view, parse_query(q, names, groups)) for q in queries]

    def encode(self, queries: Sequence[Any] | Any) -> np.ndarray:
        """CLEAR query embeddings [Q, D] = normalised [f_attr(hard); f_text(soft)], as training computed them."""
        if not self.bundle.has_retrieval:
            raise BundleError(f"{self.bundle.path} has no retrieval stage: no query embeddings")
        qs = [queries] if isinstance(queries, (str, Mapping)) else list(queries)
        if not qs:
            return np.zeros((0, self.layout.embed_dim), np.float32)
        names, groups = self.bundle.attribute_names, self.bundle.groups
        hm = [query_to_vectors(self.parse(q), names, groups) for q in qs]
        hard = np.stack([h for h, _ in hm]).astype(np.float32)
        soft = None
        if self._text is not None:  # W: the attribute words alone; HA+SP and SP: the pseudo-description
            render = self._template.words if self._form == "words" else self._template.describe
            soft = self._text.encode([render({n: bool(v) for n, v in zip(names, h)}, names) for h in hard])
        return self.backend.run_query(hard_input(hard, np.stack([m for _, m in hm]), self.bundle.query_encoding), soft)

    def vectors(self, queries: Sequence[Any], scorer: Scorer) -> np.ndarray:
        """Each query as a row against the stored gallery rows for ``scorer``: [Q, D + 2A] (cached)."""
        self.layout.columns(scorer)  # an unknown scorer fails before anything is encoded
        queries = list(queries)
        keys = [(scorer, self.fusion_weight, _query_key(q)) for q in queries]
        with self._cache_lock:
            hit = [self._cache.get(key) if key[2] is not None else None for key in keys]
            for key, v in zip(keys, hit):
                if v is not None:
                    self._cache.move_to_end(key)
        missing = [i for i, v in enumerate(hit) if v is None]
        if missing:
            fresh = self._rows([queries[i] for i in missing], scorer)
            with self._cache_lock:
                for j, i in enumerate(missing):
                    hit[i] = fresh[j]
                    if keys[i][2] is not None:
                        self._cache[keys[i]] = fresh[j]
                while len(self._cache) > QUERY_CACHE_SIZE:
                    self._cache.popitem(last=False)
        if not queries:
            return np.zeros((0, self.layout.width), np.float32)
        return np.stack(hit)

    def _rows(self, queries: list[Any], scorer: Scorer) -> np.ndarray:
        emb = self.encode(queries) if scorer != "recognition" else None
        parsed = [self.parse(q) for q in queries] if scorer != "embedding" else [{}] * len(queries)
        return self.layout.query_rows(parsed, scorer, emb, self.fusion_weight)

    def clear_cache(self) -> None:
        """Forget the encoded queries (the cache holds the last 1024)."""
        with self._cache_lock:
            self._cache.clear()

    def close(self) -> None:
        """Release the backend when this encoder created it (a shared one stays open)."""
        if self._owns_backend:
            self.backend.close()

    def __enter__(self) -> QueryEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text_encoder(bundle: Bundle) -> tuple[Any, DescriptionTemplate | None]:
    """The bundle's language model and description template, or (None, None) for the HA form (no text)."""
    if bundle.query_form == "hard":
        return None, None
    from clear_sdk.text import OnnxTextEncoder

    spec = bundle.text_encoder
    if spec is None:
        raise BundleError(f"{bundle.path}: the manifest has no text encoder entry; re-export the bundle")
    # the two files come from models.text / models.tokenizer, which Bundle.open checked (inside, sha256)
    text = OnnxTextEncoder(
        bundle.text_model_path, bundle.tokenizer_path, spec.n_w, pad_id=spec.pad_id, pad_token=spec.pad_token
    )
    if bundle.soft_dim is not None and text.soft_dim != bundle.soft_dim:
        raise BundleError(
            f"{bundle.text_model_path} gives soft queries of {text.soft_dim} values but the manifest's "
            f"dims.soft_dim is {bundle.soft_dim}; re-export the bundle"
        )
    tpl = bundle.description_template
    return text, DescriptionTemplate.from_dict(tpl) if tpl else template_for(bundle.attribute_names)


def _query_key(query: Any) -> str | None:
    """A hashable key of a query for the cache (None: not cacheable)."""
    try:
        if isinstance(query, str):
            return "s:" + query
        if isinstance(query, Mapping):
            return "d:" + json.dumps(sorted((str(k), bool(v)) for k, v in query.items()))
        return "l:" + json.dumps([str(v) for v in query])
    except TypeError:
        return None
