"""The gallery index behind AttributeSearcher: embeddings + ids + metadata, exact and approximate top-k.

The interface: :class:`~clear_sdk.index.base.GalleryIndex` (:mod:`.base`), which every backend implements
and ``tests/test_index_contract.py`` checks. Parts (one job each):

- :mod:`.base`: the protocol, its errors, the input checks every backend shares;
- :mod:`.metadata`: ids and the one :class:`~clear_sdk.index.metadata.Metadata` type (SQL row, Milvus
  entity, caller dict);
- :mod:`.where`: the ``where`` filter language, parsed once; to SQL, to Milvus, to a numpy mask;
- :mod:`.topk`: exact top-k in numpy (blocked, bounded memory, ties by insertion order);
- :mod:`.vectors`, :mod:`.catalog`, :mod:`.store`: the local store (fp32 vectors file + SQLite in WAL mode,
  crash-safe adds and deletes, checksums, read-only opening);
- :mod:`.scan_int8`: the fast exact scan (int8 GEMV in onnxruntime, per-row error bounds, fp32 re-rank);
- :mod:`.scan`: the FAISS fp16 (and, without ``onnx``, int8) first pass with the same proof;
- :mod:`.ann`: FAISS IVF / HNSW approximate search;
- :mod:`.planner`: which rows a local search may return, and which of the scans above answers it;
- :mod:`.local`: :class:`VectorIndex`, a store and a planner composed;
- :mod:`.milvus`: :class:`MilvusIndex`, the same protocol on Milvus (Milvus Lite file or a server).

:func:`open_index` picks the backend from a location: a folder (or None) is a :class:`VectorIndex`,
``milvus://host:port/collection``, ``http(s)://...`` or a ``*.db`` file is Milvus.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from clear_sdk.index.base import GalleryIndex
from clear_sdk.index.local import ANN_AUTO_ROWS, SCAN_MIN_ROWS, VectorIndex
from clear_sdk.index.metadata import METADATA_FIELDS
from clear_sdk.index.scan import PRECISIONS, faiss_available
from clear_sdk.index.store import DB_FILE, FORMAT_VERSION, VECTORS_FILE, VERIFY_ON_OPEN_MAX_BYTES
from clear_sdk.index.topk import topk_inner_product
from clear_sdk.index.where import where_to_milvus

if TYPE_CHECKING:  # pragma: no cover
    from clear_sdk.index.milvus import MilvusIndex


def is_milvus_uri(location: str | os.PathLike | None) -> bool:
    """True for a Milvus location: ``milvus://``, ``http(s)://`` / ``tcp://`` URIs and Milvus Lite ``*.db`` files."""
    if location is None:
        return False
    text = os.fspath(location)
    return text.startswith(("milvus://", "http://", "https://", "tcp://")) or text.endswith(".db")


def open_index(location: str | os.PathLike | None, dim: int | None, **kwargs: Any) -> GalleryIndex:
    """The index at ``location``: a folder / None -> :class:`VectorIndex`, a Milvus URI or ``*.db`` -> MilvusIndex."""
    if is_milvus_uri(location):
        from clear_sdk.index.milvus import MilvusIndex

        return MilvusIndex(dim, os.fspath(location), **kwargs)
    return VectorIndex(dim, location, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "MilvusIndex":  # pymilvus loads only when asked for
        from clear_sdk.index.milvus import MilvusIndex

        return MilvusIndex
    raise AttributeError(f"module 'clear_sdk.index' has no attribute {name!r}")


__all__ = [
    "ANN_AUTO_ROWS",
    "DB_FILE",
    "FORMAT_VERSION",
    "GalleryIndex",
    "METADATA_FIELDS",
    "PRECISIONS",
    "SCAN_MIN_ROWS",
    "VECTORS_FILE",
    "VERIFY_ON_OPEN_MAX_BYTES",
    "MilvusIndex",
    "VectorIndex",
    "faiss_available",
    "is_milvus_uri",
    "open_index",
    "topk_inner_product",
    "where_to_milvus",
]
