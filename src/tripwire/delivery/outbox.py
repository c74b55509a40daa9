"""A bounded queue with two lanes: the one queue shape of the SDK's delivery.

Normal items (errors) and low-priority items (release-health batches, reports about the SDK itself)
share one bound, in items and optionally in bytes. When it is full a normal item evicts the oldest
low-priority one, and a low-priority item is refused: a burst of errors never loses an error to a
session batch. Normal items are taken before low-priority ones.

Not thread-safe by itself: the :class:`~tripwire.delivery.worker.Worker` that owns it guards it with
its condition.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any


def _no_size(item: Any) -> int:
    return 0


class Outbox:
    """Two FIFO lanes under one bound of ``max_items`` and ``max_bytes`` (``size(item)`` each)."""

    def __init__(
        self, max_items: int, max_bytes: int | None = None, size: Callable[[Any], int] = _no_size
    ) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._size = size
        self._normal: deque[Any] = deque()
        self._low: deque[Any] = deque()
        #: Bytes held (by ``size``).
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._normal) + len(self._low)

    @property
    def has_normal(self) -> bool:
        """True when a normal (not low-priority) item is queued."""
        return bool(self._normal)

    def __iter__(self) -> Iterator[Any]:
        yield from self._normal
        yield from self._low

    def _fits(self, size: int) -> bool:
        if len(self) >= self.max_items:
            return False
        return self.max_bytes is None or self.bytes + size <= self.max_bytes

    def put(self, item: Any, *, low_priority: bool = False) -> tuple[bool, list[Any]]:
        """Queue ``item``: (accepted, low-priority items evicted to make room for it)."""
        size = self._size(item)
        evicted: list[Any] = []
        while not self._fits(size):
            # Only a normal item evicts, and only low-priority ones; never more than needed.
            if low_priority or not self._low:
                self._low.extendleft(reversed(evicted))
                self.bytes += sum(self._size(e) for e in evicted)
                return False, []
            victim = self._low.popleft()
            self.bytes -= self._size(victim)
            evicted.append(victim)
        (self._low if low_priority else self._normal).append(item)
        self.bytes += size
        return True, evicted

    def put_back(self, item: Any, *, low_priority: bool = False) -> None:
        """Return an item taken earlier to the front of its lane (a retry), whatever the bound."""
        (self._low if low_priority else self._normal).appendleft(item)
        self.bytes += self._size(item)

    def take(self, ready: Callable[[Any], bool] | None = None) -> Any:
        """The first item (normal lane first) for which ``ready(item)`` holds; None if there is none."""
        for lane in (self._normal, self._low):
            if ready is None:
                if lane:
                    item = lane.popleft()
                    self.bytes -= self._size(item)
                    return item
                continue
            for index, item in enumerate(lane):
                if ready(item):
                    del lane[index]
                    self.bytes -= self._size(item)
                    return item
        return None

    def take_all(self) -> list[Any]:
        """Empty the outbox: every item, normal lane first."""
        items = [*self._normal, *self._low]
        self._normal.clear()
        self._low.clear()
        self.bytes = 0
        return items
