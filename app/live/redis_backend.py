"""A broadcaster backend for Redis pub/sub that fails loudly instead of going quiet.

broadcaster's own Redis backend starts listening before the first SUBSCRIBE has gone
out; with current redis-py that listener finds no subscription, stops, and never
delivers a message. Its reconnects are also silent: messages published while the link
was down would be missed without anyone knowing. Here, ``next_published`` blocks on
the subscribed connection itself, and redis-py's own retries are off, so a dropped
connection raises and the change feed reconnects and catches up from the change log.
"""

from __future__ import annotations

import asyncio
from typing import Any

from broadcaster import Event
from broadcaster._backends.base import BroadcastBackend
from redis import asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff
from redis.retry import Retry

CONNECT_TIMEOUT_S = 5.0


class RedisPubSubBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        # broadcaster asks for messages as soon as it connects, before any SUBSCRIBE.
        self._subscribed = asyncio.Event()

    async def connect(self) -> None:
        self._conn = aioredis.Redis.from_url(
            self._url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        await self._conn.ping()
        self._pubsub = self._conn.pubsub(ignore_subscribe_messages=True)

    async def disconnect(self) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        if self._conn is not None:
            await self._conn.aclose()

    async def subscribe(self, channel: str) -> None:
        assert self._pubsub is not None, "connect() first"
        await self._pubsub.subscribe(channel)
        self._subscribed.set()

    async def unsubscribe(self, channel: str) -> None:
        assert self._pubsub is not None, "connect() first"
        await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        assert self._conn is not None, "connect() first"
        await self._conn.publish(channel, message)

    async def next_published(self) -> Event:
        await self._subscribed.wait()
        assert self._pubsub is not None, "connect() first"
        while True:
            message = await self._pubsub.get_message(timeout=None)
            if message is not None and message.get("type") == "message":
                return Event(channel=_text(message["channel"]), message=_text(message["data"]))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
