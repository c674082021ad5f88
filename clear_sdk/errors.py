"""Exceptions raised by the clear-sdk runtime.

One base class (:class:`ClearSDKError`) lets an application catch everything the SDK raises on
purpose; the subclasses that describe bad arguments also derive from :class:`ValueError` so that
code written against plain Python conventions keeps working. The other rooms' errors derive from it
too (training's ``DatasetError`` and ``CheckpointError``, export's ``ExportError`` and
``EngineBuildError``, the backends' ``BackendUnavailable``, video's ``SourceError`` and
``DetectorError``), so the CLI reports every one of them the same way.
"""

from __future__ import annotations

__all__ = ["BundleError", "ClearSDKError", "DuplicateIdError", "IndexBusyError", "InputError", "QueryError"]


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


class DuplicateIdError(ClearSDKError, ValueError):
    """An add whose ids are already in the index (and ``replace`` was not asked for); nothing was added.

    ``ids`` names the clashing ids found (at least one), so a caller can tell a race (another run added
    the same items first) from a real clash without reading the message.
    """

    def __init__(self, message: str, ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.ids = tuple(ids)


class IndexBusyError(ClearSDKError, TimeoutError):
    """An on-disk index whose write lock another process held for longer than the index's ``busy_timeout``.

    Nothing is wrong with the index: retry later, or open it with a longer ``busy_timeout``.
    """
