"""The on-disk store behind the local index: the vectors (:mod:`.vectors`) + SQLite (:mod:`.catalog`), WAL.

Layout of a persisted index (a directory)::

    vectors.f32     raw little-endian float32 rows, appended in add order
    index.sqlite    meta, items, batches (see :mod:`.catalog`)
    index.sqlite-wal, index.sqlite-shm   SQLite's write-ahead log (copy the folder as a whole)

Crash safety. :meth:`IndexStore.add` takes SQLite's write lock, appends the vectors after the committed
rows and fsyncs them, then inserts the rows, their checksum and the new row count in ONE SQLite
transaction. Its commit is the commit point: if the process dies before it, SQLite rolls the
transaction back and the vector bytes past the committed count are ignored and truncated by the next
writer; if it dies after, everything is durable. :meth:`IndexStore.remove` deletes rows of ``items``
in one transaction too; their vectors stay in the file as tombstones that search skips.

Concurrency. Readers never wait for a writer, nor a writer for them (WAL). One process writes at a time;
the others wait up to ``busy_timeout`` seconds, then get :class:`~clear_sdk.errors.IndexBusyError`.
Another process's index object sees new items after ``refresh()`` (a search that meets items another
process removed refreshes by itself). WAL needs a local file system (not NFS/SMB). An index this
process cannot write opens read-only.

Integrity. :meth:`IndexStore.verify` recomputes each add's crc32; rows that fail (a bit flip, a zeroed
block, a NaN written over them) are left out of every search with a warning, and the rest keep
answering.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import zlib
from pathlib import Path

import numpy as np

from clear_sdk.errors import BundleError, ClearSDKError, DuplicateIdError
from clear_sdk.index.catalog import FORMAT_VERSION, Catalog
from clear_sdk.index.metadata import Metadata
from clear_sdk.index.vectors import VECTORS_FILE, VectorRows, fsync_dir
from clear_sdk.index.where import Clause

logger = logging.getLogger("clear_sdk.index")

DB_FILE = "index.sqlite"
#: Indexes whose vector file is at most this large are verified (checksums) every time they are opened.
VERIFY_ON_OPEN_MAX_BYTES = 256 << 20


class IndexStore:
    """Vectors + ids + metadata of the local index, crash-safe and shared between processes; no search."""

    def __init__(self, path: Path | None, dim: int | None, *, busy_timeout: float, block_rows: int) -> None:
        self.path, self.block_rows = path, block_rows
        self.lock = threading.RLock()
        self.closed = False
        self.corrupt = np.zeros(0, dtype=bool)  # rows that failed verification: never returned by search
        self.verified_rows = 0
        self._excluded: np.ndarray | None = None
        if path is None:
            if dim is None:
                raise ValueError("dim is required for an in-memory index")
            self.catalog = Catalog(None, busy_timeout)
            self.catalog.create(int(dim))
            self.dim, self.count = int(dim), 0
        else:
            self.catalog = self._open_dir(path, dim, busy_timeout)
        self.vectors = VectorRows(None if path is None else path / VECTORS_FILE, self.dim)
        if path is not None:
            self._reconcile()
        self.alive = self.catalog.alive_rows(self.count)

    @property
    def read_only(self) -> bool:
        return self.catalog.read_only

    def _open_dir(self, path: Path, dim: int | None, busy_timeout: float) -> Catalog:
        if path.exists() and not path.is_dir():
            raise BundleError(f"index path {path} is a file; pass a directory")
        db_path, vec_path = path / DB_FILE, path / VECTORS_FILE
        if not db_path.exists():
            if dim is None:
                raise BundleError(f"no index at {path} ({DB_FILE} missing); pass dim to create one")
            if vec_path.exists() and vec_path.stat().st_size > 0:
                raise BundleError(
                    f"{vec_path} exists without {DB_FILE}: not an index this version can open; move it away"
                )
            path.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(db_path, busy_timeout)
        try:
            if not catalog.has_schema():
                if dim is None:
                    raise BundleError(f"{db_path} is not a clear-sdk index (no meta table); pass dim to create one")
                catalog.create(int(dim))
            self.dim = self._check_meta(catalog.meta(), dim, db_path)
        except BaseException as exc:
            catalog.close()
            if isinstance(exc, ClearSDKError) or not isinstance(exc, Exception):
                raise
            raise BundleError(f"{db_path} is not a readable SQLite database ({exc}); move it away") from exc
        if not vec_path.exists() and not catalog.read_only:
            vec_path.touch()
            fsync_dir(path)
        return catalog

    def _check_meta(self, meta: dict[str, str], dim: int | None, db_path: Path) -> int:
        if "dim" not in meta or "count" not in meta:
            raise BundleError(f"{db_path} is not a clear-sdk index (its meta table lacks dim/count); move it away")
        version = int(meta.get("format_version", "0"))
        if version > FORMAT_VERSION:
            raise BundleError(
                f"index {self.path} has format version {version}, newer than this clear-sdk ({FORMAT_VERSION}); "
                "upgrade clear-sdk"
            )
        stored = int(meta["dim"])
        if dim is not None and int(dim) != stored:
            raise BundleError(
                f"index {self.path} holds {stored}-d vectors, not {dim}-d: it was built with another model. "
                "Open it with the model (bundle) that built it, or index into a new folder"
            )
        return stored

    def _reconcile(self) -> None:
        """Learn the committed count; drop vector bytes past it (an interrupted add) when no one is writing.

        Readers take no lock: bytes past the count may be an add in progress in another process, so they
        are only truncated when the write lock is free at once (a writer truncates them anyway).
        """
        count = self.catalog.count()
        stored = self.vectors.stored_rows()
        if stored < count:
            raise BundleError(
                f"{self.vectors.path} holds {int(stored)} vectors but the index committed {count}: "
                "the vector file was truncated or replaced; restore it from a backup or rebuild the index"
            )
        if stored > count and self.catalog.try_writing():
            try:
                count = self.catalog.count()
                if self.vectors.stored_rows() > count:
                    logger.warning("index %s: discarding the vectors of an interrupted add", self.path)
                    self.vectors.truncate(count, durable=True)
                self.catalog.db.execute("COMMIT")
            except BaseException:
                self.catalog.db.execute("ROLLBACK")
                raise
        self.count = count
        self.vectors.forget_map()

    # ------------------------------------------------------------------------------------- state

    def check_open(self) -> None:
        if self.closed:
            raise ClearSDKError("this VectorIndex is closed; open the directory again")

    def view(self) -> np.ndarray:
        """All committed vectors [count, dim] (alive or not)."""
        return self.vectors.view(self.count)

    def excluded(self) -> np.ndarray:
        """Bool mask over rows [0, count) that search must skip (removed or corrupt); cached between changes."""
        ex = self._excluded
        if ex is None or len(ex) != self.count:
            ex = np.zeros(self.count, dtype=bool)
            if self.alive is not None:
                ex[: len(self.alive)] |= ~self.alive[: self.count]
            n = min(len(self.corrupt), self.count)
            ex[:n] |= self.corrupt[:n]
            self._excluded = ex
        return ex

    def __len__(self) -> int:
        return self.count if self.alive is None else int(self.alive.sum())

    # ------------------------------------------------------------------------------------ writing

    def add(self, emb: np.ndarray, ids: list[str], rows: list[Metadata], replace: bool) -> int:
        """Commit checked rows (all or nothing); returns the first new row."""
        catalog = self.catalog
        with catalog.writing():  # SQLite's write lock: one writer (thread or process) at a time
            if catalog.count() != self.count:  # another process added since we last looked
                self.refresh()
            count = self.count
            replaced = catalog.matching([Clause("id", "in", tuple(ids))]) if replace else np.empty(0, np.int64)
            catalog.delete(replaced)
            try:
                self.vectors.write(count, emb)  # durable (fsynced) before the rows, which COMMIT makes visible
                catalog.insert_rows(count, ids, rows)
                catalog.finish_add(count, len(ids), zlib.crc32(memoryview(emb)))
            except BaseException as exc:
                self.vectors.truncate(count)
                if isinstance(exc, sqlite3.IntegrityError):  # the UNIQUE index found an id already stored: name it
                    dup = min(catalog.id_rows(ids))
                    raise DuplicateIdError(
                        f"id {dup!r} is already in the index; nothing was added (or pass replace=True)", dup
                    ) from exc
                raise
        catalog.committed()
        self.count = count + len(ids)
        self._mark_dead(replaced)
        if self.alive is not None:
            self.alive = np.concatenate((self.alive, np.ones(len(ids), dtype=bool)))
        if self.verified_rows == count:  # rows just written need no re-check
            self.verified_rows = self.count
        return count

    def remove(self, ids: list[str] | None, clauses: list[Clause] | None) -> int:
        """Delete rows by id (unknown ids: KeyError) or by filter, in one transaction; returns how many."""
        rows = self.catalog.rows_of(ids) if ids is not None else None
        if rows is not None and rows.size == 0:
            return 0
        with self.catalog.writing():
            if clauses is not None:  # read inside the write lock: what matches now is what is deleted
                rows = self.catalog.matching(clauses)
            assert rows is not None
            self.catalog.delete(rows)
        rows = rows[rows < self.count]  # rows another process added are seen at refresh()
        self._mark_dead(rows)
        return int(rows.size)

    def _mark_dead(self, rows: np.ndarray) -> None:
        if rows.size:
            if self.alive is None:
                self.alive = np.ones(self.count, dtype=bool)
            self.alive[rows[rows < self.count]] = False
            self._excluded = None

    def refresh(self) -> None:
        """Pick up rows that another process added to (or removed from) the same directory."""
        if self.path is not None:
            self._reconcile()
            self.alive = self.catalog.alive_rows(self.count)
            self._excluded = None
            if self.verified_rows and self.count > self.verified_rows:
                self.verify(start=self.verified_rows)

    # ---------------------------------------------------------------------------------- integrity

    def verify(self, start: int = 0) -> list[str]:
        """Check the stored vectors against each add's crc32; rows that fail are left out of search from now on.

        Rows of indexes written before checksums existed are checked for NaN / infinity only.
        """
        count, vectors = self.count, self.view()
        if len(self.corrupt) < count:
            self.corrupt = np.concatenate((self.corrupt, np.zeros(count - len(self.corrupt), dtype=bool)))
        covered = np.zeros(count, dtype=bool)
        bad = np.zeros(count, dtype=bool)
        for first, n, crc in self.catalog.batches(start, count):
            last = min(first + n, count)
            covered[first:last] = True
            if first + n > count or zlib.crc32(memoryview(np.ascontiguousarray(vectors[first:last]))) != crc:
                bad[first:last] = True
        for r0 in range(start, count, self.block_rows):
            r1 = min(count, r0 + self.block_rows)
            todo = ~covered[r0:r1]
            if todo.any():
                bad[r0:r1] |= todo & ~np.isfinite(vectors[r0:r1]).all(axis=1)
        self.verified_rows = count
        new = bad & ~self.corrupt
        self.corrupt |= bad
        self._excluded = None
        if not bad.any():
            return []
        ids = [item_id for item_id, _ in self.catalog.metadata_by_row(np.flatnonzero(bad).tolist()).values()]
        if new.any():
            logger.warning(
                "index %s: %d stored vectors (%s) fail their checksum: the vector file was changed on disk. "
                "They are left out of search; re-add those items, or rebuild the index from the crops",
                self.path, int(new.sum()), ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else ""),
            )  # fmt: skip
        return ids

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.vectors.close()
            self.catalog.close()


__all__ = ["DB_FILE", "FORMAT_VERSION", "VECTORS_FILE", "VERIFY_ON_OPEN_MAX_BYTES", "IndexStore"]
