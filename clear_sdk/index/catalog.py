"""The local index's SQLite database: ids, metadata, checksums and the ``meta`` table (WAL mode).

Tables::

    meta(key, value)       dim, format_version, count (= committed rows), and what callers store there
    items(row, id UNIQUE, camera, timestamp, track, bbox JSON, source, extra JSON)
    batches(first_row, rows, crc32)   the checksum of each add's vector bytes

:class:`Catalog` owns the connection: opening (read-write, or read-only for an index this process cannot
write), write transactions (SQLite's write lock: one writer at a time, others wait ``busy_timeout``
seconds, then :class:`~clear_sdk.errors.IndexBusyError`), and every statement the index runs. Values
are only ever bound as parameters: rows are :class:`~clear_sdk.index.metadata.Metadata`, filters come
from :func:`~clear_sdk.index.where.to_sql`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clear_sdk.errors import BundleError, ClearSDKError, IndexBusyError, IndexReadOnlyError
from clear_sdk.index.metadata import Metadata, unknown_ids
from clear_sdk.index.where import SQL_CHUNK, Clause, to_sql

logger = logging.getLogger("clear_sdk.index")

FORMAT_VERSION = 1
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS items (row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, camera TEXT, "
    "timestamp REAL, track INTEGER, bbox TEXT, source TEXT, extra TEXT)",
    # crc32 of the vector bytes of each add; indexes made before it have rows no batch covers (verify()
    # checks those for NaN / infinity only) and get the table at their next add
    "CREATE TABLE IF NOT EXISTS batches (first_row INTEGER PRIMARY KEY, rows INTEGER NOT NULL, crc32 INTEGER NOT NULL)",
)
# No SQL index on camera / timestamp: search filters them on a numpy mirror (where.ColumnMirror), and keeping
# two more B-trees in step cost ~35 % of an add. Indexes made with them lose them at their next add.
_LEGACY_INDEXES = ("DROP INDEX IF EXISTS items_camera", "DROP INDEX IF EXISTS items_timestamp")
_ITEM_COLUMNS = "row, id, camera, timestamp, track, bbox, source, extra"


def _marks(n: int) -> str:
    return ",".join("?" * n)


class Catalog:
    """The SQLite side of the local index (``path=None``: in memory)."""

    def __init__(self, path: Path | None, busy_timeout: float) -> None:
        self.path, self.busy_timeout = path, busy_timeout
        self.read_only = False
        self._legacy_dropped = False
        if path is None:
            self.db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        else:
            self.db = self._open(path, path.exists())

    # ------------------------------------------------------------------------------------- opening

    def _connect(self, path: Path, mode: str = "rw") -> sqlite3.Connection:
        """``rw`` (creating), ``ro`` or ``immutable`` (read-only, no -wal / -shm files: a read-only folder)."""
        uri = path.resolve().as_uri() + {"rw": "?mode=rwc", "ro": "?mode=ro", "immutable": "?immutable=1"}[mode]
        db = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, check_same_thread=False, isolation_level=None)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # fails here if it cannot be read
        if mode == "rw":
            db.execute("PRAGMA synchronous=FULL")
            # a big add dirties many B-tree pages (the id index above all): with SQLite's 2 MiB default cache
            # they spill to the WAL mid-transaction and are written twice; up to 256 MiB, used only as needed
            db.execute("PRAGMA cache_size=-262144")
        return db

    def _open(self, path: Path, existed: bool) -> sqlite3.Connection:
        """Read-write; an existing database this process cannot write (another user's index, a read-only mount
        or snapshot) opens read-only instead: search works, writes raise IndexReadOnlyError."""
        unreadable = f"{path} is not a readable SQLite database ({{}}); move it away"
        if not existed or (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            try:
                db = self._connect(path)
                self._use_wal(db)
                return db
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise self.busy(exc, "opening the index") from exc
                if not existed or not ("readonly" in str(exc) or "unable to open" in str(exc)):
                    raise BundleError(unreadable.format(exc)) from exc
            except sqlite3.DatabaseError as exc:
                raise BundleError(unreadable.format(exc)) from exc
        for mode in ("ro", "immutable"):
            try:
                db = self._connect(path, mode)
            except sqlite3.OperationalError:
                continue
            except sqlite3.DatabaseError as exc:
                raise BundleError(unreadable.format(exc)) from exc
            self.read_only = True
            logger.info("index %s: opened read-only (%s)", path.parent, mode)
            return db
        raise BundleError(f"{path} cannot be opened, not even read-only; check its permissions")

    def _use_wal(self, db: sqlite3.Connection) -> None:
        """Switch to WAL (persistent; a no-op once done): readers then never wait for writers."""
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:  # another process is writing: switch on a later open
            logger.info("index %s: journal mode not switched to WAL now (%s)", self.path, exc)
            return
        if str(mode).lower() != "wal":
            logger.warning("index %s: SQLite keeps journal mode %s (WAL unsupported here?)", self.path, mode)

    def has_schema(self) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is not None

    def create(self, dim: int) -> None:
        with self.writing():
            for statement in _SCHEMA:
                self.db.execute(statement)
            self.db.executemany(
                "INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)",
                [("dim", str(dim)), ("format_version", str(FORMAT_VERSION)), ("count", "0")],
            )

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------------------------ writing

    def busy(self, exc: sqlite3.OperationalError, doing: str) -> ClearSDKError:
        """The error of a failed statement: IndexBusyError for a lock held too long, else BundleError."""
        where = self.path if self.path is not None else "the in-memory index"
        if "locked" in str(exc) or "busy" in str(exc):
            return IndexBusyError(
                f"{where} is busy: another process held its write lock for more than {self.busy_timeout:g} s "
                f"while this one was {doing}; the index is intact: try again when that process is done, "
                "or wait longer with busy_timeout="
            )
        return BundleError(f"{where}: SQLite failed while {doing} ({exc}); check the disk, or rebuild the index")

    @contextlib.contextmanager
    def writing(self, doing: str = "waiting to write") -> Iterator[sqlite3.Connection]:
        """One write transaction under SQLite's write lock; committed on success, rolled back on any error."""
        if self.read_only:
            raise IndexReadOnlyError(
                f"index {self.path.parent if self.path else ''} is read-only (this process cannot write its files or "
                "folder): search it, or copy the folder somewhere writable to add or remove items"
            )
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self.busy(exc, doing) from exc
        try:
            yield self.db
            self.db.execute("COMMIT")  # the commit point
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def try_writing(self) -> bool:
        """Take the write lock only if it is free at once (then the caller must COMMIT / ROLLBACK)."""
        if self.read_only:
            return False
        self.db.execute("PRAGMA busy_timeout=0")
        try:
            self.db.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            self.db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")

    def insert_rows(self, count: int, ids: list[str], rows: list[Metadata]) -> None:
        """Rows [count, count + n), inside the caller's transaction."""
        db = self.db
        if not self._legacy_dropped:  # before the insert, so that this add no longer maintains them
            for statement in _LEGACY_INDEXES:
                db.execute(statement)
        # (row, id) + the six metadata values, each row built in C (transposing 1M tuples first cost ~2 s)
        db.executemany(
            f"INSERT INTO items({_ITEM_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
            map(tuple.__add__, zip(range(count, count + len(ids)), ids, strict=True), rows),
        )

    def finish_add(self, count: int, n: int, crc: int) -> None:
        """The checksum of rows [count, count + n) and the new count, inside the caller's transaction (whose commit
        is the commit point of the add)."""
        self.db.execute(_SCHEMA[2])
        self.db.execute("INSERT OR REPLACE INTO batches(first_row, rows, crc32) VALUES (?, ?, ?)", (count, n, crc))
        self.db.execute("UPDATE meta SET value=? WHERE key='count'", (str(count + n),))

    def committed(self) -> None:
        """The caller's add committed (legacy indexes were dropped with it)."""
        self._legacy_dropped = True

    def delete(self, rows: np.ndarray) -> None:
        """DELETE rows from ``items`` inside the caller's transaction."""
        for i in range(0, rows.size, SQL_CHUNK):
            chunk = rows[i : i + SQL_CHUNK].tolist()
            self.db.execute(f"DELETE FROM items WHERE row IN ({_marks(len(chunk))})", chunk)

    def set_meta(self, key: str, value: str) -> str:
        """Store ``value`` under ``key`` unless a value is there; returns the stored one."""
        stored = self.get_meta(key)
        if stored is not None:  # nothing to write (a read-only index answers too)
            return stored
        with self.writing() as db:
            db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))
            return db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0]

    # ------------------------------------------------------------------------------------ reading

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def count(self) -> int:
        """The committed row count (``meta.count``)."""
        try:
            return int(self.db.execute("SELECT value FROM meta WHERE key='count'").fetchone()[0])
        except sqlite3.OperationalError as exc:
            raise self.busy(exc, "reading the item count") from exc

    def rows(self, sql: str, params: Sequence[Any] = ()) -> np.ndarray:
        """The first column of a query as int64 rows."""
        return np.fromiter((r[0] for r in self.db.execute(sql, params)), dtype=np.int64)

    def matching(self, clauses: list[Clause]) -> np.ndarray:
        cond, params = to_sql(clauses)
        return self.rows(f"SELECT row FROM items WHERE {cond} ORDER BY row", params)

    def alive_rows(self, count: int) -> np.ndarray | None:
        """Rows [0, count) still in ``items`` as a bool mask, or None when all are."""
        if self.db.execute("SELECT COUNT(*) FROM items WHERE row < ?", (count,)).fetchone()[0] == count:
            return None
        alive = np.zeros(count, dtype=bool)
        alive[self.rows("SELECT row FROM items WHERE row < ?", [count])] = True
        return alive

    def id_rows(self, ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for i in range(0, len(ids), SQL_CHUNK):
            chunk = ids[i : i + SQL_CHUNK]
            found.update(self.db.execute(f"SELECT id, row FROM items WHERE id IN ({_marks(len(chunk))})", chunk))
        return found

    def rows_of(self, ids: list[str]) -> np.ndarray:
        """The rows of ``ids``, in their order; unknown ids are a KeyError naming them."""
        found = self.id_rows(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise unknown_ids(missing)
        return np.array([found[i] for i in ids], dtype=np.int64)

    def metadata_by_row(self, rows: Sequence[int]) -> dict[int, tuple[str, dict[str, Any]]]:
        """row -> (id, metadata dict) of the rows still in ``items``."""
        out: dict[int, tuple[str, dict[str, Any]]] = {}
        unique = sorted(set(rows))
        for i in range(0, len(unique), SQL_CHUNK):
            chunk = unique[i : i + SQL_CHUNK]
            for row, item_id, *cols in self.db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE row IN ({_marks(len(chunk))})", chunk
            ):
                out[row] = (item_id, Metadata(*cols).to_dict())
        return out

    def ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM items ORDER BY row")]

    def time_span(self) -> tuple[float, float] | None:
        lo, hi = self.db.execute("SELECT MIN(timestamp), MAX(timestamp) FROM items").fetchone()
        return None if lo is None else (float(lo), float(hi))

    def batches(self, start: int, count: int) -> list[tuple[int, int, int]]:
        """(first_row, rows, crc32) of the adds that overlap rows [start, count)."""
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name='batches'").fetchone():
            return []
        return self.db.execute(
            "SELECT first_row, rows, crc32 FROM batches WHERE first_row + rows > ? AND first_row < ? "
            "ORDER BY first_row",
            (start, count),
        ).fetchall()


__all__ = ["FORMAT_VERSION", "Catalog"]
