"""The local index's fp32 vectors: ``vectors.f32`` (raw little-endian rows in add order) or a buffer in memory.

Row ``r`` is at byte ``r * dim * 4``. Only rows below the committed count (SQLite's ``meta.count``) are
data; bytes past it are an add in progress or one a crash interrupted, and are truncated by the next
writer. :class:`VectorRows` knows nothing of SQLite: :class:`~clear_sdk.index.store.IndexStore`
orders the writes around the commit point.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger("clear_sdk.index")

VECTORS_FILE = "vectors.f32"


class VectorRows:
    """fp32 rows [count, dim]: a file (memory-mapped to read) or, with ``path=None``, a growing buffer."""

    def __init__(self, path: Path | None, dim: int) -> None:
        self.path, self.dim = path, dim
        self._buf: np.ndarray | None = np.empty((0, dim), np.float32) if path is None else None
        self._mmap: np.ndarray | None = None

    def view(self, count: int) -> np.ndarray:
        """Rows [0, count) (alive or not): a view of the buffer or a read-only memory map."""
        if self._buf is not None:
            return self._buf[:count]
        if count == 0:
            return np.empty((0, self.dim), np.float32)
        if self._mmap is None or self._mmap.shape[0] != count:
            assert self.path is not None
            self._mmap = np.memmap(self.path, dtype="<f4", mode="r", shape=(count, self.dim))
        return self._mmap

    def stored_rows(self) -> float:
        """How many rows the file holds (fractional for a torn write); the buffer holds what was written."""
        if self._buf is not None:
            return float(len(self._buf))
        return self.path.stat().st_size / (self.dim * 4)  # type: ignore[union-attr]

    def write(self, count: int, emb: np.ndarray) -> None:
        """Write rows [count, count + N) after the committed ones; durable (fsynced) before returning."""
        if self._buf is not None:
            need = count + emb.shape[0]
            if need > self._buf.shape[0]:
                grown = np.empty((max(need, 2 * self._buf.shape[0], 1024), self.dim), np.float32)
                grown[:count] = self._buf[:count]
                self._buf = grown
            self._buf[count:need] = emb
            return
        assert self.path is not None
        with open(self.path, "r+b") as f:
            f.seek(count * self.dim * 4)
            f.write(memoryview(emb).cast("B"))
            f.truncate()
            f.flush()
            os.fsync(f.fileno())

    def truncate(self, count: int, *, durable: bool = False) -> None:
        """Drop the bytes past row ``count`` (an uncommitted or interrupted add)."""
        if self._buf is not None:
            return
        assert self.path is not None
        try:
            with open(self.path, "r+b") as f:
                f.truncate(count * self.dim * 4)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as exc:
            if durable:
                raise
            logger.warning("could not truncate uncommitted vectors in %s: %s", self.path, exc)

    def forget_map(self) -> None:
        """Another process may have grown the file: map it again at the next view."""
        self._mmap = None

    def close(self) -> None:
        self._mmap = None
        self._buf = None


def fsync_dir(path: Path) -> None:
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


__all__ = ["VECTORS_FILE", "VectorRows", "fsync_dir"]
