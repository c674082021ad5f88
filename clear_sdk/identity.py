"""Which model made a gallery: the model identity an index records, and the ``searcher.json`` beside it.

An index holds one model's vectors, so a gallery must never be searched with, or added to by, another
bundle's model. The identity (the recognizer graph's sha256, the attribute names, D) lives in the
index database itself (``meta.model_identity``), so it cannot be lost apart from the vectors;
``searcher.json`` beside a local index only tells ``clear-sdk search`` which bundle to reopen the
index with. An index written before the identity moved into the database takes it from its
``searcher.json`` once (the migration).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clear_sdk.bundle import Bundle
from clear_sdk.errors import BundleError
from clear_sdk.gallery_layout import GalleryLayout
from clear_sdk.index import DB_FILE, is_milvus_uri

__all__ = ["SEARCHER_FILE", "ModelIdentity", "bind_index", "read_searcher_file"]

logger = logging.getLogger(__name__)

SEARCHER_FILE = "searcher.json"
IDENTITY_KEY = "model_identity"  # the index meta key that holds the identity (JSON)


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """What makes two models' gallery rows comparable: the same recognizer graph, attributes and D."""

    recognizer_sha256: str | None
    attributes: tuple[str, ...]
    embed_dim: int

    @classmethod
    def of(cls, bundle: Bundle, layout: GalleryLayout) -> ModelIdentity:
        rec = bundle.model_path("recognizer")
        entry = bundle.files.get(rec.name) if rec is not None else None
        return cls(entry.sha256 if entry is not None else None, layout.attributes, layout.embed_dim)

    def to_dict(self) -> dict[str, Any]:
        return {"recognizer_sha256": self.recognizer_sha256, "attributes": list(self.attributes),
                "embed_dim": self.embed_dim}  # fmt: skip

    def check(self, stored: Mapping[str, Any], where: str | os.PathLike[str]) -> None:
        """Refuse a gallery whose recorded identity is another model's."""
        mine = self.to_dict()
        if {k: stored.get(k) for k in mine} != mine:
            raise BundleError(
                f"{where} was indexed with another model (recognizer sha256 {stored.get('recognizer_sha256')}"
                f" vs {self.recognizer_sha256}); search it with the bundle that built it, or index the "
                "gallery into a new folder with this bundle"
            )


def bind_index(index: Any, identity: ModelIdentity, location: str | os.PathLike[str] | None, bundle: Bundle) -> None:
    """Record ``identity`` in a new index, or check it against the one recorded (in-memory: nothing to do)."""
    if location is None:
        return
    if is_milvus_uri(location):
        stored = json.loads(index.set_meta_default(IDENTITY_KEY, _text(identity)))
        identity.check(stored, str(location))
        return
    index_dir = Path(location)
    stored_text = index.get_meta(IDENTITY_KEY)
    if stored_text is None:
        _adopt(index, identity, index_dir, bundle)
        stored_text = index.set_meta_default(IDENTITY_KEY, _text(identity))
    try:
        stored = json.loads(stored_text)
    except (ValueError, RecursionError) as e:
        raise BundleError(f"{index_dir}: the model identity in {DB_FILE} is not JSON; rebuild the index") from e
    identity.check(stored, index_dir)
    path = index_dir / SEARCHER_FILE
    if not path.is_file():  # the bundle path lets `clear-sdk search` reopen the index alone
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**identity.to_dict(), "bundle": str(Path(bundle.path).resolve())}, indent=2))
        os.replace(tmp, path)


def _adopt(index: Any, identity: ModelIdentity, index_dir: Path, bundle: Bundle) -> None:
    """An index with no recorded identity: check the legacy ``searcher.json``'s, or warn that none was kept."""
    if (index_dir / SEARCHER_FILE).exists():
        legacy = read_searcher_file(index_dir)
        identity.check({k: legacy.get(k) for k in identity.to_dict()}, index_dir)
    elif len(index):
        logger.warning(
            "index %s holds %d items but no record of the model that made them; adopting %s",
            index_dir,
            len(index),
            bundle.path,
        )


def _text(identity: ModelIdentity) -> str:
    return json.dumps(identity.to_dict(), sort_keys=True)


def read_searcher_file(index_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``searcher.json`` of an index folder (which bundle built it); a BundleError naming the file if bad."""
    path = Path(index_dir) / SEARCHER_FILE
    try:
        if path.stat().st_size > 1 << 20:
            raise BundleError(f"{path} is larger than any searcher.json; move it away and pass --bundle")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise BundleError(
            f"{path} is missing: {Path(index_dir)} is not an index written by AttributeSearcher "
            "(clear-sdk index writes one), or pass the bundle explicitly (--bundle)"
        ) from e
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise BundleError(
            f"{path} is not readable JSON ({reason}); move it away and pass the bundle explicitly (--bundle)"
        ) from e
    if not isinstance(data, dict):
        raise BundleError(f"{path} does not hold a JSON object; move it away and pass the bundle explicitly (--bundle)")
    return data
