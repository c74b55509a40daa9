"""The global budget of request bytes in flight: what every ingest request together may hold.

Each request takes a :class:`Reservation` and resizes it to the bytes it holds (the body as
received, plus the item it is checking); when the budget has no room the request waits a little,
then is refused with 503 and ``Retry-After``. Per-request limits bound one request; only this
bounds thirty of them pausing at once.

Runs on the event loop only (no locks needed).
"""

from __future__ import annotations

import asyncio


class BudgetExhausted(Exception):
    """The budget had no room for a request within its wait (the handler answers 503)."""


class InFlightBudget:
    """``limit`` bytes shared by the requests in flight (0: no limit); of those, the requests of one
    owner (a project, once the request's key is checked) hold at most ``per_owner`` (0: no limit)."""

    def __init__(self, limit: int, *, per_owner: int = 0, wait: float = 1.0) -> None:
        self.limit = limit
        self.per_owner = per_owner
        self.wait = wait
        #: Bytes reserved right now by the requests of each owner.
        self.by_owner: dict[int, int] = {}
        #: Bytes reserved right now (what the status endpoint and the tests read).
        self.used = 0
        #: Requests refused because the budget stayed full (a drop that is counted).
        self.refused = 0
        self._freed: asyncio.Event | None = None

    def reservation(self) -> Reservation:
        """A new, empty reservation; release it (``async with`` or :meth:`Reservation.release`)."""
        return Reservation(self)

    def _has_room(self, more: int, owner: int | None) -> bool:
        # A body larger than the whole budget never fits: keep the budget well above
        # max_envelope_compressed (a body is counted twice for the moment it is joined).
        if owner is not None and self.per_owner > 0 and self.by_owner.get(owner, 0) + more > self.per_owner:
            return False
        return self.limit <= 0 or self.used + more <= self.limit

    def _add(self, more: int, owner: int | None) -> None:
        self.used += more
        if owner is not None:
            held = self.by_owner.get(owner, 0) + more
            if held:
                self.by_owner[owner] = held
            else:
                self.by_owner.pop(owner, None)  # an owner with nothing in flight takes no room

    async def _take(self, more: int, owner: int | None = None) -> None:
        if self._has_room(more, owner):
            self._add(more, owner)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while not self._has_room(more, owner):
            left = deadline - loop.time()
            if left <= 0:
                self.refused += 1
                raise BudgetExhausted(f"the collector holds {self.used} bytes of requests; retry shortly")
            if self._freed is None:
                self._freed = asyncio.Event()
            freed = self._freed
            try:
                await asyncio.wait_for(freed.wait(), left)
            except asyncio.TimeoutError:
                pass
        self._add(more, owner)

    def _give(self, less: int, owner: int | None = None) -> None:
        self._add(-less, owner)
        if self._freed is not None:
            # Wake every waiter; each checks again whether there is room for it.
            self._freed.set()
            self._freed = None


class Reservation:
    """The bytes one request holds against an :class:`InFlightBudget`."""

    __slots__ = ("_budget", "held", "owner")

    def __init__(self, budget: InFlightBudget) -> None:
        self._budget = budget
        self.held = 0
        self.owner: int | None = None

    def bind(self, owner: int) -> None:
        """The request turned out to be ``owner``'s: what it holds now counts against that owner."""
        if self.owner is None:
            self.owner = owner
            if self.held:
                budget = self._budget
                budget.by_owner[owner] = budget.by_owner.get(owner, 0) + self.held

    async def resize(self, size: int) -> None:
        """Hold ``size`` bytes: wait for room to grow (BudgetExhausted past the wait), shrink at once."""
        if size > self.held:
            await self._budget._take(size - self.held, self.owner)
        elif size < self.held:
            self._budget._give(self.held - size, self.owner)
        self.held = size

    def release(self) -> None:
        """Give everything back (idempotent)."""
        if self.held:
            self._budget._give(self.held, self.owner)
            self.held = 0

    async def __aenter__(self) -> Reservation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()
