"""A wake-up flag for exactly one waiter: ``asyncio.Event`` without its up-front cost.

Every idle live subscription waits on one. ``asyncio.Event`` allocates its deque of
waiters when made (about 0.6 KiB), a visible share of what an idle subscription holds
when there are thousands; a single waiter needs only a future, and only while waiting.
"""

from __future__ import annotations

import asyncio


class WakeAlreadyAwaited(RuntimeError):
    """A second coroutine waited on a ``Wake`` that already has its waiter."""


class Wake:
    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    def wait(self) -> asyncio.Future[None]:
        """Done when set (at once if it is); cancelling it leaves the flag as it is.

        A future, not a coroutine: an idle subscription waits here for as long as it
        lives, and a coroutine's frame would be held all that time."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            raise WakeAlreadyAwaited("a Wake has one waiter at a time")
        waiter = asyncio.get_running_loop().create_future()
        if self._set:
            waiter.set_result(None)
        else:
            self._waiter = waiter
        return waiter
