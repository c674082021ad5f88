"""The on-disk store behind the local index: fp32 vectors file + SQLite (ids, metadata, checksums), WAL.

Layout of a persisted index (a directory)::

    vectors.f32     raw little-endian float32 rows, appended in add order (row r at byte r*dim*4)
    index.sqlite    meta(key, value): dim, format_version, count (= committed rows), and what the
                      caller stores there (AttributeSearcher: the model identity)
                    items(row, id UNIQUE, camera, timestamp, track, bbox JSON, source, extra JSON)
                    batches(first_row, rows, crc32): the checksum of each add's vector bytes
    index.sqlite-wal, index.sqlite-shm   SQLite's write-ahead log (copy the folder as a whole)

Crash safety. :meth:`IndexStore.add` takes SQLite's write lock, appends the vectors after the
committed rows and fsyncs them, then inserts the rows, their checksum and the new row count in ONE
SQLite transaction. The transaction's commit is the commit point: if the process dies before it,
SQLite rolls the transaction back and the vector bytes past the committed count are ignored and
truncated by the next writer; if it dies after, everything is durable. A crash therefore loses at
most the add in progress, never the index. :meth:`IndexStore.remove` deletes the rows of ``items``
in one transaction too (all of them or none survive a crash); their vectors stay in the file as
tombstones that search skips.

Concurrency. The database is in WAL mode and opening or searching takes no lock, so readers never
wait for a writer, nor a writer for them. One process writes at a time: the others wait for
SQLite's write lock up to ``busy_timeout`` seconds (30 by default), then get an
:class:`~clear_sdk.errors.IndexBusyError` that says the index is fine and busy. Another process's
index object sees new items after ``refresh()``. WAL needs a local file system (not NFS/SMB).

Integrity. :meth:`IndexStore.verify` recomputes each add's crc32; rows that fail (a bit flip, a
zeroed block, a NaN written over them) are left out of every search with a warning, and the rest
keep answering. It runs at every open of an index up to ``VERIFY_ON_OPEN_MAX_BYTES`` of vectors
(256 MiB), else when asked (``verify=True``, ``clear-sdk search --verify``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clear_sdk.errors import BundleError, ClearSDKError, DuplicateIdError, IndexBusyError, IndexReadOnlyError
from clear_sdk.index.metadata import Metadata, check_ids, check_remove, metadata_list
from clear_sdk.index.reads import StoreReads
from clear_sdk.index.topk import as_rows
from clear_sdk.index.where import SQL_CHUNK as _SQL_CHUNK
from clear_sdk.index.where import parse_where, to_sql

logger = logging.getLogger("clear_sdk.index")

FORMAT_VERSION = 1
VECTORS_FILE = "vectors.f32"
DB_FILE = "index.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    row INTEGER PRIMARY KEY,
    id TEXT UNIQUE NOT NULL,
    camera TEXT,
    timestamp REAL,
    track INTEGER,
    bbox TEXT,
    source TEXT,
    extra TEXT
);
"""
# No SQL index on camera / timestamp: search filters them on a numpy mirror (filters.ColumnMirror),
# and keeping two more B-trees in step cost ~35 % of an add (1M items: measured 7.0-9.5 s -> 5.4-5.8 s
# per 300k rows). remove(where=...) and count(where=...) scan the table instead (~0.1 s per 1M rows).
# Indexes made with them lose them at their next add (_LEGACY_INDEXES).
_LEGACY_INDEXES = ("DROP INDEX IF EXISTS items_camera", "DROP INDEX IF EXISTS items_timestamp")
# crc32 of the vector bytes of each add (rows [first_row, first_row + rows)); indexes made before it
# have rows no batch covers, which verify() checks for NaN / infinity only
_BATCHES = (
    "CREATE TABLE IF NOT EXISTS batches (first_row INTEGER PRIMARY KEY, rows INTEGER NOT NULL, crc32 INTEGER NOT NULL)"
)
#: Indexes whose vector file is at most this large are verified (checksums) every time they are opened.
VERIFY_ON_OPEN_MAX_BYTES = 256 << 20


class IndexStore(StoreReads):
    """Persistence, integrity and metadata of the local index; :class:`~clear_sdk.index.VectorIndex` adds search.

    Subclasses set up ``path``, ``busy_timeout``, ``block_rows`` and call :meth:`_open_store`; they get
    :meth:`_after_add` / :meth:`_after_remove` calls to keep derived search structures in step.
    """

    def _open_store(self, dim: int | None) -> None:
        self._corrupt = np.zeros(0, dtype=bool)  # rows that failed verification: never returned by search
        self._legacy_dropped = False  # _LEGACY_INDEXES: dropped by this object's first committed add
        self._verified_rows = 0
        self._lock = threading.RLock()
        self._mmap: np.ndarray | None = None
        self._buf: np.ndarray | None = None
        self._closed = False
        self.read_only = False
        if self.path is None:
            if dim is None:
                raise ValueError("dim is required for an in-memory index")
            self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            self._init_db(int(dim))
            self.dim = int(dim)
            self._count = 0
            self._buf = np.empty((0, self.dim), np.float32)
        else:
            self._open_dir(dim)
        self._load_alive()

    def _after_add(self, first_row: int, rows_md: list[Metadata]) -> None:
        """Rows [first_row, first_row + len(rows_md)) were committed (a hook for derived structures)."""

    def _after_remove(self, rows: np.ndarray) -> None:
        """Rows were removed (a hook for derived structures)."""

    def _after_refresh(self) -> None:
        """Another process may have added or removed rows (a hook for derived structures)."""

    # ------------------------------------------------------------------------------------- opening

    def _init_db(self, dim: int) -> None:
        self._begin_write()
        try:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(statement)
            self._db.execute(_BATCHES)
            self._db.executemany(
                "INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)",
                [("dim", str(dim)), ("format_version", str(FORMAT_VERSION)), ("count", "0")],
            )
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    # SQLite's locks. The database is in WAL mode, so readers never wait for a writer (nor it for them);
    # writers queue on SQLite's write lock for up to ``busy_timeout`` seconds, then IndexBusyError says so.
    def _busy(self, exc: sqlite3.OperationalError, doing: str) -> ClearSDKError:
        where = self.path / DB_FILE if self.path is not None else "the in-memory index"
        if "locked" in str(exc) or "busy" in str(exc):
            return IndexBusyError(
                f"{where} is busy: another process held its write lock for more than {self.busy_timeout:g} s "
                f"while this one was {doing}; the index is intact: try again when that process is done, "
                "or wait longer with busy_timeout="
            )
        return BundleError(f"{where}: SQLite failed while {doing} ({exc}); check the disk, or rebuild the index")

    def _begin_write(self) -> None:
        if self.read_only:
            raise IndexReadOnlyError(
                f"index {self.path} is read-only (its files or folder cannot be written by this process): search "
                "it, or copy the folder somewhere writable to add or remove items"
            )
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._busy(exc, "waiting to write") from exc

    def _connect(self, db_path: Path, mode: str = "rw") -> sqlite3.Connection:
        """A connection to the database: ``rw`` (creating it), ``ro`` (read-only) or ``immutable`` (read-only, and
        no -wal / -shm files, which a read-only folder cannot hold)."""
        uri = db_path.resolve().as_uri() + {"rw": "?mode=rwc", "ro": "?mode=ro", "immutable": "?immutable=1"}[mode]
        db = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, check_same_thread=False, isolation_level=None)
        if mode != "rw":
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # fail here if it cannot be read
            return db
        db.execute("PRAGMA synchronous=FULL")
        # a big add dirties many B-tree pages (the id index above all): with SQLite's 2 MiB default cache they
        # spill to the WAL mid-transaction and are written twice; up to 256 MiB, used only as needed
        db.execute("PRAGMA cache_size=-262144")
        return db

    def _open_dir(self, dim: int | None) -> None:
        assert self.path is not None
        if self.path.exists() and not self.path.is_dir():
            raise BundleError(f"index path {self.path} is a file; pass a directory")
        db_path, vec_path = self.path / DB_FILE, self.path / VECTORS_FILE
        existed = db_path.exists()
        if not existed:
            if dim is None:
                raise BundleError(f"no index at {self.path} ({DB_FILE} missing); pass dim to create one")
            if vec_path.exists() and vec_path.stat().st_size > 0:
                raise BundleError(
                    f"{vec_path} exists without {DB_FILE}: not an index this version can open; move it away"
                )
            self.path.mkdir(parents=True, exist_ok=True)
        self._db = self._open_db(db_path, existed)
        try:
            if not self.read_only:
                self._use_wal()
            if not self._has_meta():
                if dim is None:
                    raise BundleError(f"{db_path} is not a clear-sdk index (no meta table); pass dim to create one")
                self._init_db(int(dim))
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise self._busy(exc, "opening the index") from exc
            raise BundleError(f"{db_path} is not a readable SQLite database ({exc}); move it away") from exc
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise BundleError(f"{db_path} is not a readable SQLite database ({exc}); move it away") from exc
        except BaseException:
            self._db.close()
            raise
        if "dim" not in meta or "count" not in meta:
            self._db.close()
            raise BundleError(f"{db_path} is not a clear-sdk index (its meta table lacks dim/count); move it away")
        version = int(meta.get("format_version", "0"))
        if version > FORMAT_VERSION:
            raise BundleError(
                f"index {self.path} has format version {version}, newer than this clear-sdk ({FORMAT_VERSION}); "
                "upgrade clear-sdk"
            )
        stored_dim = int(meta["dim"])
        if dim is not None and int(dim) != stored_dim:
            self._db.close()
            raise BundleError(
                f"index {self.path} holds {stored_dim}-d vectors, not {dim}-d: it was built with another model. "
                "Open it with the model (bundle) that built it, or index into a new folder"
            )
        self.dim = stored_dim
        if not vec_path.exists() and not self.read_only:
            vec_path.touch()
            _fsync_dir(self.path)
        self._reconcile_vectors()

    def _open_db(self, db_path: Path, existed: bool) -> sqlite3.Connection:
        """Open read-write; an existing database this process cannot write (another user's index, a read-only
        mount or snapshot) opens read-only instead: search works, writes raise IndexReadOnlyError."""
        if not existed or (os.access(db_path, os.W_OK) and os.access(db_path.parent, os.W_OK)):
            try:
                db = self._connect(db_path)
                db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
                return db
            except sqlite3.OperationalError as exc:
                if not existed or not ("readonly" in str(exc) or "unable to open" in str(exc)):
                    raise BundleError(f"{db_path} is not a readable SQLite database ({exc}); move it away") from exc
            except sqlite3.DatabaseError as exc:
                raise BundleError(f"{db_path} is not a readable SQLite database ({exc}); move it away") from exc
        for mode in ("ro", "immutable"):  # immutable: a read-only folder cannot hold the -wal / -shm files
            try:
                db = self._connect(db_path, mode)
            except sqlite3.OperationalError:
                continue
            except sqlite3.DatabaseError as exc:
                raise BundleError(f"{db_path} is not a readable SQLite database ({exc}); move it away") from exc
            self.read_only = True
            logger.info("index %s: opened read-only (%s)", self.path, mode)
            return db
        raise BundleError(f"{db_path} cannot be opened, not even read-only; check its permissions")

    def _use_wal(self) -> None:
        """Switch the database to WAL (persistent; a no-op once done): readers then never wait for writers."""
        try:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:  # another process is writing: switch on a later open
            logger.info("index %s: journal mode not switched to WAL now (%s)", self.path, exc)
            return
        if str(mode).lower() != "wal":
            logger.warning("index %s: SQLite keeps journal mode %s (WAL unsupported here?)", self.path, mode)

    def _has_meta(self) -> bool:
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is not None

    def _reconcile_vectors(self) -> None:
        """Learn the committed count; drop vector bytes past it (an interrupted add) when no one is writing.

        Readers take no lock: bytes past the count may be an add in progress in another process, so they
        are only truncated when the write lock is free at once (a writer truncates them anyway).
        """
        assert self.path is not None
        vec_path = self.path / VECTORS_FILE
        count = self._stored_count()
        expected = count * self.dim * 4
        size = vec_path.stat().st_size
        if size < expected:
            raise BundleError(
                f"{vec_path} holds {size // (self.dim * 4)} vectors but the index committed {count}: "
                "the vector file was truncated or replaced; restore it from a backup or rebuild the index"
            )
        if size > expected and not self.read_only:
            self._truncate_uncommitted(vec_path)
        self._count = count
        self._mmap = None

    def _truncate_uncommitted(self, vec_path: Path) -> None:
        self._db.execute("PRAGMA busy_timeout=0")
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # a writer is busy: its bytes are not ours to drop
            return
        finally:
            self._db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        try:
            expected = self._stored_count() * self.dim * 4
            size = vec_path.stat().st_size
            if size > expected:
                logger.warning(
                    "index %s: discarding %d bytes of vectors from an interrupted add", self.path, size - expected
                )
                with open(vec_path, "r+b") as f:
                    f.truncate(expected)
                    f.flush()
                    os.fsync(f.fileno())
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _stored_count(self) -> int:
        try:
            return int(self._db.execute("SELECT value FROM meta WHERE key='count'").fetchone()[0])
        except sqlite3.OperationalError as exc:
            raise self._busy(exc, "reading the item count") from exc

    def _load_alive(self) -> None:
        n_items = self._db.execute("SELECT COUNT(*) FROM items WHERE row < ?", (self._count,)).fetchone()[0]
        if n_items == self._count:
            self._alive: np.ndarray | None = None
            return
        alive = np.zeros(self._count, dtype=bool)
        alive[self._fetch_rows("SELECT row FROM items WHERE row < ?", [self._count])] = True
        self._alive = alive

    def refresh(self) -> None:
        """Pick up items that another process added to (or removed from) the same directory."""
        with self._lock:
            self._check_open()
            if self.path is not None:
                self._reconcile_vectors()
                self._load_alive()
                self._after_refresh()
                if self._verified_rows and self._count > self._verified_rows:
                    self.verify(start=self._verified_rows)

    # ------------------------------------------------------------------------------------ integrity

    def verify(self, start: int = 0) -> list[str]:
        """Check the stored vectors against the crc32 recorded with each add; returns the ids that fail.

        Rows that fail (changed on disk: a zeroed block, a bit flip, a NaN) are left out of every search
        from now on, with a warning, and the rest keep answering. Rows of indexes written before
        checksums existed are checked for NaN / infinity only. Reads the whole vector file once.
        """
        with self._lock:
            self._check_open()
            count = self._count
            vectors = self._vectors()
            if len(self._corrupt) < count:
                self._corrupt = np.concatenate((self._corrupt, np.zeros(count - len(self._corrupt), dtype=bool)))
            covered = np.zeros(count, dtype=bool)
            batches = []
            if self._db.execute("SELECT 1 FROM sqlite_master WHERE name='batches'").fetchone():
                batches = self._db.execute(
                    "SELECT first_row, rows, crc32 FROM batches WHERE first_row + rows > ? AND first_row < ? "
                    "ORDER BY first_row",
                    (start, count),
                ).fetchall()
            bad = np.zeros(count, dtype=bool)
            for first, n, crc in batches:
                last = min(first + n, count)
                covered[first:last] = True
                if first + n > count or zlib.crc32(memoryview(np.ascontiguousarray(vectors[first:last]))) != crc:
                    bad[first:last] = True
            for r0 in range(start, count, self.block_rows):
                r1 = min(count, r0 + self.block_rows)
                todo = ~covered[r0:r1]
                if todo.any():
                    bad[r0:r1] |= todo & ~np.isfinite(vectors[r0:r1]).all(axis=1)
            self._verified_rows = count
            new = bad & ~self._corrupt
            self._corrupt |= bad
            if not bad.any():
                return []
            rows = np.flatnonzero(bad).tolist()
            ids = [item_id for item_id, _ in self._metadata_by_row(rows).values()]
            if new.any():
                logger.warning(
                    "index %s: %d stored vectors (%s) fail their checksum: the vector file was changed on disk. "
                    "They are left out of search; re-add those items, or rebuild the index from the crops",
                    self.path,
                    int(new.sum()),
                    ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else ""),
                )
            return ids

    # ------------------------------------------------------------------------------------ metadata store

    def set_meta_default(self, key: str, value: str) -> str:
        """Store ``value`` under ``key`` unless a value is there already; returns the stored value."""
        with self._lock:
            self._check_open()
            stored = self.get_meta(key)
            if stored is not None:  # nothing to write (a read-only index answers too)
                return stored
            self._begin_write()
            try:
                self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))
                stored = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0]
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            return stored

    # -------------------------------------------------------------------------------------- basics

    def __len__(self) -> int:
        with self._lock:
            return self._count if self._alive is None else int(self._alive.sum())

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database and the memory map (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._mmap = None
            self._buf = None
            self._after_close()
            self._db.close()

    def _after_close(self) -> None:
        """The index is closing (a hook: release derived structures)."""

    def _check_open(self) -> None:
        if self._closed:
            raise ClearSDKError("this VectorIndex is closed; open the directory again")

    def _vectors(self) -> np.ndarray:
        """All committed vectors [count, dim] (alive or not): a view of the buffer or a memory map."""
        if self._buf is not None:
            return self._buf[: self._count]
        if self._count == 0:
            return np.empty((0, self.dim), np.float32)
        if self._mmap is None or self._mmap.shape[0] != self._count:
            assert self.path is not None
            self._mmap = np.memmap(self.path / VECTORS_FILE, dtype="<f4", mode="r", shape=(self._count, self.dim))
        return self._mmap

    # ----------------------------------------------------------------------------------------- add

    def add(
        self,
        embeddings: np.ndarray,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        replace: bool = False,
    ) -> list[str]:
        """Append embeddings [N, dim] with ids (uuid4 hex when None) and metadata dicts; returns the ids.

        All-or-nothing: a duplicate id, a bad value or a crash leaves the index as it was before the call.
        ``replace=True``: ids already in the index are replaced in the same transaction (a re-indexed
        track is never missing, nor there twice).
        """
        emb = as_rows(embeddings, self.dim, "embeddings").astype("<f4", copy=False)  # the on-disk byte order
        n = emb.shape[0]
        ids = check_ids(ids, n)
        rows_md = metadata_list(metadata, n)
        if n == 0:
            return []
        with self._lock:
            self._check_open()
            self._add_locked(emb, ids, rows_md, replace)
        return ids

    def _add_locked(self, emb: np.ndarray, ids: list[str], rows_md: list[Metadata], replace: bool) -> None:
        db = self._db
        self._begin_write()  # SQLite's write lock: one writer (thread or process) at a time
        written = False
        try:
            count = self._stored_count()
            if count != self._count:  # another process added since we last looked
                db.execute("ROLLBACK")
                self.refresh()
                self._begin_write()
                count = self._stored_count()
            if not self._legacy_dropped:  # before the insert, so this add no longer maintains them
                for statement in _LEGACY_INDEXES:
                    db.execute(statement)
            replaced = np.empty(0, np.int64)
            if replace:
                replaced = self._existing_rows(ids)
                self._delete_rows(replaced)
            self._write_vectors(count, emb)
            written = True
            try:  # the UNIQUE index finds an id already stored; then name it (a lookup per id only on error)
                self._insert_rows(count, ids, rows_md)
            except sqlite3.IntegrityError as exc:
                db.execute("ROLLBACK")
                dup = self._first_existing(ids)
                raise DuplicateIdError(
                    f"id {dup!r} is already in the index; nothing was added (or pass replace=True)", dup
                ) from exc
            db.execute(_BATCHES)  # indexes made before checksums get the table at their next add
            db.execute(
                "INSERT OR REPLACE INTO batches(first_row, rows, crc32) VALUES (?, ?, ?)",
                (count, len(ids), zlib.crc32(memoryview(emb))),
            )
            db.execute("UPDATE meta SET value=? WHERE key='count'", (str(count + len(ids)),))
            db.execute("COMMIT")  # the commit point
            self._legacy_dropped = True
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if written:
                self._discard_vectors(count)
            raise
        self._count = count + len(ids)
        if replaced.size:
            if self._alive is None:
                self._alive = np.ones(count, dtype=bool)
            self._alive[replaced[replaced < count]] = False
        if self._verified_rows == count:  # rows we just wrote need no re-check
            self._verified_rows = self._count
        if self._alive is not None:
            self._alive = np.concatenate((self._alive, np.ones(len(ids), dtype=bool)))
        self._after_add(count, rows_md)

    def _write_vectors(self, count: int, emb: np.ndarray) -> None:
        """Write rows [count, count+N) after the committed ones; durable (fsynced) before returning."""
        if self._buf is not None:
            need = count + emb.shape[0]
            if need > self._buf.shape[0]:
                grown = np.empty((max(need, 2 * self._buf.shape[0], 1024), self.dim), np.float32)
                grown[:count] = self._buf[:count]
                self._buf = grown
            self._buf[count:need] = emb
            return
        assert self.path is not None
        with open(self.path / VECTORS_FILE, "r+b") as f:
            f.seek(count * self.dim * 4)
            f.write(memoryview(emb).cast("B"))
            f.truncate()
            f.flush()
            os.fsync(f.fileno())

    def _discard_vectors(self, count: int) -> None:
        if self._buf is not None or self.path is None:
            return
        try:
            with open(self.path / VECTORS_FILE, "r+b") as f:
                f.truncate(count * self.dim * 4)
        except OSError as exc:  # harmless: the next open truncates uncommitted bytes anyway
            logger.warning("could not truncate uncommitted vectors in %s: %s", self.path, exc)

    def _insert_rows(self, count: int, ids: list[str], rows_md: list[Metadata]) -> None:
        # (row, id) + the six metadata values, each row built in C (transposing 1M tuples into columns
        # first cost ~2 s per million)
        self._db.executemany(
            "INSERT INTO items(row, id, camera, timestamp, track, bbox, source, extra) VALUES (?,?,?,?,?,?,?,?)",
            map(tuple.__add__, zip(range(count, count + len(ids)), ids, strict=True), rows_md),
        )

    def remove(
        self, ids: Sequence[str] | None = None, *, where: Mapping[str, Any] | None = None, everything: bool = False
    ) -> int:
        """Remove items by id (unknown ids are a KeyError) or every item matching ``where``; returns how many.

        All-or-nothing and durable: the rows leave ``items`` in one SQLite transaction, so a crash keeps
        all of them or none. The vectors stay in ``vectors.f32`` as tombstones skipped by search; the
        space is not reclaimed (rebuild the index to compact it).
        """
        where = check_remove(ids, where, everything)
        if where is not None:
            cond, params = to_sql(parse_where(where))
        with self._lock:
            self._check_open()
            if ids is not None:
                rows = self._rows_of(ids)
                if rows.size == 0:
                    return 0
            self._begin_write()
            try:
                if where is not None:  # read inside the write lock: what matches now is what is deleted
                    rows = self._fetch_rows(f"SELECT row FROM items WHERE {cond} ORDER BY row", params)
                self._delete_rows(rows)
                self._db.execute("COMMIT")  # the commit point
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            rows = rows[rows < self._count]  # rows another process added are seen at refresh()
            if self._alive is None:
                self._alive = np.ones(self._count, dtype=bool)
            self._alive[rows] = False
            self._after_remove(rows)
            return int(rows.size)

    def _delete_rows(self, rows: np.ndarray) -> None:
        """DELETE the rows from ``items`` inside the caller's transaction."""
        for i in range(0, rows.size, _SQL_CHUNK):
            chunk = rows[i : i + _SQL_CHUNK].tolist()
            self._db.execute(f"DELETE FROM items WHERE row IN ({','.join('?' * len(chunk))})", chunk)


def _fsync_dir(path: Path) -> None:
    """Make a new directory entry durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
