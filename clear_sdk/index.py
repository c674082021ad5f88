"""The gallery index behind AttributeSearcher: embeddings + ids + metadata, exact top-k search.

Layout of a persisted index (a directory)::

    vectors.f32     raw little-endian float32 rows, appended in add order (row r at byte r*dim*4)
    index.sqlite    meta(key, value): dim, format_version, count (= committed rows), and what the
                      caller stores there (AttributeSearcher: the model identity)
                    items(row, id UNIQUE, camera, timestamp, track, bbox JSON, source, extra JSON)
                    batches(first_row, rows, crc32): the checksum of each add's vector bytes
    index.sqlite-wal, index.sqlite-shm   SQLite's write-ahead log (copy the folder as a whole)

Crash safety. :meth:`VectorIndex.add` takes SQLite's write lock, appends the vectors after the
committed rows and fsyncs them, then inserts the rows, their checksum and the new row count in ONE
SQLite transaction. The transaction's commit is the commit point: if the process dies before it,
SQLite rolls the transaction back and the vector bytes past the committed count are ignored and
truncated by the next writer; if it dies after, everything is durable. A crash therefore loses at
most the add in progress, never the index.

Concurrency. The database is in WAL mode and opening or searching takes no lock, so readers never
wait for a writer, nor a writer for them. One process writes at a time: the others wait for
SQLite's write lock up to ``busy_timeout`` seconds (30 by default), then get an
:class:`~clear_sdk.errors.IndexBusyError` that says the index is fine and busy. Another process's
index object sees new items after :meth:`VectorIndex.refresh`. WAL needs a local file system
(not NFS/SMB), like SQLite itself.

Integrity. :meth:`VectorIndex.verify` recomputes each add's crc32; rows that fail (a bit flip, a
zeroed block, a NaN written over them) are left out of every search with a warning, and the rest
keep answering. It runs at every open of an index up to ``VERIFY_ON_OPEN_MAX_BYTES`` of vectors
(256 MiB, about 200k items of a 306-d gallery: 0.15 s on one busy core), else when asked (``verify=True``,
``clear-sdk search --verify``).

Search. Exact inner product (cosine when the caller L2-normalises, as AttributeSearcher does),
scored in blocks of ``block_rows`` rows so that memory stays bounded at millions of items. At 1M
items the top-k selection, not the matrix product, is the cost (DESIGN §7): a full ``argpartition``
per query touches every score several times. Here the first small block seeds a per-query
threshold (the running k-th best score); every later block only needs ``scores > threshold`` and
``np.nonzero`` to find the few entries that can still enter the top k, which are merged with one
small ``lexsort``. Results are sorted by score (descending), ties by row (insertion order), so the
output equals a stable full sort. FAISS (optional) adds approximate IVF / HNSW indexes, which trade
recall for speed; see ``benchmarks/bench_search.py`` for measured numbers.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import re
import sqlite3
import threading
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clear_sdk.errors import BundleError, ClearSDKError, IndexBusyError, QueryError

__all__ = ["FORMAT_VERSION", "METADATA_FIELDS", "VectorIndex", "faiss_available", "topk_inner_product"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
VECTORS_FILE = "vectors.f32"
DB_FILE = "index.sqlite"

#: Metadata keys stored in their own (filterable) columns; any other key goes to the JSON ``extra``.
METADATA_FIELDS: tuple[str, ...] = ("camera", "timestamp", "track", "bbox", "source")
_FILTER_TEXT = ("id", "camera", "source")
_FILTER_NUMERIC = ("timestamp", "track")
_EXTRA_KEY = re.compile(r"^extra\.([A-Za-z_][A-Za-z0-9_]*)$")

_SQL_CHUNK = 900  # bound parameters per statement (SQLite's historic limit is 999)
_QUERY_CHUNK = 256  # queries scored together; with block_rows=65536 the score block is 64 MiB at most
_EXCLUDE_POSTFILTER_MAX = 4096  # excluded rows handled by asking for k + len(excluded) and dropping them

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
CREATE INDEX IF NOT EXISTS items_camera ON items(camera);
CREATE INDEX IF NOT EXISTS items_timestamp ON items(timestamp);
"""
# crc32 of the vector bytes of each add (rows [first_row, first_row + rows)); indexes made before it
# have rows no batch covers, which verify() checks for NaN / infinity only
_BATCHES = (
    "CREATE TABLE IF NOT EXISTS batches (first_row INTEGER PRIMARY KEY, rows INTEGER NOT NULL, crc32 INTEGER NOT NULL)"
)
#: Indexes whose vector file is at most this large are verified (checksums) every time they are opened.
VERIFY_ON_OPEN_MAX_BYTES = 256 << 20


def faiss_available() -> bool:
    """Whether the optional FAISS package can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "backend='faiss' needs the faiss package: pip install clear-sdk[faiss] (or faiss-cpu / faiss-gpu)"
        ) from exc
    return faiss


# ------------------------------------------------------------------------------------------ exact top-k


def _block_topk(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row top-k of a score block, ties broken by ascending row: ([Q, k'], [Q, k']), k' = min(k, B)."""
    q, b = scores.shape
    if np.isnan(scores).any():  # a corrupted stored row: rank it last instead of breaking the selection
        scores = np.where(np.isnan(scores), np.float32(-np.inf), scores)
    if b <= k:
        order = np.lexsort((np.broadcast_to(rows, scores.shape), -scores), axis=1)
        return np.take_along_axis(scores, order, axis=1), rows[order]
    kth = np.partition(scores, b - k, axis=1)[:, b - k : b - k + 1]  # k-th largest score per query
    qi, ci = np.nonzero(scores >= kth)  # >= k entries per query (more when the k-th score is tied)
    return _take_first_k(qi, scores[qi, ci], rows[ci], q, k)


def _take_first_k(qi: np.ndarray, s: np.ndarray, r: np.ndarray, q: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """From entries (query, score, row) with at least k per query, the k best per query, in order."""
    order = np.lexsort((r, -s, qi))
    counts = np.bincount(qi, minlength=q)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    take = order[(starts[:, None] + np.arange(k)[None, :]).ravel()]
    return s[take].reshape(q, k), r[take].reshape(q, k)


def topk_inner_product(
    queries: np.ndarray,
    vectors: np.ndarray,
    k: int,
    rows: np.ndarray | None = None,
    block_rows: int = 65536,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product: (scores float32 [Q, k'], rows int64 [Q, k']), k' = min(k, candidates).

    ``vectors`` may be a memory map; ``rows`` (sorted) restricts the search to those rows. Sorted by
    score descending, ties by row ascending, i.e. the first k of a stable full sort.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n_total = vectors.shape[0] if rows is None else len(rows)
    k_eff = min(int(k), n_total)
    nq = queries.shape[0]
    if k_eff <= 0 or nq == 0:
        return np.empty((nq, 0), np.float32), np.empty((nq, 0), np.int64)
    out_s = np.empty((nq, k_eff), np.float32)
    out_r = np.empty((nq, k_eff), np.int64)
    for q0 in range(0, nq, _QUERY_CHUNK):
        s, r = _topk_chunk(queries[q0 : q0 + _QUERY_CHUNK], vectors, k_eff, rows, n_total, block_rows)
        out_s[q0 : q0 + len(s)] = s
        out_r[q0 : q0 + len(s)] = r
    return out_s, out_r


def _topk_chunk(
    q: np.ndarray, vectors: np.ndarray, k: int, rows: np.ndarray | None, n_total: int, block_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    nq = q.shape[0]
    best_s: np.ndarray | None = None
    best_r: np.ndarray | None = None
    # threshold mask of one block, padded to whole 8-byte words (see below)
    mask_buf = np.zeros(nq * min(block_rows, n_total) + 8, dtype=bool)
    lanes = np.arange(8)
    # a small first block seeds the thresholds cheaply; the partition there is the only O(B) selection
    first = min(block_rows, max(4096, 32 * k))
    start = 0
    while start < n_total:
        end = min(n_total, start + (first if start == 0 else block_rows))
        if rows is None:
            block = vectors[start:end]
            block_ids = np.arange(start, end, dtype=np.int64)
        else:
            block_ids = rows[start:end]
            block = vectors[block_ids]
        scores = q @ block.T  # (nq, B) float32
        b = end - start
        start = end
        if best_s is None or best_s.shape[1] < k:
            bs, br = _block_topk(scores, block_ids, k)
            if best_s is not None:
                bs, br = _merge(best_s, best_r, bs, br, k)
            best_s, best_r = bs, br
            continue
        # only entries strictly above the running k-th score can enter (an equal score loses the tie:
        # its row is larger than every row already kept)
        n_flat = nq * b
        np.greater(scores, best_s[:, k - 1 : k], out=mask_buf[:n_flat].reshape(nq, b))
        pad = (-n_flat) % 8
        mask_buf[n_flat : n_flat + pad] = False
        # np.nonzero over the whole bool block costs as much as the comparison several times over; the
        # candidates are few, so find the non-zero 8-byte words first and look inside those only
        words = np.flatnonzero(mask_buf[: n_flat + pad].view(np.uint64))
        if words.size == 0:
            continue
        flat = (words[:, None] * 8 + lanes).ravel()
        flat = flat[mask_buf[flat]]
        qi, ci = np.divmod(flat, b)
        if qi.size > 8 * nq * k:  # adversarial order (e.g. scores rising with row): select in the block first
            bs, br = _block_topk(scores, block_ids, k)
            best_s, best_r = _merge(best_s, best_r, bs, br, k)
            continue
        all_q = np.concatenate((np.repeat(np.arange(nq), k), qi))
        all_s = np.concatenate((best_s.ravel(), scores[qi, ci]))
        all_r = np.concatenate((best_r.ravel(), block_ids[ci]))
        best_s, best_r = _take_first_k(all_q, all_s, all_r, nq, k)
    assert best_s is not None and best_r is not None
    return best_s, best_r


def _merge(a_s: np.ndarray, a_r: np.ndarray, b_s: np.ndarray, b_r: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    nq = a_s.shape[0]
    s = np.concatenate((a_s, b_s), axis=1)
    r = np.concatenate((a_r, b_r), axis=1)
    kk = min(k, s.shape[1])
    qi = np.repeat(np.arange(nq), s.shape[1])
    return _take_first_k(qi, s.ravel(), r.ravel(), nq, kk)


# ------------------------------------------------------------------------------------------- metadata


def _utf8(text: str, where: str) -> str:
    """``text`` if SQLite can store it; a str holding undecodable file-name bytes (surrogates) is refused."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "backslashreplace").decode("ascii", "replace")
        raise ValueError(
            f"{where} {shown!r} is not valid UTF-8 (a file name with undecodable bytes?); "
            "rename the file, or pass an id / source that is UTF-8 text"
        ) from None
    return text


def _metadata_row(md: Mapping[str, Any] | None, where: str) -> tuple[Any, ...]:
    """(camera, timestamp, track, bbox_json, source, extra_json) from a user metadata dict."""
    if md is None:
        return (None, None, None, None, None, None)
    if not isinstance(md, Mapping):
        raise ValueError(f"{where}: metadata must be a dict (or None), got {type(md).__name__}")
    camera = md.get("camera")
    if camera is not None:
        if isinstance(camera, bool) or not isinstance(camera, (str, int)):
            raise ValueError(f"{where}: camera must be a str or int, got {type(camera).__name__}")
        camera = _utf8(str(camera), f"{where}: camera")
    ts = md.get("timestamp")
    if ts is not None:
        if isinstance(ts, _dt.datetime):
            ts = ts.timestamp()
        elif isinstance(ts, bool) or not isinstance(ts, (int, float, np.integer, np.floating)):
            raise ValueError(f"{where}: timestamp must be seconds (int/float) or a datetime, got {ts!r}")
        ts = float(ts)
        if not math.isfinite(ts):
            raise ValueError(f"{where}: timestamp must be finite, got {ts}")
    track = md.get("track")
    if track is not None:
        if isinstance(track, bool) or not isinstance(track, (int, np.integer)):
            raise ValueError(f"{where}: track must be an int, got {track!r}")
        track = int(track)
    bbox = md.get("bbox")
    if bbox is not None:
        try:
            values = [float(v) for v in bbox]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: bbox must be 4 numbers (x1, y1, x2, y2), got {bbox!r}") from exc
        if len(values) != 4:
            raise ValueError(f"{where}: bbox must be 4 numbers (x1, y1, x2, y2), got {bbox!r}")
        bbox = json.dumps(values)
    source = md.get("source")
    if source is not None:
        if not isinstance(source, (str, os.PathLike)):
            raise ValueError(f"{where}: source must be a str or path, got {type(source).__name__}")
        source = _utf8(os.fsdecode(source), f"{where}: source")
    extra = {k: v for k, v in md.items() if k not in METADATA_FIELDS}
    if "id" in extra:
        raise ValueError(f"{where}: 'id' is not a metadata key; pass ids in the ids argument")
    try:
        extra_json = json.dumps(extra, sort_keys=True, allow_nan=False) if extra else None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: metadata values must be JSON-serialisable ({exc})") from exc
    return (camera, ts, track, bbox, source, extra_json)


def _metadata_dict(camera: Any, ts: Any, track: Any, bbox: Any, source: Any, extra: Any) -> dict[str, Any]:
    md: dict[str, Any] = {}
    if camera is not None:
        md["camera"] = camera
    if ts is not None:
        md["timestamp"] = ts
    if track is not None:
        md["track"] = track
    if bbox is not None:
        md["bbox"] = json.loads(bbox)
    if source is not None:
        md["source"] = source
    if extra is not None:
        md.update(json.loads(extra))
    return md


def _where_sql(where: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """Translate a ``where`` filter into an SQL condition on ``items``.

    Scalars are equality, lists/sets are IN, a 2-tuple on a numeric field is an inclusive range
    (None = open end), None is IS NULL. ``extra.<key>`` filters a key of the JSON metadata.
    """
    if not isinstance(where, Mapping):
        raise QueryError(f"where must be a dict of field -> value, got {type(where).__name__}")
    clauses: list[str] = []
    params: list[Any] = []
    for key, value in where.items():
        m = _EXTRA_KEY.match(key) if isinstance(key, str) else None
        if key in _FILTER_TEXT:
            column, numeric = key, False
        elif key in _FILTER_NUMERIC:
            column, numeric = key, True
        elif m:
            column, numeric = f"json_extract(extra, '$.{m.group(1)}')", None
        else:
            valid = ", ".join((*_FILTER_TEXT, *_FILTER_NUMERIC, "extra.<key>"))
            raise QueryError(f"cannot filter on {key!r}; valid filter keys: {valid}")

        def conv(v: Any, key: str = key, numeric: bool | None = numeric) -> Any:
            if numeric is False:
                if isinstance(v, bool) or not isinstance(v, (str, int)):
                    raise QueryError(f"filter {key!r}: expected a str value, got {v!r}")
                return str(v)
            if numeric is True:
                if isinstance(v, _dt.datetime):
                    return v.timestamp()
                if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                    raise QueryError(f"filter {key!r}: expected a number, got {v!r}")
                return float(v) if key == "timestamp" else v
            if v is not None and not isinstance(v, (str, int, float)):
                raise QueryError(f"filter {key!r}: expected a str, number or bool, got {type(v).__name__} {v!r}")
            return v

        if value is None:
            clauses.append(f"{column} IS NULL")
        elif isinstance(value, tuple) and numeric is not False:
            if len(value) != 2:
                raise QueryError(f"filter {key!r}: a range is a 2-tuple (low, high), got {value!r}")
            lo, hi = value
            if lo is not None:
                clauses.append(f"{column} >= ?")
                params.append(conv(lo))
            if hi is not None:
                clauses.append(f"{column} <= ?")
                params.append(conv(hi))
        elif isinstance(value, (list, set, frozenset, tuple)):
            values = [conv(v) for v in value]
            if not values:
                clauses.append("0")
            elif len(values) > _SQL_CHUNK:  # one JSON parameter instead of thousands of bound ones
                clauses.append(f"{column} IN (SELECT value FROM json_each(?))")
                params.append(json.dumps(values))
            else:
                clauses.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(values)
        else:
            clauses.append(f"{column} = ?")
            params.append(conv(value))
    return (" AND ".join(clauses) or "1"), params


# --------------------------------------------------------------------------------------------- the index


class VectorIndex:
    """Embeddings with string ids and metadata; exact (or FAISS) inner-product search; optional persistence.

    ``path=None`` keeps everything in memory; a directory path creates or reopens a persisted index
    (``dim=None`` takes the stored dimension). ``backend="auto"`` is the numpy exact search, which
    measured faster than FAISS's exact IndexFlatIP here; ``faiss_type="ivf"|"hnsw"`` (FAISS, approximate:
    faster at millions of items, at some loss of recall tuned by ``nprobe`` / ``ef_search``) or
    ``backend="faiss"`` use FAISS. Filters (``where``) always run exactly on numpy over the matching rows.
    A FAISS index is derived data: it is built in memory at the first search (IVF trains then) and extended
    after adds, not saved to the directory, so a reopened index rebuilds it.
    """

    def __init__(
        self,
        dim: int | None,
        path: str | os.PathLike | None = None,
        *,
        backend: Literal["auto", "numpy", "faiss"] = "auto",
        faiss_type: Literal["flat", "ivf", "hnsw"] = "flat",
        nlist: int | None = None,
        nprobe: int = 32,
        hnsw_m: int = 32,
        ef_search: int = 128,
        block_rows: int = 65536,
        busy_timeout: float = 30.0,
        verify: bool | None = None,
    ) -> None:
        if backend not in ("auto", "numpy", "faiss"):
            raise ValueError(f"backend must be 'auto', 'numpy' or 'faiss', got {backend!r}")
        if faiss_type not in ("flat", "ivf", "hnsw"):
            raise ValueError(f"faiss_type must be 'flat', 'ivf' or 'hnsw', got {faiss_type!r}")
        if backend == "numpy" and faiss_type != "flat":
            raise ValueError(f"faiss_type={faiss_type!r} is a FAISS index; use backend='faiss' or 'auto'")
        self._use_faiss = backend == "faiss" or faiss_type != "flat"
        if self._use_faiss:
            _import_faiss()  # fail now, with the install hint, rather than at the first search
        if dim is not None and (isinstance(dim, bool) or int(dim) != dim or dim < 1):
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, got {block_rows}")
        if not busy_timeout >= 0:
            raise ValueError(f"busy_timeout must be >= 0 seconds, got {busy_timeout}")
        self.busy_timeout = float(busy_timeout)
        self._corrupt = np.zeros(0, dtype=bool)  # rows that failed verification: never returned by search
        self._verified_rows = 0
        self.backend = "faiss" if self._use_faiss else "numpy"
        self.faiss_type = faiss_type
        self.nlist, self.nprobe, self.hnsw_m, self.ef_search = nlist, nprobe, hnsw_m, ef_search
        self.block_rows = int(block_rows)
        self.path = None if path is None else Path(path)
        self._lock = threading.RLock()
        self._faiss_index: Any = None
        self._faiss_rows = 0
        self._mmap: np.ndarray | None = None
        self._buf: np.ndarray | None = None
        self._closed = False
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
        if self.path is not None:
            size = self._count * self.dim * 4
            if verify or (verify is None and size <= VERIFY_ON_OPEN_MAX_BYTES):
                self.verify()

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
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._busy(exc, "waiting to write") from exc

    def _connect(self, db_path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(str(db_path), timeout=self.busy_timeout, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
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
        try:
            self._db = self._connect(db_path)
        except sqlite3.DatabaseError as exc:
            raise BundleError(f"{db_path} is not a readable SQLite database ({exc}); move it away") from exc
        try:
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
        if not vec_path.exists():
            vec_path.touch()
            _fsync_dir(self.path)
        self._reconcile_vectors()

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
        if size > expected:
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

    @property
    def corrupt_ids(self) -> list[str]:
        """Ids whose vectors failed :meth:`verify` (left out of search)."""
        with self._lock:
            rows = np.flatnonzero(self._corrupt).tolist()
            return [item_id for item_id, _ in self._metadata_by_row(rows).values()]

    # ------------------------------------------------------------------------------------ metadata store

    def get_meta(self, key: str) -> str | None:
        """A value of the index's own key-value table (``meta``), or None."""
        with self._lock:
            self._check_open()
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return None if row is None else row[0]

    def set_meta_default(self, key: str, value: str) -> str:
        """Store ``value`` under ``key`` unless a value is there already; returns the stored value."""
        with self._lock:
            self._check_open()
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

    def __contains__(self, item_id: object) -> bool:
        with self._lock:
            self._check_open()
            return self._db.execute("SELECT 1 FROM items WHERE id=?", (item_id,)).fetchone() is not None

    def __repr__(self) -> str:
        where = "in memory" if self.path is None else str(self.path)
        return f"VectorIndex(dim={self.dim}, items={len(self)}, {where}, backend={self.backend!r})"

    def __enter__(self) -> VectorIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ids(self) -> list[str]:
        """Ids of the items, in insertion order."""
        with self._lock:
            self._check_open()
            return [r[0] for r in self._db.execute("SELECT id FROM items ORDER BY row")]

    def close(self) -> None:
        """Release the database and the memory map (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._mmap = None
            self._buf = None
            self._faiss_index = None
            self._db.close()

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

    def get_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored embeddings of ``ids`` (float32 [len(ids), dim])."""
        with self._lock:
            rows = self._rows_of(ids)
            return np.array(self._vectors()[rows], dtype=np.float32)

    def select(self, where: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(id, metadata) of every item that matches a ``where`` filter (as in :meth:`search`), in add order."""
        cond, params = _where_sql(where)
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
        ids = [ids] if isinstance(ids, str) else list(ids)
        found: dict[str, int] = {}
        for i in range(0, len(ids), _SQL_CHUNK):
            chunk = ids[i : i + _SQL_CHUNK]
            sql = f"SELECT id, row FROM items WHERE id IN ({','.join('?' * len(chunk))})"
            found.update(self._db.execute(sql, chunk).fetchall())
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(f"unknown ids: {', '.join(map(repr, missing[:10]))}{' ...' if len(missing) > 10 else ''}")
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
                out[row] = (item_id, _metadata_dict(*cols))
        return out

    # ----------------------------------------------------------------------------------------- add

    def add(
        self,
        embeddings: np.ndarray,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Append embeddings [N, dim] with ids (uuid4 hex when None) and metadata dicts; returns the ids.

        All-or-nothing: a duplicate id, a bad value or a crash leaves the index as it was before the call.
        """
        emb = np.asarray(embeddings)
        if emb.ndim == 1:
            emb = emb[None, :]
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise ValueError(f"embeddings must have shape [N, {self.dim}], got {tuple(np.shape(embeddings))}")
        if not np.issubdtype(emb.dtype, np.number) or np.iscomplexobj(emb):
            raise ValueError(f"embeddings must be real numbers, got dtype {emb.dtype}")
        emb = np.ascontiguousarray(emb, dtype="<f4")
        if not np.isfinite(emb).all():
            bad = int(np.flatnonzero(~np.isfinite(emb).all(axis=1))[0])
            raise ValueError(f"embeddings[{bad}] contains NaN or infinity")
        n = emb.shape[0]
        if ids is None:
            ids = [uuid.uuid4().hex for _ in range(n)]
        else:
            ids = [ids] if isinstance(ids, str) else list(ids)
            if len(ids) != n:
                raise ValueError(f"got {n} embeddings but {len(ids)} ids")
            for i, item_id in enumerate(ids):
                if not isinstance(item_id, str) or not item_id:
                    raise ValueError(f"ids[{i}] must be a non-empty str, got {item_id!r}")
                _utf8(item_id, f"ids[{i}]")
            if len(set(ids)) != n:
                seen: set[str] = set()
                dup = next(i for i in ids if i in seen or seen.add(i))
                raise ValueError(f"duplicate id {dup!r} within this add; ids must be unique")
        if metadata is None:
            rows_md = [(None,) * 6] * n
        else:
            metadata = list(metadata)
            if len(metadata) != n:
                raise ValueError(f"got {n} embeddings but {len(metadata)} metadata entries")
            rows_md = [_metadata_row(md, f"metadata[{i}]") for i, md in enumerate(metadata)]
        if n == 0:
            return []
        with self._lock:
            self._check_open()
            self._add_locked(emb, ids, rows_md)
        return ids

    def _add_locked(self, emb: np.ndarray, ids: list[str], rows_md: list[tuple[Any, ...]]) -> None:
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
            dup = self._first_existing(ids)
            if dup is not None:
                raise ValueError(f"id {dup!r} is already in the index; nothing was added")
            self._write_vectors(count, emb)
            written = True
            self._insert_rows(count, ids, rows_md)
            db.execute(_BATCHES)  # indexes made before checksums get the table at their next add
            db.execute(
                "INSERT OR REPLACE INTO batches(first_row, rows, crc32) VALUES (?, ?, ?)",
                (count, len(ids), zlib.crc32(memoryview(emb))),
            )
            db.execute("UPDATE meta SET value=? WHERE key='count'", (str(count + len(ids)),))
            db.execute("COMMIT")  # the commit point
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if written:
                self._discard_vectors(count)
            raise
        self._count = count + len(ids)
        if self._verified_rows == count:  # rows we just wrote need no re-check
            self._verified_rows = self._count
        if self._alive is not None:
            self._alive = np.concatenate((self._alive, np.ones(len(ids), dtype=bool)))

    def _first_existing(self, ids: list[str]) -> str | None:
        for i in range(0, len(ids), _SQL_CHUNK):
            chunk = ids[i : i + _SQL_CHUNK]
            row = self._db.execute(
                f"SELECT id FROM items WHERE id IN ({','.join('?' * len(chunk))}) LIMIT 1", chunk
            ).fetchone()
            if row is not None:
                return row[0]
        return None

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

    def _insert_rows(self, count: int, ids: list[str], rows_md: list[tuple[Any, ...]]) -> None:
        self._db.executemany(
            "INSERT INTO items(row, id, camera, timestamp, track, bbox, source, extra) VALUES (?,?,?,?,?,?,?,?)",
            ((count + i, item_id, *md) for i, (item_id, md) in enumerate(zip(ids, rows_md, strict=True))),
        )

    def remove(self, ids: Sequence[str]) -> None:
        """Remove items by id (all-or-nothing; unknown ids are a KeyError).

        The vectors stay in ``vectors.f32`` as tombstones skipped by search; the space is not reclaimed
        (rebuild the index to compact it).
        """
        with self._lock:
            rows = self._rows_of(ids)
            if rows.size == 0:
                return
            self._begin_write()
            try:
                for i in range(0, rows.size, _SQL_CHUNK):
                    chunk = rows[i : i + _SQL_CHUNK].tolist()
                    self._db.execute(f"DELETE FROM items WHERE row IN ({','.join('?' * len(chunk))})", chunk)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            if self._alive is None:
                self._alive = np.ones(self._count, dtype=bool)
            self._alive[rows] = False

    # -------------------------------------------------------------------------------------- search

    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        where: Mapping[str, Any] | None = None,
        exclude: Iterable[str] | None = None,
    ) -> list[list[tuple[str, float, dict[str, Any]]]]:
        """Top-k items per query by inner product: one list of (id, score, metadata) per query.

        ``where`` filters on metadata before scoring (see :func:`_where_sql`: ``{"camera": "c1"}``,
        ``{"camera": ["c1", "c2"]}``, ``{"timestamp": (t0, t1)}``, ``{"extra.zone": "A"}``);
        ``exclude`` is a collection of ids never returned. Fewer than k results when fewer items match.
        """
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must have shape [Q, {self.dim}], got {tuple(np.shape(queries))}")
        if not np.issubdtype(q.dtype, np.number) or np.iscomplexobj(q):
            raise ValueError(f"queries must be real numbers, got dtype {q.dtype}")
        q = np.ascontiguousarray(q, dtype=np.float32)
        if not np.isfinite(q).all():
            raise ValueError("queries contain NaN or infinity")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if where is not None:
            _where_sql(where)  # a bad filter is an error whether or not anything is stored yet
        with self._lock:
            self._check_open()
            try:
                scores, rows = self._search_rows(q, int(k), where, exclude)
                rows = np.where(np.isfinite(scores), rows, -1)  # -inf / NaN: a corrupted row, not a hit
                flat = [int(r) for r in rows.ravel() if r >= 0]
                md = self._metadata_by_row(flat)
            except sqlite3.OperationalError as exc:
                raise self._busy(exc, "searching") from exc
        results: list[list[tuple[str, float, dict[str, Any]]]] = []
        for qs, qr in zip(scores, rows, strict=True):
            results.append([(md[int(r)][0], float(s), dict(md[int(r)][1])) for s, r in zip(qs, qr) if r >= 0])
        return results

    def _search_rows(
        self, q: np.ndarray, k: int, where: Mapping[str, Any] | None, exclude: Iterable[str] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        excluded = np.empty(0, np.int64)
        if exclude is not None:
            ex_ids = [exclude] if isinstance(exclude, str) else list(exclude)
            found = []
            for i in range(0, len(ex_ids), _SQL_CHUNK):
                chunk = ex_ids[i : i + _SQL_CHUNK]
                sql = f"SELECT row FROM items WHERE id IN ({','.join('?' * len(chunk))})"
                found.append(self._fetch_rows(sql, chunk))
            excluded = np.unique(np.concatenate(found)) if found else excluded
        if self._alive is not None:
            excluded = np.union1d(excluded, np.flatnonzero(~self._alive))
        if self._corrupt.any():
            excluded = np.union1d(excluded, np.flatnonzero(self._corrupt))
        vectors = self._vectors()
        if where:
            cond, params = _where_sql(where)
            rows = self._fetch_rows(f"SELECT row FROM items WHERE {cond} ORDER BY row", params)
            if excluded.size:
                rows = np.setdiff1d(rows, excluded, assume_unique=True)
            return topk_inner_product(q, vectors, k, rows=rows, block_rows=self.block_rows)
        if excluded.size > _EXCLUDE_POSTFILTER_MAX:
            rows = np.setdiff1d(np.arange(self._count, dtype=np.int64), excluded, assume_unique=True)
            return topk_inner_product(q, vectors, k, rows=rows, block_rows=self.block_rows)
        k_ask = k + excluded.size
        if self._use_faiss:
            scores, rows = self._faiss_search(q, k_ask)
        else:
            scores, rows = topk_inner_product(q, vectors, k_ask, block_rows=self.block_rows)
        if excluded.size:
            keep = ~np.isin(rows, excluded) & (rows >= 0)
            out_s = np.full((len(q), k), -np.inf, np.float32)
            out_r = np.full((len(q), k), -1, np.int64)
            for i in range(len(q)):
                s, r = scores[i][keep[i]][:k], rows[i][keep[i]][:k]
                out_s[i, : len(s)], out_r[i, : len(r)] = s, r
            scores, rows = out_s, out_r
        return scores, rows

    # --------------------------------------------------------------------------------------- faiss

    def _faiss_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        faiss = _import_faiss()
        if self._count == 0:
            return np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64)
        if self._faiss_index is None:
            self._faiss_index = self._build_faiss(faiss)
            self._faiss_rows = 0
        vectors = self._vectors()
        for start in range(self._faiss_rows, self._count, self.block_rows):
            self._faiss_index.add(np.ascontiguousarray(vectors[start : min(self._count, start + self.block_rows)]))
        self._faiss_rows = self._count
        if self.faiss_type == "ivf":
            self._faiss_index.nprobe = int(self.nprobe)
        elif self.faiss_type == "hnsw":
            self._faiss_index.hnsw.efSearch = max(int(self.ef_search), k)
        scores, rows = self._faiss_index.search(q, min(k, self._count))
        return scores, rows.astype(np.int64)

    def _build_faiss(self, faiss: Any) -> Any:
        if self.faiss_type == "flat":
            return faiss.IndexFlatIP(self.dim)
        if self.faiss_type == "hnsw":
            return faiss.IndexHNSWFlat(self.dim, int(self.hnsw_m), faiss.METRIC_INNER_PRODUCT)
        # IVF: coarse k-means over a sample; nlist ~ 4 sqrt(N) by default (FAISS's guideline), trained on
        # 64 points per list (FAISS warns below 39); the lists stay as trained when items are added later
        nlist = self.nlist or max(1, int(4 * math.sqrt(self._count)))
        nlist = max(1, min(nlist, self._count // 39 or 1))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        vectors = self._vectors()
        n_train = min(self._count, 64 * nlist)
        sample = np.random.default_rng(0).choice(self._count, size=n_train, replace=False)
        index.train(np.ascontiguousarray(vectors[np.sort(sample)]))
        index.nprobe = int(self.nprobe)
        return index


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
