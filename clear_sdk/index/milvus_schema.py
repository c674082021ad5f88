"""The collections behind :class:`~clear_sdk.index.MilvusIndex`: schema, stored layout, partitions, Lite servers.

One gallery is two collections: ``<name>`` (``pk``, ``seq``, the metadata fields, one FLOAT_VECTOR field
per scorer block, and with ``partition_by`` a ``partition`` partition-key field) and ``<name>__meta``
(the index's key-value store: its layout and the model identity).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as _dt
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from clear_sdk.errors import BundleError
from clear_sdk.index.where import Clause, milvus_in, milvus_literal

MAX_TEXT = 4096
PARTITION_BY = ("camera", "day")
_MAX_PRUNE_DAYS = 366  # a longer time range is searched in every partition (the expression would be long)


def import_pymilvus() -> Any:
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


def day(ts: float) -> str:
    """The UTC date of a timestamp, as the ``day`` partition value (``2026-12-01``); timestamps no calendar date
    holds (years before 1 or after 9999) go to the partitions ``<0001`` and ``>9999``."""
    try:
        return _dt.datetime.fromtimestamp(float(ts), _dt.timezone.utc).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return "<0001" if ts < 0 else ">9999"


@dataclasses.dataclass
class MilvusLayout:
    """What is fixed when a gallery's collection is created: the row width, the vector fields, the partitioning."""

    dim: int
    fields: dict[str, tuple[int, int]]
    partition_by: str | None = None

    def to_json(self) -> str:
        fields = {k: list(v) for k, v in self.fields.items()}
        return json.dumps({"dim": self.dim, "fields": fields, "partition_by": self.partition_by})

    @classmethod
    def from_json(cls, text: str | None) -> MilvusLayout:
        d = json.loads(text or "{}")
        fields = {k: (int(v[0]), int(v[1])) for k, v in d.get("fields", {}).items()}
        return cls(int(d.get("dim", -1)), fields, d.get("partition_by"))

    def partition_of(self, camera: str | None, ts: float | None) -> str:
        """The partition value of an item (``""`` holds the items without a camera / timestamp)."""
        if self.partition_by == "camera":
            return camera if camera is not None else ""
        return "" if ts is None else day(ts)

    def prune(self, clauses: list[Clause]) -> str | None:
        """The ``partition in [...]`` condition that ``clauses`` imply (Milvus then searches only those), or None."""
        key = {"camera": "camera", "day": "timestamp"}.get(self.partition_by or "")
        values: set[str] | None = None
        for c in clauses:
            if c.key == key:
                got = _clause_partitions(c, key)
                if got is not None:
                    values = got if values is None else values & got
        return None if values is None else milvus_in("partition", sorted(values))


def _clause_partitions(c: Clause, key: str) -> set[str] | None:
    """The partition values one clause on the partition's field allows (None: it does not narrow them)."""
    if c.op == "null":
        return {""}
    if c.op == "none":
        return set()
    if key == "camera":
        return {str(c.value)} if c.op == "eq" else set(map(str, c.value)) if c.op == "in" else None
    if c.op in ("eq", "in"):
        return {day(float(v)) for v in ([c.value] if c.op == "eq" else c.value)}
    if None in c.value:
        return None
    lo, hi = c.value
    if hi < lo:
        return set()
    if hi - lo > _MAX_PRUNE_DAYS * 86400.0 or "<" in day(lo) + day(hi) or ">" in day(lo) + day(hi):
        return None
    first = _dt.date.fromisoformat(day(lo))
    return {
        (first + _dt.timedelta(days=i)).isoformat() for i in range((_dt.date.fromisoformat(day(hi)) - first).days + 1)
    }


def create_collections(
    client: Any, name: str, layout: MilvusLayout, index_type: str, index_params: Mapping[str, Any], num_partitions: int
) -> None:
    """Create the gallery and its ``__meta`` collection (strong consistency: a read sees every earlier write)."""
    dt = import_pymilvus().DataType
    for field, (c0, c1) in layout.fields.items():
        if not (0 <= c0 < c1 <= layout.dim):
            raise ValueError(f"field {field!r}: columns must lie in [0, {layout.dim}], got ({c0}, {c1})")
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", dt.VARCHAR, is_primary=True, max_length=MAX_TEXT)
    schema.add_field("seq", dt.INT64)
    schema.add_field("camera", dt.VARCHAR, max_length=MAX_TEXT, nullable=True)
    schema.add_field("timestamp", dt.DOUBLE, nullable=True)
    schema.add_field("track", dt.INT64, nullable=True)
    schema.add_field("source", dt.VARCHAR, max_length=MAX_TEXT, nullable=True)
    schema.add_field("bbox", dt.JSON, nullable=True)
    schema.add_field("extra", dt.JSON, nullable=True)
    part: dict[str, Any] = {}
    if layout.partition_by is not None:  # a partition key may not be nullable: "" holds the items without one
        schema.add_field("partition", dt.VARCHAR, max_length=MAX_TEXT, is_partition_key=True)
        part["num_partitions"] = int(num_partitions)
    params = client.prepare_index_params()
    for field, (c0, c1) in layout.fields.items():
        schema.add_field(field, dt.FLOAT_VECTOR, dim=c1 - c0)
        params.add_index(field, index_type=index_type, metric_type="IP", params=dict(index_params))
    client.create_collection(name, schema=schema, index_params=params, consistency_level="Strong", **part)
    meta = client.create_schema(auto_id=False, enable_dynamic_field=False)
    meta.add_field("key", dt.VARCHAR, is_primary=True, max_length=256)
    meta.add_field("value", dt.VARCHAR, max_length=65535)
    meta.add_field("v", dt.FLOAT_VECTOR, dim=2)  # Milvus needs a vector field in every collection
    mp = client.prepare_index_params()
    mp.add_index("v", index_type="FLAT", metric_type="L2")
    client.create_collection(f"{name}__meta", schema=meta, index_params=mp, consistency_level="Strong")
    put_meta(client, name, {"layout": layout.to_json(), "format_version": "1"})


def put_meta(client: Any, name: str, values: Mapping[str, str]) -> None:
    client.upsert(f"{name}__meta", [{"key": k, "value": v, "v": [0.0, 0.0]} for k, v in values.items()])


def get_meta(client: Any, name: str, key: str) -> str | None:
    res = client.query(f"{name}__meta", filter=f"key == {milvus_literal(key)}", output_fields=["value"])
    return res[0]["value"] if res else None


def open_collections(client: Any, name: str, location: str, dim: int | None) -> MilvusLayout:
    """Load a gallery's collections (made, or released, by another process) and read its layout."""
    if not client.has_collection(f"{name}__meta"):
        raise BundleError(f"collection {name!r} at {location} was not made by clear-sdk; pick another")
    for coll in (f"{name}__meta", name):
        client.load_collection(coll)
    layout = MilvusLayout.from_json(get_meta(client, name, "layout"))
    if dim is not None and int(dim) != layout.dim:
        raise BundleError(
            f"Milvus collection {name!r} holds {layout.dim}-d vectors, not {dim}-d: it was built with another "
            "model. Open it with the model (bundle) that built it, or use another collection"
        )
    return layout


# A Milvus Lite file is served by one process (a file lock): the last MilvusIndex of this process on a file
# stops its server at close(), so that another process can open the file.
_LITE_USERS: collections.Counter[str] = collections.Counter()


def lite_opened(path: str) -> None:
    _LITE_USERS[path] += 1


def lite_closed(path: str) -> None:
    if _LITE_USERS[path] > 0:
        _LITE_USERS[path] -= 1
        if not _LITE_USERS[path]:
            try:
                from milvus_lite.server_manager import server_manager_instance
            except ImportError:  # an older milvus-lite: the lock goes with the process
                return
            server_manager_instance.release_server(path)


__all__ = ["PARTITION_BY", "MilvusLayout", "create_collections", "day", "open_collections", "parse_location"]
