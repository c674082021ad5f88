"""Metadata of gallery items: validation of what callers store, and ``where`` filters.

One filter language for every backend: ``{"camera": "c1"}`` (equality), ``{"camera": ["c1", "c2"]}``
(IN), ``{"timestamp": (t0, t1)}`` (inclusive range, None = open end), ``{"track": None}`` (missing),
``{"extra.zone": "A"}`` (a key of the free-form metadata). :func:`_where_sql` turns it into SQLite
for the local index, :func:`where_to_milvus` into a Milvus boolean expression, and
:class:`ColumnMirror` evaluates the hot columns (camera, timestamp, track) in numpy, so that a filter
over a million items does not wait on SQLite returning half of them row by row.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import re
import sqlite3
from collections.abc import Mapping
from typing import Any

import numpy as np

from clear_sdk.errors import QueryError

#: Metadata keys stored in their own (filterable) columns; any other key goes to the JSON ``extra``.
METADATA_FIELDS: tuple[str, ...] = ("camera", "timestamp", "track", "bbox", "source")
_FILTER_TEXT = ("id", "camera", "source")
_FILTER_NUMERIC = ("timestamp", "track")
_EXTRA_KEY = re.compile(r"^extra\.([A-Za-z_][A-Za-z0-9_]*)$")
_SQL_CHUNK = 900  # bound parameters per statement (SQLite's historic limit is 999)


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


_FAST_KEYS = frozenset(("camera", "timestamp", "track", "source"))


def _metadata_rows(metadata: list[Any]) -> list[tuple[Any, ...]]:
    """:func:`_metadata_row` of every entry; the common shape (str camera / source, float timestamp, int
    track, nothing else) is checked inline, since at a million items per add the general path is the cost."""
    out: list[tuple[Any, ...]] = []
    append = out.append
    for i, md in enumerate(metadata):
        if type(md) is dict and md.keys() <= _FAST_KEYS:
            cam, ts, tr, src = md.get("camera"), md.get("timestamp"), md.get("track"), md.get("source")
            if (
                (cam is None or (type(cam) is str and cam.isascii()))
                and (ts is None or (type(ts) is float and ts - ts == 0.0))  # finite
                and (tr is None or type(tr) is int)
                and (src is None or (type(src) is str and src.isascii()))
            ):
                append((cam, ts, tr, None, src, None))
                continue
        append(_metadata_row(md, f"metadata[{i}]"))
    return out


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


@dataclasses.dataclass(frozen=True)
class Clause:
    """One checked condition of a ``where`` filter: ``op`` is eq, in, range (lo, hi; None = open) or null."""

    key: str
    op: str
    value: Any = None


def parse_where(where: Mapping[str, Any]) -> list[Clause]:
    """Check a ``where`` filter and normalise it into clauses (AND of all); a QueryError names a bad key or value.

    Scalars are equality, lists/sets are IN, a 2-tuple on a numeric field is an inclusive range
    (None = open end), None is IS NULL. ``extra.<key>`` filters a key of the JSON metadata.
    """
    if not isinstance(where, Mapping):
        raise QueryError(f"where must be a dict of field -> value, got {type(where).__name__}")
    clauses: list[Clause] = []
    for key, value in where.items():
        m = _EXTRA_KEY.match(key) if isinstance(key, str) else None
        if key in _FILTER_TEXT:
            numeric: bool | None = False
        elif key in _FILTER_NUMERIC:
            numeric = True
        elif m:
            numeric = None
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
            clauses.append(Clause(key, "null"))
        elif isinstance(value, tuple) and numeric is not False:
            if len(value) != 2:
                raise QueryError(f"filter {key!r}: a range is a 2-tuple (low, high), got {value!r}")
            lo, hi = value
            clauses.append(Clause(key, "range", (None if lo is None else conv(lo), None if hi is None else conv(hi))))
        elif isinstance(value, (list, set, frozenset, tuple)):
            clauses.append(Clause(key, "in", tuple(conv(v) for v in value)))
        else:
            clauses.append(Clause(key, "eq", conv(value)))
    return clauses


def _sql_column(key: str) -> str:
    m = _EXTRA_KEY.match(key)
    return f"json_extract(extra, '$.{m.group(1)}')" if m else key


def clauses_sql(clauses: list[Clause]) -> tuple[str, list[Any]]:
    """An SQL condition on ``items`` (and its parameters) for parsed clauses."""
    sql: list[str] = []
    params: list[Any] = []
    for c in clauses:
        column = _sql_column(c.key)
        if c.op == "null":
            sql.append(f"{column} IS NULL")
        elif c.op == "range":
            lo, hi = c.value
            if lo is not None:
                sql.append(f"{column} >= ?")
                params.append(lo)
            if hi is not None:
                sql.append(f"{column} <= ?")
                params.append(hi)
        elif c.op == "in":
            values = list(c.value)
            if not values:
                sql.append("0")
            elif len(values) > _SQL_CHUNK:  # one JSON parameter instead of thousands of bound ones
                sql.append(f"{column} IN (SELECT value FROM json_each(?))")
                params.append(json.dumps(values))
            else:
                sql.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(values)
        else:
            sql.append(f"{column} = ?")
            params.append(c.value)
    return (" AND ".join(sql) or "1"), params


def _where_sql(where: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """Translate a ``where`` filter into an SQL condition on ``items`` (see :func:`parse_where`)."""
    return clauses_sql(parse_where(where))


def _milvus_literal(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)  # a double-quoted string with JSON escapes, which Milvus expressions accept
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(float(v)) if isinstance(v, float) else str(int(v))


def where_to_milvus(where: Mapping[str, Any] | None) -> str:
    """The Milvus boolean expression of a ``where`` filter ("" for none), over the fields MilvusIndex stores."""
    return clauses_milvus(parse_where(where)) if where else ""


def clauses_milvus(clauses: list[Clause]) -> str:
    """The Milvus boolean expression of parsed clauses ("" for none)."""
    out: list[str] = []
    for c in clauses:
        m = _EXTRA_KEY.match(c.key)
        field = f'extra["{m.group(1)}"]' if m else ("pk" if c.key == "id" else c.key)
        if c.op == "null":
            out.append(f"{field} is null")
        elif c.op == "range":
            lo, hi = c.value
            if lo is not None:
                out.append(f"{field} >= {_milvus_literal(lo)}")
            if hi is not None:
                out.append(f"{field} <= {_milvus_literal(hi)}")
        elif c.op == "in":
            out.append(f"{field} in [{', '.join(_milvus_literal(v) for v in c.value)}]" if c.value else "false")
        else:
            out.append(f"{field} == {_milvus_literal(c.value)}")
    return " and ".join(f"({e})" for e in out)


class ColumnMirror:
    """camera / timestamp / track of every row as numpy arrays, to evaluate their filters without SQLite.

    Why by hand: SQLite answers ``timestamp <= t`` over half of a million rows in hundreds of ms (it
    returns them one by one), numpy in about one. The mirror is derived data, loaded from ``items``
    at the first filtered search and extended row by row as items are added; rows removed from
    ``items`` keep their values here and are masked by the caller's alive mask.
    """

    MIRRORED = ("camera", "timestamp", "track")

    def __init__(self) -> None:
        self.rows = 0
        self._codes: dict[str, int] = {}
        self.camera = np.empty(0, np.int32)  # -1: none
        self.timestamp = np.empty(0, np.float64)  # NaN: none
        self.track = np.empty(0, np.float64)  # NaN: none (float so that None fits)

    def extend(self, first_row: int, cameras: list[Any], timestamps: list[Any], tracks: list[Any]) -> None:
        """Append the values of rows [first_row, first_row + n) (first_row must equal ``rows``)."""
        if first_row != self.rows:
            raise ValueError(f"ColumnMirror: rows must be appended in order (have {self.rows}, got {first_row})")
        codes = self._codes
        cam = np.fromiter(
            (-1 if c is None else codes.setdefault(c, len(codes)) for c in cameras), np.int32, len(cameras)
        )
        ts = np.array([np.nan if t is None else t for t in timestamps], np.float64)
        tr = np.array([np.nan if t is None else t for t in tracks], np.float64)
        self.camera = np.concatenate((self.camera, cam))
        self.timestamp = np.concatenate((self.timestamp, ts))
        self.track = np.concatenate((self.track, tr))
        self.rows += len(cam)

    def load(self, db: sqlite3.Connection, count: int) -> None:
        """Read rows [rows, count) from ``items`` (removed rows come back as missing values)."""
        if count <= self.rows:
            return
        n = count - self.rows
        cams: list[Any] = [None] * n
        ts: list[Any] = [None] * n
        tr: list[Any] = [None] * n
        sql = "SELECT row, camera, timestamp, track FROM items WHERE row >= ? AND row < ?"
        cur = db.execute(sql, (self.rows, count))
        base = self.rows
        for row, c, t, k in cur:
            cams[row - base], ts[row - base], tr[row - base] = c, t, k
        self.extend(base, cams, ts, tr)

    def handles(self, clause: Clause) -> bool:
        return clause.key in self.MIRRORED

    def mask(self, clauses: list[Clause]) -> np.ndarray:
        """Rows [0, rows) that satisfy every (mirrored) clause."""
        keep = np.ones(self.rows, dtype=bool)
        for c in clauses:
            if c.key == "camera":
                col = self.camera
                if c.op == "null":
                    keep &= col < 0
                else:
                    values = c.value if c.op == "in" else (c.value,)
                    wanted = [self._codes[v] for v in values if v in self._codes]
                    keep &= np.isin(col, wanted) if len(wanted) != 1 else col == wanted[0]
                continue
            col = self.timestamp if c.key == "timestamp" else self.track
            if c.op == "null":
                keep &= np.isnan(col)
            elif c.op == "range":
                lo, hi = c.value
                if lo is not None:
                    keep &= col >= lo
                if hi is not None:
                    keep &= col <= hi
            elif c.op == "in":
                keep &= np.isin(col, np.array(c.value, np.float64))
            else:
                keep &= col == c.value
        return keep
