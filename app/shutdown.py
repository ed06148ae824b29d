"""Graceful shutdown: stop accepting, let in-flight mutations finish, then close
WebSockets with 1001 ("going away") before uvicorn's own shutdown runs.

uvicorn would close every WebSocket with 1012 and cancel what is still running; a
mutation cancelled half-way rolls back (it is atomic), but a client would rather see it
commit. So writes get a bounded grace period first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import uvicorn
from starlette.websockets import WebSocket, WebSocketState

log = logging.getLogger(__name__)
T = TypeVar("T")

GOING_AWAY = 1001
DRAIN_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 2.0


class Drain:
    """Counts write transactions in flight, so shutdown can wait for them."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Writes that outlive their operation (shielded from its cancellation).
        self._writes: set[asyncio.Future[Any]] = set()

    def keep(self, write: asyncio.Future[T]) -> asyncio.Future[T]:
        """Hold a reference to a write until it ends, and retrieve its outcome."""
        self._writes.add(write)
        write.add_done_callback(self._ended)
        return write

    def _ended(self, write: asyncio.Future[Any]) -> None:
        self._writes.discard(write)
        if not write.cancelled():
            # Its operation may be gone: the error was answered to nobody, or to it.
            write.exception()

    @asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        self.in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
            return True
        except TimeoutError:
            return False


class Sockets:
    """The open WebSockets of this process."""

    def __init__(self) -> None:
        self.open: set[WebSocket] = set()

    async def close_all(self, code: int, reason: str) -> None:
        async def close(ws: WebSocket) -> None:
            if ws.application_state is WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CLOSE_TIMEOUT_S):
                        await ws.close(code=code, reason=reason)

        await asyncio.gather(*(close(ws) for ws in list(self.open)))


class GracefulServer(uvicorn.Server):
    """uvicorn, with the drain above run before its own shutdown."""

    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        services = getattr(self._app.state, "services", None)
        running = services.current() if services is not None else None
        if running is not None and not await running.drain.wait_idle(DRAIN_TIMEOUT_S):
            log.warning("%d write(s) still running at shutdown", running.drain.in_flight)
        open_sockets: Sockets | None = getattr(self._app.state, "sockets", None)
        if open_sockets is not None:
            await open_sockets.close_all(GOING_AWAY, "Server shutting down")
        await super().shutdown(sockets)
