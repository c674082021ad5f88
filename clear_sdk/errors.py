"""Exceptions raised by the clear-sdk runtime.

One base class (:class:`ClearSDKError`) lets an application catch everything the SDK raises on
purpose; the subclasses that describe bad arguments also derive from :class:`ValueError` so that
code written against plain Python conventions keeps working. The other rooms' errors derive from it
too (training's ``DatasetError`` and ``CheckpointError``, export's ``ExportError`` and
``EngineBuildError``, the backends' ``BackendUnavailable``, video's ``SourceError`` and
``DetectorError``), so the CLI reports every one of them the same way.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "ClearSDKError",
    "DuplicateIdError",
    "IndexBusyError",
    "IndexReadOnlyError",
    "InputError",
    "QueryError",
]


class ClearSDKError(Exception):
    """Base class of every error the SDK raises deliberately."""


class InputError(ClearSDKError, ValueError):
    """An image input that cannot be used (missing file, undecodable bytes, wrong dtype or shape, ...).

    ``source`` is a short description of the offending input (a path, ``"images[3] (numpy array)"``)
    so that a caller processing a batch can report which item failed without parsing the message.
    """

    def __init__(self, message: str, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


class BundleError(ClearSDKError):
    """A model bundle (or an on-disk index) that is missing, incomplete, corrupted or of an unknown version."""


class QueryError(ClearSDKError, ValueError):
    """An attribute query or a search filter that cannot be understood; the message lists the valid choices."""


class IndexBusyError(ClearSDKError, TimeoutError):
    """An on-disk index whose write lock another process held for longer than the index's ``busy_timeout``.

    Nothing is wrong with the index: retry later, or open it with a longer ``busy_timeout``.
    """


class DuplicateIdError(ClearSDKError, ValueError):
    """An add whose id is already in the index (nothing was added); ``item_id`` names it."""

    def __init__(self, message: str, item_id: str) -> None:
        super().__init__(message)
        self.item_id = item_id


class IndexReadOnlyError(ClearSDKError, PermissionError):
    """A write (add, remove) to an index opened read-only (another user's, a read-only mount or a snapshot)."""
