"""``MilvusIndex``: the gallery in Milvus (a Milvus Lite file in tests, a server or cluster in production).

The same interface as :class:`~clear_sdk.index.VectorIndex` (add, search with ``where`` / ``exclude``
/ ``columns``, remove by id or filter, retention, metadata, model identity), so ``AttributeSearcher``
runs unchanged on either. One collection per gallery:

- ``pk`` (the item id), ``seq`` (insertion order: ids come back in add order, like the local index);
- metadata columns ``camera``, ``timestamp``, ``track``, ``source`` (nullable), ``bbox`` and ``extra``
  (JSON); ``where`` filters become Milvus boolean expressions (:func:`where_to_milvus`);
- one FLOAT_VECTOR field per scorer block (``fields``: name -> (c0, c1) columns), each with an
  inner-product index: ``FLAT`` (exact; the default, and what Milvus Lite runs) or any index type
  the server offers (``index_type="HNSW"``, ``"IVF_FLAT"``, ... with ``index_params``).

Partitions. ``partition_by="camera"`` or ``"day"`` (UTC date of ``timestamp``) adds a VARCHAR
``partition`` field that is the collection's Milvus *partition key* (``num_partitions`` hash buckets):
Milvus routes each insert to its bucket, and a ``where`` on ``camera`` (equality / IN / missing) or a
bounded ``timestamp`` range (up to ``_MAX_PRUNE_DAYS`` days) also becomes a condition on
``partition``, so Milvus searches and deletes only the buckets that can match. Items without a
camera (timestamp) go to the partition value ``""``. The choice is fixed when the collection is
created and stored with its layout.

The model identity and other ``meta`` keys live in a small side collection ``<name>__meta``.
Durability and atomicity are Milvus's: an insert or a delete is one request.
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import numpy as np

from clear_sdk.errors import BundleError, DuplicateIdError
from clear_sdk.index.metadata import (
    ENTITY_FIELDS,
    Metadata,
    as_id_list,
    check_ids,
    check_remove,
    metadata_list,
    retention_where,
    unknown_ids,
)
from clear_sdk.index.topk import as_rows
from clear_sdk.index.where import Clause, milvus_in, milvus_literal, parse_where, to_milvus

_MAX_TEXT = 4096
_INSERT_CHUNK = 10000
_QUERY_CHUNK = 500  # ids per "pk in [...]" expression
_PAGE = 16384  # seq values per query when reading everything (Milvus's largest query result)
PARTITION_BY = ("camera", "day")
_MAX_PRUNE_DAYS = 366  # a longer time range is searched in every partition (the expression would be long)


def _import_pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError as exc:
        raise ImportError(
            "a Milvus index needs pymilvus (and milvus-lite for a local .db file): pip install clear-sdk[milvus]"
        ) from exc
    return pymilvus


def parse_location(location: str, collection: str | None) -> tuple[str, str]:
    """(uri for MilvusClient, collection name) from ``milvus://host:port/name``, ``http://...`` or ``file.db``."""
    if location.startswith("milvus://"):
        u = urlparse(location)
        if not u.hostname:
            raise ValueError(f"{location!r}: a Milvus URI is milvus://host:19530/collection")
        name = u.path.strip("/") or collection or "gallery"
        return f"http://{u.hostname}:{u.port or 19530}", name
    return location, collection or "gallery"


class MilvusIndex:
    """A gallery index stored in Milvus; see the module docstring for the schema."""

    path = None  # no local folder (TrackIndexer writes crops only beside a local index)
    backend = "milvus"

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
        pymilvus = _import_pymilvus()
        self._DataType = pymilvus.DataType
        uri, self.collection = parse_location(location, collection)
        self.location = location
        self._lite = None if "://" in uri else os.path.abspath(uri)  # a Milvus Lite file this process serves
        try:
            self._client = pymilvus.MilvusClient(uri, token=token or "")
        except Exception as exc:  # pymilvus raises its own MilvusException and grpc errors alike
            hint = "another process has it open (Milvus Lite serves a file to one process)" if self._lite else (
                "check the URI, or start the server")  # fmt: skip
            raise BundleError(f"cannot open Milvus at {location} ({exc}); {hint}") from exc
        if self._lite:
            _LITE_USERS[self._lite] += 1
        self._meta_name = f"{self.collection}__meta"
        self.index_type, self.search_params = index_type, dict(search_params or {})
        if self._client.has_collection(self.collection):
            self._open_existing(dim)
            if partition_by is not None and partition_by != self.partition_by:
                raise BundleError(
                    f"Milvus collection {self.collection!r} is partitioned by {self.partition_by or 'nothing'}, not "
                    f"{partition_by}: the partitioning is fixed at creation (open it without partition_by)"
                )
        else:
            if dim is None:
                raise BundleError(f"no collection {self.collection!r} at {location}; pass dim to create one")
            self.dim = int(dim)
            self.fields = dict(fields or {"vector": (0, self.dim)})
            self.partition_by = partition_by
            self._create(index_params or {}, num_partitions)
        self._seq = self._next_seq()

    # ---------------------------------------------------------------------------------------- schema

    def _create(self, index_params: Mapping[str, Any], num_partitions: int) -> None:
        dt, c = self._DataType, self._client
        for name, (c0, c1) in self.fields.items():
            if not (0 <= c0 < c1 <= self.dim):
                raise ValueError(f"field {name!r}: columns must lie in [0, {self.dim}], got ({c0}, {c1})")
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", dt.VARCHAR, is_primary=True, max_length=_MAX_TEXT)
        schema.add_field("seq", dt.INT64)
        schema.add_field("camera", dt.VARCHAR, max_length=_MAX_TEXT, nullable=True)
        schema.add_field("timestamp", dt.DOUBLE, nullable=True)
        schema.add_field("track", dt.INT64, nullable=True)
        schema.add_field("source", dt.VARCHAR, max_length=_MAX_TEXT, nullable=True)
        schema.add_field("bbox", dt.JSON, nullable=True)
        schema.add_field("extra", dt.JSON, nullable=True)
        part: dict[str, Any] = {}
        if self.partition_by is not None:  # a partition key may not be nullable: "" holds the items without one
            schema.add_field("partition", dt.VARCHAR, max_length=_MAX_TEXT, is_partition_key=True)
            part["num_partitions"] = int(num_partitions)
        params = c.prepare_index_params()
        for name, (c0, c1) in self.fields.items():
            schema.add_field(name, dt.FLOAT_VECTOR, dim=c1 - c0)
            params.add_index(name, index_type=self.index_type, metric_type="IP", params=dict(index_params))
        c.create_collection(self.collection, schema=schema, index_params=params, consistency_level="Strong", **part)
        meta = c.create_schema(auto_id=False, enable_dynamic_field=False)
        meta.add_field("key", dt.VARCHAR, is_primary=True, max_length=256)
        meta.add_field("value", dt.VARCHAR, max_length=65535)
        meta.add_field("v", dt.FLOAT_VECTOR, dim=2)  # Milvus needs a vector field in every collection
        mp = c.prepare_index_params()
        mp.add_index("v", index_type="FLAT", metric_type="L2")
        c.create_collection(self._meta_name, schema=meta, index_params=mp, consistency_level="Strong")
        layout = {"dim": self.dim, "fields": {k: list(v) for k, v in self.fields.items()},
                  "partition_by": self.partition_by}  # fmt: skip
        self._put_meta({"layout": json.dumps(layout), "format_version": "1"})

    def _open_existing(self, dim: int | None) -> None:
        if not self._client.has_collection(self._meta_name):
            raise BundleError(
                f"collection {self.collection!r} at {self.location} was not made by clear-sdk; pick another"
            )
        for name in (self._meta_name, self.collection):  # made (or released) by another process: load to query
            self._client.load_collection(name)
        layout = json.loads(self.get_meta("layout") or "{}")
        stored = int(layout.get("dim", -1))
        if dim is not None and int(dim) != stored:
            raise BundleError(
                f"Milvus collection {self.collection!r} holds {stored}-d vectors, not {dim}-d: it was built with "
                "another model. Open it with the model (bundle) that built it, or use another collection"
            )
        self.dim = stored
        self.fields = {k: (int(v[0]), int(v[1])) for k, v in layout["fields"].items()}
        self.partition_by = layout.get("partition_by")

    # ----------------------------------------------------------------------------------- partitions

    def _partition_of(self, camera: str | None, ts: float | None) -> str:
        if self.partition_by == "camera":
            return camera if camera is not None else ""
        return "" if ts is None else _day(ts)

    def _expression(self, where: Mapping[str, Any] | None) -> str:
        """``where`` as a Milvus expression, plus the ``partition`` condition it implies (Milvus prunes on it)."""
        if where is None:
            return ""
        clauses = parse_where(where)  # a bad filter fails even when it is empty
        expr = to_milvus(clauses)
        prune = self._partition_values(clauses) if clauses else None
        if prune is None:
            return expr
        return f"{expr} and ({milvus_in('partition', sorted(prune))})" if prune else "false"

    def _partition_values(self, clauses: list[Clause]) -> set[str] | None:
        """The partition values that can hold a match (None: any of them)."""
        key = {"camera": "camera", "day": "timestamp"}.get(self.partition_by or "")
        values: set[str] | None = None
        for c in clauses:
            if c.key != key:
                continue
            try:
                got = self._clause_partitions(c, key)
            except (OverflowError, OSError, ValueError):  # a timestamp no calendar date holds: no pruning
                got = None
            if got is not None:
                values = got if values is None else values & got
        return values

    @staticmethod
    def _clause_partitions(c: Clause, key: str) -> set[str] | None:
        """The partition values one clause on the partition's field allows (None: it does not narrow them)."""
        if c.op == "null":
            return {""}
        if key == "camera":
            return {str(c.value)} if c.op == "eq" else set(map(str, c.value)) if c.op == "in" else None
        if c.op in ("eq", "in"):
            return {_day(float(v)) for v in ([c.value] if c.op == "eq" else c.value)}
        if c.op != "range" or None in c.value:
            return None
        lo, hi = c.value
        if hi < lo:
            return set()
        if hi - lo > _MAX_PRUNE_DAYS * 86400.0:
            return None
        first = _dt.datetime.fromtimestamp(lo, _dt.timezone.utc).date()
        last = _dt.datetime.fromtimestamp(hi, _dt.timezone.utc).date()
        return {(first + _dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)}

    def _count(self, expr: str) -> int:
        return int(self._client.query(self.collection, filter=expr, output_fields=["count(*)"])[0]["count(*)"])

    def _next_seq(self) -> int:
        """One past the largest ``seq`` stored (Milvus has no max(), nor a query sorted by a field): a binary search
        on counts, ~2 log2(n) small queries."""
        if not self._count("seq >= 0"):
            return 0
        hi = 1
        while self._count(f"seq >= {hi}"):
            hi *= 2
        lo = hi // 2  # some seq >= lo (or lo == 0), none >= hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self._count(f"seq >= {mid}") else (lo, mid)
        return lo + 1

    # ----------------------------------------------------------------------------------------- meta

    def _put_meta(self, values: Mapping[str, str]) -> None:
        rows = [{"key": k, "value": v, "v": [0.0, 0.0]} for k, v in values.items()]
        self._client.upsert(self._meta_name, rows)

    def get_meta(self, key: str) -> str | None:
        res = self._client.query(self._meta_name, filter=f"key == {milvus_literal(key)}", output_fields=["value"])
        return res[0]["value"] if res else None

    def set_meta_default(self, key: str, value: str) -> str:
        stored = self.get_meta(key)
        if stored is None:
            self._put_meta({key: value})
            stored = value
        return stored

    # ------------------------------------------------------------------------------------------ add

    def add(
        self,
        embeddings: np.ndarray,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        replace: bool = False,
    ) -> list[str]:
        """Insert embeddings [N, dim] with ids and metadata (validated as by the local index); returns the ids."""
        emb = as_rows(embeddings, self.dim, "embeddings")
        n = len(emb)
        ids = check_ids(ids, n)
        mds = metadata_list(metadata, n)
        if n == 0:
            return []
        if not replace:
            existing = self._existing(ids)
            if existing:
                raise DuplicateIdError(
                    f"id {existing[0]!r} is already in the index; nothing was added (or pass replace=True)", existing[0]
                )
        rows = []
        for i, (item_id, md) in enumerate(zip(ids, mds)):
            row = {"pk": item_id, "seq": self._seq + i, **md.entity()}
            if self.partition_by is not None:
                row["partition"] = self._partition_of(md.camera, md.timestamp)
            for name, (c0, c1) in self.fields.items():
                row[name] = emb[i, c0:c1]
            rows.append(row)
        write = self._client.upsert if replace else self._client.insert
        for s in range(0, n, _INSERT_CHUNK):
            write(self.collection, rows[s : s + _INSERT_CHUNK])
        self._seq += n
        return ids

    def _existing(self, ids: Sequence[str]) -> list[str]:
        found: list[str] = []
        for s in range(0, len(ids), _QUERY_CHUNK):
            expr = milvus_in("pk", list(ids[s : s + _QUERY_CHUNK]))
            found += [r["pk"] for r in self._client.query(self.collection, filter=expr, output_fields=["pk"])]
        return found

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

    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        where: Mapping[str, Any] | None = None,
        exclude: Iterable[str] | None = None,
        *,
        columns: tuple[int, int] | None = None,
        exact: bool | None = None,
        precision: str | None = None,
        **params: Any,
    ) -> list[list[tuple[str, float, dict[str, Any]]]]:
        """Top-k per query by inner product over the vector field of ``columns``: lists of (id, score, metadata)."""
        q = as_rows(queries, self.dim, "queries", rows="Q")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if exact is True and self.index_type != "FLAT":
            raise ValueError(f"exact=True needs a FLAT Milvus index; this collection uses {self.index_type}")
        name, c0, c1 = self._field_for(columns)
        expr = self._expression(where)
        ex = [exclude] if isinstance(exclude, str) else list(exclude or [])
        if ex:
            expr = " and ".join(filter(None, [expr and f"({expr})", f"not ({milvus_in('pk', ex)})"]))
        out_fields = ["seq", *ENTITY_FIELDS]
        res = self._client.search(
            self.collection, data=[row[c0:c1] for row in q], anns_field=name, limit=int(k), filter=expr,
            output_fields=out_fields, search_params={"metric_type": "IP", "params": {**self.search_params, **params}},
        )  # fmt: skip
        out = []
        for hits in res:
            rows = [(h["pk"] if "pk" in h else h["id"], float(h["distance"]), h["entity"]) for h in hits]
            rows.sort(key=lambda r: (-r[1], r[2]["seq"]))  # ties by insertion order, as the local index
            out.append([(i, s, Metadata.from_entity(e).to_dict()) for i, s, e in rows])
        return out

    # -------------------------------------------------------------------------------------- removal

    def remove(
        self, ids: Sequence[str] | None = None, *, where: Mapping[str, Any] | None = None, everything: bool = False
    ) -> int:
        """Delete items by id (unknown ids are a KeyError) or by filter; one Milvus delete request."""
        where = check_remove(ids, where, everything)
        if ids is not None:
            ids = as_id_list(ids)
            have = set(self._existing(ids))
            missing = [i for i in ids if i not in have]
            if missing:
                raise unknown_ids(missing)
            if not ids:
                return 0
            for s in range(0, len(ids), _QUERY_CHUNK):
                self._client.delete(self.collection, filter=milvus_in("pk", ids[s : s + _QUERY_CHUNK]))
            return len(ids)
        expr = self._expression(where) or "seq >= 0"
        n = self._count(expr) if expr != "false" else 0
        if n:
            self._client.delete(self.collection, filter=expr)
        return n

    def remove_older_than(self, seconds: float, now: float | None = None) -> int:
        return self.remove(where=retention_where(seconds, now))

    # --------------------------------------------------------------------------------------- basics

    def __len__(self) -> int:
        res = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and bool(self._existing([item_id]))

    @property
    def ids(self) -> list[str]:
        return [i for i, _ in self._all(["pk"])]

    def _all(self, fields: list[str], expr: str = "") -> list[tuple[str, dict]]:
        """(id, entity) of every item matching ``expr``, in add order: read in windows of ``seq`` (pymilvus's
        query_iterator pages with an unescaped ``pk > "<last id>"``, which an id with a quote breaks)."""
        rows: list[dict] = []
        lo, top = 0, self._seq
        while True:
            window = f"seq >= {lo} and seq < {lo + _PAGE}"
            rows += self._client.query(self.collection, filter=f"{window} and ({expr})" if expr else window,
                                       output_fields=["seq", *fields])  # fmt: skip
            lo += _PAGE
            if lo >= top and not self._count(f"seq >= {lo}"):  # another process may have added past our seq
                break
        rows.sort(key=lambda r: r["seq"])
        return [(r["pk"], r) for r in rows]

    def _get(self, ids: Sequence[str], fields: list[str]) -> dict[str, dict]:
        ids = as_id_list(ids)
        got: dict[str, dict] = {}
        for s in range(0, len(ids), _QUERY_CHUNK):
            expr = milvus_in("pk", ids[s : s + _QUERY_CHUNK])
            got.update((r["pk"], r) for r in self._client.query(self.collection, filter=expr, output_fields=fields))
        missing = [i for i in ids if i not in got]
        if missing:
            raise unknown_ids(missing)
        return got

    def get_vectors(self, ids: Sequence[str]) -> np.ndarray:
        ids = as_id_list(ids)
        got = self._get(ids, list(self.fields))
        out = np.zeros((len(ids), self.dim), np.float32)
        for j, i in enumerate(ids):
            for name, (c0, c1) in self.fields.items():
                out[j, c0:c1] = got[i][name]
        return out

    def get_metadata(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        ids = as_id_list(ids)
        got = self._get(ids, list(ENTITY_FIELDS))
        return [Metadata.from_entity(got[i]).to_dict() for i in ids]

    def select(self, where: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        expr = self._expression(where)
        if expr == "false":
            return []
        return [(i, Metadata.from_entity(r).to_dict()) for i, r in self._all(list(ENTITY_FIELDS), expr)]

    def time_span(self) -> tuple[float, float] | None:
        ts = [r["timestamp"] for _, r in self._all(["timestamp"], "timestamp is not null")]
        return (min(ts), max(ts)) if ts else None

    def refresh(self) -> None:
        """Milvus is always current (strong consistency); kept for interface parity."""

    def verify(self, start: int = 0) -> list[str]:
        """Milvus keeps its own integrity; nothing to check client-side."""
        return []

    corrupt_ids: list[str] = []

    def close(self) -> None:
        """Close the client; the last index on a Milvus Lite file stops its server, so another process can open it."""
        if self._client is None:
            return
        self._client.close()
        self._client = None
        if self._lite and _LITE_USERS[self._lite] > 0:
            _LITE_USERS[self._lite] -= 1
            if not _LITE_USERS[self._lite]:
                _release_lite(self._lite)

    def __enter__(self) -> MilvusIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        part = f", partition_by={self.partition_by!r}" if self.partition_by else ""
        return f"MilvusIndex(dim={self.dim}, {self.location}, collection={self.collection!r}{part})"


_LITE_USERS: collections.Counter[str] = collections.Counter()  # open MilvusIndex objects per Milvus Lite file


def _release_lite(path: str) -> None:
    """Stop this process's Milvus Lite server of ``path`` (it holds the file's lock until the process exits)."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # an older milvus-lite: the lock goes with the process
        return
    server_manager_instance.release_server(path)


def _day(ts: float) -> str:
    """The UTC date of a timestamp, as the ``day`` partition value (``2026-12-01``); timestamps no calendar date
    holds (years before 1 or after 9999) go to the partitions ``<0001`` and ``>9999``."""
    try:
        return _dt.datetime.fromtimestamp(float(ts), _dt.timezone.utc).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return "<0001" if ts < 0 else ">9999"
