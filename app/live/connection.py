"""Per-connection and per-user bookkeeping of live operations: what one WebSocket holds
(for read-your-writes and slow consumers), and the bounds every transport admits
live queries and subscriptions within."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from app.auth import Viewer
from app.errors import Forbidden
from app.live.cohort import Subscriber

log = logging.getLogger(__name__)

SLOW_CONSUMER_CLOSE = 1013  # "Try Again Later": the client reconnects and resubscribes


class LiveLimitReached(Forbidden):
    """A live operation beyond the per-connection or per-user bound."""


class LiveConnection:
    """The live operations of one WebSocket connection, for read-your-writes."""

    # One per open WebSocket: slots, and a list of its live queries (a few; at most
    # ``max_per_connection``) rather than a set, which costs 216 bytes even empty.
    __slots__ = ("_changed", "_close", "_closing", "patches", "streams", "subscribers")

    def __init__(self, close: Callable[[int, str], Awaitable[None]] | None = None) -> None:
        self.subscribers: list[Subscriber] = []
        # The client asked for live results as patches (connection_init ``livePatch``).
        self.patches = False
        # Subscriptions (events, signals): counted against the same per-connection bound.
        self.streams = 0
        # Made by the first read-your-writes wait: most connections never wait, and an
        # Event costs its deque of waiters up front.
        self._changed: asyncio.Event | None = None
        self._close = close
        self._closing: asyncio.Task[None] | None = None

    def slow(self) -> None:
        """Close the connection of a client that stopped reading (once)."""
        if self._close is None or self._closing is not None:
            return
        log.warning(
            "closing a slow consumer with %d live queries and %d subscriptions",
            len(self.subscribers),
            self.streams,
        )
        for subscriber in list(self.subscribers):
            subscriber.detach()
        # The close frame waits behind what the client has not read; the live queries
        # are already released, so nothing more accumulates meanwhile.
        self._closing = asyncio.ensure_future(self._close(SLOW_CONSUMER_CLOSE, "Slow consumer"))
        self._closing.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    def notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def forget(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)
        self.notify()

    def pending(self, version: int) -> list[Subscriber]:
        return [s for s in self.subscribers if not (s.cohort.is_current(version) and s.caught_up)]

    async def wait_caught_up(self, version: int, timeout: float) -> bool:
        """Until every live operation here has been sent a result at or past ``version``."""
        deadline = time.monotonic() + timeout
        changed = self._changed = self._changed or asyncio.Event()
        while self.pending(version):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return not self.pending(version)
        return True


class Admission:
    """The live operations each user holds in this process, and their bounds."""

    def __init__(self, max_per_connection: int, max_per_user: int) -> None:
        self.max_per_connection = max_per_connection
        self.max_per_user = max_per_user
        self.by_user: dict[int, set[Subscriber]] = {}
        self._streams_by_user: dict[int, int] = {}

    def live_count(self, viewer: Viewer) -> int:
        """Live operations this user holds in this process."""
        user_id = viewer.user_id
        return len(self.by_user.get(user_id, ())) + self._streams_by_user.get(user_id, 0)

    def subscribers_of(self, user_id: int) -> Iterable[Subscriber]:
        return self.by_user.get(user_id, ())

    def admit(self, viewer: Viewer, connection: LiveConnection | None) -> None:
        """Refuse a live operation or subscription beyond the bounds of its connection
        or its user."""
        if (
            connection is not None
            and len(connection.subscribers) + connection.streams >= self.max_per_connection
        ):
            raise LiveLimitReached("Too many live queries on this connection")
        if self.live_count(viewer) >= self.max_per_user:
            raise LiveLimitReached("Too many live queries for this user")

    def hold(self, viewer: Viewer, connection: LiveConnection | None) -> Callable[[], None]:
        """Admit a subscription, counted until the returned release is called (once)."""
        self.admit(viewer, connection)
        user_id = viewer.user_id
        self._streams_by_user[user_id] = self._streams_by_user.get(user_id, 0) + 1
        if connection is not None:
            connection.streams += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._streams_by_user[user_id] - 1
            if left:
                self._streams_by_user[user_id] = left
            else:
                del self._streams_by_user[user_id]
            if connection is not None:
                connection.streams -= 1

        return release

    def track(self, subscriber: Subscriber, connection: LiveConnection | None) -> None:
        """Count an admitted live query until it detaches."""
        self.by_user.setdefault(subscriber.viewer.user_id, set()).add(subscriber)
        subscriber.on_detach(self._forget)
        if connection is not None:
            connection.subscribers.append(subscriber)
            subscriber.on_detach(connection.forget)

    def _forget(self, subscriber: Subscriber) -> None:
        mine = self.by_user.get(subscriber.viewer.user_id)
        if mine is not None:
            mine.discard(subscriber)
            if not mine:
                del self.by_user[subscriber.viewer.user_id]
