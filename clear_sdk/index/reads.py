"""Reading the local index's metadata: ids, metadata dicts, ``where`` selections, stored vectors, the meta table.

A mixin of :class:`~clear_sdk.index.store.IndexStore` (which owns the connection, the lock and the
vectors): the read side kept apart from the write side (opening, adds, deletes, integrity). Every
method takes the index lock and reads without SQLite's write lock (WAL: readers never wait).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from clear_sdk.index.metadata import Metadata, as_id_list, unknown_ids
from clear_sdk.index.where import SQL_CHUNK as _SQL_CHUNK
from clear_sdk.index.where import parse_where, to_sql


class StoreReads:
    """Metadata reads of :class:`~clear_sdk.index.store.IndexStore` (ids, metadata, selections, vectors)."""

    @property
    def corrupt_ids(self) -> list[str]:
        """Ids whose vectors failed :meth:`verify` (left out of search)."""
        with self._lock:
            rows = np.flatnonzero(self._corrupt).tolist()
            return [item_id for item_id, _ in self._metadata_by_row(rows).values()]

    def get_meta(self, key: str) -> str | None:
        """A value of the index's own key-value table (``meta``), or None."""
        with self._lock:
            self._check_open()
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return None if row is None else row[0]

    def __contains__(self, item_id: object) -> bool:
        with self._lock:
            self._check_open()
            return self._db.execute("SELECT 1 FROM items WHERE id=?", (item_id,)).fetchone() is not None

    @property
    def ids(self) -> list[str]:
        """Ids of the items, in insertion order."""
        with self._lock:
            self._check_open()
            return [r[0] for r in self._db.execute("SELECT id FROM items ORDER BY row")]

    def get_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored embeddings of ``ids`` (float32 [len(ids), dim])."""
        with self._lock:
            rows = self._rows_of(ids)
            return np.array(self._vectors()[rows], dtype=np.float32)

    def select(self, where: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(id, metadata) of every item that matches a ``where`` filter (as in :meth:`search`), in add order."""
        cond, params = to_sql(parse_where(where))
        with self._lock:
            self._check_open()
            try:
                rows = self._fetch_rows(f"SELECT row FROM items WHERE {cond} ORDER BY row", params).tolist()
                md = self._metadata_by_row(rows)
            except sqlite3.OperationalError as exc:
                raise self._busy(exc, "reading metadata") from exc
        return [md[r] for r in rows]

    def get_metadata(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Metadata dicts of ``ids`` (unknown ids are a KeyError naming them)."""
        with self._lock:
            rows = self._rows_of(ids)
            md = self._metadata_by_row(rows.tolist())
            return [md[r][1] for r in rows.tolist()]

    def _rows_of(self, ids: Sequence[str]) -> np.ndarray:
        self._check_open()
        ids = as_id_list(ids)
        found: dict[str, int] = {}
        for i in range(0, len(ids), _SQL_CHUNK):
            chunk = ids[i : i + _SQL_CHUNK]
            sql = f"SELECT id, row FROM items WHERE id IN ({','.join('?' * len(chunk))})"
            found.update(self._db.execute(sql, chunk).fetchall())
        missing = [i for i in ids if i not in found]
        if missing:
            raise unknown_ids(missing)
        return np.array([found[i] for i in ids], dtype=np.int64)

    def _fetch_rows(self, sql: str, params: Sequence[Any]) -> np.ndarray:
        cur = self._db.execute(sql, params)
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def _metadata_by_row(self, rows: list[int]) -> dict[int, tuple[str, dict[str, Any]]]:
        out: dict[int, tuple[str, dict[str, Any]]] = {}
        unique = sorted(set(rows))
        for i in range(0, len(unique), _SQL_CHUNK):
            chunk = unique[i : i + _SQL_CHUNK]
            sql = (
                "SELECT row, id, camera, timestamp, track, bbox, source, extra FROM items "
                f"WHERE row IN ({','.join('?' * len(chunk))})"
            )
            for row, item_id, *cols in self._db.execute(sql, chunk):
                out[row] = (item_id, Metadata(*cols).to_dict())
        return out

    def _existing_rows(self, ids: list[str]) -> np.ndarray:
        found = []
        for i in range(0, len(ids), _SQL_CHUNK):
            chunk = ids[i : i + _SQL_CHUNK]
            found.append(self._fetch_rows(f"SELECT row FROM items WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return np.concatenate(found) if found else np.empty(0, np.int64)

    def time_span(self) -> tuple[float, float] | None:
        """(earliest, latest) timestamp of the items, or None when none has one."""
        with self._lock:
            self._check_open()
            lo, hi = self._db.execute("SELECT MIN(timestamp), MAX(timestamp) FROM items").fetchone()
            return None if lo is None else (float(lo), float(hi))

    def _first_existing(self, ids: list[str]) -> str | None:
        for i in range(0, len(ids), _SQL_CHUNK):
            chunk = ids[i : i + _SQL_CHUNK]
            row = self._db.execute(
                f"SELECT id FROM items WHERE id IN ({','.join('?' * len(chunk))}) LIMIT 1", chunk
            ).fetchone()
            if row is not None:
                return row[0]
        return None
