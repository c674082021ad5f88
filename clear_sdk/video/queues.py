"""A bounded queue that never blocks its producer: when full, the oldest item is dropped (and counted).

A camera delivers frames whether or not we keep up; queuing them all grows memory without bound and
makes every answer later. Dropping the oldest keeps the newest frame, so latency stays bounded too.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Empty(Exception):
    """:meth:`DropOldestQueue.get` timed out."""


class DropOldestQueue(Generic[T]):
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = int(maxsize)
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self.dropped = 0
        self.max_depth = 0

    def put(self, item: T) -> T | None:
        """Add ``item``; returns the item dropped to make room, if any."""
        with self._cond:
            dropped = None
            if len(self._items) >= self.maxsize:
                dropped = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.max_depth = max(self.max_depth, len(self._items))
            self._cond.notify_all()
            return dropped

    def put_wait(self, item: T, stop: threading.Event, poll: float = 0.05) -> bool:
        """Add ``item`` once there is room (back-pressure: a file is read no faster than it is processed).

        Returns False, without adding, when ``stop`` is set first.
        """
        with self._cond:
            while len(self._items) >= self.maxsize:
                if stop.is_set():
                    return False
                self._cond.wait(poll)
            self._items.append(item)
            self.max_depth = max(self.max_depth, len(self._items))
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T:
        """The oldest item; raises :class:`Empty` after ``timeout`` seconds (None: wait forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Empty
                self._cond.wait(left)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def get_nowait(self) -> T:
        with self._cond:
            if not self._items:
                raise Empty
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
