"""A uvicorn ``Server`` that stops as soon as it is asked, for tests that start servers by the hundred.

uvicorn's own main loop looks at ``should_exit`` every 100 ms, so each stop waited 50 ms on average
(with ~700 servers a run, half a minute of the suite). This one waits on an event that :meth:`stop`
sets from any thread, and still refreshes the ``Date`` header once a second as uvicorn does.
"""

from __future__ import annotations

import asyncio
import contextlib

import uvicorn


class PromptServer(uvicorn.Server):
    _loop: asyncio.AbstractEventLoop | None = None
    _stopping: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        counter = 0
        # on_tick refreshes the Date header when the counter is a multiple of 10, and answers
        # whether to exit (should_exit, or uvicorn's request limit).
        while not await self.on_tick(counter):
            counter += 10
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 1.0)

    def stop(self) -> None:
        """From any thread: exit now (what setting ``should_exit`` does within 100 ms)."""
        self.should_exit = True
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(stopping.set)
