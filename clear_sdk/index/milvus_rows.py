"""Reading and writing the rows of a Milvus gallery collection: counts, pages, lookups by id, column-wise writes.

Every expression here is built from :func:`~clear_sdk.index.where.milvus_in` or integer ``seq`` bounds:
pymilvus's own ``get`` / ``delete(ids=)`` / ``query_iterator`` write raw ids into expressions (an id with
a quote or a backslash broke them, one made ``query_iterator`` loop forever), so none of them is used.
"""

from __future__ import annotations

import contextlib
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

from clear_sdk.index.metadata import unknown_ids
from clear_sdk.index.where import milvus_in

QUERY_CHUNK = 500  # ids per "pk in [...]" expression
_PAGE = 16384  # seq values per query when reading everything (Milvus's largest query result)


@contextlib.contextmanager
def _orm() -> Iterator[None]:
    """Quiet pymilvus's deprecation of its ORM calls (column-wise writes have no MilvusClient form yet)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pymilvus warns with a FutureWarning subclass
        yield


class MilvusRows:
    """The rows of one collection through a ``MilvusClient`` (``uri`` / ``token`` for the column-wise writer)."""

    def __init__(self, client: Any, collection: str, uri: str, token: str) -> None:
        self.client, self.collection, self._uri, self._token = client, collection, uri, token
        self._columns: tuple[str | None, Any] | None = None
        self.seq = self.next_seq()

    def count(self, expr: str) -> int:
        return int(self.client.query(self.collection, filter=expr, output_fields=["count(*)"])[0]["count(*)"])

    def next_seq(self) -> int:
        """One past the largest ``seq`` stored (Milvus has no max(), nor a query sorted by a field): a binary search
        on counts, ~2 log2(n) small queries."""
        if not self.count("seq >= 0"):
            return 0
        hi = 1
        while self.count(f"seq >= {hi}"):
            hi *= 2
        lo = hi // 2  # some seq >= lo (or lo == 0), none >= hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.count(f"seq >= {mid}") else (lo, mid)
        return lo + 1

    def write(self, cols: dict[str, list], replace: bool) -> None:
        """Insert (or upsert) columns: pymilvus's column-wise ``Collection.insert`` where it has one, else row dicts."""
        coll = self._column_writer()
        if coll is not None:
            with _orm():
                (coll.upsert if replace else coll.insert)([cols[f.name] for f in coll.schema.fields])
            return
        names = list(cols)
        rows = [dict(zip(names, values)) for values in zip(*cols.values())]
        (self.client.upsert if replace else self.client.insert)(self.collection, rows)

    def _column_writer(self) -> Any:
        """pymilvus's ORM ``Collection`` (column-wise writes; deprecated for pymilvus 3.1), or None without it."""
        if self._columns is None:
            try:
                from pymilvus import Collection, connections
            except ImportError:
                self._columns = (None, None)
                return None
            alias = f"clear-sdk-{uuid.uuid4().hex}"
            with _orm():
                connections.connect(alias=alias, uri=self._uri, token=self._token)
                self._columns = (alias, Collection(self.collection, using=alias))
        return self._columns[1]

    def existing(self, ids: list[str]) -> list[str]:
        found: list[str] = []
        for s in range(0, len(ids), QUERY_CHUNK):
            expr = milvus_in("pk", list(ids[s : s + QUERY_CHUNK]))
            found += [r["pk"] for r in self.client.query(self.collection, filter=expr, output_fields=["pk"])]
        return found

    def all(self, fields: list[str], expr: str = "") -> list[tuple[str, dict]]:
        """(id, entity) of every item matching ``expr``, in add order: read in windows of ``seq`` (pymilvus's
        query_iterator pages with an unescaped ``pk > "<last id>"``, which an id with a quote breaks)."""
        if expr == "false":
            return []
        rows: list[dict] = []
        lo = 0
        while True:
            window = f"seq >= {lo} and seq < {lo + _PAGE}"
            rows += self.client.query(self.collection, filter=f"{window} and ({expr})" if expr else window,
                                       output_fields=["seq", *fields])  # fmt: skip
            lo += _PAGE
            if lo >= self.seq and not self.count(f"seq >= {lo}"):  # another process may have added past _seq
                break
        rows.sort(key=lambda r: r["seq"])
        return [(r["pk"], r) for r in rows]

    def get(self, ids: list[str], fields: list[str]) -> dict[str, dict]:
        got: dict[str, dict] = {}
        for s in range(0, len(ids), QUERY_CHUNK):
            expr = milvus_in("pk", ids[s : s + QUERY_CHUNK])
            got.update((r["pk"], r) for r in self.client.query(self.collection, filter=expr, output_fields=fields))
        missing = [i for i in ids if i not in got]
        if missing:
            raise unknown_ids(missing)
        return got

    def delete(self, ids: list[str] | None = None, expr: str = "") -> None:
        if ids is not None:
            for s in range(0, len(ids), QUERY_CHUNK):
                self.client.delete(self.collection, filter=milvus_in("pk", ids[s : s + QUERY_CHUNK]))
        elif expr != "false":
            self.client.delete(self.collection, filter=expr)

    def close(self) -> None:
        if self._columns is not None and self._columns[0] is not None:
            from pymilvus import connections

            with _orm():
                connections.disconnect(self._columns[0])
        self._columns = None


__all__ = ["QUERY_CHUNK", "MilvusRows"]
