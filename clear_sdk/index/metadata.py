"""What a gallery item carries besides its vector: checked ids and one :class:`Metadata` type, in its three forms.

A caller passes a metadata dict (``{"camera": "c1", "timestamp": 1.7e9, "track": 4, "zone": "A"}``);
:meth:`Metadata.from_user` checks it once, for every backend, and keeps the filterable fields in their
own slots and the rest as JSON. The local index stores :class:`Metadata` as an SQLite row (it *is* the
row: a named tuple in column order), Milvus as an entity (:meth:`Metadata.entity`); both read back the
same dict (:meth:`Metadata.to_dict`).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import math
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from clear_sdk.errors import QueryError
from clear_sdk.index.where import INT64_MAX, INT64_MIN

#: Metadata keys stored in their own (filterable) columns; any other key goes to the JSON ``extra``.
METADATA_FIELDS: tuple[str, ...] = ("camera", "timestamp", "track", "bbox", "source")


def utf8(text: str, where: str) -> str:
    """``text`` if it can be stored; a str holding undecodable file-name bytes (surrogates) is refused."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "backslashreplace").decode("ascii", "replace")
        raise ValueError(
            f"{where} {shown!r} is not valid UTF-8 (a file name with undecodable bytes?); "
            "rename the file, or pass an id / source that is UTF-8 text"
        ) from None
    return text


def check_ids(ids: Sequence[str] | str | None, n: int) -> list[str]:
    """``n`` unique non-empty UTF-8 ids (uuid4 hex when None), or a ValueError naming the first bad one."""
    if ids is None:
        return [uuid.uuid4().hex for _ in range(n)]
    ids = [ids] if isinstance(ids, str) else list(ids)
    if len(ids) != n:
        raise ValueError(f"got {n} embeddings but {len(ids)} ids")
    # the common case checked a column at a time in C (a million ids: one pass each, no Python loop)
    if not (set(map(type, ids)) <= {str} and all(ids) and "".join(ids).isascii()):
        for i, item_id in enumerate(ids):
            if not isinstance(item_id, str) or not item_id:
                raise ValueError(f"ids[{i}] must be a non-empty str, got {item_id!r}")
            utf8(item_id, f"ids[{i}]")
        ids = [str(i) for i in ids]
    if len(set(ids)) != n:
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise ValueError(f"duplicate id {dup!r} within this add; ids must be unique")
    return ids


def as_id_list(ids: Sequence[str] | str) -> list[str]:
    """Ids passed to a lookup (one id or many) as a list of str; a non-str is a KeyError naming it."""
    ids = [ids] if isinstance(ids, str) else list(ids)
    bad = [i for i in ids if not isinstance(i, str)]
    if bad:
        raise KeyError(f"unknown ids: {', '.join(map(repr, bad[:10]))} (ids are str)")
    return ids


def check_remove(
    ids: Sequence[str] | None, where: Mapping[str, Any] | None, everything: bool
) -> Mapping[str, Any] | None:
    """The ``where`` a remove() runs ({} for everything=True); removing every item must be asked for by name."""
    if sum((ids is not None, where is not None, bool(everything))) != 1:
        raise ValueError("pass either ids or where= to remove() (or everything=True to remove every item)")
    if where is not None and not isinstance(where, Mapping):
        raise QueryError(f"where must be a dict of field -> value, got {type(where).__name__}")
    if where is not None and not where:
        raise QueryError("where={} matches every item: pass everything=True to remove them all")
    return {} if everything else where


def retention_where(seconds: float, now: float | None) -> dict[str, Any]:
    """The filter of retention: timestamps more than ``seconds`` before ``now`` (inf: none; NaN refused)."""
    if isinstance(seconds, (bool, np.bool_)) or not isinstance(seconds, (int, float, np.integer, np.floating)):
        raise ValueError(f"retention must be a number of seconds >= 0, got {seconds!r}")
    if not float(seconds) >= 0:
        raise ValueError(f"retention must be a number of seconds >= 0, got {seconds!r}")
    cutoff = (time.time() if now is None else float(now)) - float(seconds)
    return {"timestamp": (None, float(np.nextafter(cutoff, -np.inf)))}


def unknown_ids(missing: list[str]) -> KeyError:
    return KeyError(f"unknown ids: {', '.join(map(repr, missing[:10]))}{' ...' if len(missing) > 10 else ''}")


class Metadata(NamedTuple):
    """The checked metadata of one item, in the order of the SQLite columns (bbox and extra as JSON text)."""

    camera: str | None = None
    timestamp: float | None = None
    track: int | None = None
    bbox: str | None = None
    source: str | None = None
    extra: str | None = None

    @classmethod
    def from_user(cls, md: Mapping[str, Any] | None, where: str) -> Metadata:
        """Check a caller's metadata dict (``where`` names it in errors: ``"metadata[3]"``)."""
        if md is None:
            return EMPTY
        if not isinstance(md, Mapping):
            raise ValueError(f"{where}: metadata must be a dict (or None), got {type(md).__name__}")
        extra = {k: v for k, v in md.items() if k not in METADATA_FIELDS}
        if "id" in extra:
            raise ValueError(f"{where}: 'id' is not a metadata key; pass ids in the ids argument")
        try:
            extra_json = json.dumps(extra, sort_keys=True, allow_nan=False) if extra else None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: metadata values must be JSON-serialisable ({exc})") from exc
        return cls(
            _camera(md.get("camera"), where), _timestamp(md.get("timestamp"), where), _track(md.get("track"), where),
            _bbox(md.get("bbox"), where), _source(md.get("source"), where), extra_json,
        )  # fmt: skip

    @classmethod
    def from_entity(cls, e: Mapping[str, Any]) -> Metadata:
        bbox, extra = e.get("bbox"), e.get("extra")
        return cls(
            e.get("camera"), e.get("timestamp"), e.get("track"), None if bbox is None else json.dumps(bbox),
            e.get("source"), None if extra is None else json.dumps(extra, sort_keys=True),
        )  # fmt: skip

    def entity(self) -> dict[str, Any]:
        """The Milvus form: scalar fields as they are, bbox and extra as JSON objects."""
        return {
            "camera": self.camera, "timestamp": self.timestamp, "track": self.track, "source": self.source,
            "bbox": None if self.bbox is None else json.loads(self.bbox),
            "extra": None if self.extra is None else json.loads(self.extra),
        }  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The caller's form: the dict that was stored (missing fields left out)."""
        md: dict[str, Any] = {}
        if self.camera is not None:
            md["camera"] = self.camera
        if self.timestamp is not None:
            md["timestamp"] = self.timestamp
        if self.track is not None:
            md["track"] = self.track
        if self.bbox is not None:
            md["bbox"] = json.loads(self.bbox)
        if self.source is not None:
            md["source"] = self.source
        if self.extra is not None:
            md.update(json.loads(self.extra))
        return md


EMPTY = Metadata()
ENTITY_FIELDS = ("camera", "timestamp", "track", "bbox", "source", "extra")


def _camera(camera: Any, where: str) -> str | None:
    if camera is None:
        return None
    if isinstance(camera, bool) or not isinstance(camera, (str, int)):
        raise ValueError(f"{where}: camera must be a str or int, got {type(camera).__name__}")
    return utf8(str(camera), f"{where}: camera")


def _timestamp(ts: Any, where: str) -> float | None:
    if ts is None:
        return None
    if isinstance(ts, _dt.datetime):
        ts = ts.timestamp()
    elif isinstance(ts, (bool, np.bool_)) or not isinstance(ts, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: timestamp must be seconds (int/float) or a datetime, got {ts!r}")
    ts = float(ts)
    if not math.isfinite(ts):
        raise ValueError(f"{where}: timestamp must be finite, got {ts}")
    return ts


def _track(track: Any, where: str) -> int | None:
    if track is None:
        return None
    if isinstance(track, (bool, np.bool_)) or not isinstance(track, (int, np.integer)):
        raise ValueError(f"{where}: track must be an int, got {track!r}")
    track = int(track)
    if not INT64_MIN <= track <= INT64_MAX:
        raise ValueError(f"{where}: track must be an int in the 64-bit range, got {track}")
    return track


def _bbox(bbox: Any, where: str) -> str | None:
    if bbox is None:
        return None
    try:
        values = [float(v) for v in bbox]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: bbox must be 4 numbers (x1, y1, x2, y2), got {bbox!r}") from exc
    if len(values) != 4:
        raise ValueError(f"{where}: bbox must be 4 numbers (x1, y1, x2, y2), got {bbox!r}")
    return json.dumps(values)


def _source(source: Any, where: str) -> str | None:
    if source is None:
        return None
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"{where}: source must be a str or path, got {type(source).__name__}")
    return utf8(os.fsdecode(source), f"{where}: source")


def metadata_list(metadata: Sequence[Mapping[str, Any] | None] | None, n: int) -> list[Metadata]:
    """:meth:`Metadata.from_user` of every entry (``n`` of them). The common shape (dicts of ASCII str camera /
    source, float timestamp, int track and nothing else) is checked a column at a time: at a million items per
    add, a Python loop over the dicts was the cost."""
    if metadata is None:
        return [EMPTY] * n
    metadata = list(metadata)
    if len(metadata) != n:
        raise ValueError(f"got {n} embeddings but {len(metadata)} metadata entries")
    fast = _fast_rows(metadata)
    if fast is not None:
        return fast
    return [Metadata.from_user(md, f"metadata[{i}]") for i, md in enumerate(metadata)]


def _fast_rows(metadata: list[Any]) -> list[Metadata] | None:
    """The rows of metadata in the common shape, or None when any entry needs the full check."""
    if not metadata or set(map(type, metadata)) != {dict}:
        return None
    keys = ("camera", "timestamp", "track", "source")
    present = sum(sum(map(dict.__contains__, metadata, itertools.repeat(k))) for k in keys)
    if present != sum(map(len, metadata)):  # another key (extra, bbox) somewhere
        return None
    cams, ts, tracks, sources = ([md.get(k) for md in metadata] for k in keys)
    none = type(None)
    if not (set(map(type, cams)) <= {str, none} and set(map(type, sources)) <= {str, none}):
        return None
    if not "".join(filter(None, itertools.chain(cams, sources))).isascii():
        return None
    if not set(map(type, ts)) <= {float, none} or not set(map(type, tracks)) <= {int, none}:
        return None
    times = [t for t in ts if t is not None]
    if times and not np.isfinite(np.array(times)).all():
        return None
    ints = [t for t in tracks if t is not None]
    if ints and not (INT64_MIN <= min(ints) and max(ints) <= INT64_MAX):
        return None
    nones = itertools.repeat(None)
    # plain tuples in Metadata's field order (its SQL-row form): a NamedTuple instance per row cost ~2 s per 1M
    return list(zip(cams, ts, tracks, nones, sources, nones))  # type: ignore[arg-type]


__all__ = ["EMPTY", "METADATA_FIELDS", "Metadata", "as_id_list", "check_ids", "metadata_list", "utf8"]
