"""A uvicorn ``Server`` that stops as soon as it is asked, for tests that start servers by the hundred.

uvicorn's own main loop looks at ``should_exit`` every 100 ms, so each stop waited 50 ms on average
(with ~700 servers a run, half a minute of the suite). This one waits on an event that :meth:`stop`
sets from any thread, and still refreshes the ``Date`` header once a second as uvicorn does.

uvicorn's shutdown then pauses a fixed 100 ms after asking the open connections to close, and polls
every 100 ms for those still busy: another ~70 s of waiting per run. This one takes the same steps
in the same order but waits only while connections or tasks are left, polling every 5 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

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

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        # An idle keep-alive connection closes at once; a busy one finishes its response first.
        for connection in list(self.server_state.connections):
            connection.shutdown()
        state = self.server_state

        async def drained() -> None:
            while (state.connections or state.tasks) and not self.force_exit:
                await asyncio.sleep(0.005)
            for server in self.servers:
                await server.wait_closed()

        try:
            await asyncio.wait_for(drained(), self.config.timeout_graceful_shutdown)
        except asyncio.TimeoutError:
            for task in state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()

    def stop(self) -> None:
        """From any thread: exit now (what setting ``should_exit`` does within 100 ms)."""
        self.should_exit = True
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(stopping.set)
