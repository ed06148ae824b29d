"""The change log's committed head, read once for all who asked since the last read began.

Where other processes commit to the same database, what this process has applied can
lag behind what was acknowledged elsewhere by the broker's delivery time (or longer,
while the broker is away). A reader that must reflect every write acknowledged before
it asked (the query cache's hits) reads the head first: a version at least that of
every such write, since versions are handed out in commit order.

One read serves every caller that joined before it began, so that a burst of cached
reads costs one round trip, not one each. A caller never joins a read already under
way: that read may have started before a write that was acknowledged to the caller,
and would not show it. At most one read is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class HeadProbe:
    def __init__(self, read: Callable[[], Awaitable[int]]) -> None:
        self._read = read
        # The read that callers join: not started yet.
        self._next: asyncio.Future[int] | None = None
        self._reader: asyncio.Task[None] | None = None
        self.reads = 0

    async def head(self) -> int:
        """A committed version at least that of every commit before this call."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read_all(), name="change-head")
        # Shielded: one caller's cancellation must not cancel the others' answer.
        return await asyncio.shield(self._next)

    async def _read_all(self) -> None:
        while (joined := self._next) is not None:
            self._next = None
            self.reads += 1
            try:
                joined.set_result(await self._read())
            except asyncio.CancelledError:
                joined.cancel()
                raise
            except Exception as exc:  # each caller decides what a failed read means
                joined.set_exception(exc)
            # Retrieved even when every caller has gone (cancelled while waiting).
            joined.add_done_callback(_retrieve)

    async def close(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._next is not None and not self._next.done():
            self._next.cancel()


def _retrieve(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()
