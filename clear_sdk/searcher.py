"""Attribute-based person retrieval over a gallery index: ``AttributeSearcher``.

Every gallery item is stored as one vector ``[E^v (D); log p (A); log(1 - p) (A)]``: its visual
embedding and the log-probabilities the recogniser gives each attribute. Each scorer is then a
single inner product against a query vector, so all of them use the same exact blocked top-k
(or FAISS) search:

- ``embedding`` (CLEAR, DESIGN §3): ``[E^h; E^s] . E^v`` = cos(E^v, [E^h; E^s]), exactly as training scored;
- ``recognition``: the sum of the log-likelihoods of the query's attributes (wanted ones by log p,
  unwanted ones by log(1 - p)) under the recogniser's probabilities;
- ``fused``: embedding score + ``fusion_weight`` x the mean per-attribute log-likelihood.

The embedding scorer reads a partial query ("female, backpack") as a full attribute vector whose
unnamed attributes are absent, as training did; the recognition scorer ignores unnamed
attributes. ``clear-sdk bench --dataset`` measures which wins on your data.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clear_sdk.bundle import Bundle
from clear_sdk.description import DescriptionTemplate, template_for
from clear_sdk.errors import BundleError, InputError, QueryError
from clear_sdk.index import DB_FILE, is_milvus_uri, open_index
from clear_sdk.query import parse_query, query_to_vectors
from clear_sdk.recognizer import Recognizer

logger = logging.getLogger(__name__)

Scorer = Literal["embedding", "recognition", "fused"]
SCORERS = ("embedding", "recognition", "fused")
_LOG_FLOOR = float(np.log(1e-6))  # log-probabilities are clipped here so one confident miss is not -inf
_SEARCHER_FILE = "searcher.json"
_IDENTITY_KEY = "model_identity"
_QUERY_CACHE_SIZE = 1024  # encoded queries kept (a few KB each): people re-run and refine the same queries
DAY_SECONDS = 86400.0


def read_searcher_file(index_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``searcher.json`` of an index folder (which bundle built it); a BundleError naming the file if bad."""
    path = Path(index_dir) / _SEARCHER_FILE
    try:
        if path.stat().st_size > 1 << 20:
            raise BundleError(f"{path} is larger than any searcher.json; move it away and pass --bundle")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise BundleError(
            f"{path} is missing: {Path(index_dir)} is not an index written by AttributeSearcher "
            "(clear-sdk index writes one), or pass the bundle explicitly (--bundle)"
        ) from e
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise BundleError(
            f"{path} is not readable JSON ({reason}); move it away and pass the bundle explicitly (--bundle)"
        ) from e
    if not isinstance(data, dict):
        raise BundleError(f"{path} does not hold a JSON object; move it away and pass the bundle explicitly (--bundle)")
    return data


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
    (``"milvus://host:19530/collection"``). ``scorer``: the default of :meth:`search`; ``"auto"`` is
    CLEAR's embedding when the bundle has the retrieval stage, else the recognition scorer.
    ``index_kwargs`` go to :class:`~clear_sdk.index.VectorIndex` (e.g. ``faiss_type="ivf"`` for
    approximate search at millions of items, ``precision="fp32"``) or :class:`~clear_sdk.index.MilvusIndex`.
    Each scorer reads only its own block of the stored vector (the embedding scorer the first D
    columns), and encoded queries are cached (:meth:`clear_query_cache`).
    """

    def __init__(
        self,
        bundle: str | os.PathLike[str] | Bundle,
        index_dir: str | os.PathLike[str] | None = None,
        backend: str = "auto",
        device: str | None = None,
        scorer: Scorer | Literal["auto"] = "auto",
        fusion_weight: float = 0.1,
        batch_size: int = 32,
        index: str | os.PathLike[str] | None = None,
        **index_kwargs: Any,
    ) -> None:
        if index is not None and index_dir is not None:
            raise ValueError("pass index_dir or index, not both (index also takes a Milvus URI)")
        location = index if index is not None else index_dir
        self.recognizer = Recognizer(bundle, backend=backend, device=device, batch_size=batch_size)
        self.bundle = self.recognizer.bundle
        self._names = self.recognizer.attribute_names
        self._groups = self.recognizer.groups
        self._has_embedding = self.bundle.has_retrieval
        # Table 6's query forms: HA+SP (the paper's) and SP/W read text through the bundle's language
        # model; HA needs none (its query graph takes the attribute vector alone)
        self._form = self.bundle.query_form
        self._uses_text = self._form != "hard"
        if scorer == "auto":  # CLEAR's embedding where the bundle has its retrieval stage
            scorer = "embedding" if self._has_embedding else "recognition"
        if scorer not in SCORERS:
            raise ValueError(f"scorer must be auto or one of {', '.join(SCORERS)}, got {scorer!r}")
        if scorer != "recognition" and not self._has_embedding:
            raise BundleError(
                f"{self.bundle.path} has no retrieval stage: use scorer='recognition', or train stage 2 and re-export"
            )
        self.scorer: Scorer = scorer
        self.fusion_weight = float(fusion_weight)
        self._text = None
        self._template: DescriptionTemplate | None = None
        if self._has_embedding and self._uses_text:
            from clear_sdk.text import OnnxTextEncoder

            spec = self.bundle.text_encoder_spec
            if spec is None:
                raise BundleError(f"{self.bundle.path}: the manifest has no text encoder entry; re-export the bundle")
            # the two files come from models.text / models.tokenizer, which Bundle.open checked (inside, sha256)
            self._text = OnnxTextEncoder(
                self.bundle.text_model_path, self.bundle.tokenizer_path, spec.n_w, pad_id=spec.pad_id,
                pad_token=spec.pad_token,
            )  # fmt: skip
            if self.bundle.soft_dim is not None and self._text.soft_dim != self.bundle.soft_dim:
                raise BundleError(
                    f"{self.bundle.text_model_path} gives soft queries of {self._text.soft_dim} values but the "
                    f"manifest's dims.soft_dim is {self.bundle.soft_dim}; re-export the bundle"
                )
            tpl = self.bundle.description_template
            self._template = DescriptionTemplate.from_dict(tpl) if tpl else template_for(self._names)
        self._d = int(self.bundle.embed_dim or 0)
        a = len(self._names)
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        if is_milvus_uri(location):  # one inner-product field per scorer block
            index_kwargs.setdefault("fields", self._fields())
        self.index = open_index(location, self._d + 2 * a, **index_kwargs)
        if is_milvus_uri(location):
            self._check_identity_only(str(location))
        elif location is not None:
            self._check_or_write_identity(Path(location))

    # ------------------------------------------------------------------------------ properties
    @property
    def embedding_dim(self) -> int:
        """D of the visual / query embeddings (0 for a recognition-only bundle)."""
        return self._d

    @property
    def attribute_names(self) -> list[str]:
        return list(self._names)

    def __len__(self) -> int:
        return len(self.index)

    def columns(self, scorer: Scorer | None = None) -> tuple[int, int]:
        """The columns of the stored vector a scorer reads: E^v for embedding, the log-probabilities for recognition."""
        scorer = scorer or self.scorer
        a = len(self._names)
        if scorer == "embedding":
            return (0, self._d)
        if scorer == "recognition":
            return (self._d, self._d + 2 * a)
        return (0, self._d + 2 * a)

    def _fields(self) -> dict[str, tuple[int, int]]:
        a = len(self._names)
        fields = {"attributes": (self._d, self._d + 2 * a)}
        if self._d:
            fields = {"embedding": (0, self._d), **fields, "fused": (0, self._d + 2 * a)}
        return fields

    def _identity(self) -> dict[str, Any]:
        rec = self.bundle.model_path("recognizer")
        sha = self.bundle.files.get(rec.name, {}).get("sha256") if rec is not None else None
        return {"recognizer_sha256": sha, "attributes": self._names, "embed_dim": self._d}

    def _check_or_write_identity(self, index_dir: Path) -> None:
        """An index holds one model's vectors: refuse to mix a gallery with another bundle's.

        The identity lives in the index database itself (``meta.model_identity``), so it cannot be lost
        apart from the vectors; ``searcher.json`` beside it only tells ``clear-sdk search`` which bundle
        to reopen the index with. An index written before the identity moved into the database takes
        it from its ``searcher.json`` once.
        """
        mine = self._identity()
        stored_text = self.index.get_meta(_IDENTITY_KEY)
        if stored_text is None:
            legacy = read_searcher_file(index_dir) if (index_dir / _SEARCHER_FILE).exists() else None
            if legacy is not None:
                self._compare_identity({k: legacy.get(k) for k in mine}, mine, index_dir)
            elif len(self.index):
                logger.warning(
                    "index %s holds %d items but no record of the model that made them; adopting %s",
                    index_dir,
                    len(self.index),
                    self.bundle.path,
                )
            stored_text = self.index.set_meta_default(_IDENTITY_KEY, json.dumps(mine, sort_keys=True))
        try:
            stored = json.loads(stored_text)
        except (ValueError, RecursionError) as e:
            raise BundleError(f"{index_dir}: the model identity in {DB_FILE} is not JSON; rebuild the index") from e
        self._compare_identity(stored, mine, index_dir)
        path = index_dir / _SEARCHER_FILE
        if not path.is_file():  # the bundle path lets `clear-sdk search` reopen the index alone
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({**mine, "bundle": str(Path(self.bundle.path).resolve())}, indent=2))
            os.replace(tmp, path)

    def _check_identity_only(self, where: str) -> None:
        mine = self._identity()
        stored = json.loads(self.index.set_meta_default(_IDENTITY_KEY, json.dumps(mine, sort_keys=True)))
        self._compare_identity(stored, mine, Path(where))

    @staticmethod
    def _compare_identity(stored: Mapping[str, Any], mine: dict[str, Any], index_dir: Path) -> None:
        if {k: stored.get(k) for k in mine} != mine:
            raise BundleError(
                f"{index_dir} was indexed with another model (recognizer sha256 {stored.get('recognizer_sha256')}"
                f" vs {mine['recognizer_sha256']}); search it with the bundle that built it, or index the "
                "gallery into a new folder with this bundle"
            )

    # ----------------------------------------------------------------------------------- adding
    def _vectors(self, probs: np.ndarray, emb: np.ndarray | None) -> np.ndarray:
        """The stored rows [E^v; log p; log(1 - p)] (logs floored at _LOG_FLOOR), written in place in float32."""
        n, d, a = len(probs), self._d, len(self._names)
        out = np.empty((n, d + 2 * a), np.float32)
        if d:
            out[:, :d] = emb
        p = np.clip(np.asarray(probs, np.float32), 0.0, 1.0)
        floor = np.float32(math.exp(_LOG_FLOOR))
        np.log(np.maximum(p, floor), out=out[:, d : d + a])
        np.subtract(np.float32(1), p, out=p)
        np.log(np.maximum(p, floor), out=out[:, d + a :])
        np.maximum(out[:, d:], np.float32(_LOG_FLOOR), out=out[:, d:])  # log of the rounded floor may dip below it
        return out

    def add(
        self,
        images: Any,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        color: Literal["bgr", "rgb"] = "bgr",
        errors: Literal["raise", "skip"] = "raise",
    ) -> list[str | None]:
        """Recognise and embed ``images`` and add them; returns their ids (``None`` for a skipped bad input).

        Metadata keys: camera, timestamp, track, bbox, source (a file path's source defaults to
        the path); other keys are kept too. ``errors="skip"`` leaves bad inputs out and logs them.
        All good images of the call are committed together: a crash loses at most this call.
        """
        items = list(images) if not isinstance(images, (str, bytes, os.PathLike, np.ndarray)) else [images]
        if isinstance(images, np.ndarray) and images.ndim == 4:
            items = list(images)
        if ids is not None and len(ids) != len(items):
            raise ValueError(f"{len(ids)} ids for {len(items)} images")
        if metadata is not None and len(metadata) != len(items):
            raise ValueError(f"{len(metadata)} metadata entries for {len(items)} images")
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
        md_all: list[dict[str, Any]] = []
        todo: list[int] = []  # inputs whose id and metadata can be stored; the others fail alone
        for i, item in enumerate(items):
            entry = dict(metadata[i] or {}) if metadata is not None else {}
            if "source" not in entry and isinstance(item, (str, os.PathLike)):
                entry["source"] = os.fsdecode(item)
            md_all.append(entry)
            texts = [("source", entry.get("source")), ("id", ids[i] if ids is not None else None)]
            bad = next((k for k, v in texts if isinstance(v, str) and not is_utf8(v)), None)
            if bad is None:
                todo.append(i)
                continue
            shown = str(texts[0][1] if bad == "source" else texts[1][1]).encode("utf-8", "backslashreplace").decode()
            err = InputError(
                f"{shown}: the {bad} is not valid UTF-8 (a file name with undecodable bytes), so the index cannot "
                "store it; rename the file (e.g. convmv), or pass ids and metadata source as UTF-8 text",
                source=shown,
            )
            if errors == "raise":
                raise err
            logger.warning("not indexed: %s", err)
        vecs, keep = [], []
        for start, _chunk, ok, failures, probs, emb in self.recognizer._run(
            [items[i] for i in todo], color, errors, want_embedding=self._has_embedding
        ):
            for _, err in failures:
                logger.warning("not indexed: %s", err)
            if ok:
                vecs.append(self._vectors(probs, emb))
                keep.extend(todo[start + i] for i in ok)
        if not keep:
            return [None] * len(items)
        md = [md_all[i] for i in keep]
        added = self.index.add(np.concatenate(vecs), [ids[i] for i in keep] if ids is not None else None, md)
        out: list[str | None] = [None] * len(items)
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
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != self._d or not self._d:
            raise ValueError(f"embeddings must have shape [N, {self._d}] (this bundle's D), got {emb.shape}")
        probs = np.full((len(emb), len(self._names)), 0.5, np.float32) if probabilities is None else probabilities
        probs = np.asarray(probs, dtype=np.float32)
        if probs.shape != (len(emb), len(self._names)):
            raise ValueError(f"probabilities must have shape [{len(emb)}, {len(self._names)}], got {probs.shape}")
        md = list(metadata) if metadata is not None else None  # the index validates (and never mutates) them
        return self.index.add(self._vectors(probs, emb), list(ids), md)

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
        probs = np.asarray(probabilities, dtype=np.float32)
        if probs.ndim == 1:
            probs = probs[None]
        n, a = len(probs), len(self._names)
        if probs.shape != (n, a):
            raise ValueError(f"probabilities must have shape [N, {a}] (this bundle's attributes), got {probs.shape}")
        if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
            raise ValueError("probabilities must be finite numbers in [0, 1]")
        if self._d:
            if embeddings is None:
                raise ValueError(
                    f"{self.bundle.path} has the retrieval stage: pass embeddings [N, {self._d}] with the probabilities"
                )
            emb = np.asarray(embeddings, dtype=np.float32)
            if emb.ndim == 1:
                emb = emb[None]
            if emb.shape != (n, self._d):
                raise ValueError(f"embeddings must have shape [{n}, {self._d}] (this bundle's D), got {emb.shape}")
        elif embeddings is not None:
            raise ValueError(f"{self.bundle.path} has no retrieval stage: pass probabilities only (embeddings=None)")
        else:
            emb = None
        ids = [ids] if isinstance(ids, str) else list(ids)
        md = list(metadata) if metadata is not None else None  # the index validates (and never mutates) them
        return self.index.add(self._vectors(probs, emb), ids, md, replace=replace)

    # -------------------------------------------------------------------------------- deleting
    def remove(self, ids: Sequence[str] | None = None, *, where: Mapping[str, Any] | None = None) -> int:
        """Remove items by id or by a metadata filter (``where={"camera": "c3"}``), atomically; returns how many."""
        return self.index.remove(ids, where=where)

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
        return parse_query(query, self._names, self._groups)

    def encode_query(self, queries: Sequence[Any] | Any) -> np.ndarray:
        """CLEAR query embeddings [Q, D] = normalised [f_attr(hard); f_text(soft)], as training computed them."""
        if not self._has_embedding:
            raise BundleError(f"{self.bundle.path} has no retrieval stage: no query embeddings")
        qs = [queries] if isinstance(queries, (str, Mapping)) else list(queries)
        if not qs:
            return np.zeros((0, self._d), np.float32)
        hard, sentences = [], []
        for q in qs:
            parsed = self.parse(q)
            h, _ = query_to_vectors(parsed, self._names, self._groups)
            hard.append(h)
            if self._uses_text:  # W: the attribute words alone; HA+SP and SP: the pseudo-description
                present = {n: bool(v) for n, v in zip(self._names, h)}
                words = self._form == "words"
                render = self._template.words if words else self._template.describe
                sentences.append(render(present, self._names))
        soft = self._text.encode(sentences) if self._uses_text else None
        return self.recognizer.backend.run_query(np.stack(hard).astype(np.float32), soft)

    def clear_query_cache(self) -> None:
        """Forget the encoded queries (the cache holds the last 1024)."""
        with self._cache_lock:
            self._cache.clear()

    def query_vectors(self, queries: Sequence[Any], scorer: Scorer | None = None) -> np.ndarray:
        """Each query as a vector against the stored ``[E^v; log p; log(1-p)]`` items: [Q, D + 2A] (cached)."""
        scorer = scorer or self.scorer
        if scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {', '.join(SCORERS)}, got {scorer!r}")
        queries = list(queries)
        keys = [(scorer, _query_key(q)) for q in queries]
        with self._cache_lock:
            hit = [self._cache.get(key) if key[1] is not None else None for key in keys]
            for key, v in zip(keys, hit):
                if v is not None:
                    self._cache.move_to_end(key)
        missing = [i for i, v in enumerate(hit) if v is None]
        if missing:
            fresh = self._encode_vectors([queries[i] for i in missing], scorer)
            with self._cache_lock:
                for j, i in enumerate(missing):
                    hit[i] = fresh[j]
                    if keys[i][1] is not None:
                        self._cache[keys[i]] = fresh[j]
                while len(self._cache) > _QUERY_CACHE_SIZE:
                    self._cache.popitem(last=False)
        if not queries:
            return np.zeros((0, self._d + 2 * len(self._names)), np.float32)
        return np.stack(hit)

    def _encode_vectors(self, queries: Sequence[Any], scorer: Scorer) -> np.ndarray:
        a = len(self._names)
        out = np.zeros((len(queries), self._d + 2 * a), np.float32)
        if scorer in ("embedding", "fused"):
            out[:, : self._d] = self.encode_query(list(queries))
        if scorer in ("recognition", "fused"):
            for qi, q in enumerate(queries):
                parsed = self.parse(q)
                weight = 1.0 if scorer == "recognition" else self.fusion_weight / max(len(parsed), 1)
                for name, want in parsed.items():
                    j = self._names.index(name)
                    out[qi, self._d + (j if want else a + j)] = weight
        return out

    def search(
        self,
        query: Any,
        k: int = 10,
        where: Mapping[str, Any] | None = None,
        scorer: Scorer | None = None,
        **search_kw: Any,
    ) -> list[Hit]:
        """The ``k`` best gallery items for one query; ``where`` filters on metadata (``{"camera": "c1"}``).

        ``search_kw`` go to the index's search: ``exact=False`` (approximate), ``precision="fp32"``,
        ``nprobe=`` / ``ef_search=``.
        """
        return self.search_many([query], k=k, where=where, scorer=scorer, **search_kw)[0]

    def search_many(
        self,
        queries: Sequence[Any],
        k: int = 10,
        where: Mapping[str, Any] | None = None,
        scorer: Scorer | None = None,
        **search_kw: Any,
    ) -> list[list[Hit]]:
        """:meth:`search` for several queries in one pass over the gallery."""
        # the queries, k and the filter are checked the same way whether or not the gallery is empty
        qv = self.query_vectors(list(queries), scorer)
        results = self.index.search(qv, k=k, where=where, columns=self.columns(scorer), **search_kw)
        return [[Hit(i, s, m) for i, s, m in row] for row in results]

    def score_matrix(self, queries: Sequence[Any], scorer: Scorer | None = None) -> tuple[np.ndarray, list[str]]:
        """Scores of every query against every gallery item [Q, N] and the items' ids (for evaluation)."""
        ids = self.index.ids
        vecs = self.index.get_vectors(ids)
        return self.query_vectors(list(queries), scorer) @ vecs.T, ids

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> AttributeSearcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


__all__ = ["AttributeSearcher", "Hit", "InputError", "QueryError", "SCORERS"]
