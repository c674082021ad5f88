"""The ``where`` filter language of every index backend: parsed once, then turned into SQL, Milvus or numpy.

``{"camera": "c1"}`` (equality), ``{"camera": ["c1", "c2"]}`` (IN), ``{"timestamp": (t0, t1)}``
(inclusive range, None or an infinity = open end), ``{"track": None}`` (missing), ``{"extra.zone": "A"}``
(a key of the free-form metadata). :func:`parse_where` checks it and normalises every value to a plain
Python ``str`` / ``int`` / ``float`` / ``bool`` (numpy scalars included), so that both backends see the
same typed values and answer or refuse the same filters alike:

- NaN is refused (it matches nothing anywhere, so it is a caller's bug); an infinite value can never be
  stored, so it matches nothing, and an infinite range end is an open end;
- ``track`` values are integers of the 64-bit range tracks are stored in (``2**70`` is refused); they are
  compared exactly (never through float64);
- text of any Unicode, NUL included.

Values reach a backend only through one function each: :func:`to_sql` binds them as SQLite parameters
(never in the SQL text), :func:`milvus_literal` writes every literal of a Milvus expression.
:class:`ColumnMirror` evaluates camera / timestamp / track in numpy for the local index.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import re
import sqlite3
from collections.abc import Mapping
from typing import Any

import numpy as np

from clear_sdk.errors import QueryError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
TEXT_KEYS = ("id", "camera", "source")
NUMERIC_KEYS = ("timestamp", "track")
EXTRA_KEY = re.compile(r"^extra\.([A-Za-z_][A-Za-z0-9_]*)$")
SQL_CHUNK = 900  # bound parameters per statement (SQLite's historic limit is 999)
# ``extra -> '$.k'`` (SQLite >= 3.38) returns a stored JSON string as written, NUL included; json_extract
# stops at a NUL ("a\0b" would equal "a"). Older SQLite compares through json_extract.
_JSON_ARROW = sqlite3.sqlite_version_info >= (3, 38, 0)


@dataclasses.dataclass(frozen=True)
class Clause:
    """One checked condition: ``op`` is eq, in (a tuple), range ((lo, hi), None = open), null or none (no match)."""

    key: str
    op: str
    value: Any = None


def _number(key: str, v: Any) -> int | float:
    """A numeric filter value as int (track) or float (timestamp, inf allowed); NaN and bad types refused."""
    if isinstance(v, _dt.datetime):
        v = v.timestamp()
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise QueryError(f"filter {key!r}: expected a number, got {v!r}")
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            raise QueryError(f"filter {key!r}: NaN matches nothing; pass a number")
        if key == "timestamp" or math.isinf(f):
            return f
        if not f.is_integer():
            raise QueryError(f"filter {key!r}: tracks are integers, got {v!r}")
        v = int(f)
    if key == "timestamp":
        return float(v)
    v = int(v)
    if not INT64_MIN <= v <= INT64_MAX:
        raise QueryError(f"filter {key!r}: {v} is outside the 64-bit range tracks are stored in")
    return v


def _text(key: str, v: Any) -> str:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (str, int, np.integer)):
        raise QueryError(f"filter {key!r}: expected a str value, got {v!r}")
    return str(v) if isinstance(v, str) else str(int(v))


def _extra(key: str, v: Any) -> Any:
    """A JSON-metadata filter value: str, int, float (finite or inf) or bool."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        raise QueryError(f"filter {key!r}: NaN matches nothing; pass a number")
    if not isinstance(v, (str, int, float)):
        raise QueryError(f"filter {key!r}: expected a str, number or bool, got {type(v).__name__} {v!r}")
    return str(v) if isinstance(v, str) else v


def _is_inf(v: Any) -> bool:
    return isinstance(v, float) and math.isinf(v)


def _clause(key: str, value: Any) -> Clause:
    kind = "text" if key in TEXT_KEYS else "number" if key in NUMERIC_KEYS else "extra"
    conv = {"text": _text, "number": _number, "extra": _extra}[kind]
    if value is None:
        return Clause(key, "null")
    if isinstance(value, tuple) and kind != "text":
        if len(value) != 2:
            raise QueryError(f"filter {key!r}: a range is a 2-tuple (low, high), got {value!r}")
        lo, hi = (None if v is None else conv(key, v) for v in value)
        if (lo is not None and _is_inf(lo) and lo > 0) or (hi is not None and _is_inf(hi) and hi < 0):
            return Clause(key, "none")
        lo, hi = (None if v is None or _is_inf(v) else v for v in (lo, hi))
        return Clause(key, "range", (lo, hi))
    if isinstance(value, (list, set, frozenset, tuple, np.ndarray)):
        values = [conv(key, v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    else:
        values = [conv(key, value)]
    values = [v for v in dict.fromkeys(values) if not _is_inf(v)]  # infinity is never stored
    if not values:
        return Clause(key, "none")
    single = not isinstance(value, (list, set, frozenset, tuple, np.ndarray))
    return Clause(key, "eq", values[0]) if single else Clause(key, "in", tuple(values))


def parse_where(where: Mapping[str, Any]) -> list[Clause]:
    """Check a ``where`` filter and normalise it into clauses (AND of all); a QueryError names a bad key or value.

    Scalars are equality, lists/sets are IN, a 2-tuple on a numeric or extra field is an inclusive range,
    None is IS NULL. ``extra.<key>`` filters a key of the JSON metadata.
    """
    if not isinstance(where, Mapping):
        raise QueryError(f"where must be a dict of field -> value, got {type(where).__name__}")
    clauses = []
    for key, value in where.items():
        if key not in TEXT_KEYS and key not in NUMERIC_KEYS and not (isinstance(key, str) and EXTRA_KEY.match(key)):
            valid = ", ".join((*TEXT_KEYS, *NUMERIC_KEYS, "extra.<key>"))
            raise QueryError(f"cannot filter on {key!r}; valid filter keys: {valid}")
        clauses.append(_clause(key, value))
    return clauses


# ---------------------------------------------------------------------------------------------- SQL


def _in_sql(column: str, values: list[Any], params: list[Any]) -> str:
    if len(values) <= SQL_CHUNK:
        params.extend(values)
        return f"{column} IN ({','.join('?' * len(values))})"
    if not any(isinstance(v, str) and "\x00" in v for v in values):  # one JSON parameter for a long list
        params.append(json.dumps(values))
        return f"{column} IN (SELECT value FROM json_each(?))"
    parts = [_in_sql(column, values[i : i + SQL_CHUNK], params) for i in range(0, len(values), SQL_CHUNK)]
    return "(" + " OR ".join(parts) + ")"


def _extra_sql(name: str, c: Clause, params: list[Any]) -> str:
    """A clause on a key of the JSON ``extra``: strings compared as JSON text (NUL-safe), the rest by value."""
    value = f"json_extract(extra, '$.{name}')"
    values = [c.value] if c.op == "eq" else list(c.value)
    strs = [v for v in values if isinstance(v, str)]
    other = [v for v in values if not isinstance(v, str)]
    parts = []
    if strs and _JSON_ARROW:
        parts.append(_in_sql(f"(extra -> '$.{name}')", [json.dumps(s) for s in strs], params))
    elif strs:
        other = values
    if other:
        parts.append(_in_sql(value, other, params))
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def to_sql(clauses: list[Clause]) -> tuple[str, list[Any]]:
    """An SQL condition on ``items`` and its parameters: values are only ever bound, never written as text."""
    sql: list[str] = []
    params: list[Any] = []
    for c in clauses:
        m = EXTRA_KEY.match(c.key)
        column = f"json_extract(extra, '$.{m.group(1)}')" if m else c.key
        if c.op == "null":
            sql.append(f"{column} IS NULL")
        elif c.op == "none":
            sql.append("0")
        elif c.op == "range":
            for bound, op in zip(c.value, (">=", "<=")):
                if bound is not None:
                    sql.append(f"{column} {op} ?")
                    params.append(bound)
        elif m:
            sql.append(_extra_sql(m.group(1), c, params))
        else:
            sql.append(_in_sql(column, [c.value] if c.op == "eq" else list(c.value), params))
    return (" AND ".join(sql) or "1"), params


# ------------------------------------------------------------------------------------------- Milvus

# Milvus's expression parser reads a double-quoted string with backslash escapes; it refuses \u and \x
# escapes (so no json.dumps) but takes every other character as it is, NUL included.
_MILVUS_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})


def milvus_literal(v: Any) -> str:
    """The one way a value enters a Milvus expression: a quoted, escaped string, true / false, or a number."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str):
        return '"' + v.translate(_MILVUS_ESCAPES) + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and math.isfinite(v):
        return repr(v)
    raise QueryError(f"cannot write {v!r} into a Milvus expression (a str, bool, int or finite float is needed)")


def milvus_in(field: str, values: list[Any]) -> str:
    """``field in [...]`` (``false`` for no values); a JSON key takes an OR of equalities (Milvus has no IN there)."""
    if not values:
        return "false"
    if field.startswith("extra["):
        return "(" + " or ".join(f"{field} == {milvus_literal(v)}" for v in values) + ")"
    return f"{field} in [{', '.join(milvus_literal(v) for v in values)}]"


def to_milvus(clauses: list[Clause]) -> str:
    """The Milvus boolean expression of parsed clauses ("" for none)."""
    out: list[str] = []
    for c in clauses:
        m = EXTRA_KEY.match(c.key)
        field = f'extra["{m.group(1)}"]' if m else ("pk" if c.key == "id" else c.key)
        if c.op == "null":
            out.append(f"{field} is null")
        elif c.op == "none":
            out.append("false")
        elif c.op == "range":
            lo, hi = c.value
            out += [f"{field} {op} {milvus_literal(b)}" for b, op in ((lo, ">="), (hi, "<=")) if b is not None]
        else:
            out.append(milvus_in(field, [c.value] if c.op == "eq" else list(c.value)))
    return " and ".join(f"({e})" for e in out)


def where_to_milvus(where: Mapping[str, Any] | None) -> str:
    """The Milvus boolean expression of a ``where`` filter ("" for none)."""
    return to_milvus(parse_where(where)) if where else ""


# -------------------------------------------------------------------------------------------- numpy


class ColumnMirror:
    """camera / timestamp / track of every row as numpy arrays, to evaluate their filters without SQLite.

    Why by hand: SQLite answers ``timestamp <= t`` over half of a million rows in hundreds of ms (it
    returns them one by one), numpy in about one. The mirror is derived data, loaded from ``items`` at
    the first filtered search and extended as items are added; rows removed from ``items`` keep their
    values here and are masked by the caller. Tracks are int64 with a separate missing mask, so that
    they compare exactly (float64 would merge 2**53 and 2**53 + 1).
    """

    MIRRORED = ("camera", "timestamp", "track")

    def __init__(self) -> None:
        self.rows = 0
        self._codes: dict[str, int] = {}
        self.camera = np.empty(0, np.int32)  # -1: none
        self.timestamp = np.empty(0, np.float64)  # NaN: none
        self.track = np.empty(0, np.int64)
        self.has_track = np.empty(0, bool)

    def extend(self, first_row: int, cameras: list[Any], timestamps: list[Any], tracks: list[Any]) -> None:
        """Append the values of rows [first_row, first_row + n) (first_row must equal ``rows``)."""
        if first_row != self.rows:
            raise ValueError(f"ColumnMirror: rows must be appended in order (have {self.rows}, got {first_row})")
        codes = self._codes
        n = len(cameras)
        cam = np.fromiter((-1 if c is None else codes.setdefault(c, len(codes)) for c in cameras), np.int32, n)
        ts = np.array([np.nan if t is None else t for t in timestamps], np.float64).reshape(n)
        has = np.fromiter((t is not None for t in tracks), bool, n)
        tr = np.fromiter((0 if t is None else t for t in tracks), np.int64, n)
        self.camera = np.concatenate((self.camera, cam))
        self.timestamp = np.concatenate((self.timestamp, ts))
        self.track = np.concatenate((self.track, tr))
        self.has_track = np.concatenate((self.has_track, has))
        self.rows += n

    def load(self, db: sqlite3.Connection, count: int) -> None:
        """Read rows [rows, count) from ``items`` (removed rows come back as missing values)."""
        if count <= self.rows:
            return
        n, base = count - self.rows, self.rows
        cams: list[Any] = [None] * n
        ts: list[Any] = [None] * n
        tr: list[Any] = [None] * n
        for row, c, t, k in db.execute(
            "SELECT row, camera, timestamp, track FROM items WHERE row >= ? AND row < ?", (base, count)
        ):
            cams[row - base], ts[row - base], tr[row - base] = c, t, k
        self.extend(base, cams, ts, tr)

    def mask(self, clauses: list[Clause]) -> np.ndarray:
        """Rows [0, rows) that satisfy every (mirrored) clause."""
        keep = np.ones(self.rows, dtype=bool)
        for c in clauses:
            if c.op == "none":
                keep[:] = False
            elif c.key == "camera":
                if c.op == "null":
                    keep &= self.camera < 0
                else:
                    values = c.value if c.op == "in" else (c.value,)
                    wanted = [self._codes[v] for v in values if v in self._codes]
                    keep &= np.isin(self.camera, wanted) if len(wanted) != 1 else self.camera == wanted[0]
            else:
                keep &= self._numeric(c)
        return keep

    def _numeric(self, c: Clause) -> np.ndarray:
        if c.key == "timestamp":
            col, present = self.timestamp, ~np.isnan(self.timestamp)
        else:
            col, present = self.track, self.has_track
        if c.op == "null":
            return ~present
        if c.op == "range":
            out = present.copy()
            lo, hi = c.value
            if lo is not None:
                out &= col >= lo
            if hi is not None:
                out &= col <= hi
            return out
        values = np.array(c.value if c.op == "in" else (c.value,), col.dtype)
        return present & (np.isin(col, values) if len(values) > 1 else col == values[0])


__all__ = ["Clause", "ColumnMirror", "milvus_literal", "parse_where", "to_milvus", "to_sql", "where_to_milvus"]
