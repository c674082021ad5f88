"""``MilvusIndex``: the gallery in Milvus (a Milvus Lite file in tests, a server or cluster in production).

The same protocol as the local index (:class:`~clear_sdk.index.base.GalleryIndex`: add, search with
``where`` / ``exclude`` / ``columns``, remove by id, filter or everything, retention, metadata, model
identity), so ``AttributeSearcher`` runs unchanged on either. One collection per gallery
(:mod:`.milvus_schema`):

- ``pk`` (the item id), ``seq`` (insertion order: ids come back in add order, like the local index);
- metadata columns ``camera``, ``timestamp``, ``track``, ``source`` (nullable), ``bbox`` and ``extra``
  (JSON): :meth:`~clear_sdk.index.metadata.Metadata.entity`; ``where`` filters become Milvus boolean
  expressions (:func:`~clear_sdk.index.where.to_milvus`), every value written by one escape function;
- one FLOAT_VECTOR field per scorer block (``fields``: name -> (c0, c1) columns), each with an
  inner-product index: ``FLAT`` (exact; the default, and what Milvus Lite runs) or any index type
  the server offers (``index_type="HNSW"``, ``"IVF_FLAT"``, ... with ``index_params``).

Partitions. ``partition_by="camera"`` or ``"day"`` (UTC date of ``timestamp``) adds a VARCHAR
``partition`` field that is the collection's Milvus *partition key* (``num_partitions`` hash buckets):
a ``where`` on ``camera`` or a bounded ``timestamp`` range also becomes a condition on ``partition``, so
Milvus searches and deletes only the buckets that can match. Fixed when the collection is created.

Writes are column-wise (one list per field, vectors as one block) where pymilvus offers it: building
row dicts cost the client more than the insert itself. Durability and atomicity are Milvus's: an
insert or a delete is one request.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from clear_sdk.errors import BundleError, DuplicateIdError
from clear_sdk.index.base import Columns, Hit, Ids, IndexBase, MetadataIn, Where, as_rows, check_k
from clear_sdk.index.metadata import ENTITY_FIELDS, Metadata, as_id_list, check_ids, check_remove, metadata_list
from clear_sdk.index.milvus_rows import MilvusRows
from clear_sdk.index.milvus_schema import (
    PARTITION_BY,
    MilvusLayout,
    create_collections,
    get_meta,
    import_pymilvus,
    lite_closed,
    lite_opened,
    open_collections,
    parse_location,
    put_meta,
)
from clear_sdk.index.where import milvus_in, parse_where, to_milvus

_INSERT_CHUNK = 10000


class MilvusIndex(IndexBase):
    """A gallery index stored in Milvus; see the module docstring for the schema."""

    def __init__(
        self,
        dim: int | None,
        location: str,
        *,
        collection: str | None = None,
        fields: Mapping[str, tuple[int, int]] | None = None,
        index_type: str = "FLAT",
        index_params: Mapping[str, Any] | None = None,
        search_params: Mapping[str, Any] | None = None,
        token: str | None = None,
        partition_by: str | None = None,
        num_partitions: int = 64,
    ) -> None:
        if partition_by is not None and partition_by not in PARTITION_BY:
            raise ValueError(f"partition_by must be None, 'camera' or 'day', got {partition_by!r}")
        if isinstance(num_partitions, bool) or not isinstance(num_partitions, int) or not 1 <= num_partitions <= 1024:
            raise ValueError(f"num_partitions must be an int in [1, 1024] (Milvus's limit), got {num_partitions!r}")
        pymilvus = import_pymilvus()
        uri, self.collection = parse_location(location, collection)
        self.location, self._token = location, token or ""
        self._lite = None if "://" in uri else os.path.abspath(uri)  # a Milvus Lite file this process serves
        try:
            self._client = pymilvus.MilvusClient(uri, token=self._token)
        except Exception as exc:  # pymilvus raises its own MilvusException and grpc errors alike
            hint = "another process has it open (Milvus Lite serves a file to one process)" if self._lite else (
                "check the URI, or start the server")  # fmt: skip
            raise BundleError(f"cannot open Milvus at {location} ({exc}); {hint}") from exc
        if self._lite:
            lite_opened(self._lite)
        self.index_type, self.search_params = index_type, dict(search_params or {})
        if self._client.has_collection(self.collection):
            self.layout = open_collections(self._client, self.collection, location, dim)
            if partition_by is not None and partition_by != self.layout.partition_by:
                raise BundleError(
                    f"Milvus collection {self.collection!r} is partitioned by {self.layout.partition_by or 'nothing'}, "
                    f"not {partition_by}: the partitioning is fixed at creation (open it without partition_by)"
                )
        else:
            if dim is None:
                raise BundleError(f"no collection {self.collection!r} at {location}; pass dim to create one")
            self.layout = MilvusLayout(int(dim), dict(fields or {"vector": (0, int(dim))}), partition_by)
            create_collections(
                self._client, self.collection, self.layout, index_type, index_params or {}, num_partitions
            )
        self.dim, self.fields, self.partition_by = self.layout.dim, self.layout.fields, self.layout.partition_by
        self._rows = MilvusRows(self._client, self.collection, uri, self._token)

    def _expression(self, where: Mapping[str, Any] | None) -> str:
        """``where`` as a Milvus expression, plus the ``partition`` condition it implies (Milvus prunes on it)."""
        if where is None:
            return ""
        clauses = parse_where(where)  # a bad filter fails even when the collection is empty
        expr = to_milvus(clauses)
        prune = self.layout.prune(clauses) if clauses else None
        if prune is None:
            return expr
        return "false" if prune == "false" else f"{expr} and ({prune})"

    def get_meta(self, key: str) -> str | None:
        return get_meta(self._client, self.collection, key)

    def set_meta_default(self, key: str, value: str) -> str:
        stored = self.get_meta(key)
        if stored is None:
            put_meta(self._client, self.collection, {key: value})
            stored = value
        return stored

    # ------------------------------------------------------------------------------------------ add

    def add(
        self, embeddings: np.ndarray, ids: Ids = None, metadata: MetadataIn = None, *, replace: bool = False
    ) -> list[str]:
        """Insert embeddings [N, dim] with ids and metadata (validated as by the local index); returns the ids."""
        emb = as_rows(embeddings, self.dim, "embeddings")
        ids = check_ids(ids, len(emb))
        mds = metadata_list(metadata, len(emb))
        if not ids:
            return []
        if not replace:
            existing = self._rows.existing(ids)
            if existing:
                raise DuplicateIdError(
                    f"id {existing[0]!r} is already in the index; nothing was added (or pass replace=True)", existing[0]
                )
        for s in range(0, len(ids), _INSERT_CHUNK):
            part = slice(s, s + _INSERT_CHUNK)
            self._rows.write(self._columns_of(ids[part], mds[part], emb[part], self._rows.seq + s), replace)
        self._rows.seq += len(ids)
        return ids

    def _columns_of(self, ids: list[str], mds: list[Metadata], emb: np.ndarray, seq: int) -> dict[str, list]:
        """One list per field (vector fields as lists of rows): the column-wise form of an insert."""
        cams, ts, tracks, bboxes, sources, extras = (list(c) for c in zip(*mds))
        cols: dict[str, list] = {
            "pk": ids, "seq": list(range(seq, seq + len(ids))), "camera": cams, "timestamp": ts, "track": tracks,
            "source": sources, "bbox": [Metadata(bbox=b).entity()["bbox"] for b in bboxes],
            "extra": [Metadata(extra=e).entity()["extra"] for e in extras],
        }  # fmt: skip
        if self.partition_by is not None:
            cols["partition"] = [self.layout.partition_of(c, t) for c, t in zip(cams, ts)]
        for name, (c0, c1) in self.fields.items():
            cols[name] = emb[:, c0:c1].tolist()
        return cols

    # --------------------------------------------------------------------------------------- search

    def _field_for(self, columns: tuple[int, int] | None) -> tuple[str, int, int]:
        want = (0, self.dim) if columns is None else (int(columns[0]), int(columns[1]))
        for name, cols in self.fields.items():
            if tuple(cols) == want:
                return name, *cols
        raise ValueError(
            f"this Milvus collection has vector fields for columns {dict(self.fields)}, not {want}; "
            "create it with a field for those columns"
        )

    def search(self, queries: np.ndarray, k: int = 10, where: Where = None, exclude: Iterable[str] | None = None, *,
               columns: Columns | None = None, exact: bool | None = None, precision: str | None = None,
               **params: Any) -> list[list[Hit]]:  # fmt: skip
        """Top-k per query by inner product over the vector field of ``columns``: lists of (id, score, metadata)."""
        q = as_rows(queries, self.dim, "queries", rows="Q")
        k = check_k(k)
        if exact is True and self.index_type != "FLAT":
            raise ValueError(f"exact=True needs a FLAT Milvus index; this collection uses {self.index_type}")
        name, c0, c1 = self._field_for(columns)
        expr = self._expression(where)
        ex = [exclude] if isinstance(exclude, str) else [i for i in exclude or [] if isinstance(i, str)]
        if ex:
            expr = " and ".join(filter(None, [expr and f"({expr})", f"not ({milvus_in('pk', ex)})"]))
        res = self._client.search(
            self.collection, data=[row[c0:c1] for row in q], anns_field=name, limit=k, filter=expr,
            output_fields=["seq", *ENTITY_FIELDS],
            search_params={"metric_type": "IP", "params": {**self.search_params, **params}},
        )  # fmt: skip
        out = []
        for hits in res:
            rows = [(h["pk"] if "pk" in h else h["id"], float(h["distance"]), h["entity"]) for h in hits]
            rows.sort(key=lambda r: (-r[1], r[2]["seq"]))  # ties by insertion order, as the local index
            out.append([(i, s, Metadata.from_entity(e).to_dict()) for i, s, e in rows])
        return out

    # -------------------------------------------------------------------------------------- removal

    def remove(self, ids: Ids = None, *, where: Where = None, everything: bool = False) -> int:
        """Delete items by id (unknown ids are a KeyError), by filter, or ``everything``."""
        where = check_remove(ids, where, everything)
        if ids is not None:
            ids = as_id_list(ids)
            self._rows.get(ids, ["pk"])  # unknown ids: KeyError, nothing deleted
            self._rows.delete(ids)
            return len(ids)
        expr = self._expression(where) or "seq >= 0"
        n = self._rows.count(expr) if expr != "false" else 0
        if n:
            self._rows.delete(expr=expr)
        return n

    # ---------------------------------------------------------------------------------------- reads

    @property
    def ids(self) -> list[str]:
        return [i for i, _ in self._rows.all(["pk"])]

    def get_vectors(self, ids: Sequence[str]) -> np.ndarray:
        ids = as_id_list(ids)
        got = self._rows.get(ids, list(self.fields))
        out = np.zeros((len(ids), self.dim), np.float32)
        for j, i in enumerate(ids):
            for name, (c0, c1) in self.fields.items():
                out[j, c0:c1] = got[i][name]
        return out

    def get_metadata(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        ids = as_id_list(ids)
        got = self._rows.get(ids, list(ENTITY_FIELDS))
        return [Metadata.from_entity(got[i]).to_dict() for i in ids]

    def select(self, where: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        rows = self._rows.all(list(ENTITY_FIELDS), self._expression(where))
        return [(i, Metadata.from_entity(r).to_dict()) for i, r in rows]

    def time_span(self) -> tuple[float, float] | None:
        ts = [r["timestamp"] for _, r in self._rows.all(["timestamp"], "timestamp is not null")]
        return (min(ts), max(ts)) if ts else None

    def __len__(self) -> int:
        return self._rows.count("")

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and bool(self._rows.existing([item_id]))

    def refresh(self) -> None:
        """Milvus is always current (strong consistency); nothing to reload."""

    def verify(self, start: int = 0) -> list[str]:
        """Milvus keeps its own integrity; nothing to check client-side."""
        return []

    @property
    def corrupt_ids(self) -> list[str]:
        """Always empty: Milvus checks its own data."""
        return []

    def close(self) -> None:
        """Close the client; the last index on a Milvus Lite file stops its server, so another process can open it."""
        if self._client is None:
            return
        self._rows.close()
        self._client.close()
        self._client = None
        if self._lite:
            lite_closed(self._lite)

    def __repr__(self) -> str:
        part = f", partition_by={self.partition_by!r}" if self.partition_by else ""
        return f"MilvusIndex(dim={self.dim}, {self.location}, collection={self.collection!r}{part})"
